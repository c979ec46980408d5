package api

import (
	"context"
	"net/http"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Modules is what the API needs of the registry for module identities.
// Config.Registry provides it when it implements these methods too, as
// *registry.Service does; otherwise the module routes answer 503.
type Modules interface {
	CreateModule(ctx context.Context, m registry.Module) (*registry.Module, error)
	GetModule(ctx context.Context, deviceID, moduleID string) (*registry.Module, error)
	UpdateModule(ctx context.Context, m registry.Module, ifMatch string) (*registry.Module, error)
	DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error
	ListModules(ctx context.Context, deviceID string) ([]registry.Module, error)
}

// routeModules registers the module identity routes under prefix, in
// Azure's shape (PROTOCOL.md §2.4) and with the device routes' rights.
func (h *Handler) routeModules(prefix string) {
	h.route(prefix+"/devices/{id}/modules", "GET", registry.RegistryRead, h.listModules)
	h.route(prefix+"/devices/{id}/modules/{$}", "GET", registry.RegistryRead, h.listModules)
	h.route(prefix+"/devices/{id}/modules/{mid}", "GET", registry.RegistryRead, h.getModule)
	h.route(prefix+"/devices/{id}/modules/{mid}", "PUT", registry.RegistryWrite, h.putModule)
	h.route(prefix+"/devices/{id}/modules/{mid}", "DELETE", registry.RegistryWrite, h.deleteModule)
}

// modules returns the registry's module methods.
func (h *Handler) modules() (Modules, error) {
	if m, ok := h.cfg.Registry.(Modules); ok {
		return m, nil
	}
	return nil, &fault.Error{Kind: fault.Unavailable, Msg: "this hub does not support module identities"}
}

func (h *Handler) getModule(w http.ResponseWriter, r *http.Request) error {
	ms, err := h.modules()
	if err != nil {
		return err
	}
	m, err := ms.GetModule(r.Context(), r.PathValue("id"), r.PathValue("mid"))
	if err != nil {
		return err
	}
	h.overlayModule(m)
	return writeJSON(w, http.StatusOK, m)
}

// putModule creates a module (no If-Match) or replaces it (If-Match "*" or
// an etag), as Azure's PUT /devices/{id}/modules/{mid} does.
func (h *Handler) putModule(w http.ResponseWriter, r *http.Request) error {
	ms, err := h.modules()
	if err != nil {
		return err
	}
	id, mid := r.PathValue("id"), r.PathValue("mid")
	var m registry.Module
	if err := decodeBody(r, &m); err != nil {
		return err
	}
	if m.DeviceID != "" && m.DeviceID != id {
		return fault.Invalidf("deviceId %q in the body does not match %q in the path", m.DeviceID, id)
	}
	if m.ModuleID != "" && m.ModuleID != mid {
		return fault.Invalidf("moduleId %q in the body does not match %q in the path", m.ModuleID, mid)
	}
	m.DeviceID, m.ModuleID = id, mid
	var out *registry.Module
	if match := ifMatch(r); match == "" {
		out, err = ms.CreateModule(r.Context(), m)
	} else {
		out, err = ms.UpdateModule(r.Context(), m, match)
	}
	if err != nil {
		return err
	}
	h.overlayModule(out)
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) deleteModule(w http.ResponseWriter, r *http.Request) error {
	ms, err := h.modules()
	if err != nil {
		return err
	}
	if err := ms.DeleteModule(r.Context(), r.PathValue("id"), r.PathValue("mid"), ifMatch(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listModules answers a JSON array of the device's modules, ordered by id.
func (h *Handler) listModules(w http.ResponseWriter, r *http.Request) error {
	ms, err := h.modules()
	if err != nil {
		return err
	}
	list, err := ms.ListModules(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	for i := range list {
		h.overlayModule(&list[i])
	}
	if list == nil {
		list = []registry.Module{}
	}
	return writeJSON(w, http.StatusOK, list)
}

// overlayModule fills in the live connection state of a module client
// (client id "{deviceId}/{moduleId}"), as overlay does for devices.
func (h *Handler) overlayModule(m *registry.Module) {
	if h.cfg.Presence == nil {
		return
	}
	connected, since, last := h.cfg.Presence.Presence(m.DeviceID + "/" + m.ModuleID)
	if connected {
		m.ConnectionState = registry.Connected
		m.ConnectionStateUpdatedTime = since
		m.LastActivityTime = last
	} else {
		m.ConnectionState = registry.Disconnected
	}
}
