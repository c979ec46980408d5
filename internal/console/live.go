package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

// subBuffer is how many undelivered updates a browser may lag behind before
// its oldest are dropped.
const subBuffer = 8

// live shares one stream tailer per watched device among the browsers
// watching it.
type live struct {
	tel  Telemetry
	rate time.Duration // minimum time between two updates of one tailer
	log  *slog.Logger

	mu     sync.Mutex
	tails  map[string]*tailer // guarded by mu
	closed bool               // guarded by mu
	wg     sync.WaitGroup

	newestMu sync.Mutex
	newest   stream.Cursor // guarded by newestMu: the store's newest position...
	newestAt time.Time     // guarded by newestMu: ...as read at this time
}

// newestTTL is how long tailers share one reading of the store's newest
// position (a JetStream API request).
const newestTTL = 40 * time.Millisecond

// last returns the store's newest position, read at most once per
// newestTTL for all tailers.
func (l *live) last(ctx context.Context) (stream.Cursor, error) {
	l.newestMu.Lock()
	defer l.newestMu.Unlock()
	if time.Since(l.newestAt) < newestTTL {
		return l.newest, nil
	}
	c, err := l.tel.Last(ctx)
	if err != nil {
		return c, err
	}
	l.newest, l.newestAt = c, time.Now()
	return c, nil
}

// tailer reads one device's new messages and fans them out.
type tailer struct {
	device string
	cancel context.CancelFunc
	subs   map[*subscriber]struct{} // guarded by live.mu
}

// subscriber is one browser's bounded queue of encoded updates.
type subscriber struct {
	ch      chan []byte
	dropped atomic.Uint64 // updates dropped because the browser was slow
}

func newLive(tel Telemetry, rate time.Duration, log *slog.Logger) *live {
	return &live{tel: tel, rate: rate, log: log, tails: make(map[string]*tailer)}
}

// subscribe starts watching device; the returned func stops.
func (l *live) subscribe(device string) (*subscriber, func()) {
	s := &subscriber{ch: make(chan []byte, subBuffer)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		close(s.ch)
		return s, func() {}
	}
	t := l.tails[device]
	if t == nil {
		ctx, cancel := context.WithCancel(context.Background())
		t = &tailer{device: device, cancel: cancel, subs: make(map[*subscriber]struct{})}
		l.tails[device] = t
		l.wg.Add(1)
		go l.run(ctx, t)
	}
	t.subs[s] = struct{}{}
	return s, func() { l.unsubscribe(t, s) }
}

func (l *live) unsubscribe(t *tailer, s *subscriber) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := t.subs[s]; !ok {
		return
	}
	delete(t.subs, s)
	if len(t.subs) == 0 && l.tails[t.device] == t {
		delete(l.tails, t.device)
		t.cancel()
	}
}

// close stops every tailer and waits for them.
func (l *live) close() {
	l.mu.Lock()
	l.closed = true
	for id, t := range l.tails {
		t.cancel()
		delete(l.tails, id)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// A tailer reads at most budget stored batches per update, starting from
// the newest ones when more have arrived. Batches hold every device's
// messages, so under heavy ingest a tailer shows a sample of the newest
// messages instead of examining all of them. The budget adapts so one
// tailer's read takes about readTarget per update: the console's cost stays
// flat (a few milliseconds per chart per second) whatever the ingest rate.
// While a tailer samples (the hub is busy), it updates at most every
// busyRate instead of every live.rate.
const (
	minBudget  = 1
	maxBudget  = 1024
	readTarget = 250 * time.Microsecond
	busyRate   = 250 * time.Millisecond
)

// run tails the device's messages from now on, at most one update per
// l.rate, until its last subscriber leaves.
func (l *live) run(ctx context.Context, t *tailer) {
	defer l.wg.Done()
	cur, err := l.last(ctx)
	if err != nil && ctx.Err() == nil {
		l.log.Warn("console: live telemetry: newest position", "device", t.device, "error", err)
	}
	budget := uint64(32)
	for ctx.Err() == nil {
		began := time.Now()
		next, sampled, err := l.tick(ctx, t, cur, budget)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Warn("console: live telemetry", "device", t.device, "error", err)
			sleep(ctx, time.Second)
			continue
		}
		took := time.Since(began)
		switch {
		case took > readTarget && budget > minBudget:
			budget /= 2
		case took < readTarget/4 && budget < maxBudget:
			budget *= 2
		}
		cur = next
		wait := l.rate
		if sampled {
			wait = max(wait, busyRate)
		}
		sleep(ctx, wait-took)
	}
}

// tick reads what was stored after cur (at most budget batches, the
// newest) and broadcasts the device's messages.
func (l *live) tick(ctx context.Context, t *tailer, cur stream.Cursor, budget uint64) (stream.Cursor, bool, error) {
	last, err := l.last(ctx)
	if err != nil || !cur.Less(last) {
		return cur, false, err
	}
	from, sampled := cur, false
	if last.Seq > cur.Seq+budget {
		from, sampled = stream.Cursor{Seq: last.Seq - budget, Index: math.MaxUint32}, true
	}
	msgs, next, err := l.tel.Read(ctx, stream.Query{DeviceID: t.device, After: from, Limit: maxLivePoints})
	if err != nil {
		return cur, false, err
	}
	if len(msgs) > 0 {
		l.broadcast(t, encodeUpdate(msgs, sampled))
	}
	if next.Less(from) {
		next = from
	}
	return next, sampled, nil
}

// broadcast hands b to every subscriber without ever waiting: a full
// queue loses its oldest update.
func (l *live) broadcast(t *tailer, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range t.subs {
		s.offer(b)
	}
}

func (s *subscriber) offer(b []byte) {
	for {
		select {
		case s.ch <- b:
			return
		default:
		}
		select {
		case <-s.ch:
			s.dropped.Add(1)
		default:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// maxLivePoints bounds the points of one update: a burst is sampled evenly,
// keeping the newest.
const maxLivePoints = 200

// update is one live batch for a device page.
type update struct {
	Points  []point    `json:"points"`
	Tail    []tailItem `json:"tail"`
	Sampled bool       `json:"sampled,omitempty"` // older messages were skipped under heavy ingest
}

// point is one message's numeric fields at its enqueued time (Unix ms).
type point struct {
	T int64              `json:"t"`
	V map[string]float64 `json:"v"`
}

// tailItem is a message for the raw tail, its body cut to 2 KiB.
type tailItem struct {
	T          int64             `json:"t"`
	ID         string            `json:"id,omitempty"`
	Module     string            `json:"module,omitempty"`
	Stream     string            `json:"stream,omitempty"`
	Props      map[string]string `json:"props,omitempty"`
	Body       string            `json:"body"`
	Truncated  bool              `json:"truncated,omitempty"`
	BinaryBody bool              `json:"binary,omitempty"`
}

const maxTail = 20

func encodeUpdate(msgs []stream.Message, sampled bool) []byte {
	u := update{Points: samplePoints(pointsOf(msgs), maxLivePoints), Tail: tailOf(msgs, maxTail), Sampled: sampled}
	b, _ := json.Marshal(u)
	return b
}

func pointsOf(msgs []stream.Message) []point {
	out := make([]point, 0, len(msgs))
	for i := range msgs {
		if v := numericFields(msgs[i].Body); len(v) > 0 {
			out = append(out, point{T: msgs[i].EnqueuedTime.UnixMilli(), V: v})
		}
	}
	return out
}

// samplePoints keeps at most n points, evenly spread, always the last.
func samplePoints(p []point, n int) []point {
	if len(p) <= n {
		return p
	}
	out := make([]point, 0, n)
	step := float64(len(p)-1) / float64(n-1)
	for i := range n {
		out = append(out, p[int(float64(i)*step+0.5)])
	}
	return out
}

func tailOf(msgs []stream.Message, n int) []tailItem {
	if len(msgs) > n {
		msgs = msgs[len(msgs)-n:]
	}
	out := make([]tailItem, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		it := tailItem{T: m.EnqueuedTime.UnixMilli(), ID: m.MessageID, Module: m.ModuleID, Stream: m.Stream}
		if len(m.Properties) > 0 {
			it.Props = make(map[string]string, len(m.Properties))
			for _, p := range m.Properties {
				it.Props[p.Key] = p.Value
			}
		}
		body := m.Body
		if len(body) > 2048 {
			body, it.Truncated = body[:2048], true
		}
		if json.Valid(m.Body) || isText(body) {
			it.Body = string(body)
		} else {
			it.BinaryBody = true
			it.Body = hexPreview(body)
		}
		out = append(out, it)
	}
	return out
}

// numericFields returns the numbers of a JSON object body: top-level fields
// and one level of nesting ("thermostat1.temperature"); booleans count as
// 0/1. Anything else is not charted.
func numericFields(body []byte) map[string]float64 {
	if len(body) == 0 || body[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	out := make(map[string]float64)
	for k, raw := range m {
		addNumber(out, k, raw)
		if len(raw) > 0 && raw[0] == '{' {
			var inner map[string]json.RawMessage
			if json.Unmarshal(raw, &inner) == nil {
				for k2, r2 := range inner {
					addNumber(out, k+"."+k2, r2)
				}
			}
		}
		if len(out) >= 32 {
			break
		}
	}
	return out
}

func addNumber(out map[string]float64, k string, raw json.RawMessage) {
	var f float64
	switch {
	case len(raw) == 0:
	case string(raw) == "true":
		out[k] = 1
	case string(raw) == "false":
		out[k] = 0
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		if json.Unmarshal(raw, &f) == nil {
			out[k] = f
		}
	}
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

func hexPreview(b []byte) string {
	const hexdig = "0123456789abcdef"
	if len(b) > 256 {
		b = b[:256]
	}
	out := make([]byte, 0, len(b)*3)
	for i, c := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, hexdig[c>>4], hexdig[c&15])
	}
	return string(out)
}
