package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferry-iot/ferry/internal/provision"
)

func provisioningTokenPath(name string) string {
	return provisioningPrefix + "/tokens/" + url.PathEscape(name)
}

func provisioningOperationPath(id string) string {
	return provisioningPrefix + "/operations/" + url.PathEscape(id)
}

// CreateProvisioningToken makes a provisioning token. The result carries the
// token's secret, which the hub shows this once.
func (c *Client) CreateProvisioningToken(ctx context.Context, req provision.CreateTokenRequest) (*provision.NewToken, error) {
	var out provision.NewToken
	err := c.do(ctx, request{method: http.MethodPost, path: provisioningPrefix + "/tokens", body: req, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ProvisioningTokens lists every provisioning token (without secrets).
func (c *Client) ProvisioningTokens(ctx context.Context) ([]provision.Token, error) {
	var out []provision.Token
	err := c.do(ctx, request{method: http.MethodGet, path: provisioningPrefix + "/tokens", out: &out})
	return out, err
}

// ProvisioningToken returns one provisioning token; an unknown name is
// fault.NotFound.
func (c *Client) ProvisioningToken(ctx context.Context, name string) (*provision.Token, error) {
	var out provision.Token
	if err := c.do(ctx, request{method: http.MethodGet, path: provisioningTokenPath(name), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeProvisioningToken revokes a provisioning token and returns it.
func (c *Client) RevokeProvisioningToken(ctx context.Context, name string) (*provision.Token, error) {
	var out provision.Token
	err := c.do(ctx, request{method: http.MethodPost, path: provisioningTokenPath(name) + "/revoke", out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ProvisioningOperations lists up to limit (0: the hub's maximum)
// provisioning operations in state ("" for all), newest first.
func (c *Client) ProvisioningOperations(ctx context.Context, state provision.State, limit int) ([]provision.Operation, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []provision.Operation
	err := c.do(ctx, request{method: http.MethodGet, path: provisioningPrefix + "/operations", query: q, out: &out})
	return out, err
}

// ProvisioningOperation returns one provisioning operation.
func (c *Client) ProvisioningOperation(ctx context.Context, id string) (*provision.Operation, error) {
	var out provision.Operation
	if err := c.do(ctx, request{method: http.MethodGet, path: provisioningOperationPath(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveProvisioning approves a pending operation: the hub creates (or
// binds) the device and sets the approval's tags and desired properties.
func (c *Client) ApproveProvisioning(ctx context.Context, id string, a provision.Approval) (*provision.Operation, error) {
	var out provision.Operation
	err := c.do(ctx, request{method: http.MethodPost, path: provisioningOperationPath(id) + "/approve", body: a, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RejectProvisioning rejects a pending operation.
func (c *Client) RejectProvisioning(ctx context.Context, id string, r provision.Rejection) (*provision.Operation, error) {
	var out provision.Operation
	err := c.do(ctx, request{method: http.MethodPost, path: provisioningOperationPath(id) + "/reject", body: r, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
