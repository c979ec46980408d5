package device

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// DefaultStream is the stream of Client.Stream("").
const DefaultStream = "default"

// MaxBodyBytes is the largest message body the hub accepts (256 KiB).
const MaxBodyBytes = 256 * 1024

// Message is one telemetry message.
type Message struct {
	// Body is the payload. Enqueue copies it.
	Body []byte
	// ID is the message id ($.mid). Empty means a generated random id. The
	// id is stored with the message and sent unchanged on every resend, so
	// the hub drops the duplicates a reconnection causes.
	ID string
	// CorrelationID, ContentType and ContentEncoding are the system
	// properties $.cid, $.ct and $.ce. The hub routes on the body only with
	// ContentType "application/json" and ContentEncoding "utf-8".
	CorrelationID, ContentType, ContentEncoding string
	// Properties are application properties. Keys may not start with '$'
	// and may not be "stream", which the Stream sets.
	Properties map[string]string
}

// MessageInfo describes a stored message.
type MessageInfo struct {
	// ID is the message id, generated when Message.ID was empty.
	ID string
	// Seq is the local store's sequence number: strictly increasing in
	// enqueue order and never reused, even across restarts.
	Seq uint64
	// Enqueued is when the message was stored.
	Enqueued time.Time
}

// Stream sends messages to one named stream of the hub. It is safe for
// concurrent use.
type Stream struct {
	c    *Client
	name string
}

// Stream returns the stream called name ("" is DefaultStream). The name is
// sent as the "stream" application property; it may hold up to 64 letters,
// digits, '-', '_' and '.'.
func (c *Client) Stream(name string) *Stream {
	if name == "" {
		name = DefaultStream
	}
	return &Stream{c: c, name: name}
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.name }

// Enqueue stores m in the local store and returns once it is durably
// written (fsynced): from then on it survives a crash or restart and is
// sent whenever the hub is reachable. It does not need a connection. With
// Config.Full Block, it waits for room while ctx allows.
func (s *Stream) Enqueue(ctx context.Context, m Message) (MessageInfo, error) {
	rec, err := s.record(m)
	if err != nil {
		return MessageInfo{}, err
	}
	if s.c.isClosed() {
		return MessageInfo{}, ErrClosed
	}
	rec, err = s.c.q.Enqueue(ctx, rec)
	if err != nil {
		return MessageInfo{}, enqueueError(err)
	}
	s.c.enqueued(rec.Seq, rec.Seq)
	return MessageInfo{ID: rec.ID, Seq: rec.Seq, Enqueued: rec.Enqueued}, nil
}

// EnqueueBatch stores ms like Enqueue, all or none, with consecutive Seqs
// in slice order, in one durable write. Each Enqueue call waits for its own
// write to the disk (about a millisecond on flash), so a producer that has
// several messages at hand stores them far faster in one call.
func (s *Stream) EnqueueBatch(ctx context.Context, ms []Message) ([]MessageInfo, error) {
	recs := make([]queue.Record, len(ms))
	for i, m := range ms {
		rec, err := s.record(m)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		recs[i] = rec
	}
	if s.c.isClosed() {
		return nil, ErrClosed
	}
	recs, err := s.c.q.EnqueueBatch(ctx, recs)
	if err != nil {
		return nil, enqueueError(err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	s.c.enqueued(recs[0].Seq, recs[len(recs)-1].Seq)
	out := make([]MessageInfo, len(recs))
	for i, r := range recs {
		out[i] = MessageInfo{ID: r.ID, Seq: r.Seq, Enqueued: r.Enqueued}
	}
	return out, nil
}

// enqueueError maps the store's errors onto the package's.
func enqueueError(err error) error {
	switch {
	case errors.Is(err, queue.ErrQueueFull):
		return fmt.Errorf("device: enqueue: %w", ErrQueueFull)
	case errors.Is(err, queue.ErrClosed):
		return fmt.Errorf("device: enqueue: %w", ErrClosed)
	case errors.Is(err, queue.ErrTooLarge):
		return fmt.Errorf("device: enqueue: %w: %w", ErrInvalidMessage, err)
	default:
		return fmt.Errorf("device: enqueue: %w", err)
	}
}

// Send enqueues m like Enqueue and then waits until the hub has
// acknowledged it (stored it in its stream). If ctx ends first, Send
// returns ctx's error but the message stays stored and will be sent; only
// an error from the enqueue step means it was not stored. With DropOldest,
// Send also returns nil if the message was dropped before it was sent.
func (s *Stream) Send(ctx context.Context, m Message) error {
	info, err := s.Enqueue(ctx, m)
	if err != nil {
		return err
	}
	return s.c.waitAcked(ctx, info.Seq)
}

// record validates m and turns it into a queue record. System properties
// are stored as "$."-prefixed properties, application properties sorted
// by key.
func (s *Stream) record(m Message) (queue.Record, error) {
	if err := validName(s.name); err != nil {
		return queue.Record{}, fmt.Errorf("%w: stream: %w", ErrInvalidMessage, err)
	}
	if len(m.Body) > MaxBodyBytes {
		return queue.Record{}, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalidMessage, len(m.Body), MaxBodyBytes)
	}
	rec := queue.Record{Stream: s.name, ID: m.ID, Body: m.Body}
	for _, p := range [...]queue.Property{{Key: "$.cid", Value: m.CorrelationID},
		{Key: "$.ct", Value: m.ContentType}, {Key: "$.ce", Value: m.ContentEncoding}} {
		if p.Value != "" {
			rec.Props = append(rec.Props, p)
		}
	}
	keys := make([]string, 0, len(m.Properties))
	for k := range m.Properties {
		switch {
		case k == "" || strings.HasPrefix(k, "$"):
			return queue.Record{}, fmt.Errorf("%w: property key %q is empty or starts with '$'", ErrInvalidMessage, k)
		case k == "stream":
			return queue.Record{}, fmt.Errorf("%w: property \"stream\" is set by the Stream", ErrInvalidMessage)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rec.Props = append(rec.Props, queue.Property{Key: k, Value: m.Properties[k]})
	}
	return rec, nil
}

// topic builds the telemetry topic for rec: $.mid is the record's stable
// id, then the stored system properties, then "stream" and the
// application properties.
func topic(deviceID, moduleID string, rec queue.Record) string {
	p := protocol.Properties{MessageID: rec.ID}
	p.App = make([]protocol.Property, 0, len(rec.Props)+1)
	p.App = append(p.App, protocol.Property{Key: "stream", Value: rec.Stream})
	for _, kv := range rec.Props {
		switch kv.Key {
		case "$.cid":
			p.CorrelationID = kv.Value
		case "$.ct":
			p.ContentType = kv.Value
		case "$.ce":
			p.ContentEncoding = kv.Value
		default:
			p.App = append(p.App, protocol.Property{Key: kv.Key, Value: kv.Value})
		}
	}
	return protocol.TelemetryTopic(deviceID, moduleID, p)
}

// validName mirrors the hub's rule for stream names.
func validName(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("name %.16q... is longer than 64 characters", s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return fmt.Errorf("name %q may hold only letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}
