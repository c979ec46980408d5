package console

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/stream"
)

// sse prepares w for Server-Sent Events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

// send writes one event; a browser that takes over 10 s to accept it is
// cut off.
func (s *sse) send(event string, data []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 0, len(data)+32)
	if event != "" {
		b = append(b, "event: "+event+"\n"...)
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// telemetryLive streams a device's new messages: at most one update per
// LiveRate, with the numeric fields and the raw tail.
func (c *Console) telemetryLive(w http.ResponseWriter, r *http.Request) {
	if !sessionFrom(r.Context()).can(registry.ServiceConnect) {
		writeProblem(w, http.StatusForbidden, "reading telemetry needs the ServiceConnect permission")
		return
	}
	if c.cfg.Telemetry == nil {
		writeProblem(w, http.StatusServiceUnavailable, "telemetry is not available")
		return
	}
	sub, stop := c.live.subscribe(r.PathValue("id"))
	defer stop()
	ev := startSSE(w)
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-sub.ch:
			if !ok {
				return
			}
			if err := ev.send("telemetry", b); err != nil {
				return
			}
			if d := sub.dropped.Load(); d != reported {
				reported = d
				if ev.send("dropped", []byte(strconv.FormatUint(d, 10))) != nil {
					return
				}
			}
		case <-heartbeat.C:
			if ev.send("ping", []byte("{}")) != nil {
				return
			}
		}
	}
}

// historyRanges are the chart's time windows.
var historyRanges = map[string]time.Duration{"5m": 5 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour}

// maxHistoryPoints bounds the points the history answer carries.
const maxHistoryPoints = 2000

// telemetryHistory answers the chart's first load: the window's points
// (sampled down to maxHistoryPoints) and the newest messages for the tail.
func (c *Console) telemetryHistory(w http.ResponseWriter, r *http.Request) {
	if !sessionFrom(r.Context()).can(registry.ServiceConnect) {
		writeProblem(w, http.StatusForbidden, "reading telemetry needs the ServiceConnect permission")
		return
	}
	if c.cfg.Telemetry == nil {
		writeProblem(w, http.StatusServiceUnavailable, "telemetry is not available")
		return
	}
	span, ok := historyRanges[r.URL.Query().Get("range")]
	if !ok {
		span = 5 * time.Minute
	}
	q := stream.Query{DeviceID: r.PathValue("id"), From: c.cfg.Now().Add(-span), Limit: stream.MaxLimit}
	var pts []point
	var last []stream.Message
	deadline := time.Now().Add(1500 * time.Millisecond) // a long window under heavy ingest answers partly rather than load the hub
	partial := false
	for i := 0; ; i++ {
		msgs, next, err := c.cfg.Telemetry.Read(r.Context(), q)
		if err != nil {
			c.cfg.Logger.Warn("console: telemetry history", "device", q.DeviceID, "error", err)
			writeProblem(w, http.StatusInternalServerError, "the telemetry could not be read")
			return
		}
		pts = append(pts, pointsOf(msgs)...)
		if len(pts) > 4*maxHistoryPoints {
			pts = samplePoints(pts, maxHistoryPoints)
		}
		if len(msgs) > 0 {
			last = append(last, msgs...)
			if len(last) > maxTail {
				last = last[len(last)-maxTail:]
			}
		}
		if next == q.After {
			break
		}
		q.After = next
		if time.Now().After(deadline) || i > 500 {
			partial = true
			break
		}
	}
	out := update{Points: samplePoints(pts, maxHistoryPoints), Tail: tailOf(last, maxTail)}
	writeJSON(w, map[string]any{"points": out.Points, "tail": out.Tail, "partial": partial})
}

// stats is the overview's live numbers, shared by every browser for a
// second.
type stats struct {
	mu     sync.Mutex
	at     time.Time // guarded by mu: when last computed
	count  uint64    // guarded by mu: Ingested at that time
	total  int       // guarded by mu
	totAt  time.Time // guarded by mu: when total was counted
	last   []byte    // guarded by mu: the encoded event
	primed bool      // guarded by mu
}

func (c *Console) statsEvent(r *http.Request) []byte {
	st := &c.stats
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	if st.primed && now.Sub(st.at) < 900*time.Millisecond {
		return st.last
	}
	n := c.cfg.Ingested()
	rate := 0.0
	if st.primed {
		rate = float64(n-st.count) / now.Sub(st.at).Seconds()
	}
	if now.Sub(st.totAt) > 5*time.Second {
		if t, err := c.cfg.Devices.Count(r.Context()); err == nil {
			st.total, st.totAt = t, now
		}
	}
	info := c.cfg.Info()
	ev := map[string]any{
		"total": st.total, "connected": c.cfg.Presence.ConnectedCount(), "rate": rate,
		"stored": n, "uptime": int64(info.UptimeSeconds), "primed": st.primed,
	}
	if c.cfg.Errors != nil {
		ev["errors"] = c.cfg.Errors.Recent(20)
	}
	st.last, _ = json.Marshal(ev)
	st.at, st.count, st.primed = now, n, true
	return st.last
}

// statsStream pushes the overview's numbers once a second.
func (c *Console) statsStream(w http.ResponseWriter, r *http.Request) {
	ev := startSSE(w)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if ev.send("stats", c.statsEvent(r)) != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
