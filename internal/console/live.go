package console

import (
	"context"
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
