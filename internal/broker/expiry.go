package broker

import (
	"container/heap"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// A connection ends when the credential it authenticated with ends, as on
// Azure IoT Hub: a SAS token at its expiry (se), a client certificate when
// it or a CA of its verified chain passes NotAfter. Devices renew by
// connecting again with a fresh credential before that.
//
// The deadlines of all connections live in one broker-wide schedule: a
// min-heap watched by one goroutine with one timer. A goroutine or a timer
// per connection would cost every idle connection memory (a stated bar),
// and the heap costs each one an index. Nothing of this is on the publish
// path: a connection enters the schedule when it is accepted and leaves it
// when it ends.

// Reasons for connections the hub closed because their credential ended
// (logs and the ferry_mqtt_credential_disconnects_total label).
const (
	endSASExpired  = "sas_expired"  // the SAS token's se passed
	endCertExpired = "cert_expired" // the client certificate or a CA of its chain passed NotAfter
	endCADeleted   = "ca_deleted"   // a CA of the connection's verified chain was deleted
	endCertRevoked = "cert_revoked" // the device no longer accepts the certificate (thumbprint or auth type changed)
)

// Reason codes for those closes (MQTT 5 DISCONNECT; 3.1.1 clients see the
// connection close). An expiry is 0xA0 "maximum connect time", which MQTT 5
// defines as the authorized connection time being exceeded: that is what
// a credential's expiry sets, and unlike 0x87 it does not tell a client
// that its identity was refused, so SDKs reconnect with a renewed
// credential as they should. A deleted CA or a changed thumbprint withdraws
// the authorization itself: 0x87 "not authorized".
var (
	codeSASExpired  = packets.Code{Code: packets.ErrMaxConnectTime.Code, Reason: "SAS token expired"}
	codeCertExpired = packets.Code{Code: packets.ErrMaxConnectTime.Code, Reason: "client certificate expired"}
	codeCAExpired   = packets.Code{Code: packets.ErrMaxConnectTime.Code, Reason: "CA certificate of the client certificate's chain expired"}
	codeCADeleted   = packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: "certificate authority removed"}
	codeCertRevoked = packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: "client certificate no longer registered for the device"}
)

// maxScheduleWait bounds how long the schedule sleeps: deadlines are wall
// clock times (a token's se), the timer runs on the monotonic clock, and a
// stepped wall clock is noticed within this.
const maxScheduleWait = time.Minute

// schedule holds the credential deadlines of connections. fire is called,
// on a goroutine of its own, for each connection whose deadline passed; the
// connection has left the schedule by then.
type schedule struct {
	now  func() time.Time
	fire func(*conn)

	mu   sync.Mutex
	h    deadlineHeap  // guarded by mu
	wake chan struct{} // a new earliest deadline; capacity 1
}

func newSchedule(now func() time.Time, fire func(*conn)) *schedule {
	return &schedule{now: now, fire: fire, wake: make(chan struct{}, 1)}
}

// add schedules c for its deadline c.expires, which must be set (and stays
// as it is while c is scheduled).
func (s *schedule) add(c *conn) {
	s.mu.Lock()
	if c.heapPos == 0 {
		heap.Push(&s.h, c)
	}
	first := s.h[0] == c
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// remove takes c out of the schedule, if it is in it.
func (s *schedule) remove(c *conn) {
	if c.expires == 0 {
		return // never scheduled; expires is set before a connection is registered
	}
	s.mu.Lock()
	if c.heapPos != 0 {
		heap.Remove(&s.h, c.heapPos-1)
	}
	s.mu.Unlock()
}

// len returns the number of scheduled connections.
func (s *schedule) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.h)
}

// run fires deadlines as they pass until stop is closed.
func (s *schedule) run(stop <-chan struct{}) {
	t := time.NewTimer(maxScheduleWait)
	defer t.Stop()
	for {
		now := s.now().UnixNano()
		wait := maxScheduleWait
		var due []*conn
		s.mu.Lock()
		for len(s.h) > 0 && s.h[0].expires <= now {
			due = append(due, heap.Pop(&s.h).(*conn))
		}
		if len(s.h) > 0 {
			wait = min(wait, time.Duration(s.h[0].expires-now))
		}
		s.mu.Unlock()
		for _, c := range due {
			// Closing writes a DISCONNECT, which may wait for a device that
			// does not read: one must not hold up the others.
			go s.fire(c)
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-s.wake:
		case <-stop:
			return
		}
	}
}

// deadlineHeap is a min-heap of connections by expires; each connection
// knows its position (heapPos, 1-based, 0 when not in the heap).
type deadlineHeap []*conn

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapPos, h[j].heapPos = i+1, j+1
}
func (h *deadlineHeap) Push(x any) {
	c := x.(*conn)
	c.heapPos = len(*h) + 1
	*h = append(*h, c)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.heapPos = 0
	return c
}

// expireAt sets the time at which the connection's credential ends.
func (c *conn) expireAt(t time.Time) {
	c.expires = t.UnixNano()
}

// credentialEnded closes a connection whose credential ended (see
// schedule), unless it ended already.
func (b *Broker) credentialEnded(c *conn) {
	reason, code := endSASExpired, codeSASExpired
	if c.cert != nil {
		reason, code = endCertExpired, codeCertExpired
		if c.cert.caFirst {
			code = codeCAExpired
		}
	}
	b.endConn(c, reason, code, time.Unix(0, c.expires))
}

// endConn closes a live connection for a reason of the credential, logs
// and counts it. It reports whether the connection was still live.
func (b *Broker) endConn(c *conn, reason string, code packets.Code, at time.Time) bool {
	b.mu.RLock()
	_, dev := b.devices[c]
	live := dev || (c.cl != nil && b.conns[c.cl] == c)
	b.mu.RUnlock()
	if !live {
		return false
	}
	attrs := []any{"client", c.clientID, "reason", reason, "auth", c.auth}
	if !at.IsZero() {
		attrs = append(attrs, "at", at.UTC().Format(time.RFC3339))
	}
	b.log.Info("connection closed: its credential is no longer valid", attrs...)
	b.cfg.Metrics.credentialEnded(reason)
	c.closeWith(code)
	return true
}
