// Package c2d queues cloud-to-device messages durably, one queue per device
// in JetStream, and delivers them in order at QoS 1 on
// devices/{id}/messages/devicebound/{property-bag} while the device is
// connected and subscribed. The device's PUBACK completes a message; a
// message not acknowledged before the connection ends is delivered again on
// the next connection. Expired messages and messages delivered too often
// leave the queue with a feedback record, as do completed ones when the
// sender asked for feedback.
//
// One message per device is in flight at a time, so a device sees its
// messages in the order they were sent. No goroutine waits for idle devices:
// delivery work runs when something happens (a message is sent, a device
// subscribes, a PUBACK arrives).
package c2d

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// JetStream names.
const (
	QueueStream     = "FERRY_C2D"
	queuePrefix     = "ferry.c2d.d."
	FeedbackStream  = "FERRY_C2D_FEEDBACK"
	feedbackSubject = "ferry.c2d.feedback"
	// DeadLetterStream keeps the messages that expired or were delivered too
	// often without an acknowledgement, for inspection.
	DeadLetterStream  = "FERRY_C2D_DEADLETTER"
	deadLetterSubject = "ferry.c2d.deadletter"
)

// Ack modes: which outcomes produce a feedback record (Azure's iothub-ack).
const (
	AckNone     = "none"
	AckPositive = "positive" // completed
	AckNegative = "negative" // expired, delivery count exceeded, rejected, purged
	AckFull     = "full"     // both
)

// Feedback status codes, as Azure names them.
const (
	StatusSuccess               = "Success"
	StatusExpired               = "Expired"
	StatusDeliveryCountExceeded = "DeliveryCountExceeded"
	StatusPurged                = "Purged"
)

// Config sets the queue limits; zero values take Azure's defaults.
type Config struct {
	MaxPending       int           // messages queued per device (default 50)
	MaxBytes         int           // body and properties of one message (default 64 KiB)
	DefaultTTL       time.Duration // default 48h (Azure's maximum; its hubs default to 1h)
	MaxTTL           time.Duration // longest TTL accepted, and the queue's age bound (default 48h)
	MaxDeliveryCount int           // deliveries before a message is dead-lettered (default 10)
	Logger           *slog.Logger
	Now              func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxPending <= 0 {
		c.MaxPending = 50
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 64 * 1024
	}
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = 48 * time.Hour
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = 48 * time.Hour
	}
	if c.MaxDeliveryCount <= 0 {
		c.MaxDeliveryCount = 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Property is an application property of a message.
type Property struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DeadLetter is a message that left its queue undelivered.
type DeadLetter struct {
	DeviceID string  `json:"deviceId"`
	Reason   string  `json:"reason"` // StatusExpired or StatusDeliveryCountExceeded
	Message  Message `json:"message"`
}

// Message is a cloud-to-device message.
type Message struct {
	MessageID       string     `json:"messageId"`
	CorrelationID   string     `json:"correlationId,omitempty"`
	UserID          string     `json:"userId,omitempty"`
	ContentType     string     `json:"contentType,omitempty"`
	ContentEncoding string     `json:"contentEncoding,omitempty"`
	Ack             string     `json:"ack"`
	Expiry          time.Time  `json:"expiryTimeUtc"`
	EnqueuedTime    time.Time  `json:"enqueuedTimeUtc"`
	Properties      []Property `json:"properties,omitempty"`
	Body            []byte     `json:"body"`
	// Set when read from the queue.
	Sequence      uint64 `json:"sequence,omitempty"`
	DeliveryCount int    `json:"deliveryCount,omitempty"`
}

// Feedback records what became of a message whose sender asked to know.
type Feedback struct {
	OriginalMessageID string    `json:"originalMessageId"`
	DeviceID          string    `json:"deviceId"`
	StatusCode        string    `json:"statusCode"`
	Description       string    `json:"description"`
	EnqueuedTimeUTC   time.Time `json:"enqueuedTimeUtc"`
	Sequence          uint64    `json:"sequence,omitempty"`
}

// Transport reaches devices. The MQTT broker implements it.
type Transport interface {
	// C2DReady reports whether the device is connected and subscribed to its
	// device-bound topic.
	C2DReady(deviceID string) bool
	// SendC2D publishes at QoS 1 and returns the packet id whose PUBACK
	// completes the message.
	SendC2D(deviceID, topic string, payload []byte) (uint16, error)
}

// Service is the cloud-to-device queue. It is safe for concurrent use.
type Service struct {
	cfg      Config
	queue    jetstream.Stream
	feedback jetstream.Stream
	js       jetstream.JetStream

	tmu       sync.RWMutex
	transport Transport // guarded by tmu

	mu      sync.Mutex
	devices map[string]*device // guarded by mu: devices with delivery state
	counts  map[uint64]int     // guarded by mu: deliveries so far, by queue sequence
}

// device is the delivery state of one device.
type device struct {
	busy     bool   // a delivery pass is running
	again    bool   // something happened during the pass: run another
	inflight uint64 // queue sequence of the message awaiting its PUBACK, 0 = none
	pid      uint16 // its packet id

	sending  bool   // a send is under way: a PUBACK may arrive before inflight is set
	earlyAck uint16 // such a PUBACK's packet id
	hasEarly bool
}

// New opens (or creates) the queue and feedback streams.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Service, error) {
	cfg.setDefaults()
	queue, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:                 QueueStream,
		Description:          "Ferry cloud-to-device queues, one subject per device",
		Subjects:             []string{queuePrefix + ">"},
		Storage:              jetstream.FileStorage,
		MaxMsgsPerSubject:    int64(cfg.MaxPending),
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxAge:               cfg.MaxTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("c2d: open %s: %w", QueueStream, err)
	}
	fb, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        FeedbackStream,
		Description: "Ferry cloud-to-device feedback",
		Subjects:    []string{feedbackSubject},
		Storage:     jetstream.FileStorage,
		MaxAge:      7 * 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("c2d: open %s: %w", FeedbackStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "Ferry cloud-to-device messages that expired or were delivered too often",
		Subjects:    []string{deadLetterSubject},
		Storage:     jetstream.FileStorage,
		MaxAge:      7 * 24 * time.Hour,
	}); err != nil {
		return nil, fmt.Errorf("c2d: open %s: %w", DeadLetterStream, err)
	}
	return &Service{cfg: cfg, queue: queue, feedback: fb, js: js,
		devices: make(map[string]*device), counts: make(map[uint64]int)}, nil
}

// SetTransport connects the service to the broker (built after it).
func (s *Service) SetTransport(t Transport) {
	s.tmu.Lock()
	s.transport = t
	s.tmu.Unlock()
}

func (s *Service) transportOrNil() Transport {
	s.tmu.RLock()
	defer s.tmu.RUnlock()
	return s.transport
}

// subject is the queue subject of a device; ids are hex-encoded because
// device ids may hold characters NATS subjects cannot ('.', '*', '>').
func subject(deviceID string) string { return queuePrefix + hex.EncodeToString([]byte(deviceID)) }

// Send validates and queues a message for a device.
func (s *Service) Send(ctx context.Context, deviceID string, m Message) (Message, error) {
	now := s.cfg.Now()
	if err := s.prepare(&m, now); err != nil {
		return m, err
	}
	data, err := json.Marshal(&m)
	if err != nil {
		return m, fmt.Errorf("c2d: encode: %w", err)
	}
	ack, err := s.js.Publish(ctx, subject(deviceID), data)
	if err != nil {
		if strings.Contains(err.Error(), "maximum messages per subject") {
			return m, fault.New(fault.Forbidden, "DeviceMaximumQueueDepthExceeded", 403004,
				"device %s already has %d messages queued", deviceID, s.cfg.MaxPending)
		}
		return m, fmt.Errorf("c2d: queue for %s: %w", deviceID, err)
	}
	m.Sequence = ack.Sequence
	s.kick(deviceID)
	return m, nil
}

func (s *Service) prepare(m *Message, now time.Time) error {
	if m.MessageID == "" {
		m.MessageID = newID()
	}
	switch m.Ack {
	case "":
		m.Ack = AckNone
	case AckNone, AckPositive, AckNegative, AckFull:
	default:
		return fault.Invalidf("ack must be none, positive, negative or full, not %q", m.Ack)
	}
	switch {
	case m.Expiry.IsZero():
		m.Expiry = now.Add(s.cfg.DefaultTTL)
	case !m.Expiry.After(now):
		return fault.Invalidf("the message's expiry %s has passed", m.Expiry.UTC().Format(time.RFC3339))
	case m.Expiry.Sub(now) > s.cfg.MaxTTL:
		return fault.Invalidf("the message's time to live exceeds the hub's maximum of %s", s.cfg.MaxTTL)
	}
	m.EnqueuedTime = now.UTC()
	m.Sequence, m.DeliveryCount = 0, 0
	size := len(m.Body)
	for _, p := range m.Properties {
		if p.Key == "" {
			return fault.Invalidf("an application property has an empty name")
		}
		size += len(p.Key) + len(p.Value)
	}
	if size > s.cfg.MaxBytes {
		return fault.New(fault.TooLarge, "MessageTooLarge", 413001,
			"cloud-to-device message of %d bytes exceeds the limit of %d bytes", size, s.cfg.MaxBytes)
	}
	return nil
}

// topic is the device-bound topic of a message, its properties in the bag.
func topic(deviceID string, m *Message) string {
	p := protocol.Properties{
		MessageID: m.MessageID, CorrelationID: m.CorrelationID, UserID: m.UserID,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		To:     "/devices/" + deviceID + "/messages/devicebound",
		Expiry: m.Expiry.UTC().Format(time.RFC3339),
	}
	for _, kv := range m.Properties {
		p.App = append(p.App, protocol.Property{Key: kv.Key, Value: kv.Value})
	}
	p.App = append(p.App, protocol.Property{Key: "iothub-ack", Value: m.Ack})
	return protocol.C2DTopic(deviceID, p)
}

func newID() string {
	var b [16]byte
	_, _ = randRead(b[:])
	return hex.EncodeToString(b[:])
}

var errStop = errors.New("c2d: stop delivering")
