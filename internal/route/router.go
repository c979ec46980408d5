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

// maxTapPages bounds the open pages while routing from the tap, where a
// page stays open until its batch is stored: an fsync that stalls for
// 100 ms holds ten pages at 100 messages per second.
const maxTapPages = 64

// telemetryRun is the state of the telemetry router's goroutine.
type telemetryRun struct {
	s          *Service
	rctx, dctx context.Context
	in         *input
	open       []*page       // in read order
	pos        stream.Cursor // where the next read starts
	committed  stream.Cursor // the end of the last page routed and delivered
	written    stream.Cursor // the position last written to the store
	writtenAt  time.Time
	// skip holds batches routed as they were sealed that the store put
	// after a batch the router did not see (another writer's): reading
	// routes the batch in between and skips these.
	skip map[uint64]uint32 // batch sequence: how many of its first records were routed
	// unread is the last ingest batch stored before the tap last opened
	// beyond pos: atEnd sends the router to read it once.
	unread uint64
}

// runTelemetry reads the ingest store from pos, routes each page and
// commits a page's end once every delivery of it and of the pages before
// it was handed off. Pages are pipelined: while a page's method calls or
// webhooks are in flight, the next pages are read and routed (at most
// maxOpenPages open), so one slow endpoint delays commits, not routing.
// At the end of the store, batches are routed as the ingest writer seals
// them (atEnd). rctx stops reading; dctx abandons deliveries (their pages
// are then not committed, and are routed again at the next start).
func (s *Service) runTelemetry(rctx, dctx context.Context, pos stream.Cursor) {
	r := &telemetryRun{s: s, rctx: rctx, dctx: dctx, pos: pos, committed: pos, written: pos,
		in: &input{dec: s.cfg.Schemas, twins: s.cfg.Twins, ctx: dctx}, skip: make(map[uint64]uint32)}
	for rctx.Err() == nil {
		if len(r.open) == 0 && !s.table.Load().reads(Telemetry) {
			r.writePosition()
			// No enabled route reads telemetry: skip what arrives without
			// reading it (decoding every batch would cost ingest a fifth
			// of its CPU for nothing). Routes apply to what arrives after
			// them.
			if last, ok := s.idle(rctx, dctx, r.pos); ok {
				r.pos, r.committed, r.written = last, last, last
			}
			continue
		}
		// Read what is newer than pos.
		msgs, next, err := s.cfg.Reader.Read(rctx, stream.Query{After: r.pos, Limit: s.cfg.PageSize})
		if err != nil && rctx.Err() != nil {
			break
		}
		if err != nil && !errors.Is(err, stream.ErrCorrupt) {
			s.cfg.Logger.Error("route: read ingest store", "after", r.pos.String(), "err", err)
			sleep(rctx, time.Second)
			continue
		}
		if len(msgs) == 0 && err == nil {
			atEnd := next == r.pos
			r.pos = next // a range with nothing to route (it is committed with the next page)
			if !r.settle(false) {
				r.retry()
				continue
			}
			if atEnd {
				r.atEnd()
			}
			continue
		}
		if err != nil {
			// A corrupt batch cannot be routed; skip it rather than stall.
			s.cfg.Logger.Error("route: skipping an unreadable batch", "after", next.String(), "err", err)
			next = stream.Cursor{Seq: next.Seq + 1, Index: math.MaxUint32}
		}
		p := r.route(msgs, nil)
		p.next = next
		r.pos = next
		for seq := range r.skip {
			if seq <= next.Seq {
				delete(r.skip, seq)
			}
		}
		s.tap.forgetCopies(next.Seq)
		if !r.settle(len(r.open) >= maxOpenPages) {
			r.retry()
		}
	}
	r.settle(true) // Close: finish and commit what was routed
	r.writePosition()
}

// route routes msgs as a new open page. A page of a sealed batch (stored
// not nil) settles only once stored is closed, its next position set.
// Nothing keeps msgs once route returns: the caller may reuse it.
func (r *telemetryRun) route(msgs []stream.Message, stored chan struct{}) *page {
	s := r.s
	p := s.newPage(r.dctx)
	t := s.table.Load()
	for i := range msgs {
		if msgs[i].MessageType == RoutedType || msgs[i].Cursor.Index < r.skip[msgs[i].Cursor.Seq] {
			continue
		}
		s.routeOne(p, t, r.in, &msgs[i], Telemetry)
		p.n++
	}
	go func() {
		ok := p.wait()
		if stored != nil {
			select {
			case <-stored:
			case <-p.ctx.Done():
				ok = false
			}
		}
		p.ok = ok
		close(p.settled)
	}()
	r.open = append(r.open, p)
	return p
}

// settle commits the pages at the head of open that settled, waiting for
// them when block is set and maxOpenPages are open. It returns false when
// a page failed; every open page has then settled and none is committed.
func (r *telemetryRun) settle(block bool) bool {
	for len(r.open) > 0 {
		p := r.open[0]
		if !block {
			select {
			case <-p.settled:
			default:
				return true
			}
		}
		<-p.settled
		r.open = r.open[1:]
		if !p.ok {
			for _, q := range r.open {
				<-q.settled
			}
			r.open = nil
			return false
		}
		r.commit(p)
		block = block && len(r.open) >= maxOpenPages
	}
	return true
}

// commitSettled commits the settled pages at the head of open, without
// waiting: while pages wait for their batch's fate, only atEnd can settle
// them. It returns false, committing nothing more, at a failed page.
func (r *telemetryRun) commitSettled() bool {
	for len(r.open) > 0 {
		select {
		case <-r.open[0].settled:
		default:
			return true
		}
		if !r.open[0].ok {
			return false
		}
		r.commit(r.open[0])
		r.open = r.open[1:]
	}
	return true
}

// commitEvery is how often the router writes its position to the store.
// Each write is a synced JetStream write; writing one per page would
// double the disk's syncs under load, when the ingest writer's group
// commits need them. A crash routes again at most this much of the
// store (delivery is at least once); a shutdown writes the last position.
const commitEvery = 250 * time.Millisecond

// commit marks the position after p as routed and delivered, and writes it
// when commitEvery passed since the last write.
func (r *telemetryRun) commit(p *page) {
	r.committed = p.next
	r.s.cfg.Metrics.examined(Telemetry, p.n)
	r.s.cfg.Metrics.position(r.committed)
	if time.Since(r.writtenAt) >= commitEvery {
		r.writePosition()
	}
}

// writePosition writes the committed position to the store if it moved.
func (r *telemetryRun) writePosition() {
	if r.committed == r.written {
		return
	}
	r.writtenAt = time.Now()
	// What was delivered is written even when deliveries were abandoned
	// at shutdown, so that a restart does not route it again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.dctx), 5*time.Second)
	defer cancel()
	if err := r.s.cfg.Reader.Commit(ctx, PositionGroup, positionStream, r.committed); err != nil {
		r.s.cfg.Logger.Error("route: commit position", "position", r.committed.String(), "err", err)
		return
	}
	r.written = r.committed
}

// retry reads again from the last committed position after a page failed
// (a store append failed), after a pause. Later pages may be routed twice.
func (r *telemetryRun) retry() {
	if r.dctx.Err() == nil {
		sleep(r.rctx, time.Second)
	}
	r.pos = r.committed
	clear(r.skip)
}

// segment is a page of records taken from the tap, awaiting its batch's
// fate to learn its position.
type segment struct {
	num         uint64
	first, last uint32 // indexes of its first and last record in the batch
	p           *page
	stored      chan struct{} // closed once p.next is set
}

// atEnd waits at the end of the store (pos is the last message stored)
// and routes from the ingest writer's tap: each record as it is appended,
// while its batch's fsync runs, so a parcel's delivery to another device
// does not wait for the disk. A page's position is known, and committed,
// once its batch is stored; a batch that is not stored moves nothing (its
// devices send the messages again and they are routed again: delivery
// stays at least once, and a routed message may be missing from the
// store if its device never sends it again). atEnd returns when the
// router should read the store: a batch it did not route was stored, it
// fell behind the tap, a page failed, too many pages are open, no route
// reads telemetry any more, a minute passed, or rctx ended. It returns
// only once every routed record's batch has its fate, so reading meets
// no record routed here, except after a gap (those are in skip).
func (r *telemetryRun) atEnd() {
	t := r.s.tap
	if r.pos.Seq > 0 {
		// Nothing is newer than pos: its batch is whole.
		r.pos.Index = math.MaxUint32
	}
	if last := t.open(); last > r.pos.Seq && last != r.unread {
		// A batch was stored after the last read: read it first, or it
		// would be routed after what the tap shows next. Once per batch:
		// one the store no longer holds (aged out) must not keep the
		// router from the tap.
		r.unread = last
		t.close()
		return
	}
	defer t.close()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	write := time.NewTicker(commitEvery)
	defer write.Stop()
	var (
		waiting []segment        // routed, awaiting their batch's fate, in order
		cur     []stream.Message // records taken and not yet routed, of batch curNum
		curNum  uint64
		leave   bool
		events  []tapEvent // the last events taken, and their records' data
		data    []byte
	)
	flush := func() {
		if len(cur) == 0 {
			return
		}
		sg := segment{num: curNum, first: cur[0].Cursor.Index, last: cur[len(cur)-1].Cursor.Index, stored: make(chan struct{})}
		sg.p = r.route(cur, sg.stored)
		r.s.cfg.Metrics.batchHanded()
		waiting = append(waiting, sg)
		clear(cur) // drop the routed messages' bodies and strings
		cur = cur[:0]
		if len(r.open) >= maxTapPages {
			leave = true
		}
	}
	fate := func(e tapEvent) {
		n := 0
		for n < len(waiting) && waiting[n].num == e.num {
			n++
		}
		if n == 0 {
			if e.err == nil {
				leave = true // a batch stored that was not routed here: read it
			}
			return
		}
		for _, sg := range waiting[:n] {
			switch {
			case e.err != nil:
				// Not stored: the position stays, the devices send again.
			case r.contiguous(e.seq, sg.first):
				r.pos = stream.Cursor{Seq: e.seq, Index: sg.last}
				if int(sg.last)+1 == e.recs {
					r.pos.Index = math.MaxUint32 // the whole batch
				}
			default:
				r.skip[e.seq] = sg.last + 1 // a batch the router did not see came first
				leave = true
			}
			sg.p.next = r.pos
			close(sg.stored)
		}
		waiting = waiting[n:]
	}
	for {
		if leave {
			t.stop()
			if len(waiting) == 0 {
				return
			}
		}
		var head <-chan struct{}
		if len(r.open) > 0 && !leave {
			head = r.open[0].settled
		}
		var writeC <-chan time.Time
		if r.committed != r.written {
			writeC = write.C
		}
		select {
		case <-writeC:
			r.writePosition()
		case <-t.wake:
			var overflow bool
			events, data, overflow = t.take(events, data)
			if overflow || !r.s.table.Load().reads(Telemetry) {
				leave = true
			}
			for _, e := range events {
				if !e.record {
					flush()
					fate(e)
					continue
				}
				if leave {
					continue // dropped: reading routes it
				}
				if len(cur) > 0 && curNum != e.num {
					flush()
				}
				m, err := stream.DecodeRecord(e.data)
				if err != nil {
					leave = true // cannot happen: the writer encoded it; reading reports it
					continue
				}
				m.Cursor.Index = e.index
				cur, curNum = append(cur, m), e.num
			}
			flush()
		case <-head:
			if !r.commitSettled() {
				leave = true // settle once every routed batch has its fate
			}
		case <-timer.C:
			leave = true
		case <-r.rctx.Done():
			leave = true
		case <-r.dctx.Done():
			return // abandoned: pages awaiting a fate fail (not committed)
		}
	}
}

// contiguous reports whether a segment starting at record first of the
// batch stored at seq comes right after pos, stepping over routed copies.
func (r *telemetryRun) contiguous(seq uint64, first uint32) bool {
	atBatchEnd := r.pos.Index == math.MaxUint32 || r.pos.Seq == 0
	if atBatchEnd {
		r.pos = r.s.tap.skipCopies(r.pos)
	}
	if first == 0 {
		return atBatchEnd && seq == r.pos.Seq+1
	}
	return !atBatchEnd && seq == r.pos.Seq && first == r.pos.Index+1
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
	var own *stream.Message // m for deliveries that outlive this call
	for _, ep := range c.eps {
		switch ep.Kind {
		case KindStream:
			s.toStream(p, c, ep, m, props)
		case KindNATS:
			s.toNATS(p, c, ep, m, props)
		default:
			// Resolve the target now: in (and its lazy twin) is reused for
			// the next message once deliver returns, and so is m's memory
			// when it came from the tap.
			if own == nil {
				own = new(stream.Message)
				*own = *m
			}
			d := &delivery{c: c, ep: ep, m: own, props: props}
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
