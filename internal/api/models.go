package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/stream"
)

// Models is the Plug and Play model repository; model.Repository
// implements it.
type Models interface {
	Add(ctx context.Context, doc []byte) ([]model.Summary, error)
	List() []model.Summary
	Get(id string) (*model.Details, error)
	Delete(ctx context.Context, id string) error
}

// PnP is what the API needs of the hub's Plug and Play support.
type PnP interface {
	// DeviceState returns a device's model, writable-property
	// acknowledgements and telemetry checks.
	DeviceState(ctx context.Context, deviceID string) (*model.DeviceState, error)
	// CheckMessage returns how a stored message breaks its device's model
	// (nil when it fits or the device has no model).
	CheckMessage(ctx context.Context, m *stream.Message) []model.Problem
}

const modelsPrefix = "/api/v1/models"

func (h *Handler) routeModels() {
	h.route(modelsPrefix, "GET", registry.RegistryRead, h.withModels(h.listModels))
	h.route(modelsPrefix, "POST", registry.RegistryWrite, h.withModels(h.addModels))
	h.route(modelsPrefix+"/{id}", "GET", registry.RegistryRead, h.withModels(h.getModel))
	h.route(modelsPrefix+"/{id}", "DELETE", registry.RegistryWrite, h.withModels(h.deleteModel))
	h.route("/api/v1/devices/{id}/pnp", "GET", registry.RegistryRead, h.devicePnP)
}

func (h *Handler) withModels(fn func(Models, http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if h.cfg.Models == nil {
			return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "this hub keeps no models")
		}
		return fn(h.cfg.Models, w, r)
	}
}

func (h *Handler) listModels(ms Models, w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, ms.List())
}

// addModels takes a DTDL document: one interface or an array of them.
func (h *Handler) addModels(ms Models, w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, model.MaxDocumentBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fault.TooLargef("a DTDL document is at most %d bytes", model.MaxDocumentBytes)
		}
		return fault.Invalidf("read the request body: %v", err)
	}
	out, err := ms.Add(r.Context(), body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) getModel(ms Models, w http.ResponseWriter, r *http.Request) error {
	d, err := ms.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (h *Handler) deleteModel(ms Models, w http.ResponseWriter, r *http.Request) error {
	if err := ms.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) devicePnP(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.PnP == nil {
		return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "this hub keeps no models")
	}
	st, err := h.cfg.PnP.DeviceState(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}
