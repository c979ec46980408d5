package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferry-iot/ferry/internal/model"
)

// AddModels uploads a DTDL document (one interface or an array of them).
// Invalid DTDL is fault.Invalid with the JSON path of every problem; an id
// stored with other contents is fault.Conflict.
func (c *Client) AddModels(ctx context.Context, doc []byte) ([]model.Summary, error) {
	var out []model.Summary
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	err := c.do(ctx, request{method: http.MethodPost, path: modelsPrefix, raw: doc, header: h, out: &out})
	return out, err
}

// Models lists the repository's interfaces by id.
func (c *Client) Models(ctx context.Context) ([]model.Summary, error) {
	var out []model.Summary
	err := c.do(ctx, request{method: http.MethodGet, path: modelsPrefix, out: &out})
	return out, err
}

// Model returns one interface with its DTDL and compiled model.
func (c *Client) Model(ctx context.Context, id string) (*model.Details, error) {
	var out model.Details
	if err := c.do(ctx, request{method: http.MethodGet, path: modelsPrefix + "/" + url.PathEscape(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteModel removes an interface.
func (c *Client) DeleteModel(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: modelsPrefix + "/" + url.PathEscape(id)})
}

// DevicePnP returns a device's Plug and Play state: its model, each
// writable property's desired value and acknowledgement, and its
// telemetry checks.
func (c *Client) DevicePnP(ctx context.Context, deviceID string) (*model.DeviceState, error) {
	var out model.DeviceState
	if err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/devices/" + url.PathEscape(deviceID) + "/pnp", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
