package console

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// ErrorLog keeps the hub's most recent error log records for the overview
// page. Wrap the hub's log handler with Handler.
type ErrorLog struct {
	mu   sync.Mutex
	ring []LoggedError // guarded by mu; the newest last, at most cap(ring)
}

// LoggedError is one error record.
type LoggedError struct {
	Time      time.Time `json:"time"`
	Message   string    `json:"message"`
	Component string    `json:"component,omitempty"`
	Detail    string    `json:"detail,omitempty"` // the record's "error" attribute
}

// NewErrorLog keeps the last n error records.
func NewErrorLog(n int) *ErrorLog { return &ErrorLog{ring: make([]LoggedError, 0, n)} }

// Recent returns up to n records, the newest first.
func (l *ErrorLog) Recent(n int) []LoggedError {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LoggedError, 0, min(n, len(l.ring)))
	for i := len(l.ring) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, l.ring[i])
	}
	return out
}

func (l *ErrorLog) add(e LoggedError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) == cap(l.ring) {
		copy(l.ring, l.ring[1:])
		l.ring = l.ring[:len(l.ring)-1]
	}
	l.ring = append(l.ring, e)
}

// Handler returns a handler that passes every record to next and keeps the
// errors.
func (l *ErrorLog) Handler(next slog.Handler) slog.Handler {
	return &errorHandler{log: l, next: next}
}

type errorHandler struct {
	log       *ErrorLog
	next      slog.Handler
	component string
}

func (h *errorHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelError || h.next.Enabled(ctx, lv)
}

func (h *errorHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		e := LoggedError{Time: r.Time, Message: r.Message, Component: h.component}
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "error", "err":
				e.Detail = a.Value.String()
			case "component":
				e.Component = a.Value.String()
			}
			return true
		})
		h.log.add(e)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *errorHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	for _, a := range as {
		if a.Key == "component" {
			c.component = a.Value.String()
		}
	}
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *errorHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
