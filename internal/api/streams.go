package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/stream"
)

func (h *Handler) hubInfo(w http.ResponseWriter, r *http.Request) error {
	info := h.cfg.Info()
	if n, err := h.cfg.Registry.Count(r.Context()); err == nil {
		info.Devices.Total = n
	}
	if h.cfg.Presence != nil {
		info.Devices.Connected = h.cfg.Presence.ConnectedCount()
	}
	return writeJSON(w, http.StatusOK, info)
}

func (h *Handler) listStreams(w http.ResponseWriter, r *http.Request) error {
	list, err := h.cfg.Streams.Streams(r.Context())
	if err != nil {
		return err
	}
	out := make([]StreamInfo, 0, len(list))
	for _, s := range list {
		out = append(out, StreamInfo{Group: s.Group, Name: s.Name, Messages: s.Messages, First: s.First, Last: s.Last})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) readStream(w http.ResponseWriter, r *http.Request) error {
	q, err := h.query(r)
	if err != nil {
		return err
	}
	if s := r.URL.Query().Get("after"); s != "" {
		if q.After, err = stream.ParseCursor(s); err != nil {
			return fault.Invalidf("after: %v", err)
		}
	} else if err := h.applyFrom(r, &q); err != nil {
		return err
	}
	return h.read(w, r, q)
}

func (h *Handler) readConsumerGroup(w http.ResponseWriter, r *http.Request) error {
	q, err := h.query(r)
	if err != nil {
		return err
	}
	pos, ok, err := h.cfg.Streams.Position(r.Context(), r.PathValue("cg"), r.PathValue("stream"))
	if err != nil {
		return err
	}
	if ok {
		q.After = pos
	} else if err := h.applyFrom(r, &q); err != nil {
		return err
	}
	return h.read(w, r, q)
}

func (h *Handler) getPosition(w http.ResponseWriter, r *http.Request) error {
	pos, ok, err := h.cfg.Streams.Position(r.Context(), r.PathValue("cg"), r.PathValue("stream"))
	if err != nil {
		return err
	}
	if !ok {
		return fault.New(fault.NotFound, "ConsumerGroupPositionNotFound", 404000,
			"consumer group %q has no position on stream %q yet", r.PathValue("cg"), r.PathValue("stream"))
	}
	return writeJSON(w, http.StatusOK, Position{Cursor: pos.String()})
}

func (h *Handler) putPosition(w http.ResponseWriter, r *http.Request) error {
	var p Position
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	c, err := stream.ParseCursor(p.Cursor)
	if err != nil {
		return fault.Invalidf("cursor: %v", err)
	}
	if err := h.cfg.Streams.Commit(r.Context(), r.PathValue("cg"), r.PathValue("stream"), c); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// query reads the filters common to stream reads.
func (h *Handler) query(r *http.Request) (stream.Query, error) {
	v := r.URL.Query()
	q := stream.Query{Group: v.Get("group"), DeviceID: v.Get("device"), Limit: 100}
	if s := r.PathValue("stream"); s != "*" {
		q.Stream = s
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return q, fault.Invalidf("limit must be a number from 1 to 1000")
		}
		q.Limit = n
	}
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return q, fault.Invalidf("wait must be a duration such as 30s")
		}
		q.Wait = min(d, h.cfg.MaxWait)
	}
	if s := v.Get("to"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fault.Invalidf("to must be an RFC 3339 time such as 2026-11-23T05:00:00Z")
		}
		q.To = t
	}
	return q, nil
}

// applyFrom sets the start of a read that has no cursor: "beginning" (the
// default), "now" (only messages that arrive from here on) or a time.
func (h *Handler) applyFrom(r *http.Request, q *stream.Query) error {
	switch s := r.URL.Query().Get("from"); s {
	case "", "beginning":
	case "now":
		last, err := h.cfg.Streams.Last(r.Context())
		if err != nil {
			return err
		}
		q.After = last
	default:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fault.Invalidf("from must be 'beginning', 'now' or an RFC 3339 time such as 2026-11-23T05:00:00Z")
		}
		q.From = t
	}
	return nil
}

func (h *Handler) read(w http.ResponseWriter, r *http.Request, q stream.Query) error {
	msgs, next, err := h.cfg.Streams.Read(r.Context(), q)
	if err != nil {
		return err
	}
	page := MessagePage{Messages: make([]Message, 0, len(msgs)), Next: next.String()}
	for i := range msgs {
		page.Messages = append(page.Messages, messageOf(&msgs[i]))
		if h.cfg.PnP != nil {
			page.Messages[i].PnPMismatch = h.cfg.PnP.CheckMessage(r.Context(), &msgs[i])
		}
	}
	return writeJSON(w, http.StatusOK, page)
}

func messageOf(m *stream.Message) Message {
	out := Message{
		Stream: orDefault(m.Stream), Group: orDefault(m.Group), DeviceID: m.DeviceID, ModuleID: m.ModuleID,
		EnqueuedTime: m.EnqueuedTime.UTC(), Cursor: m.Cursor.String(), Body: m.Body,
		SystemProperties: SystemProperties{
			MessageID: m.MessageID, CorrelationID: m.CorrelationID, UserID: m.UserID, To: m.To,
			ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, Expiry: m.Expiry,
			Component: m.Component, InterfaceID: m.InterfaceID, OutputName: m.OutputName,
			CreationTime: m.CreationTime, MessageType: m.MessageType, AuthMethod: m.AuthMethod,
		},
	}
	if len(m.Properties) > 0 {
		out.Properties = make(map[string]string, len(m.Properties))
		for _, p := range m.Properties {
			out.Properties[p.Key] = p.Value
		}
	}
	return out
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}
