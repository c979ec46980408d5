package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// GetTwin returns a device's twin JSON (Azure's shape).
func (c *Client) GetTwin(ctx context.Context, deviceID string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, request{method: http.MethodGet, path: "/twins/" + url.PathEscape(deviceID), out: &out})
	return out, err
}

// PatchTwin applies {"tags":{...},"properties":{"desired":{...}}} as a merge
// patch when etag matches ("" or "*": unconditionally) and returns the twin.
func (c *Client) PatchTwin(ctx context.Context, deviceID string, patch []byte, etag string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, request{method: http.MethodPatch, path: "/twins/" + url.PathEscape(deviceID),
		body: json.RawMessage(patch), header: ifMatchHeader(etag), out: &out})
	return out, err
}

// TwinHistory returns the recorded changes of a device's twin.
func (c *Client) TwinHistory(ctx context.Context, deviceID string) ([]TwinChange, error) {
	out, _, err := c.TwinHistoryStart(ctx, deviceID)
	return out, err
}

// TwinHistoryStart is TwinHistory that also returns the time before which
// the hub trimmed the twin's changes (HistoryStartHeader); it is zero when
// none were trimmed.
func (c *Client) TwinHistoryStart(ctx context.Context, deviceID string) ([]TwinChange, time.Time, error) {
	var (
		out   []TwinChange
		start time.Time
		herr  error
	)
	err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/twins/" + url.PathEscape(deviceID) + "/history", out: &out,
		outHead: func(h http.Header) {
			if s := h.Get(HistoryStartHeader); s != "" {
				start, herr = time.Parse(time.RFC3339Nano, s)
			}
		}})
	if err == nil && herr != nil {
		err = fmt.Errorf("twin history of %s: bad %s header: %w", deviceID, HistoryStartHeader, herr)
	}
	return out, start, err
}

// Query runs a query (SELECT ... FROM devices ...) and returns one page of
// results and the token of the next page ("" when there is none).
func (c *Client) Query(ctx context.Context, text string, maxItems int, continuation string) ([]json.RawMessage, string, error) {
	h := http.Header{}
	if maxItems > 0 {
		h.Set(maxItemCountHdr, strconv.Itoa(maxItems))
	}
	if continuation != "" {
		h.Set(continuationHdr, continuation)
	}
	var out []json.RawMessage
	var next string
	err := c.do(ctx, request{method: http.MethodPost, path: "/devices/query", body: QueryRequest{Query: text},
		header: h, out: &out, outHead: func(hd http.Header) { next = hd.Get(continuationHdr) }})
	return out, next, err
}

// TwinAsOf returns a device's twin as it was at a time.
func (c *Client) TwinAsOf(ctx context.Context, deviceID string, at time.Time) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, request{method: http.MethodGet, path: "/twins/" + url.PathEscape(deviceID),
		query: url.Values{"asOf": {at.UTC().Format(time.RFC3339Nano)}}, out: &out})
	return out, err
}

// ModuleTwin returns a module's twin JSON.
func (c *Client) ModuleTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, request{method: http.MethodGet, path: "/twins/" + url.PathEscape(deviceID) + "/modules/" + url.PathEscape(moduleID), out: &out})
	return out, err
}
