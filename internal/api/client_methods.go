package api

import (
	"context"
	"net/http"
	"net/url"
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
