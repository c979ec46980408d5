package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/route"
	"github.com/ferry-iot/ferry/internal/schema"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
	"github.com/ferry-iot/ferry/internal/stream"
	"github.com/ferry-iot/ferry/internal/twin"
)

// routing is the message router and what feeds it: the protobuf schema
// registry, the events stream (twin changes, lifecycle), and a stream
// writer of its own for routed copies and dead letters (without message-id
// deduplication, since a routed copy keeps its original's id).
type routing struct {
	svc     *route.Service
	schemas *schema.Registry
	events  *route.Events
	writer  *stream.Writer
	started bool
}

// startRouting builds the router; it runs from Start. It needs the streams
// (startStreams) and is built before the broker, whose presence hook feeds
// it events.
func (h *Hub) startRouting(ctx context.Context) error {
	r := &routing{}
	h.routing = r
	js, err := jetstream.New(h.nc)
	if err != nil {
		return fmt.Errorf("hub: jetstream: %w", err)
	}
	log := h.log.With("component", "route")
	if r.schemas, err = schema.New(ctx, h.db, h.cfg.Now); err != nil {
		return fmt.Errorf("hub: schemas: %w", err)
	}
	if r.events, err = route.NewEvents(ctx, js, log); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	// The router steps over its own copies at the end of the store; the
	// hook runs only once routing has begun, after r.svc is set.
	copyStored := func(num, seq uint64, records int, err error) { r.svc.CopyStored(num, seq, records, err) }
	if r.writer, err = stream.NewWriter(ctx, h.nc, stream.WriterConfig{
		Linger: h.cfg.Linger, DedupWindow: -1, Logger: log, Settled: copyStored,
	}); err != nil {
		return fmt.Errorf("hub: route writer: %w", err)
	}
	r.svc, err = route.New(ctx, route.Config{
		Store:    h.db,
		Reader:   h.streams,
		Appender: r.writer,
		NATS:     h.nc,
		Methods:  h.methods,
		C2D:      h.c2d,
		Twins:    twinDocs{h.twins},
		Schemas:  r.schemas,
		Metrics:  route.NewMetrics(h.promReg),
		Logger:   log,
		Now:      h.cfg.Now,
		Events:   r.events,
	})
	if err != nil {
		return fmt.Errorf("hub: routes: %w", err)
	}
	return nil
}

// ingestTap shows the ingest writer's messages to the router, which
// routes them while they are stored when it waits for new messages
// (route.Service.Tap); settledBatch tells it each batch's fate. The writer
// is made before routing; h.routing is set before the broker accepts the
// first message.
type ingestTap struct{ h *Hub }

func (t ingestTap) tap() stream.Tap {
	if r := t.h.routing; r != nil && r.svc != nil {
		return r.svc.Tap()
	}
	return nil
}

func (t ingestTap) Begin() bool {
	tp := t.tap()
	return tp != nil && tp.Begin()
}

func (t ingestTap) Record(num uint64, index uint32, rec []byte) bool {
	tp := t.tap()
	return tp != nil && tp.Record(num, index, rec)
}

func (h *Hub) settledBatch(num, seq uint64, records int, err error) {
	if r := h.routing; r != nil && r.svc != nil {
		r.svc.Settled(num, seq, records, err)
	}
}

// startRouter runs the router once the broker serves.
func (r *routing) start() error {
	if r == nil || r.svc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.svc.Start(ctx); err != nil {
		return fmt.Errorf("hub: router: %w", err)
	}
	r.started = true
	return nil
}

// close stops the router (it finishes and commits its page) and then its
// writer. It runs before the hub's stream writer and broker close, which
// the router's deliveries use.
func (r *routing) close(ctx context.Context) error {
	if r == nil {
		return nil
	}
	var err error
	if r.svc != nil {
		err = r.svc.Close(ctx)
	}
	if r.writer != nil {
		if werr := r.writer.Close(ctx); err == nil {
			err = werr
		}
	}
	return err
}

// onPresence is the broker's OnPresence: the registry's connection state,
// and a lifecycle event for routes.
func (h *Hub) onPresence(clientID string, connected bool, at time.Time) {
	h.presence.record(clientID, connected, at)
	if h.routing == nil {
		return
	}
	op := route.OpDisconnected
	if connected {
		op = route.OpConnected
	}
	dev, mod := splitClientID(clientID)
	h.routing.events.Lifecycle(dev, mod, op, at)
}

func splitClientID(id string) (dev, mod string) {
	for i := 0; i < len(id); i++ {
		if id[i] == '/' {
			return id[:i], id[i+1:]
		}
	}
	return id, ""
}

// registryChange turns registry deletions into lifecycle events.
func (h *Hub) registryChange(c registry.Change) {
	if h.routing == nil {
		return
	}
	switch c.Kind {
	case registry.ChangeDeleted:
		h.routing.events.Lifecycle(c.DeviceID, "", route.OpDeleted, h.cfg.Now())
	case registry.ChangeModuleDeleted:
		h.routing.events.Lifecycle(c.DeviceID, c.ModuleID, route.OpDeleted, h.cfg.Now())
	}
}

// apiRegistry is the registry as the REST API sees it: device creation
// also raises a lifecycle event (the registry reports updates and
// deletions itself).
type apiRegistry struct {
	*registry.Service
	h *Hub
}

// Create implements api.Registry.
func (a apiRegistry) Create(ctx context.Context, d registry.Device) (*registry.Device, error) {
	out, err := a.Service.Create(ctx, d)
	if err == nil && a.h.routing != nil {
		a.h.routing.events.Lifecycle(out.DeviceID, "", route.OpCreated, a.h.cfg.Now())
	}
	return out, err
}

// twinDocs reads twins for routing conditions and target checks.
type twinDocs struct{ svc *twin.Service }

func (t twinDocs) TwinDocs(ctx context.Context, deviceID, moduleID string) (tags, desired, reported []byte, err error) {
	tw, err := t.svc.Get(ctx, deviceID, moduleID)
	if err != nil {
		return nil, nil, nil, err
	}
	return tw.Tags, tw.Desired.Doc, tw.Reported.Doc, nil
}

// eventingTwins is the twin store with change events for routes: after a
// write commits, each change becomes a twinChangeEvents event.
type eventingTwins struct {
	*sqlite.DB
	h *Hub
}

func (s eventingTwins) emit(cs []twin.Change) {
	if s.h.routing == nil || s.h.routing.events == nil {
		return
	}
	for _, c := range cs {
		s.h.routing.events.TwinChanged(c.DeviceID, c.ModuleID, c.TwinVersion, string(c.Side), json.RawMessage(c.Patch), c.Time)
	}
}

// UpdateTwin implements twin.Store.
func (s eventingTwins) UpdateTwin(ctx context.Context, deviceID, moduleID string, fn func(t *twin.Twin) ([]twin.Change, error)) error {
	var cs []twin.Change
	err := s.DB.UpdateTwin(ctx, deviceID, moduleID, func(t *twin.Twin) ([]twin.Change, error) {
		c, err := fn(t)
		cs = c
		return c, err
	})
	if err == nil {
		s.emit(cs)
	}
	return err
}

// UpdateTwins implements twin.BatchStore.
func (s eventingTwins) UpdateTwins(ctx context.Context, us []twin.Update) ([]error, error) {
	changes := make([][]twin.Change, len(us))
	wrapped := make([]twin.Update, len(us))
	for i, u := range us {
		wrapped[i] = twin.Update{DeviceID: u.DeviceID, ModuleID: u.ModuleID, Fn: func(t *twin.Twin) ([]twin.Change, error) {
			c, err := u.Fn(t)
			changes[i] = c
			return c, err
		}}
	}
	errs, err := s.DB.UpdateTwins(ctx, wrapped)
	if err == nil {
		for i := range us {
			if errs[i] == nil {
				s.emit(changes[i])
			}
		}
	}
	return errs, err
}
