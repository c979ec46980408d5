package broker

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/ferry-iot/ferry/internal/session"
)

// identity is what a connection authenticated as.
type identity int

const (
	identDevice identity = iota // a device or a module, confined to its own topics
	identClient                 // an ordinary MQTT client authenticated with an access policy
	identDPS                    // a DPS registration, served by its own loop (see dps.go)
)

// conn is the broker's state for one authenticated connection: a device on
// the broker's own lean connection loop (nc set), or a policy client that
// mochi serves as an ordinary broker (cl set).
type conn struct {
	b        *Broker
	cl       *mqtt.Client // mochi's client, for policy clients
	nc       net.Conn     // the network connection, for devices
	clientID string
	kind     identity
	deviceID string
	moduleID string
	auth     string // auth method recorded on every message, e.g. "sas" or "policy:device"
	since    time.Time
	v5       bool
	dps      *dpsConn // a DPS registration's state (kind identDPS)
	modelID  string   // the Plug and Play model the device announced in its username ("" when none)

	// The credential's end (see expiry.go): unix nanoseconds, 0 when it
	// never ends; set before the connection is registered, then unchanged.
	expires int64
	heapPos int       // guarded by the schedule's mu: 1-based position in it, 0 when not in it
	cert    *certAuth // the certificate a connection authenticated with; nil for SAS

	lastSeen atomic.Int64 // unix nanoseconds of the last message
	pid      atomic.Uint32

	// Lean device connections only (see devconn.go).
	version     byte
	keepalive   time.Duration
	clean       bool
	sessionTTL  time.Duration // how long a persistent session outlives the connection (sessexp.go)
	willTopic   string
	willPayload []byte
	deadlineSet time.Time  // owned by the read goroutine
	wmu         sync.Mutex // one writer at a time
	subMu       sync.Mutex
	subs        []session.Subscription // guarded by subMu: granted filters

	// Owned by the client's read goroutine (mochi calls OnPublish from it).
	inflow chan struct{} // semaphore of QoS 1 messages waiting for durability; nil until first use
	denied int           // ACL refusals logged so far
	// A policy client's filters refused for the subscription cap, from
	// OnSubscribe until its SUBACK is encoded (see quota.go).
	refusing atomic.Pointer[subRefusal]

	mu      sync.Mutex
	acks    []byte // guarded by mu: encoded PUBACKs waiting for the next flush
	spare   []byte // guarded by mu: the buffer being written, swapped with acks
	dirty   bool   // guarded by mu: conn is in b.dirty
	failed  error  // guarded by mu: a store error that must end a 3.1.1 connection
	writing sync.Mutex
}

func (c *conn) lastActivity() time.Time {
	n := c.lastSeen.Load()
	if n == 0 {
		return c.since
	}
	return time.Unix(0, n)
}

// Acked implements stream.Acker: called by the writer, in publish order, once
// the message with packet id token is durable (err == nil) or was lost.
func (c *conn) Acked(token uint64, err error) {
	<-c.inflow
	c.mu.Lock()
	switch {
	case err == nil:
		c.acks = append(c.acks, 0x40, 0x02, byte(token>>8), byte(token))
	case c.v5:
		// MQTT 5 can say "not stored" per message: reason 0x80, unspecified error.
		c.acks = append(c.acks, 0x40, 0x03, byte(token>>8), byte(token), 0x80)
	default:
		// MQTT 3.1.1 has no negative PUBACK: close the connection so the
		// client resends everything it has not seen acknowledged.
		if c.failed == nil {
			c.failed = err
		}
	}
	mark := !c.dirty
	c.dirty = true
	c.mu.Unlock()
	if mark {
		c.b.ackMu.Lock()
		c.b.dirty = append(c.b.dirty, c)
		c.b.ackMu.Unlock()
	}
}

// flush writes the connection's pending PUBACKs in one socket write.
func (c *conn) flush() {
	c.writing.Lock() // one flusher at a time keeps the PUBACK order
	defer c.writing.Unlock()
	c.mu.Lock()
	buf := c.acks
	c.acks = c.spare[:0]
	c.spare = nil
	c.dirty = false
	failed := c.failed
	c.mu.Unlock()

	if len(buf) > 0 {
		if err := c.writeRaw(buf); err != nil && failed == nil {
			failed = err
		}
	}
	c.mu.Lock()
	if c.spare == nil {
		c.spare = buf[:0]
	}
	c.mu.Unlock()
	if failed != nil {
		c.b.log.Warn("closing connection after a store or write error", "client", c.clientID, "error", failed)
		c.close()
	}
}

// FlushAcks writes every PUBACK that became due since the last call, one
// socket write per connection. The stream writer calls it after each batch.
func (b *Broker) FlushAcks() {
	b.ackMu.Lock()
	list := b.dirty
	b.dirty = nil
	b.ackMu.Unlock()
	for _, c := range list {
		c.flush()
	}
	b.ackMu.Lock()
	if b.dirty == nil {
		b.dirty = list[:0]
	}
	b.ackMu.Unlock()
}

// nextPacketID returns the id for the next device-bound QoS 1 message.
func (c *conn) nextPacketID() uint16 {
	id := uint16(c.pid.Add(1))
	if id == 0 {
		id = uint16(c.pid.Add(1))
	}
	return id
}
