package route

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ferry-iot/ferry/internal/c2d"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/method"
	"github.com/ferry-iot/ferry/internal/stream"
)

// Store keeps routes and the fallback setting. internal/store/sqlite
// implements it.
type Store interface {
	CreateRoute(ctx context.Context, r *Route) error // an existing name: an error wrapping ErrExists
	UpdateRoute(ctx context.Context, r *Route) error // an unknown name: fault.NotFound
	GetRoute(ctx context.Context, name string) (*Route, error)
	ListRoutes(ctx context.Context) ([]Route, error)
	DeleteRoute(ctx context.Context, name string) error
	// RouteSetting and PutRouteSetting keep small settings (the fallback).
	RouteSetting(ctx context.Context, key string) (value string, ok bool, err error)
	PutRouteSetting(ctx context.Context, key, value string) error
}

// Reader reads the ingest store and keeps the router's position;
// *stream.Store implements it.
type Reader interface {
	Read(ctx context.Context, q stream.Query) ([]stream.Message, stream.Cursor, error)
	Position(ctx context.Context, consumerGroup, stream string) (stream.Cursor, bool, error)
	Commit(ctx context.Context, consumerGroup, stream string, c stream.Cursor) error
	Last(ctx context.Context) (stream.Cursor, error)
}

// Appender stores messages in the ingest store; *stream.Writer implements it.
type Appender interface {
	Append(m *stream.Message, a stream.Acker, token uint64) error
}

// Invoker calls direct methods; *method.Service implements it.
type Invoker interface {
	Invoke(ctx context.Context, deviceID, moduleID string, req method.Request) (method.Response, error)
}

// Sender queues cloud-to-device messages; *c2d.Service implements it.
type Sender interface {
	Send(ctx context.Context, deviceID string, m c2d.Message) (c2d.Message, error)
}

// Config wires a Service. Store, Reader and Appender are required; an
// endpoint whose dependency is nil fails its deliveries.
type Config struct {
	Store    Store
	Reader   Reader
	Appender Appender   // routed copies and dead letters
	NATS     *nats.Conn // nats endpoints
	Methods  Invoker
	C2D      Sender
	Twins    TwinReader  // $twin fields, enrichments and target tags; target existence
	Schemas  BodyDecoder // protobuf bodies
	Metrics  *Metrics    // nil records nothing
	Logger   *slog.Logger
	Now      func() time.Time
	// HTTPClient sends webhooks. Default: a client with no overall
	// timeout (each attempt has the endpoint's).
	HTTPClient *http.Client

	// MaxHops bounds how many routings a message may go through; a
	// message whose ferry-hops property reached it is refused (a route
	// loop). Default 8.
	MaxHops int
	// WebhookAttempts is how often a webhook delivery is tried before it
	// is dead-lettered (default 5); backoff starts at WebhookBackoff
	// (default 200ms), doubles, has full jitter and is capped at 10s.
	WebhookAttempts int
	WebhookBackoff  time.Duration
	// Concurrency bounds the deliveries to webhooks, methods and C2D in
	// flight at once (default 64).
	Concurrency int
	// PageSize is how many messages the router reads at once (default 1000).
	PageSize int
	// Events, when set, is the source of twin change and lifecycle events.
	Events *Events
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.MaxHops <= 0 {
		c.MaxHops = 8
	}
	if c.WebhookAttempts <= 0 {
		c.WebhookAttempts = 5
	}
	if c.WebhookBackoff <= 0 {
		c.WebhookBackoff = 200 * time.Millisecond
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.PageSize <= 0 {
		c.PageSize = stream.MaxLimit
	}
}

// fallbackKey is the setting that holds the fallback's state.
const fallbackKey = "fallback"

// Service manages routes and runs the router. Route changes take effect
// for the next message the router reads, without a restart.
type Service struct {
	cfg   Config
	table atomic.Pointer[table]
	mu    sync.Mutex // serialises writes and table rebuilds

	sem      chan struct{}      // delivery slots, cap Concurrency
	stopRead context.CancelFunc // Close: read no new page
	hardStop context.CancelFunc // Close's deadline passed: abandon deliveries
	done     chan struct{}
	once     sync.Once

	// Records shown by the ingest writer (Tap, Settled) while the router
	// waits at the end of the store.
	tap     *tap
	rebuilt chan struct{} // capacity 1: signalled when the table changes, for an idle router
}

// New returns a Service with the routes of cfg.Store loaded; Start runs the
// router.
func New(ctx context.Context, cfg Config) (*Service, error) {
	cfg.setDefaults()
	s := &Service{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), done: make(chan struct{}),
		tap: newTap(), rebuilt: make(chan struct{}, 1)}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	if cfg.Events != nil {
		want := func(src Source) bool {
			for _, c := range s.table.Load().all {
				if c.Enabled && c.Source == src {
					return true
				}
			}
			return false
		}
		cfg.Events.wanted.Store(&want)
	}
	return s, nil
}

// reload rebuilds the routing table from the store.
func (s *Service) reload(ctx context.Context) error {
	list, err := s.cfg.Store.ListRoutes(ctx)
	if err != nil {
		return err
	}
	v, ok, err := s.cfg.Store.RouteSetting(ctx, fallbackKey)
	if err != nil {
		return err
	}
	t := &table{fallback: !ok || v != "off"}
	for i := range list {
		c, err := s.compile(list[i])
		if err != nil {
			s.cfg.Logger.Error("route: stored route does not compile; skipped", "route", list[i].Name, "err", err)
			continue
		}
		t.all = append(t.all, c)
	}
	s.table.Store(t)
	s.cfg.Metrics.forget(t)
	select {
	case s.rebuilt <- struct{}{}:
	default:
	}
	return nil
}

// Create validates and saves a new route.
func (s *Service) Create(ctx context.Context, r Route) (*Route, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	r.Created, r.Updated = now, now
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Store.CreateRoute(ctx, &r); err != nil {
		return nil, err
	}
	return &r, s.reload(ctx)
}

// Update replaces a route (found by r.Name), keeping its creation time.
func (s *Service) Update(ctx context.Context, r Route) (*Route, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.cfg.Store.GetRoute(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	r.keepSecrets(old)
	r.Created, r.Updated = old.Created, s.cfg.Now().UTC()
	if err := s.cfg.Store.UpdateRoute(ctx, &r); err != nil {
		return nil, err
	}
	return &r, s.reload(ctx)
}

// SetEnabled enables or disables a route.
func (s *Service) SetEnabled(ctx context.Context, name string, on bool) (*Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.cfg.Store.GetRoute(ctx, name)
	if err != nil {
		return nil, err
	}
	r.Enabled, r.Updated = on, s.cfg.Now().UTC()
	if err := s.cfg.Store.UpdateRoute(ctx, r); err != nil {
		return nil, err
	}
	return r, s.reload(ctx)
}

// Get returns one route.
func (s *Service) Get(ctx context.Context, name string) (*Route, error) {
	return s.cfg.Store.GetRoute(ctx, name)
}

// List returns every route, ordered by name.
func (s *Service) List(ctx context.Context) ([]Route, error) {
	return s.cfg.Store.ListRoutes(ctx)
}

// Delete removes a route.
func (s *Service) Delete(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Store.DeleteRoute(ctx, name); err != nil {
		return err
	}
	return s.reload(ctx)
}

// Fallback reports whether messages that match no route count as
// delivered to their stream (see the package doc).
func (s *Service) Fallback() bool { return s.table.Load().fallback }

// SetFallback turns the fallback on or off.
func (s *Service) SetFallback(ctx context.Context, on bool) error {
	v := "on"
	if !on {
		v = "off"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Store.PutRouteSetting(ctx, fallbackKey, v); err != nil {
		return err
	}
	return s.reload(ctx)
}

// Start runs the router (and the events router when Config.Events is
// set) until Close.
func (s *Service) Start(ctx context.Context) error {
	start, err := s.startPosition(ctx)
	if err != nil {
		return err
	}
	dctx, hard := context.WithCancel(context.WithoutCancel(ctx))
	rctx, stop := context.WithCancel(dctx)
	s.stopRead, s.hardStop = stop, hard
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runTelemetry(rctx, dctx, start)
	}()
	if s.cfg.Events != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runEvents(rctx, dctx)
		}()
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return nil
}

// Close stops the router after the page in progress is delivered and its
// position committed, or when ctx ends. It is idempotent.
func (s *Service) Close(ctx context.Context) error {
	s.once.Do(func() {
		if s.stopRead == nil {
			close(s.done)
			return
		}
		s.stopRead()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.hardStop() // deliveries in flight fail; their page is not committed
		<-s.done
		return fault.New(fault.Unavailable, "", 0, "route: router stopped before its deliveries finished; they are routed again at the next start")
	}
}
