package device

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// C2DMessage is a cloud-to-device message.
type C2DMessage struct {
	// ID is the message id ($.mid). The SDK drops a message whose id it
	// has already taken, so a redelivery by the hub is handled once.
	ID string
	// CorrelationID, UserID, ContentType and ContentEncoding are the
	// system properties $.cid, $.uid, $.ct and $.ce.
	CorrelationID, UserID, ContentType, ContentEncoding string
	// Properties are the application properties.
	Properties map[string]string
	// Body is the payload.
	Body []byte
	// Expiry is when the message expires ($.exp); zero when it does not.
	// An expired message is dropped instead of handed to the handler.
	Expiry time.Time
	// Received is when the device stored the message. The hub's topic
	// carries no enqueued time, so this is the closest the device knows.
	Received time.Time
	// DeliveryCount counts the hand-overs to the handler, this one
	// included: 1 the first time, more after Abandon or a restart that
	// interrupted the handler.
	DeliveryCount int
}

// Disposition is what a C2DHandler did with a message.
type Disposition int

const (
	// Complete removes the message from the device's inbox: it was handled.
	Complete Disposition = iota
	// Abandon keeps the message and hands it to the handler again later,
	// after the messages behind it and a delay that grows with each
	// delivery. After Config.MaxC2DDeliveries deliveries an abandoned
	// message is removed as rejected.
	Abandon
	// Reject removes the message without handling it.
	Reject
)

// String returns the disposition in lower case, as "complete".
func (d Disposition) String() string {
	switch d {
	case Complete:
		return "complete"
	case Abandon:
		return "abandon"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Disposition(%d)", int(d))
}

// C2DHandler handles cloud-to-device messages, one at a time, in the
// order they arrived, on a goroutine of its own. ctx is cancelled when the
// Client closes, and Close waits for the handler, so it must return once
// ctx is done; a message it abandons then is handed over again after the
// next Start. A handler that panics abandons the message.
//
// Over MQTT the hub takes the device's PUBACK as completion, as Azure IoT
// Hub does: the hub knows nothing of Abandon and Reject. The SDK stores
// each message (fsynced) in its local inbox before it sends the PUBACK, so
// a crash cannot lose it, and it implements the dispositions itself, on
// the device: rejected messages produce no feedback at the hub.
type C2DHandler func(ctx context.Context, m C2DMessage) Disposition

// Store buckets of the inbox.
const (
	inboxBucket = "c2d"      // messages not yet completed, by 8-byte sequence number
	seenBucket  = "c2d-seen" // ids of the newest messages taken, by sequence number
)

// seenKeep is how many message ids are remembered to drop redeliveries:
// far more than the hub keeps queued for a device (50).
const seenKeep = 1000

// defaultMaxC2DDeliveries is the default of Config.MaxC2DDeliveries.
const defaultMaxC2DDeliveries = 10

// inbox is the durable cloud-to-device inbox: receive stores a message
// from the read goroutine, and run hands the stored ones to the handler.
type inbox struct {
	c    *Client
	wake chan struct{} // capacity 1
	done chan struct{} // closed when run returns

	mu      sync.Mutex
	next    uint64               // next sequence number; guarded by mu
	seen    map[string]uint64    // id to sequence number, for the newest seenKeep messages; guarded by mu
	seenSeq []uint64             // sequence numbers in seen, ascending; guarded by mu
	pending []uint64             // stored messages, ascending; guarded by mu
	retryAt map[uint64]time.Time // abandoned messages: not before; guarded by mu
}

// storedC2D is the stored form of a message (JSON; the store adds a
// checksum).
type storedC2D struct {
	ID              string            `json:"id,omitempty"`
	CorrelationID   string            `json:"cid,omitempty"`
	UserID          string            `json:"uid,omitempty"`
	ContentType     string            `json:"ct,omitempty"`
	ContentEncoding string            `json:"ce,omitempty"`
	Properties      map[string]string `json:"props,omitempty"`
	Body            []byte            `json:"body"`
	Expiry          time.Time         `json:"exp,omitzero"`
	Received        time.Time         `json:"rcv"`
	Deliveries      int               `json:"n"`
}

// newInbox loads the inbox from the store.
func newInbox(c *Client) (*inbox, error) {
	in := &inbox{c: c, wake: make(chan struct{}, 1), done: make(chan struct{}), next: 1,
		seen: make(map[string]uint64), retryAt: make(map[uint64]time.Time)}
	err := c.q.ForEach(seenBucket, func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: c2d id key %x", queue.ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k)
		in.seen[string(v)] = seq
		in.seenSeq = append(in.seenSeq, seq)
		in.next = max(in.next, seq+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = c.q.ForEach(inboxBucket, func(k, _ []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: c2d message key %x", queue.ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k)
		in.pending = append(in.pending, seq)
		in.next = max(in.next, seq+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	in.signal()
	return in, nil
}

func (in *inbox) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// receive stores a message and returns once it is fsynced, so that the
// transport's PUBACK (sent when receive returns nil) never acknowledges a
// message a crash could lose. A message whose id was taken before is
// acknowledged and dropped. An error refuses the message: no PUBACK, and
// the hub delivers it again on a later connection.
func (in *inbox) receive(p protocol.Properties, body []byte) error {
	m := storedC2D{ID: p.MessageID, CorrelationID: p.CorrelationID, UserID: p.UserID,
		ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, Body: body, Received: time.Now()}
	if p.Expiry != "" {
		if t, err := time.Parse(time.RFC3339, p.Expiry); err == nil {
			m.Expiry = t
		}
	}
	for _, kv := range p.App {
		if kv.Key == "iothub-ack" {
			continue // the hub's feedback request: nothing for the device to do
		}
		if m.Properties == nil {
			m.Properties = make(map[string]string, len(p.App))
		}
		m.Properties[kv.Key] = kv.Value
	}
	val, err := json.Marshal(m)
	if err != nil {
		return err
	}

	in.mu.Lock()
	if _, dup := in.seen[m.ID]; dup && m.ID != "" {
		in.mu.Unlock()
		in.c.cfg.Logger.Debug("device: duplicate cloud-to-device message dropped", "id", m.ID)
		return nil
	}
	seq := in.next
	in.next++
	ops := []queue.KVOp{{Bucket: inboxBucket, Key: seqBytes(seq), Value: val}}
	if m.ID != "" {
		in.seen[m.ID] = seq // now, so a redelivery during the write is dropped too
		ops = append(ops, queue.KVOp{Bucket: seenBucket, Key: seqBytes(seq), Value: []byte(m.ID)})
	}
	var forget []uint64
	if n := len(in.seenSeq) + 1 - seenKeep; n > 0 {
		forget = in.seenSeq[:n]
		for _, s := range forget {
			ops = append(ops, queue.KVOp{Bucket: seenBucket, Key: seqBytes(s)})
		}
	}
	in.mu.Unlock()

	if err := in.c.q.Update(ops...); err != nil {
		in.mu.Lock()
		if m.ID != "" {
			delete(in.seen, m.ID)
		}
		in.mu.Unlock()
		in.c.cfg.Logger.Error("device: storing a cloud-to-device message; refused, the hub sends it again", "id", m.ID, "err", err)
		return err
	}

	in.mu.Lock()
	if len(forget) > 0 {
		for id, s := range in.seen {
			if s <= forget[len(forget)-1] {
				delete(in.seen, id)
			}
		}
		in.seenSeq = in.seenSeq[len(forget):]
	}
	if m.ID != "" {
		in.seenSeq = append(in.seenSeq, seq)
	}
	in.pending = append(in.pending, seq)
	in.mu.Unlock()
	in.signal()
	return nil
}

// run hands the stored messages to the handler until the Client closes.
func (in *inbox) run() {
	defer close(in.done)
	ctx := in.c.ctx
	for {
		seq, wait, ok := in.pick()
		if !ok {
			var timer *time.Timer
			var expired <-chan time.Time
			if wait > 0 {
				timer = time.NewTimer(wait)
				expired = timer.C
			}
			select {
			case <-in.wake:
			case <-expired:
			case <-ctx.Done():
				return
			}
			if timer != nil {
				timer.Stop()
			}
			continue
		}
		if !in.deliver(ctx, seq) {
			return
		}
	}
}

// pick returns the oldest message due for the handler, or how long until
// an abandoned one is due (0: none is).
func (in *inbox) pick() (seq uint64, wait time.Duration, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	for _, s := range in.pending {
		at, delayed := in.retryAt[s]
		if !delayed || !at.After(now) {
			return s, 0, true
		}
		if d := at.Sub(now); wait == 0 || d < wait {
			wait = d
		}
	}
	return 0, wait, false
}

// deliver hands message seq to the handler and carries out its
// disposition. It returns false when the store is closed.
func (in *inbox) deliver(ctx context.Context, seq uint64) bool {
	log := in.c.cfg.Logger
	key := seqBytes(seq)
	val, err := in.c.q.Get(inboxBucket, key)
	var m storedC2D
	if err == nil && val != nil {
		err = json.Unmarshal(val, &m)
	}
	switch {
	case errors.Is(err, queue.ErrClosed):
		return false
	case err != nil || val == nil:
		log.Error("device: unreadable cloud-to-device message dropped", "seq", seq, "err", err)
		return in.remove(seq)
	case !m.Expiry.IsZero() && time.Now().After(m.Expiry):
		log.Info("device: expired cloud-to-device message dropped", "id", m.ID)
		return in.remove(seq)
	}
	// Counted before the hand-over, so a message that crashes the program
	// every time still runs out of deliveries.
	m.Deliveries++
	if val, err = json.Marshal(m); err == nil {
		err = in.c.q.Put(inboxBucket, key, val)
	}
	if err != nil {
		if errors.Is(err, queue.ErrClosed) {
			return false
		}
		log.Error("device: counting a cloud-to-device delivery", "id", m.ID, "err", err)
	}

	d := in.handle(ctx, m)
	switch {
	case d == Complete:
		return in.remove(seq)
	case d == Reject:
		log.Info("device: cloud-to-device message rejected", "id", m.ID)
		return in.remove(seq)
	case m.Deliveries >= in.c.cfg.MaxC2DDeliveries:
		log.Warn("device: cloud-to-device message abandoned too often; rejected", "id", m.ID, "deliveries", m.Deliveries)
		return in.remove(seq)
	}
	in.mu.Lock()
	in.retryAt[seq] = time.Now().Add(min(in.c.cfg.c2dRetry*time.Duration(m.Deliveries), time.Minute))
	in.mu.Unlock()
	return true
}

// handle calls the handler; a panic abandons the message.
func (in *inbox) handle(ctx context.Context, m storedC2D) (d Disposition) {
	defer func() {
		if p := recover(); p != nil {
			in.c.cfg.Logger.Error("device: cloud-to-device handler panicked; message abandoned", "id", m.ID, "panic", p)
			d = Abandon
		}
	}()
	d = in.c.cfg.OnC2D(ctx, C2DMessage{ID: m.ID, CorrelationID: m.CorrelationID, UserID: m.UserID,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, Properties: m.Properties,
		Body: m.Body, Expiry: m.Expiry, Received: m.Received, DeliveryCount: m.Deliveries})
	if d != Complete && d != Reject {
		d = Abandon
	}
	return d
}

// remove deletes message seq from the inbox; false when the store is
// closed. Its id stays remembered, so a late redelivery is still dropped.
func (in *inbox) remove(seq uint64) bool {
	if err := in.c.q.Delete(inboxBucket, seqBytes(seq)); err != nil {
		if errors.Is(err, queue.ErrClosed) {
			return false
		}
		in.c.cfg.Logger.Error("device: removing a cloud-to-device message", "seq", seq, "err", err)
	}
	in.mu.Lock()
	if i := slices.Index(in.pending, seq); i >= 0 {
		in.pending = slices.Delete(in.pending, i, i+1)
	}
	delete(in.retryAt, seq)
	in.mu.Unlock()
	return true
}

// PendingC2D returns the number of cloud-to-device messages in the
// device's inbox: stored and not yet completed, rejected or given up.
func (c *Client) PendingC2D() int {
	c.inbox.mu.Lock()
	defer c.inbox.mu.Unlock()
	return len(c.inbox.pending)
}
