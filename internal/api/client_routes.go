package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferry-iot/ferry/internal/route"
	"github.com/ferry-iot/ferry/internal/schema"
)

func routePath(name string) string { return routesPrefix + "/" + url.PathEscape(name) }

// CreateRoute saves a new route; a taken name is fault.Conflict, a bad
// condition fault.Invalid with its line and column.
func (c *Client) CreateRoute(ctx context.Context, r route.Route) (*route.Route, error) {
	var out route.Route
	if err := c.do(ctx, request{method: http.MethodPost, path: routesPrefix, body: r, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateRoute replaces a route. A webhook secret sent as route.Redacted
// keeps the stored one.
func (c *Client) UpdateRoute(ctx context.Context, r route.Route) (*route.Route, error) {
	var out route.Route
	if err := c.do(ctx, request{method: http.MethodPut, path: routePath(r.Name), body: r, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Route returns one route (webhook secrets redacted).
func (c *Client) Route(ctx context.Context, name string) (*route.Route, error) {
	var out route.Route
	if err := c.do(ctx, request{method: http.MethodGet, path: routePath(name), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Routes lists the routes by name.
func (c *Client) Routes(ctx context.Context) ([]route.Route, error) {
	var out []route.Route
	err := c.do(ctx, request{method: http.MethodGet, path: routesPrefix, out: &out})
	return out, err
}

// DeleteRoute removes a route.
func (c *Client) DeleteRoute(ctx context.Context, name string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: routePath(name)})
}

// SetRouteEnabled enables or disables a route.
func (c *Client) SetRouteEnabled(ctx context.Context, name string, on bool) (*route.Route, error) {
	verb := "/disable"
	if on {
		verb = "/enable"
	}
	var out route.Route
	if err := c.do(ctx, request{method: http.MethodPost, path: routePath(name) + verb, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// TestRoutes evaluates a sample message against the routes (or req.Route).
func (c *Client) TestRoutes(ctx context.Context, req route.TestRequest) (*route.TestResult, error) {
	var out route.TestResult
	if err := c.do(ctx, request{method: http.MethodPost, path: routesPrefix + "/test", body: req, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// RoutingFallback reports whether the fallback is on.
func (c *Client) RoutingFallback(ctx context.Context) (bool, error) {
	var out Fallback
	err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/routing/fallback", out: &out})
	return out.Enabled, err
}

// SetRoutingFallback turns the fallback on or off.
func (c *Client) SetRoutingFallback(ctx context.Context, on bool) error {
	return c.do(ctx, request{method: http.MethodPut, path: "/api/v1/routing/fallback", body: Fallback{Enabled: on}})
}

// AddSchema registers (or replaces) a protobuf schema.
func (c *Client) AddSchema(ctx context.Context, s schema.Schema) (*schema.Schema, error) {
	var out schema.Schema
	if err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/schemas", body: s, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Schemas lists the registered schemas (without descriptors).
func (c *Client) Schemas(ctx context.Context) ([]schema.Schema, error) {
	var out []schema.Schema
	err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/schemas", out: &out})
	return out, err
}

// SchemaSet lists the registered schemas with their descriptor sets, for
// decoding messages on the client (ferry monitor).
func (c *Client) SchemaSet(ctx context.Context) ([]schema.Schema, error) {
	var out []schema.Schema
	err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/schemas", query: url.Values{"descriptors": {"true"}}, out: &out})
	return out, err
}

// DeleteSchema removes a schema.
func (c *Client) DeleteSchema(ctx context.Context, name string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/api/v1/schemas/" + url.PathEscape(name)})
}
