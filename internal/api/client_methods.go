package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ferry-iot/ferry/internal/method"
)

// InvokeMethod calls a direct method on a device (moduleID "" for the
// device itself) and returns the device's status and payload.
func (c *Client) InvokeMethod(ctx context.Context, deviceID, moduleID string, req MethodRequest) (*MethodResponse, error) {
	path := "/twins/" + url.PathEscape(deviceID)
	if moduleID != "" {
		path += "/modules/" + url.PathEscape(moduleID)
	}
	var out MethodResponse
	// The hub may wait for the device to connect and then to answer.
	wait := time.Duration(req.ResponseTimeoutInSeconds+req.ConnectTimeoutInSeconds) * time.Second
	if req.ResponseTimeoutInSeconds == 0 {
		wait += 30 * time.Second
	}
	err := c.do(ctx, request{method: http.MethodPost, path: path + "/methods", body: req, out: &out, wait: wait})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RawMethodResponse is the device's answer to InvokeRaw.
type RawMethodResponse struct {
	Status      int
	Payload     []byte
	ContentType string
}

// InvokeRaw calls a direct method with a payload of any content type (Ferry's
// extension of Azure's JSON-only direct methods).
func (c *Client) InvokeRaw(ctx context.Context, deviceID, moduleID, name string, payload []byte, contentType string, responseTimeout, connectTimeout time.Duration) (*RawMethodResponse, error) {
	path := "/api/v1/devices/" + url.PathEscape(deviceID)
	if moduleID != "" {
		path += "/modules/" + url.PathEscape(moduleID)
	}
	q := url.Values{}
	if responseTimeout > 0 {
		q.Set("responseTimeout", responseTimeout.String())
	}
	if connectTimeout > 0 {
		q.Set("connectTimeout", connectTimeout.String())
	}
	out := &RawMethodResponse{}
	if payload == nil {
		payload = []byte{}
	}
	err := c.do(ctx, request{method: http.MethodPost, path: path + "/methods/" + url.PathEscape(name), query: q,
		header: http.Header{"Content-Type": {contentType}}, raw: payload, rawOut: &out.Payload,
		wait: responseTimeout + connectTimeout + 30*time.Second,
		outHead: func(h http.Header) {
			out.Status, _ = strconv.Atoi(h.Get(methodStatusHdr))
			out.ContentType = h.Get("Content-Type")
		}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// InvokeOrQueue calls a method like InvokeMethod; with req.QueueTTLInSeconds
// set and the device offline, the hub keeps the call instead and the queued
// command comes back (and the response is nil).
func (c *Client) InvokeOrQueue(ctx context.Context, deviceID, moduleID string, req MethodRequest) (*MethodResponse, *method.Command, error) {
	path := "/twins/" + url.PathEscape(deviceID)
	if moduleID != "" {
		path += "/modules/" + url.PathEscape(moduleID)
	}
	var raw json.RawMessage
	wait := time.Duration(req.ResponseTimeoutInSeconds+req.ConnectTimeoutInSeconds+30) * time.Second
	if err := c.do(ctx, request{method: http.MethodPost, path: path + "/methods", body: req, out: &raw, wait: wait}); err != nil {
		return nil, nil, err
	}
	var probe struct {
		State *string `json:"state"`
	}
	_ = json.Unmarshal(raw, &probe)
	if probe.State != nil {
		var cmd method.Command
		if err := json.Unmarshal(raw, &cmd); err != nil {
			return nil, nil, fmt.Errorf("api: queued command: %w", err)
		}
		return nil, &cmd, nil
	}
	var resp MethodResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, nil, fmt.Errorf("api: method response: %w", err)
	}
	return &resp, nil, nil
}

// Command returns a queued command's state.
func (c *Client) Command(ctx context.Context, id string) (*method.Command, error) {
	var out method.Command
	if err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/commands/" + url.PathEscape(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
