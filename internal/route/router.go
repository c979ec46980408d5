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

// runTelemetry reads the ingest store from pos, routes each page and
// commits the page's end once every delivery was handed off. rctx stops
// reading; dctx abandons deliveries (their page is then not committed).
func (s *Service) runTelemetry(rctx, dctx context.Context, pos stream.Cursor) {
	in := &input{dec: s.cfg.Schemas, twins: s.cfg.Twins, ctx: dctx}
	for rctx.Err() == nil {
		msgs, next, err := s.cfg.Reader.Read(rctx, stream.Query{After: pos, Limit: s.cfg.PageSize, Wait: 10 * time.Second})
		if err != nil && rctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, stream.ErrCorrupt) {
			s.cfg.Logger.Error("route: read ingest store", "after", pos.String(), "err", err)
			sleep(rctx, time.Second)
			continue
		}
		if len(msgs) == 0 && next == pos && err == nil {
			continue
		}
		p := s.newPage(dctx)
		t := s.table.Load()
		n := 0
		for i := range msgs {
			if msgs[i].MessageType == RoutedType {
				continue
			}
			s.routeOne(p, t, in, &msgs[i], Telemetry)
			n++
		}
		if !p.wait() {
			if dctx.Err() != nil {
				return
			}
			sleep(rctx, time.Second) // a store append failed: route the page again
			continue
		}
		if err != nil {
			// A corrupt batch cannot be routed; skip it rather than stall.
			s.cfg.Logger.Error("route: skipping an unreadable batch", "after", next.String(), "err", err)
			next = stream.Cursor{Seq: next.Seq + 1, Index: math.MaxUint32}
		}
		if err := s.cfg.Reader.Commit(dctx, PositionGroup, positionStream, next); err != nil {
			s.cfg.Logger.Error("route: commit position", "position", next.String(), "err", err)
		}
		s.cfg.Metrics.examined(Telemetry, n)
		s.cfg.Metrics.position(next)
		pos = next
	}
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
}

func (s *Service) newPage(ctx context.Context) *page {
	return &page{s: s, ctx: ctx, done: make(chan struct{}, 1)}
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
