package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/c2d"
	"github.com/ferry-iot/ferry/internal/fault"
)

// C2D is the cloud-to-device queue.
type C2D interface {
	Send(ctx context.Context, deviceID string, m c2d.Message) (c2d.Message, error)
	Pending(ctx context.Context, deviceID string) ([]c2d.Message, error)
	Purge(ctx context.Context, deviceID string) (int, error)
	ReadFeedback(ctx context.Context, after uint64, limit int) ([]c2d.Feedback, uint64, error)
	ReadDeadLetters(ctx context.Context, after uint64, limit int) ([]c2d.DeadLetter, uint64, error)
}

// DeadLetterPage is a page of cloud-to-device dead letters.
type DeadLetterPage struct {
	DeadLetters []c2d.DeadLetter `json:"deadLetters"`
	Next        uint64           `json:"next"`
}

func (h *Handler) readDeadLetters(w http.ResponseWriter, r *http.Request) error {
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fault.Invalidf("after must be a sequence number")
		}
		after = n
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	list, next, err := h.cfg.C2D.ReadDeadLetters(r.Context(), after, limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []c2d.DeadLetter{}
	}
	return writeJSON(w, http.StatusOK, DeadLetterPage{DeadLetters: list, Next: next})
}

// Headers of POST /devices/{id}/messages/deviceBound, named as in Azure's
// HTTPS device API; application properties are iothub-app-<name> headers.
const (
	hdrMessageID     = "iothub-messageid"
	hdrCorrelationID = "iothub-correlationid"
	hdrUserID        = "iothub-userid"
	hdrAck           = "iothub-ack"
	hdrExpiry        = "iothub-expiry"
	hdrAppPrefix     = "iothub-app-"
	maxC2DBody       = 1 << 20 // the queue's own limit (64 KiB by default) is checked by the service
)

// C2DAccepted answers a queued cloud-to-device message.
type C2DAccepted struct {
	MessageID string    `json:"messageId"`
	Sequence  uint64    `json:"sequence"`
	Expiry    time.Time `json:"expiryTimeUtc"`
}

// PurgeResult is Azure's answer to DELETE /devices/{id}/commands.
type PurgeResult struct {
	DeviceID            string `json:"deviceId"`
	TotalMessagesPurged int    `json:"totalMessagesPurged"`
}

// FeedbackPage is a page of cloud-to-device feedback.
type FeedbackPage struct {
	Feedback []c2d.Feedback `json:"feedback"`
	Next     uint64         `json:"next"`
}

func (h *Handler) sendC2D(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := h.cfg.Registry.Get(r.Context(), id); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxC2DBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fault.TooLargef("cloud-to-device message body exceeds %d bytes", maxC2DBody)
		}
		return fault.Invalidf("reading the body: %v", err)
	}
	m := c2d.Message{
		MessageID:       r.Header.Get(hdrMessageID),
		CorrelationID:   r.Header.Get(hdrCorrelationID),
		UserID:          r.Header.Get(hdrUserID),
		Ack:             r.Header.Get(hdrAck),
		ContentType:     r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"),
		Body:            body,
	}
	if s := r.Header.Get(hdrExpiry); s != "" {
		if m.Expiry, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fault.Invalidf("%s must be an RFC 3339 time such as 2026-11-23T06:00:00Z", hdrExpiry)
		}
	} else if s := r.URL.Query().Get("ttl"); s != "" {
		ttl, err := time.ParseDuration(s)
		if err != nil || ttl <= 0 {
			return fault.Invalidf("ttl must be a positive duration such as 1h")
		}
		m.Expiry = h.cfg.Now().Add(ttl)
	}
	for name, values := range r.Header {
		if key, ok := strings.CutPrefix(strings.ToLower(name), hdrAppPrefix); ok && len(values) > 0 {
			m.Properties = append(m.Properties, c2d.Property{Key: key, Value: values[0]})
		}
	}
	out, err := h.cfg.C2D.Send(r.Context(), id, m)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, C2DAccepted{MessageID: out.MessageID, Sequence: out.Sequence, Expiry: out.Expiry})
}

func (h *Handler) pendingC2D(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := h.cfg.Registry.Get(r.Context(), id); err != nil {
		return err
	}
	msgs, err := h.cfg.C2D.Pending(r.Context(), id)
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []c2d.Message{}
	}
	return writeJSON(w, http.StatusOK, msgs)
}

func (h *Handler) purgeC2D(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := h.cfg.Registry.Get(r.Context(), id); err != nil {
		return err
	}
	n, err := h.cfg.C2D.Purge(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, PurgeResult{DeviceID: id, TotalMessagesPurged: n})
}

func (h *Handler) readFeedback(w http.ResponseWriter, r *http.Request) error {
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fault.Invalidf("after must be a feedback sequence number")
		}
		after = n
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	list, next, err := h.cfg.C2D.ReadFeedback(r.Context(), after, limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []c2d.Feedback{}
	}
	return writeJSON(w, http.StatusOK, FeedbackPage{Feedback: list, Next: next})
}
