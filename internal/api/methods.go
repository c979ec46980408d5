package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/method"
)

// Invoker calls direct methods on devices.
type Invoker interface {
	Invoke(ctx context.Context, deviceID, moduleID string, req method.Request) (method.Response, error)
}

// MethodRequest is Azure's body for POST /twins/{id}/methods.
type MethodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// MethodResponse is Azure's answer: the device's status and payload.
type MethodResponse struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

func (h *Handler) invokeMethod(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Methods == nil {
		return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "direct methods are not available")
	}
	var req MethodRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	resp, err := h.cfg.Methods.Invoke(r.Context(), r.PathValue("id"), r.PathValue("mid"), method.Request{
		Name:            req.MethodName,
		Payload:         req.Payload,
		ResponseTimeout: time.Duration(req.ResponseTimeoutInSeconds) * time.Second,
		ConnectTimeout:  time.Duration(req.ConnectTimeoutInSeconds) * time.Second,
	})
	if err != nil {
		return err
	}
	out := MethodResponse{Status: resp.Status, Payload: json.RawMessage("null")}
	switch {
	case json.Valid(resp.Payload):
		out.Payload = resp.Payload
	case len(resp.Payload) > 0:
		// A device answered with bytes that are not JSON: keep them as a string.
		b, _ := json.Marshal(string(resp.Payload))
		out.Payload = b
	}
	return writeJSON(w, http.StatusOK, out)
}
