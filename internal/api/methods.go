package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
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
	// QueueTTLInSeconds (beyond Azure): when the device is offline, keep the
	// call this long and invoke it when the device connects; the answer is
	// then 202 with the queued command, to follow at /api/v1/commands/{id}.
	QueueTTLInSeconds int `json:"queueTtlInSeconds,omitempty"`
}

// Commands keeps method calls for offline devices.
type Commands interface {
	Enqueue(ctx context.Context, deviceID, moduleID string, req method.Request, ttl time.Duration) (*method.Command, error)
	Get(ctx context.Context, id string) (*method.Command, error)
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
	mreq := method.Request{
		Name:            req.MethodName,
		Payload:         req.Payload,
		ResponseTimeout: time.Duration(req.ResponseTimeoutInSeconds) * time.Second,
		ConnectTimeout:  time.Duration(req.ConnectTimeoutInSeconds) * time.Second,
	}
	resp, err := h.cfg.Methods.Invoke(r.Context(), r.PathValue("id"), r.PathValue("mid"), mreq)
	if err != nil && req.QueueTTLInSeconds > 0 && h.cfg.Commands != nil && fault.Is(err, fault.NotFound) {
		if _, err := h.cfg.Registry.Get(r.Context(), r.PathValue("id")); err != nil {
			return err // an unknown device is not queued for
		}
		mreq.ConnectTimeout = 0
		cmd, err := h.cfg.Commands.Enqueue(r.Context(), r.PathValue("id"), r.PathValue("mid"), mreq, time.Duration(req.QueueTTLInSeconds)*time.Second)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusAccepted, cmd)
	}
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

// Header of the raw method endpoint's answer: the device's status (the HTTP
// status is 200 whenever the device answered).
const methodStatusHdr = "Ferry-Method-Status"

// invokeRaw is Ferry's byte-payload form of direct methods:
// POST /api/v1/devices/{id}/methods/{name}?responseTimeout=30s&connectTimeout=0s
// with the payload as the body and its Content-Type; the answer is the
// device's payload as the body, its status in Ferry-Method-Status.
func (h *Handler) invokeRaw(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Methods == nil {
		return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "direct methods are not available")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, method.MaxPayloadBytes))
	if err != nil {
		return fault.New(fault.TooLarge, "MessageTooLarge", 413001, "method payload exceeds %d bytes", method.MaxPayloadBytes)
	}
	req := method.Request{Name: r.PathValue("name"), Payload: body, ContentType: r.Header.Get("Content-Type")}
	for param, dst := range map[string]*time.Duration{"responseTimeout": &req.ResponseTimeout, "connectTimeout": &req.ConnectTimeout} {
		if s := r.URL.Query().Get(param); s != "" {
			if *dst, err = time.ParseDuration(s); err != nil {
				return fault.Invalidf("%s must be a duration such as 30s", param)
			}
		}
	}
	resp, err := h.cfg.Methods.Invoke(r.Context(), r.PathValue("id"), r.PathValue("mid"), req)
	if err != nil {
		return err
	}
	ct := resp.ContentType
	if ct == "" {
		ct = "application/octet-stream"
		if json.Valid(resp.Payload) {
			ct = "application/json"
		}
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set(methodStatusHdr, strconv.Itoa(resp.Status))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(resp.Payload)
	return err
}

func (h *Handler) getCommand(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Commands == nil {
		return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "queued commands are not available")
	}
	cmd, err := h.cfg.Commands.Get(r.Context(), r.PathValue("cmd"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, cmd)
}
