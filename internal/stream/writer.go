package stream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Acker receives the outcome of appended messages. The MQTT layer
// implements it per client and turns Acked(token, nil) into a PUBACK.
//
// Acked is called on the Writer's single completion goroutine, in append
// order per Acker, exactly once per successful Append. It must not block
// for long: buffer the PUBACK and write it in WriterConfig.AfterBatch.
type Acker interface {
	Acked(token uint64, err error)
}

// Writer appends device messages to the ingest stream with group commit:
// messages from all clients are encoded into one batch, the batch is
// written as one JetStream message (one fsync with natsd's Sync), and each
// message is acknowledged after JetStream acknowledged its batch.
type Writer struct {
	cfg       WriterConfig
	nc        *nats.Conn
	js        jetstream.JetStream
	met       *Metrics
	maxRecord int       // largest record a batch message can carry
	epoch     time.Time // base of the monotonic clock for latencies

	mu       sync.Mutex
	notFull  sync.Cond // on mu; signalled when pending drops or on close
	open     *batch    // guarded by mu; the batch Append fills
	ready    []*batch  // guarded by mu; full batches awaiting the flusher
	free     []*batch  // guarded by mu; recycled batches
	pending  int       // guarded by mu; entries appended and not yet acked
	waiters  int       // guarded by mu; Appends blocked on notFull
	closing  bool      // guarded by mu; set by Close, refuses Appends
	nextNum  uint64    // guarded by mu; number of the next batch
	lastSeal time.Time // guarded by mu; when the flusher last sealed a batch
	dd       *dedup    // guarded by mu; nil when deduplication is off
	tapping  bool      // guarded by mu; a run of records is being shown to cfg.Tap

	kick   chan struct{} // cap 1; wakes the flusher (first entry, full batch, close)
	slots  chan struct{} // in-flight batch tokens, cap InFlightBatches
	sent   chan *batch   // flusher to completer, in seal order
	ctx    context.Context
	cancel context.CancelFunc // makes both goroutines give up (Close's deadline passed)
	exited chan struct{}      // closed when the completer has finished
	once   sync.Once
}

// entry is one appended message's acknowledgement, in batch order.
type entry struct {
	acker  Acker
	token  uint64
	at     time.Duration // Append time on the writer's monotonic clock
	key    dedupKey      // dedup identity; zero when the message has no id
	keyed  bool
	dup    bool   // a duplicate: not in buf, acked as its original
	origin uint64 // for dup: batch number of the original

	originStored bool // for dup: set on completion, whether the original is stored
}

// batch is a unit of group commit: one JetStream message.
type batch struct {
	num  uint64
	buf  []byte  // batchVersion followed by the records
	ents []entry // acknowledgements in append order
	recs int     // records in buf (entries that are not duplicates)
	msg  nats.Msg
	fut  jetstream.PubAckFuture
	seq  uint64 // JetStream sequence once stored
	err  error
	slot bool // holds an in-flight slot, returned on completion
}

// NewWriter creates or updates the ingest stream with cfg's limits, loads
// recent message ids for deduplication, and starts the writer's two
// goroutines (flusher and completer), which Close stops. The caller keeps
// ownership of nc and closes it after Close.
func NewWriter(ctx context.Context, nc *nats.Conn, cfg WriterConfig) (*Writer, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(cfg.InFlightBatches+1))
	if err != nil {
		return nil, fmt.Errorf("stream: jetstream: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, ingestConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("stream: create %s: %w", IngestStream, err)
	}
	// A batch must fit in one NATS message: a version byte, the records,
	// and some room for the headers NATS adds.
	maxRecord := int(nc.MaxPayload()) - 1 - 1024
	cfg.MaxBatchBytes = min(cfg.MaxBatchBytes, maxRecord)
	w := &Writer{
		cfg: cfg, nc: nc, js: js, met: cfg.Metrics,
		maxRecord: maxRecord,
		epoch:     time.Now(),
		kick:      make(chan struct{}, 1),
		slots:     make(chan struct{}, cfg.InFlightBatches),
		sent:      make(chan *batch, cfg.InFlightBatches),
		exited:    make(chan struct{}),
		nextNum:   1,
	}
	w.notFull.L = &w.mu
	for range cfg.InFlightBatches {
		w.slots <- struct{}{}
	}
	if cfg.DedupWindow > 0 {
		w.dd = newDedup(cfg.DedupWindow, cfg.DedupMax)
		if err := w.loadDedup(ctx, st); err != nil {
			return nil, err
		}
	}
	w.open = w.newBatchLocked()
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.flushLoop()
	go w.completeLoop()
	return w, nil
}

// Append queues m for the next batch and returns at once, unless
// MaxPending messages are pending; then it blocks until some are acked.
// It encodes m before returning and keeps no reference to it.
//
// After a nil return, a.Acked(token, err) is called exactly once: err is
// nil when m is durably stored, or was stored before (a duplicate by
// message id). After an error return, Acked is not called. a may be nil
// when nobody needs the outcome (MQTT QoS 0).
func (w *Writer) Append(m *Message, a Acker, token uint64) error {
	size := recordSize(m)
	if size > w.maxRecord {
		return fault.TooLargef("stream: message of %d bytes exceeds the limit of %d", size, w.maxRecord)
	}
	at := time.Since(w.epoch)
	w.mu.Lock()
	if w.pending >= w.cfg.MaxPending && !w.closing {
		w.met.Blocked.Add(1)
		for w.pending >= w.cfg.MaxPending && !w.closing {
			w.waiters++
			w.notFull.Wait()
			w.waiters--
		}
	}
	if w.closing {
		w.mu.Unlock()
		return ErrClosed
	}
	b := w.open
	if len(b.ents) > 0 && (len(b.buf)+size > w.cfg.MaxBatchBytes || len(b.ents) >= w.cfg.MaxBatchCount) {
		w.ready = append(w.ready, b)
		b = w.newBatchLocked()
		w.open = b
		w.wake()
	}
	e := entry{acker: a, token: token, at: at}
	if w.dd != nil && m.MessageID != "" {
		e.key, e.keyed = w.dd.keyOf(m), true
		if s, ok := w.dd.lookup(e.key); ok {
			e.dup, e.origin = true, s.batch
		} else {
			w.dd.add(e.key, unixNano(m.EnqueuedTime), b.num)
		}
	}
	if !e.dup {
		start := len(b.buf)
		b.buf = appendRecord(b.buf, m)
		if w.cfg.Tap != nil {
			w.show(b, start)
		}
		b.recs++
	}
	b.ents = append(b.ents, e)
	w.pending++
	w.met.Appended.Add(1)
	if len(b.ents) == 1 {
		w.wake()
	}
	w.mu.Unlock()
	return nil
}

// show shows the record at b.buf[start:] to the Tap; see Tap for runs.
func (w *Writer) show(b *batch, start int) {
	if !w.tapping {
		if w.pending != 0 || !w.cfg.Tap.Begin() {
			return
		}
		w.tapping = true
	}
	if !w.cfg.Tap.Record(b.num, uint32(b.recs), b.buf[start:]) {
		w.tapping = false
	}
}

// wake nudges the flusher without blocking.
func (w *Writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// newBatchLocked returns an empty batch, recycled when possible.
func (w *Writer) newBatchLocked() *batch {
	var b *batch
	if n := len(w.free); n > 0 {
		b, w.free = w.free[n-1], w.free[:n-1]
	} else {
		b = &batch{
			buf:  make([]byte, 1, min(w.cfg.MaxBatchBytes, 64<<10)),
			ents: make([]entry, 0, min(w.cfg.MaxBatchCount, 1024)),
		}
		b.buf[0] = batchVersion
		b.msg.Subject = IngestSubject
	}
	b.num = w.nextNum
	w.nextNum++
	return b
}

// Close stops accepting messages, writes everything pending and waits
// until every appended message has had its Acked call. If ctx ends first,
// the messages still waiting are acked with ErrClosed (they may or may not
// have been stored) and Close returns ctx's error. Close is idempotent.
func (w *Writer) Close(ctx context.Context) error {
	w.once.Do(func() {
		w.mu.Lock()
		w.closing = true
		w.notFull.Broadcast()
		w.mu.Unlock()
		w.wake()
	})
	select {
	case <-w.exited:
		return nil
	case <-ctx.Done():
		w.cancel()
		<-w.exited
		return fmt.Errorf("stream: close writer: %w", ctx.Err())
	}
}
