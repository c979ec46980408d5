package route

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-iot/ferry/internal/stream"
)

// Names of the events stream in NATS.
const (
	EventsStream   = "FERRY_EVENTS"
	eventsSubject  = "ferry.events"
	eventsConsumer = "ferry-router"
)

// Operation types of events, Azure IoT Hub's opType values.
const (
	OpCreated      = "createDeviceIdentity"
	OpDeleted      = "deleteDeviceIdentity"
	OpConnected    = "deviceConnected"
	OpDisconnected = "deviceDisconnected"
	OpUpdateTwin   = "updateTwin"
)

// Events carries twin change and device lifecycle events to the router
// through a JetStream stream, so that the code that notices them (presence,
// registry, twin writes) never waits for routing, and the router reads
// them with a durable consumer that survives restarts.
type Events struct {
	js      jetstream.JetStream
	cons    jetstream.Consumer
	log     *slog.Logger
	dropped atomic.Uint64
	// wanted reports whether an enabled route reads a source; events no
	// route reads are not published (a connect storm costs nothing).
	wanted atomic.Pointer[func(Source) bool]
}

// NewEvents opens (creating) the events stream, which keeps a day of
// events, and the router's durable consumer on it.
func NewEvents(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Events, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: EventsStream, Description: "Ferry twin change and device lifecycle events for routing",
		Subjects: []string{eventsSubject + ".>"}, Storage: jetstream.FileStorage,
		MaxAge: 24 * time.Hour, MaxMsgs: 1 << 20, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("route: events stream: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable: eventsConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy, AckWait: 5 * time.Minute, MaxAckPending: 10000,
	})
	if err != nil {
		return nil, fmt.Errorf("route: events consumer: %w", err)
	}
	return &Events{js: js, cons: cons, log: log}, nil
}

// Lifecycle records a device or module created, deleted, connected or
// disconnected. It does not block.
func (e *Events) Lifecycle(deviceID, moduleID, op string, at time.Time) {
	body, _ := json.Marshal(map[string]any{"deviceId": deviceID, "moduleId": moduleID, "opType": op,
		"operationTimestamp": at.UTC().Format(time.RFC3339Nano)})
	e.publish(LifecycleEvents, deviceID, moduleID, op, at, body)
}

// TwinChanged records a twin change: version is the twin's version after
// it, side "tags", "desired" or "reported", patch the merge patch applied.
func (e *Events) TwinChanged(deviceID, moduleID string, version int64, side string, patch json.RawMessage, at time.Time) {
	var doc map[string]any
	if side == "tags" {
		doc = map[string]any{"version": version, "tags": patch}
	} else {
		doc = map[string]any{"version": version, "properties": map[string]any{side: patch}}
	}
	body, _ := json.Marshal(doc)
	e.publish(TwinChanges, deviceID, moduleID, OpUpdateTwin, at, body)
}

func (e *Events) publish(src Source, deviceID, moduleID, op string, at time.Time, body []byte) {
	if e == nil {
		return
	}
	if w := e.wanted.Load(); w != nil && !(*w)(src) {
		return
	}
	m := &nats.Msg{Subject: eventsSubject + "." + string(src), Data: body, Header: nats.Header{}}
	m.Header.Set("Ferry-Source", string(src))
	m.Header.Set("Ferry-Device-Id", deviceID)
	m.Header.Set("Ferry-Module-Id", moduleID)
	m.Header.Set("Ferry-Op", op)
	m.Header.Set("Ferry-Time", at.UTC().Format(time.RFC3339Nano))
	if _, err := e.js.PublishMsgAsync(m); err != nil {
		if e.dropped.Add(1)%1000 == 1 {
			e.log.Warn("route: event dropped", "source", src, "device", deviceID, "err", err)
		}
	}
}

// eventMessage turns a stored event into the message routes see: a JSON
// body, the device as sender, opType and iothub-message-source as
// application properties (as Azure writes them).
func eventMessage(msg jetstream.Msg) (*stream.Message, Source) {
	h := msg.Headers()
	src := Source(h.Get("Ferry-Source"))
	at, _ := time.Parse(time.RFC3339Nano, h.Get("Ferry-Time"))
	m := &stream.Message{
		DeviceID: h.Get("Ferry-Device-Id"), ModuleID: h.Get("Ferry-Module-Id"),
		EnqueuedTime: at, ContentType: "application/json", Body: msg.Data(),
		Stream: string(src),
		Properties: []stream.Property{
			{Key: "opType", Value: h.Get("Ferry-Op")},
			{Key: "iothub-message-source", Value: string(src)},
			{Key: "deviceId", Value: h.Get("Ferry-Device-Id")},
		},
	}
	return m, src
}

// runEvents routes events in pages of up to 256, acknowledging each page's
// events once their deliveries were handed off.
func (s *Service) runEvents(rctx, dctx context.Context) {
	ev := s.cfg.Events
	in := &input{dec: s.cfg.Schemas, twins: s.cfg.Twins, ctx: dctx}
	for rctx.Err() == nil {
		batch, err := ev.cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			if rctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) {
				s.cfg.Logger.Error("route: fetch events", "err", err)
				sleep(rctx, time.Second)
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		p := s.newPage(dctx)
		t := s.table.Load()
		for _, jm := range msgs {
			m, src := eventMessage(jm)
			s.routeOne(p, t, in, m, src)
			s.cfg.Metrics.examined(src, 1)
		}
		if p.ok = p.wait(); !p.ok {
			for _, jm := range msgs {
				_ = jm.Nak()
			}
			if dctx.Err() != nil {
				return
			}
			continue
		}
		for _, jm := range msgs {
			if err := jm.Ack(); err != nil {
				s.cfg.Logger.Warn("route: ack event", "err", err)
			}
		}
	}
}
