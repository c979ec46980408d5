package device

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// DefaultStream is the name of the default stream and stream group
// (Client.Stream("", "")).
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
	// and may not be one of the names the SDK sets itself: "stream",
	// "stream-group", "batch-id", "batch-slice-id", "message-id", "chunk-id", "chunk-count",
	// "complete-batch" and "complete-message".
	Properties map[string]string
	// Component names the IoT Plug and Play component the message's
	// telemetry belongs to (the system property $.sub), such as
	// "thermostat1"; empty for the default component.
	Component string
	// BatchID groups messages into a batch (a file, a recording, a shift):
	// it is sent as the "batch-id" property. [Stream.CompleteBatch] tells
	// the readers that a batch is complete.
	BatchID string
	// BatchSliceID names a part of a batch ("batch-slice-id"), e.g. one
	// sensor's share of a recording.
	BatchSliceID string
	// ChunkID marks the message as one chunk of a larger logical message
	// whose id is ID: the chunk is stored with the message id "ID#ChunkID"
	// (so the hub keeps every chunk) and the properties "message-id" = ID
	// and "chunk-id" = ChunkID. [Stream.CompleteMessage] ends it. Bodies
	// over the hub's limit are chunked automatically; set ChunkID only to
	// chunk by hand.
	ChunkID string
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

// Stream sends messages to one stream of the hub. It is safe for
// concurrent use.
type Stream struct {
	c     *Client
	group string
	name  string
	opt   streamOptions
}

// Stream returns the stream called name in the stream group group ("" is
// DefaultStream for either). Groups gather streams of one kind (say,
// "telemetry" and "logs") and the hub's readers filter on both. The names
// are sent as the "stream-group" and "stream" application properties;
// each may hold up to 64 letters, digits, '-', '_' and '.'. Options set
// compression and chunking.
func (c *Client) Stream(group, name string, opts ...StreamOption) *Stream {
	if group == "" {
		group = DefaultStream
	}
	if name == "" {
		name = DefaultStream
	}
	s := &Stream{c: c, group: group, name: name, opt: streamOptions{chunkSize: DefaultChunkSize, maxMessage: DefaultMaxMessageBytes}}
	for _, o := range opts {
		o(&s.opt)
	}
	return s
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.name }

// Group returns the stream's group.
func (s *Stream) Group() string { return s.group }

// Enqueue stores m in the local store and returns once it is durably
// written (fsynced): from then on it survives a crash or restart and is
// sent whenever the hub is reachable. It does not need a connection. With
// Config.Full Block, it waits for room while ctx allows.
//
// A body larger than the stream's chunk size is split into chunks stored
// together (all or none); see [WithChunkSize]. The stream's compression
// (see [WithCompression]) is applied first.
func (s *Stream) Enqueue(ctx context.Context, m Message) (MessageInfo, error) {
	recs, err := s.records(m)
	if err != nil {
		return MessageInfo{}, err
	}
	infos, err := s.store(ctx, [][]queue.Record{recs})
	if err != nil {
		return MessageInfo{}, err
	}
	return infos[0], nil
}

// EnqueueBatch stores ms like Enqueue, all or none, with consecutive Seqs
// in slice order, in one durable write. Each Enqueue call waits for its own
// write to the disk (about a millisecond on flash), so a producer that has
// several messages at hand stores them far faster in one call.
func (s *Stream) EnqueueBatch(ctx context.Context, ms []Message) ([]MessageInfo, error) {
	groups := make([][]queue.Record, len(ms))
	for i, m := range ms {
		recs, err := s.records(m)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		groups[i] = recs
	}
	return s.store(ctx, groups)
}

// Send enqueues m like Enqueue and then waits until the hub has
// acknowledged it (stored it in its stream; every chunk of a chunked
// message). If ctx ends first, Send returns ctx's error but the message
// stays stored and will be sent; only an error from the enqueue step means
// it was not stored. With DropOldest, Send also returns nil if the message
// was dropped before it was sent.
func (s *Stream) Send(ctx context.Context, m Message) error {
	recs, err := s.records(m)
	if err != nil {
		return err
	}
	if _, err := s.store(ctx, [][]queue.Record{recs}); err != nil {
		return err
	}
	// Acknowledgements may come in any order within the window: wait for
	// every chunk.
	for _, r := range recs {
		if err := s.c.waitAcked(ctx, r.Seq); err != nil {
			return err
		}
	}
	return nil
}

// CompleteBatch enqueues an empty message that tells the hub's readers the
// batch batchID is complete ("complete-batch" = "true"). Starting a new
// batch does not complete the previous one.
func (s *Stream) CompleteBatch(ctx context.Context, batchID string) (MessageInfo, error) {
	if batchID == "" {
		return MessageInfo{}, fmt.Errorf("%w: CompleteBatch needs a batch id", ErrInvalidMessage)
	}
	rec, err := s.record(Message{BatchID: batchID, ID: "batch:" + batchID + "#complete"})
	if err != nil {
		return MessageInfo{}, err
	}
	rec.Props = append(rec.Props, queue.Property{Key: "complete-batch", Value: "true"})
	infos, err := s.store(ctx, [][]queue.Record{{rec}})
	if err != nil {
		return MessageInfo{}, err
	}
	return infos[0], nil
}

// CompleteMessage enqueues an empty message that ends the logical message
// messageID whose chunks were enqueued by hand with Message.ChunkID
// ("complete-message" = "true"). batchID may be empty. Chunks made by the
// SDK need no completion: each carries "chunk-count".
func (s *Stream) CompleteMessage(ctx context.Context, batchID, messageID string) (MessageInfo, error) {
	if messageID == "" {
		return MessageInfo{}, fmt.Errorf("%w: CompleteMessage needs a message id", ErrInvalidMessage)
	}
	rec, err := s.record(Message{BatchID: batchID, ID: messageID + "#complete"})
	if err != nil {
		return MessageInfo{}, err
	}
	rec.Props = append(rec.Props, queue.Property{Key: "message-id", Value: messageID},
		queue.Property{Key: "complete-message", Value: "true"})
	infos, err := s.store(ctx, [][]queue.Record{{rec}})
	if err != nil {
		return MessageInfo{}, err
	}
	return infos[0], nil
}

// store writes groups of records (each group one message) in one commit
// and returns, per group, the message's id and its first record's Seq.
func (s *Stream) store(ctx context.Context, groups [][]queue.Record) ([]MessageInfo, error) {
	var n int
	for _, g := range groups {
		n += len(g)
	}
	if n == 0 {
		return nil, nil
	}
	if s.c.isClosed() {
		return nil, ErrClosed
	}
	all := make([]queue.Record, 0, n)
	for _, g := range groups {
		all = append(all, g...)
	}
	stored, err := s.c.q.EnqueueBatch(ctx, all)
	if err != nil {
		return nil, enqueueError(err)
	}
	s.c.enqueued(stored[0].Seq, stored[len(stored)-1].Seq)
	out := make([]MessageInfo, len(groups))
	i := 0
	for gi, g := range groups {
		r := stored[i]
		// A chunk's record id is "ID#n": report the logical id, and keep
		// the Seqs of every chunk in order.
		out[gi] = MessageInfo{ID: logicalID(r), Seq: r.Seq, Enqueued: r.Enqueued}
		for j := range g {
			g[j].Seq = stored[i+j].Seq
		}
		i += len(g)
	}
	return out, nil
}

// logicalID is the message id the application knows a record by.
func logicalID(r queue.Record) string {
	for _, p := range r.Props {
		if p.Key == "message-id" {
			return p.Value
		}
	}
	return r.ID
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

// records validates m, compresses its body as the stream says, and turns
// it into one record, or into chunks when the body exceeds the chunk size.
func (s *Stream) records(m Message) ([]queue.Record, error) {
	if len(m.Body) > s.opt.maxMessage {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds the stream's limit of %d", ErrInvalidMessage, len(m.Body), s.opt.maxMessage)
	}
	if err := s.compress(&m); err != nil {
		return nil, err
	}
	if len(m.Body) <= s.opt.chunkSize {
		rec, err := s.record(m)
		if err != nil {
			return nil, err
		}
		return []queue.Record{rec}, nil
	}
	if s.opt.chunkSize <= 0 || m.ChunkID != "" {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d and chunking is off", ErrInvalidMessage, len(m.Body), min(s.opt.chunkSize, MaxBodyBytes))
	}
	if m.ID == "" {
		m.ID = newMessageID()
	}
	count := (len(m.Body) + s.opt.chunkSize - 1) / s.opt.chunkSize
	recs := make([]queue.Record, 0, count)
	body := m.Body
	for i := range count {
		part := m
		part.Body = body[:min(len(body), s.opt.chunkSize)]
		body = body[len(part.Body):]
		part.ChunkID = strconv.Itoa(i)
		rec, err := s.record(part)
		if err != nil {
			return nil, err
		}
		rec.Props = append(rec.Props, queue.Property{Key: "chunk-count", Value: strconv.Itoa(count)})
		recs = append(recs, rec)
	}
	return recs, nil
}

// record validates m and turns it into one queue record. System properties
// are stored as "$."-prefixed properties, then the SDK's properties, then
// the application properties sorted by key.
func (s *Stream) record(m Message) (queue.Record, error) {
	if err := validName(s.name); err != nil {
		return queue.Record{}, fmt.Errorf("%w: stream: %w", ErrInvalidMessage, err)
	}
	if err := validName(s.group); err != nil {
		return queue.Record{}, fmt.Errorf("%w: stream group: %w", ErrInvalidMessage, err)
	}
	if len(m.Body) > MaxBodyBytes {
		return queue.Record{}, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalidMessage, len(m.Body), MaxBodyBytes)
	}
	rec := queue.Record{Stream: s.name, ID: m.ID, Body: m.Body}
	if s.group != DefaultStream {
		rec.Props = append(rec.Props, queue.Property{Key: "stream-group", Value: s.group})
	}
	for _, p := range [...]queue.Property{{Key: "$.cid", Value: m.CorrelationID},
		{Key: "$.ct", Value: m.ContentType}, {Key: "$.ce", Value: m.ContentEncoding}, {Key: "$.sub", Value: m.Component},
		{Key: "batch-id", Value: m.BatchID}, {Key: "batch-slice-id", Value: m.BatchSliceID}} {
		if p.Value != "" {
			rec.Props = append(rec.Props, p)
		}
	}
	if m.ChunkID != "" {
		if m.ID == "" {
			return queue.Record{}, fmt.Errorf("%w: a chunk (ChunkID %q) needs the ID of its message", ErrInvalidMessage, m.ChunkID)
		}
		rec.ID = m.ID + "#" + m.ChunkID
		rec.Props = append(rec.Props, queue.Property{Key: "message-id", Value: m.ID},
			queue.Property{Key: "chunk-id", Value: m.ChunkID})
	}
	keys := make([]string, 0, len(m.Properties))
	for k := range m.Properties {
		switch {
		case k == "" || strings.HasPrefix(k, "$"):
			return queue.Record{}, fmt.Errorf("%w: property key %q is empty or starts with '$'", ErrInvalidMessage, k)
		case reservedKey(k):
			return queue.Record{}, fmt.Errorf("%w: property %q is set by the SDK", ErrInvalidMessage, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rec.Props = append(rec.Props, queue.Property{Key: k, Value: m.Properties[k]})
	}
	return rec, nil
}

// reservedKey reports whether k is an application property the SDK sets.
func reservedKey(k string) bool {
	switch k {
	case "stream", "stream-group", "batch-id", "batch-slice-id", "message-id", "chunk-id", "chunk-count",
		"complete-batch", "complete-message":
		return true
	}
	return false
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
		case "$.sub":
			p.Component = kv.Value
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
