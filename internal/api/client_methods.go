package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
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
