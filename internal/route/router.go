package route

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

// The router's position in the ingest store: a consumer group of its own.
const (
	PositionGroup  = "$router"
	positionStream = "*"
	// RoutedType marks messages the router stored (routed copies and dead
	// letters) in stream.Message.MessageType; the router does not route
	// them again.
	RoutedType = "Routed"
	// DeadLetterStream holds the deliveries that failed for good.
	DeadLetterStream = "deadletter"
)

// table is an immutable snapshot of the routes, swapped on every change.
type table struct {
	all      []*compiled // ordered by name
	fallback bool
}

// reads reports whether an enabled route reads messages of src.
func (t *table) reads(src Source) bool {
	for _, c := range t.all {
		if c.Enabled && c.Source == src {
			return true
		}
	}
	return false
}

// idleCheck is how often an idle router moves its position to the end of
// the store.
const idleCheck = time.Second

// idle moves the position to the end of the store and commits it, then
// waits until the routes change or idleCheck passes. It reports the new
// position, or false when it could not learn it.
func (s *Service) idle(rctx, dctx context.Context, pos stream.Cursor) (stream.Cursor, bool) {
	last, err := s.cfg.Reader.Last(rctx)
	ok := err == nil && last.Seq >= pos.Seq
	if ok && last != pos {
		if err := s.cfg.Reader.Commit(dctx, PositionGroup, positionStream, last); err != nil {
			s.cfg.Logger.Error("route: commit position", "position", last.String(), "err", err)
		}
		s.cfg.Metrics.position(last)
	}
	t := time.NewTimer(idleCheck)
	defer t.Stop()
	select {
	case <-rctx.Done():
	case <-s.rebuilt:
	case <-t.C:
	}
	return last, ok
}

// compiled is a route ready to evaluate.
type compiled struct {
	Route
	cond *Condition
	ens  []enricher
	eps  []*endpoint
	met  *routeMetrics
}

func (s *Service) compile(r Route) (*compiled, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	c := &compiled{Route: r, met: s.cfg.Metrics.route(r.Name)}
	var err error
	if c.cond, err = CompileCondition(r.Condition); err != nil {
		return nil, err
	}
	for _, e := range r.Enrichments {
		en, err := compileEnrichment(e)
		if err != nil {
			return nil, err
		}
		c.ens = append(c.ens, en)
	}
	for _, e := range r.Endpoints {
		ep := &endpoint{Endpoint: e, sem: make(chan struct{}, webhookConcurrency)}
		if e.TargetFrom != "" {
			ep.from, _ = parseTargetFrom(e.TargetFrom)
		}
		c.eps = append(c.eps, ep)
	}
	return c, nil
}

// startPosition returns where the router resumes: its committed position,
// or on its very first start the end of the store (history is not routed).
func (s *Service) startPosition(ctx context.Context) (stream.Cursor, error) {
	c, ok, err := s.cfg.Reader.Position(ctx, PositionGroup, positionStream)
	if err != nil || ok {
		return c, err
	}
	if c, err = s.cfg.Reader.Last(ctx); err != nil {
		return c, err
	}
	return c, s.cfg.Reader.Commit(ctx, PositionGroup, positionStream, c)
}

// maxOpenPages bounds the pages whose deliveries may be in flight at once.
const maxOpenPages = 8

// runTelemetry reads the ingest store from pos, routes each page and
// commits a page's end once every delivery of it and of the pages before
// it was handed off. Pages are pipelined: while a page's method calls or
// webhooks are in flight, the next pages are read and routed (at most
// maxOpenPages open), so one slow endpoint delays commits, not routing.
// rctx stops reading; dctx abandons deliveries (their pages are then not
// committed, and are routed again at the next start).
func (s *Service) runTelemetry(rctx, dctx context.Context, pos stream.Cursor) {
	in := &input{dec: s.cfg.Schemas, twins: s.cfg.Twins, ctx: dctx}
	var open []*page // in read order
	committed := pos
	settle := func(block bool) (ok bool) {
		for len(open) > 0 {
			p := open[0]
			if !block {
				select {
				case <-p.settled:
				default:
					return true
				}
			}
			<-p.settled
			open = open[1:]
			if !p.ok {
				for _, q := range open {
					<-q.settled
				}
				open = nil
				return false
			}
			committed = p.next
			if err := s.cfg.Reader.Commit(dctx, PositionGroup, positionStream, committed); err != nil {
				s.cfg.Logger.Error("route: commit position", "position", committed.String(), "err", err)
			}
			s.cfg.Metrics.examined(Telemetry, p.n)
			s.cfg.Metrics.position(committed)
			block = block && len(open) >= maxOpenPages
		}
		return true
	}
	for rctx.Err() == nil {
		if len(open) == 0 && !s.table.Load().reads(Telemetry) {
			// No enabled route reads telemetry: skip what arrives without
			// reading it (decoding every batch would cost ingest a fifth
			// of its CPU for nothing). Routes apply to what arrives after
			// them.
			if last, ok := s.idle(rctx, dctx, pos); ok {
				pos, committed = last, last
			}
			continue
		}
		// Read what is newer than pos. Taking the notification channel
		// first means a batch stored during the read is not missed.
		changed := s.cfg.Reader.Changed()
		msgs, next, err := s.cfg.Reader.Read(rctx, stream.Query{After: pos, Limit: s.cfg.PageSize})
		if err != nil && rctx.Err() != nil {
			break
		}
		if err != nil && !errors.Is(err, stream.ErrCorrupt) {
			s.cfg.Logger.Error("route: read ingest store", "after", pos.String(), "err", err)
			sleep(rctx, time.Second)
			continue
		}
		if len(msgs) == 0 && err == nil {
			atEnd := next == pos
			pos = next // a range with nothing to route (it is committed with the next page)
			if !settle(false) {
				pos = s.retry(rctx, dctx, committed)
				continue
			}
			if !atEnd {
				continue
			}
			// Nothing newer: wait for a fresh batch from the ingest writer,
			// a stored batch's notice, the oldest open page settling, or a
			// while (a missed notice costs at most that).
			var head <-chan struct{}
			if len(open) > 0 {
				head = open[0].settled
			}
			if msgs, next = s.waitFresh(rctx, changed, head, pos); msgs == nil {
				continue
			}
		}
		if err != nil {
			// A corrupt batch cannot be routed; skip it rather than stall.
			s.cfg.Logger.Error("route: skipping an unreadable batch", "after", next.String(), "err", err)
			next = stream.Cursor{Seq: next.Seq + 1, Index: math.MaxUint32}
		}
		p := s.newPage(dctx)
		p.next = next
		t := s.table.Load()
		for i := range msgs {
			if msgs[i].MessageType == RoutedType {
				continue
			}
			s.routeOne(p, t, in, &msgs[i], Telemetry)
			p.n++
		}
		go func() {
			p.ok = p.wait()
			close(p.settled)
		}()
		open = append(open, p)
		pos = next
		if !settle(len(open) >= maxOpenPages) {
			pos = s.retry(rctx, dctx, committed)
		}
	}
	settle(true) // Close: finish and commit what was routed
}

// freshBuffer is how many handed-over batches may wait for the router.
const freshBuffer = 8

// freshBatch is a batch the ingest writer stored, handed over in process.
type freshBatch struct {
	seq  uint64
	data []byte
}

// Stored is the ingest writer's hook (stream.WriterConfig.Stored): while
// the router waits at the end of the store, it takes a copy of each newly
// stored batch, so routing it needs no notice and no fetch from JetStream.
// It never blocks; a batch not taken is read from the store as before.
func (s *Service) Stored(seq uint64, batch []byte) {
	if !s.waiting.Load() {
		return
	}
	select {
	case s.fresh <- freshBatch{seq: seq, data: append([]byte(nil), batch...)}:
	default:
	}
}

// waitFresh waits at the end of the store (pos is the last message stored)
// and returns the next batch's messages when the ingest writer hands it
// over, or nil when the router should read the store: a notice came (from
// another writer, or for a batch not handed over), head settled, a minute
// passed, or rctx ended. A handed batch is used only when it is the very
// next one (sequence pos.Seq+1); anything else is left to the store, so
// order and positions are exactly those of Read.
func (s *Service) waitFresh(rctx context.Context, changed, head <-chan struct{}, pos stream.Cursor) ([]stream.Message, stream.Cursor) {
	s.waiting.Store(true)
	defer s.waiting.Store(false)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	take := func(b freshBatch) (msgs []stream.Message, next stream.Cursor, done bool) {
		switch {
		case b.seq <= pos.Seq:
			return nil, pos, false // read from the store already; wait on
		case b.seq != pos.Seq+1:
			return nil, pos, true // another writer's batch came between
		}
		msgs, err := stream.Decode(b.data)
		if err != nil || len(msgs) == 0 {
			return nil, pos, true // let Read deal with it
		}
		for i := range msgs {
			msgs[i].Cursor.Seq = b.seq
		}
		s.cfg.Metrics.batchHanded()
		return msgs, msgs[len(msgs)-1].Cursor, true
	}
	for {
		select {
		case b := <-s.fresh:
			if msgs, next, done := take(b); done {
				return msgs, next
			}
			continue
		case <-changed:
			// A notice; the writer hands its batch over before sending it.
			select {
			case b := <-s.fresh:
				if msgs, next, done := take(b); done {
					return msgs, next
				}
			default:
			}
		case <-head:
		case <-timer.C:
		case <-rctx.Done():
		}
		return nil, pos
	}
}

// retry returns where to read after a page failed (a store append
// failed): its start, after a pause. Later pages may be routed twice.
func (s *Service) retry(rctx, dctx context.Context, committed stream.Cursor) stream.Cursor {
	if dctx.Err() == nil {
		sleep(rctx, time.Second)
	}
	return committed
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// routeOne evaluates every enabled route of src on m and hands the matches
// to their endpoints.
func (s *Service) routeOne(p *page, t *table, in *input, m *stream.Message, src Source) {
	in.reset(m, src)
	matched := false
	for _, c := range t.all {
		if !c.Enabled || c.Source != src || !c.cond.match(in) {
			continue
		}
		matched = true
		c.met.matched.Inc()
		s.deliver(p, c, in)
	}
	met := s.cfg.Metrics
	if in.bodyRead && in.body == nil {
		met.bodyUnreadable(in.bodyWhy)
	}
	if !matched && src == Telemetry {
		met.unmatched(t.fallback)
	}
}

// deliver hands one matched message to a route's endpoints.
func (s *Service) deliver(p *page, c *compiled, in *input) {
	m := in.m
	hops, _ := strconv.Atoi(appProperty(m, HopsProperty))
	if hops >= s.cfg.MaxHops {
		s.refuse(c, m, nil, "loop", "the message went through "+strconv.Itoa(hops)+" routings (ferry-hops), the hub's limit")
		return
	}
	props := enrich(in, c.ens, c.Name, hops+1)
	for _, ep := range c.eps {
		switch ep.Kind {
		case KindStream:
			s.toStream(p, c, ep, m, props)
		case KindNATS:
			s.toNATS(p, c, ep, m, props)
		default:
			// Resolve the target now: in (and its lazy twin) is reused for
			// the next message once deliver returns.
			d := &delivery{c: c, ep: ep, m: m, props: props}
			if ep.Kind != KindWebhook && !s.resolveTarget(d) {
				continue
			}
			p.async(func(ctx context.Context) { s.deliverAsync(p, ctx, d) })
		}
	}
}

// page tracks the deliveries of one page of messages.
type page struct {
	s      *Service
	ctx    context.Context
	wg     sync.WaitGroup
	mu     sync.Mutex
	acks   int  // guarded by mu: store appends awaiting their ack
	failed bool // guarded by mu: an append failed; the page must be routed again
	done   chan struct{}
	nats   bool // a NATS publish needs a flush

	next    stream.Cursor // the store position after the page
	n       int           // messages routed
	ok      bool          // set before settled is closed: the page may be committed
	settled chan struct{} // closed once every delivery of the page was handed off
}

func (s *Service) newPage(ctx context.Context) *page {
	return &page{s: s, ctx: ctx, done: make(chan struct{}, 1), settled: make(chan struct{})}
}

// async runs fn with a delivery slot, waiting for a free one.
func (p *page) async(fn func(ctx context.Context)) {
	select {
	case p.s.sem <- struct{}{}:
	case <-p.ctx.Done():
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.s.sem }()
		fn(p.ctx)
	}()
}

// append stores m through the Appender and counts it until acked.
func (p *page) append(m *stream.Message) error {
	p.mu.Lock()
	p.acks++
	p.mu.Unlock()
	if err := p.s.cfg.Appender.Append(m, p, 0); err != nil {
		p.Acked(0, err)
		return err
	}
	return nil
}

// Acked implements stream.Acker for the page's appends.
func (p *page) Acked(_ uint64, err error) {
	p.mu.Lock()
	p.acks--
	if err != nil {
		p.failed = true
	}
	zero := p.acks == 0
	p.mu.Unlock()
	if zero {
		select {
		case p.done <- struct{}{}:
		default:
		}
	}
}

// wait returns once every delivery of the page was handed off; false when
// the page must not be committed (an append failed, or shutdown ran out
// of time).
func (p *page) wait() bool {
	p.wg.Wait()
	if p.nats && p.s.cfg.NATS != nil {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second) // Flush needs a deadline
		err := p.s.cfg.NATS.FlushWithContext(ctx)
		cancel()
		if err != nil {
			p.s.cfg.Logger.Error("route: flush NATS publishes", "err", err)
			return false
		}
	}
	for {
		p.mu.Lock()
		n, failed := p.acks, p.failed
		p.mu.Unlock()
		if n == 0 {
			return !failed && p.ctx.Err() == nil
		}
		select {
		case <-p.done:
		case <-p.ctx.Done():
			return false
		}
	}
}
