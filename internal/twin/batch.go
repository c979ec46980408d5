package twin

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Batching defaults; see Options.
const (
	DefaultMaxBatch   = 256
	DefaultMaxPending = 4096
)

// ErrClosed is the error of a reported patch sent after Close.
var ErrClosed = &fault.Error{Kind: fault.Unavailable, Msg: "twin: the service is shutting down"}

// reportedReq is one reported patch waiting for a batch.
type reportedReq struct {
	ctx      context.Context
	deviceID string
	moduleID string
	src      string
	patch    object
	version  int64      // set by the update function
	reply    chan error // cap 1: the batcher never blocks answering
}

// batcher commits reported patches in groups (group commit): each batch is
// one write transaction, so concurrent patches share one commit instead of
// queueing for the writer one transaction each.
//
// Its goroutine runs only while patches are queued: the first patch after
// an idle spell starts it and it exits when the queue is empty. A Service
// that is never closed therefore leaves nothing running once its callers
// have returned, which keeps NewService usable without Close.
type batcher struct {
	svc        *Service
	store      BatchStore
	linger     time.Duration
	maxBatch   int
	slots      chan struct{}   // MaxPending tokens, taken per queued patch
	kick       chan struct{}   // cap 1; wakes a lingering goroutine (full batch, close)
	ctx        context.Context // of the batch transactions
	mu         sync.Mutex
	queue      []*reportedReq // guarded by mu
	running    bool           // guarded by mu; whether the goroutine runs
	exited     chan struct{}  // guarded by mu; closed when the running goroutine exits
	closed     bool           // guarded by mu; set by Close, refuses new patches
	lastCommit time.Time      // guarded by mu; when the last batch was taken
}

func newBatcher(s *Service, st BatchStore, opts *Options) *batcher {
	b := &batcher{
		svc: s, store: st,
		linger:   opts.Linger,
		maxBatch: opts.MaxBatch,
		slots:    make(chan struct{}, opts.MaxPending),
		kick:     make(chan struct{}, 1),
	}
	// The transactions run under the batcher's own context: one caller
	// giving up must not abort a transaction that holds others' patches.
	// It is never canceled: with a context that can end, the driver
	// starts a watcher goroutine for every statement, a tenth of the
	// batch's cost; a transaction ends by itself within busy_timeout.
	b.ctx = context.Background()
	return b
}

// patch queues r and waits for its batch to commit. It returns early with
// ctx's error when ctx ends; the patch may then still be applied.
func (b *batcher) patch(ctx context.Context, r *reportedReq) (int64, error) {
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.slots
		return 0, ErrClosed
	}
	b.queue = append(b.queue, r)
	switch {
	case !b.running:
		b.running = true
		b.exited = make(chan struct{})
		go b.run(b.exited)
	case len(b.queue) >= b.maxBatch:
		b.wake()
	}
	b.mu.Unlock()
	select {
	case err := <-r.reply:
		return r.version, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// wake nudges a lingering goroutine without blocking.
func (b *batcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// run is the batcher goroutine: it takes batches off the queue and commits
// them until the queue is empty, then closes exited and returns.
func (b *batcher) run(exited chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*reportedReq
	for {
		batch = b.take(batch[:0], timer)
		if batch == nil {
			close(exited)
			return
		}
		b.commit(batch)
		clear(batch) // drop the requests
	}
}

// take waits until a batch should be committed and moves it off the queue
// into batch. It returns nil, with running cleared, when the queue is
// empty.
//
// The linger is adaptive, as the stream writer's: after a quiet spell a
// patch is committed at once, but while the previous batch was taken less
// than Linger ago, patches wait for the rest of it (or until a batch is
// full) to share a commit. This bounds commits per second by 1/Linger
// under light load, while under heavy load batches fill while the
// previous transaction runs and nobody waits.
func (b *batcher) take(batch []*reportedReq, timer *time.Timer) []*reportedReq {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running = false
			b.mu.Unlock()
			return nil
		}
		now := time.Now()
		wait := b.lastCommit.Add(b.linger).Sub(now)
		if wait <= 0 || b.closed || len(b.queue) >= b.maxBatch {
			n := min(len(b.queue), b.maxBatch)
			batch = append(batch, b.queue[:n]...)
			rest := copy(b.queue, b.queue[n:])
			clear(b.queue[rest:])
			b.queue = b.queue[:rest]
			b.lastCommit = now
			b.mu.Unlock()
			return batch
		}
		b.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-b.kick:
			timer.Stop() // since Go 1.23 no stale tick can follow
		case <-timer.C:
		}
	}
}

// commit applies batch in one store transaction and answers every request.
func (b *batcher) commit(batch []*reportedReq) {
	us := make([]Update, 0, len(batch))
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			b.answer(r, err) // its caller is gone: do not apply it
			continue
		}
		us = append(us, Update{DeviceID: r.deviceID, ModuleID: r.moduleID, Fn: b.fn(r)})
		live = append(live, r)
	}
	if len(us) == 0 {
		return
	}
	errs, err := b.store.UpdateTwins(b.ctx, us)
	if err == nil {
		for i, r := range live {
			b.answer(r, errs[i])
		}
		return
	}
	if len(live) == 1 {
		b.answer(live[0], err)
		return
	}
	// The transaction failed as a whole. Retry each patch in its own
	// transaction, so that a patch that makes the store fail (or a passing
	// fault) fails only itself.
	for _, r := range live {
		r.version = 0
		b.answer(r, b.store.UpdateTwin(b.ctx, r.deviceID, r.moduleID, b.fn(r)))
	}
}

// fn returns the update function of r: it applies r's patch and records
// the new reported version in r.
func (b *batcher) fn(r *reportedReq) func(t *Twin) ([]Change, error) {
	return func(t *Twin) ([]Change, error) {
		cs, err := b.svc.commit(t, r.src, sidePatch{Reported, r.patch})
		r.version = t.Reported.Version
		return cs, err
	}
}

// answer delivers r's outcome and returns its queue slot.
func (b *batcher) answer(r *reportedReq, err error) {
	r.reply <- err
	<-b.slots
}

// close refuses new patches and waits until the queued ones are answered.
// When ctx ends first, the patches not yet taken into a batch fail with
// ErrClosed, and close still waits for the running batch, which ends by
// itself, so that no goroutine outlives it.
func (b *batcher) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	exited, running := b.exited, b.running
	b.mu.Unlock()
	b.wake()
	if !running {
		return nil
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	rest := b.queue
	b.queue = nil
	b.mu.Unlock()
	for _, r := range rest {
		b.answer(r, ErrClosed)
	}
	<-exited
	return fmt.Errorf("twin: close: %w", ctx.Err())
}
