package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ferry-iot/ferry/internal/c2d"
)

// C2DOptions are the properties of a cloud-to-device message.
type C2DOptions struct {
	MessageID, CorrelationID, UserID string
	ContentType, ContentEncoding     string
	Ack                              string        // none (default), positive, negative or full
	TTL                              time.Duration // 0: the hub's default (1h)
	Properties                       map[string]string
}

// SendC2D queues a message for a device.
func (c *Client) SendC2D(ctx context.Context, deviceID string, body []byte, o C2DOptions) (*C2DAccepted, error) {
	h := http.Header{}
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	set(hdrMessageID, o.MessageID)
	set(hdrCorrelationID, o.CorrelationID)
	set(hdrUserID, o.UserID)
	set(hdrAck, o.Ack)
	set("Content-Type", o.ContentType)
	set("Content-Encoding", o.ContentEncoding)
	for k, v := range o.Properties {
		h.Set(hdrAppPrefix+k, v)
	}
	q := url.Values{}
	if o.TTL > 0 {
		q.Set("ttl", o.TTL.String())
	}
	if body == nil {
		body = []byte{}
	}
	var out C2DAccepted
	err := c.do(ctx, request{method: http.MethodPost, path: devicePath(deviceID) + "/messages/deviceBound",
		query: q, header: h, raw: body, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PendingC2D lists the messages queued for a device.
func (c *Client) PendingC2D(ctx context.Context, deviceID string) ([]c2d.Message, error) {
	var out []c2d.Message
	err := c.do(ctx, request{method: http.MethodGet, path: devicePath(deviceID) + "/messages/deviceBound", out: &out})
	return out, err
}

// PurgeC2D removes every message queued for a device.
func (c *Client) PurgeC2D(ctx context.Context, deviceID string) (*PurgeResult, error) {
	var out PurgeResult
	err := c.do(ctx, request{method: http.MethodDelete, path: devicePath(deviceID) + "/commands", out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// C2DFeedback reads feedback records after a sequence number.
func (c *Client) C2DFeedback(ctx context.Context, after uint64, limit int) (*FeedbackPage, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out FeedbackPage
	err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/c2d/feedback", query: q, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// C2DDeadLetters reads the messages that left their queue undelivered.
func (c *Client) C2DDeadLetters(ctx context.Context, after uint64, limit int) (*DeadLetterPage, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out DeadLetterPage
	if err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/c2d/deadletter", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
