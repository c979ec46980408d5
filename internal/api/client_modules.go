package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferry-iot/ferry/internal/registry"
)

// modulePath is the path of one module identity.
func modulePath(deviceID, moduleID string) string {
	return devicePath(deviceID) + "/modules/" + url.PathEscape(moduleID)
}

// CreateModule registers a new module of an existing device. Empty symmetric
// keys make the hub generate them. An unknown device is fault.NotFound, an
// existing module id fault.Conflict.
func (c *Client) CreateModule(ctx context.Context, m registry.Module) (*registry.Module, error) {
	var out registry.Module
	err := c.do(ctx, request{method: http.MethodPut, path: modulePath(m.DeviceID, m.ModuleID), body: m, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateModule replaces a module's identity if its etag still matches (""
// means any version). A stale etag is fault.PreconditionFailed.
func (c *Client) UpdateModule(ctx context.Context, m registry.Module, etag string) (*registry.Module, error) {
	var out registry.Module
	err := c.do(ctx, request{method: http.MethodPut, path: modulePath(m.DeviceID, m.ModuleID),
		header: ifMatchHeader(etag), body: m, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetModule returns one module; an unknown device or module is fault.NotFound.
func (c *Client) GetModule(ctx context.Context, deviceID, moduleID string) (*registry.Module, error) {
	var out registry.Module
	if err := c.do(ctx, request{method: http.MethodGet, path: modulePath(deviceID, moduleID), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteModule removes a module if its etag still matches ("" means any
// version).
func (c *Client) DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: modulePath(deviceID, moduleID), header: ifMatchHeader(etag)})
}

// ListModules returns the modules of a device, ordered by module id. An
// unknown device is fault.NotFound.
func (c *Client) ListModules(ctx context.Context, deviceID string) ([]registry.Module, error) {
	var out []registry.Module
	if err := c.do(ctx, request{method: http.MethodGet, path: devicePath(deviceID) + "/modules", out: &out}); err != nil {
		return nil, err
	}
	if out == nil {
		out = []registry.Module{}
	}
	return out, nil
}
