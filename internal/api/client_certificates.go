package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferry-iot/ferry/internal/registry"
)

func caPath(name string) string { return certificatesPrefix + "/" + url.PathEscape(name) }

// AddCA registers a CA certificate (PEM), unverified. The result carries
// the verification code to sign for VerifyCA.
func (c *Client) AddCA(ctx context.Context, name, certPEM string) (*registry.CA, error) {
	var out registry.CA
	err := c.do(ctx, request{method: http.MethodPost, path: certificatesPrefix,
		body: AddCARequest{Name: name, Certificate: certPEM}, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyCA proves possession of a CA's key with proofPEM, a certificate
// whose subject CN is the verification code, signed by the CA.
func (c *Client) VerifyCA(ctx context.Context, name, proofPEM string) (*registry.CA, error) {
	var out registry.CA
	err := c.do(ctx, request{method: http.MethodPost, path: caPath(name) + "/verify",
		body: VerifyCARequest{Certificate: proofPEM}, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// CA returns one CA; an unknown name is fault.NotFound.
func (c *Client) CA(ctx context.Context, name string) (*registry.CA, error) {
	var out registry.CA
	if err := c.do(ctx, request{method: http.MethodGet, path: caPath(name), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// CAs lists the registered CAs, ordered by name.
func (c *Client) CAs(ctx context.Context) ([]registry.CA, error) {
	var out []registry.CA
	err := c.do(ctx, request{method: http.MethodGet, path: certificatesPrefix, out: &out})
	return out, err
}

// DeleteCA removes a CA.
func (c *Client) DeleteCA(ctx context.Context, name string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: caPath(name)})
}
