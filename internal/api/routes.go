package api

import (
	"context"
	"net/http"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/route"
	"github.com/ferry-iot/ferry/internal/schema"
)

// Routes manages message routes; route.Service implements it.
type Routes interface {
	Create(ctx context.Context, r route.Route) (*route.Route, error)
	Update(ctx context.Context, r route.Route) (*route.Route, error)
	Get(ctx context.Context, name string) (*route.Route, error)
	List(ctx context.Context) ([]route.Route, error)
	Delete(ctx context.Context, name string) error
	SetEnabled(ctx context.Context, name string, on bool) (*route.Route, error)
	Test(ctx context.Context, req route.TestRequest) (*route.TestResult, error)
	Fallback() bool
	SetFallback(ctx context.Context, on bool) error
}

// Schemas manages protobuf schemas; schema.Registry implements it.
type Schemas interface {
	Add(ctx context.Context, s schema.Schema) (*schema.Schema, error)
	List() []schema.Schema
	Delete(ctx context.Context, name string) error
}

// Fallback is the body of /api/v1/routing/fallback.
type Fallback struct {
	Enabled bool `json:"enabled"`
}

const routesPrefix = "/api/v1/routes"

func (h *Handler) routeRoutes() {
	p := routesPrefix
	h.route(p, "GET", registry.RegistryRead, h.withRoutes(h.listRoutes))
	h.route(p, "POST", registry.RegistryWrite, h.withRoutes(h.createRoute))
	h.route(p+"/test", "POST", registry.RegistryRead, h.withRoutes(h.testRoute))
	h.route(p+"/{name}", "GET", registry.RegistryRead, h.withRoutes(h.getRoute))
	h.route(p+"/{name}", "PUT", registry.RegistryWrite, h.withRoutes(h.putRoute))
	h.route(p+"/{name}", "DELETE", registry.RegistryWrite, h.withRoutes(h.deleteRoute))
	h.route(p+"/{name}/enable", "POST", registry.RegistryWrite, h.withRoutes(h.enableRoute(true)))
	h.route(p+"/{name}/disable", "POST", registry.RegistryWrite, h.withRoutes(h.enableRoute(false)))
	h.route("/api/v1/routing/fallback", "GET", registry.RegistryRead, h.withRoutes(h.getFallback))
	h.route("/api/v1/routing/fallback", "PUT", registry.RegistryWrite, h.withRoutes(h.putFallback))
	h.route("/api/v1/schemas", "GET", registry.RegistryRead, h.withSchemas(h.listSchemas))
	h.route("/api/v1/schemas", "POST", registry.RegistryWrite, h.withSchemas(h.addSchema))
	h.route("/api/v1/schemas/{name}", "DELETE", registry.RegistryWrite, h.withSchemas(h.deleteSchema))
}

func (h *Handler) withRoutes(fn func(Routes, http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if h.cfg.Routes == nil {
			return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "this hub does not route messages")
		}
		return fn(h.cfg.Routes, w, r)
	}
}

func (h *Handler) withSchemas(fn func(Schemas, http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if h.cfg.Schemas == nil {
			return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "this hub keeps no schemas")
		}
		return fn(h.cfg.Schemas, w, r)
	}
}

func (h *Handler) listRoutes(rs Routes, w http.ResponseWriter, r *http.Request) error {
	list, err := rs.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]route.Route, 0, len(list))
	for _, x := range list {
		out = append(out, x.Redacted())
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) createRoute(rs Routes, w http.ResponseWriter, r *http.Request) error {
	var in route.Route
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	out, err := rs.Create(r.Context(), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out.Redacted())
}

func (h *Handler) getRoute(rs Routes, w http.ResponseWriter, r *http.Request) error {
	out, err := rs.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out.Redacted())
}

func (h *Handler) putRoute(rs Routes, w http.ResponseWriter, r *http.Request) error {
	var in route.Route
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if in.Name == "" {
		in.Name = r.PathValue("name")
	}
	if in.Name != r.PathValue("name") {
		return fault.Invalidf("the body names route %q, the path %q", in.Name, r.PathValue("name"))
	}
	out, err := rs.Update(r.Context(), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out.Redacted())
}

func (h *Handler) deleteRoute(rs Routes, w http.ResponseWriter, r *http.Request) error {
	if err := rs.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) enableRoute(on bool) func(Routes, http.ResponseWriter, *http.Request) error {
	return func(rs Routes, w http.ResponseWriter, r *http.Request) error {
		out, err := rs.SetEnabled(r.Context(), r.PathValue("name"), on)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out.Redacted())
	}
}

func (h *Handler) testRoute(rs Routes, w http.ResponseWriter, r *http.Request) error {
	var in route.TestRequest
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	out, err := rs.Test(r.Context(), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getFallback(rs Routes, w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, Fallback{Enabled: rs.Fallback()})
}

func (h *Handler) putFallback(rs Routes, w http.ResponseWriter, r *http.Request) error {
	var in Fallback
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if err := rs.SetFallback(r.Context(), in.Enabled); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, in)
}

func (h *Handler) listSchemas(ss Schemas, w http.ResponseWriter, r *http.Request) error {
	if r.URL.Query().Get("descriptors") == "true" {
		if sd, ok := ss.(interface{ ListWithDescriptors() []schema.Schema }); ok {
			return writeJSON(w, http.StatusOK, sd.ListWithDescriptors())
		}
	}
	return writeJSON(w, http.StatusOK, ss.List())
}

func (h *Handler) addSchema(ss Schemas, w http.ResponseWriter, r *http.Request) error {
	var in schema.Schema
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	out, err := ss.Add(r.Context(), in)
	if err != nil {
		return err
	}
	out.Descriptor = nil
	return writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) deleteSchema(ss Schemas, w http.ResponseWriter, r *http.Request) error {
	if err := ss.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
