package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

const (
	maxBodyBytes    = 64 << 10
	continuationHdr = "x-ms-continuation"
	defaultTop      = 1000
)

func (h *Handler) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := h.cfg.Registry.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	h.overlay(d)
	return writeJSON(w, http.StatusOK, d)
}

// putDevice creates a device (no If-Match) or replaces it (If-Match "*" or
// an etag), as Azure's PUT /devices/{id} does.
func (h *Handler) putDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var d registry.Device
	if err := decodeBody(r, &d); err != nil {
		return err
	}
	if d.DeviceID != "" && d.DeviceID != id {
		return fault.Invalidf("deviceId %q in the body does not match %q in the path", d.DeviceID, id)
	}
	d.DeviceID = id
	var (
		out *registry.Device
		err error
	)
	if match := ifMatch(r); match == "" {
		out, err = h.cfg.Registry.Create(r.Context(), d)
	} else {
		out, err = h.cfg.Registry.Update(r.Context(), d, match)
	}
	if err != nil {
		return err
	}
	h.overlay(out)
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	if err := h.cfg.Registry.Delete(r.Context(), r.PathValue("id"), ifMatch(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listDevices pages through devices ordered by id. The continuation token is
// the last id of the page, in the x-ms-continuation header as Azure does.
func (h *Handler) listDevices(w http.ResponseWriter, r *http.Request) error {
	top := defaultTop
	if s := r.URL.Query().Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > defaultTop {
			return fault.Invalidf("top must be a number from 1 to %d", defaultTop)
		}
		top = n
	}
	after := r.Header.Get(continuationHdr)
	// One more than asked tells whether another page exists.
	list, err := h.cfg.Registry.List(r.Context(), after, top+1)
	if err != nil {
		return err
	}
	if len(list) > top {
		list = list[:top]
		w.Header().Set(continuationHdr, list[len(list)-1].DeviceID)
	}
	for i := range list {
		h.overlay(&list[i])
	}
	if list == nil {
		list = []registry.Device{}
	}
	return writeJSON(w, http.StatusOK, list)
}

// overlay fills in the live connection state, which the broker keeps in
// memory rather than writing to the registry on every connect.
func (h *Handler) overlay(d *registry.Device) {
	if h.cfg.Presence == nil {
		return
	}
	connected, since, last := h.cfg.Presence.Presence(d.DeviceID)
	if connected {
		d.ConnectionState = "Connected"
		d.ConnectionStateUpdatedTime = since
		d.LastActivityTime = last
	} else {
		d.ConnectionState = "Disconnected"
	}
}

// ifMatch returns the If-Match value without its quotes.
func ifMatch(r *http.Request) string {
	return strings.Trim(strings.TrimSpace(r.Header.Get("If-Match")), `"`)
}

func decodeBody(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return fault.TooLargef("request body exceeds %d bytes", maxBodyBytes)
		case errors.Is(err, io.EOF):
			return fault.Invalidf("request body is empty; send a JSON document")
		default:
			return fault.Invalidf("request body is not valid JSON: %v", err)
		}
	}
	return nil
}
