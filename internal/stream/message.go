package stream

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// DefaultName is the group and stream a message lands in when it names none.
const DefaultName = "default"

// Errors returned by this package. They carry a [fault.Kind] where an edge
// must tell the caller something specific.
var (
	// ErrClosed is returned by Append after Close, and passed to Acked for
	// messages whose fate is unknown because Close gave up waiting.
	ErrClosed = &fault.Error{Kind: fault.Unavailable, Msg: "stream: writer closed"}
	// ErrCorrupt is returned when a stored batch cannot be decoded.
	ErrCorrupt = errors.New("stream: corrupt batch")
)

// Property is one application property of a message.
type Property struct{ Key, Value string }

// Message is one device-to-cloud message as stored in a stream.
type Message struct {
	Group, Stream      string    // stream group and stream; DefaultName when empty
	DeviceID, ModuleID string    // sender identity; ModuleID empty for a device
	EnqueuedTime       time.Time // set by the hub when the message arrived
	AuthMethod         string    // how the sender authenticated: "sas", "x509", "policy:<name>"

	// System properties, as the device sent them (Azure IoT Hub names).
	MessageID, CorrelationID, UserID, To, ContentType, ContentEncoding string
	Expiry, Component, InterfaceID, OutputName, CreationTime           string

	MessageType string     // "Will" for an MQTT will message, else ""
	Properties  []Property // application properties in arrival order
	Body        []byte
	Cursor      Cursor // position in the stream store; filled in by Store.Read
}

// Cursor is a position in the telemetry store: the JetStream sequence of a
// batch and the index of a message within it. The zero Cursor is the
// position before the first message.
type Cursor struct {
	Seq   uint64 // JetStream sequence of the batch
	Index uint32 // index of the message within the batch
}

// IsZero reports whether c is the beginning of the store.
func (c Cursor) IsZero() bool { return c == Cursor{} }

// Less reports whether c is before d.
func (c Cursor) Less(d Cursor) bool {
	return c.Seq < d.Seq || (c.Seq == d.Seq && c.Index < d.Index)
}

// String formats c as "seq.index", the form ParseCursor reads.
func (c Cursor) String() string {
	return strconv.FormatUint(c.Seq, 10) + "." + strconv.FormatUint(uint64(c.Index), 10)
}

// ParseCursor parses the "seq.index" form of a Cursor. The empty string is
// the zero Cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	seq, idx, ok := strings.Cut(s, ".")
	if !ok {
		return Cursor{}, fault.Invalidf("stream: cursor %q: want seq.index", s)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Cursor{}, fault.Invalidf("stream: cursor %q: bad sequence", s)
	}
	i, err := strconv.ParseUint(idx, 10, 32)
	if err != nil {
		return Cursor{}, fault.Invalidf("stream: cursor %q: bad index", s)
	}
	return Cursor{Seq: n, Index: uint32(i)}, nil
}

// orDefault returns s, or DefaultName when s is empty.
func orDefault(s string) string {
	if s == "" {
		return DefaultName
	}
	return s
}
