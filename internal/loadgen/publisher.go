package loadgen

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// paceTick is the shortest sleep of a rate-limited writer. Waking once per
// message at tens of thousands of messages per second would cost the loader
// more CPU than the broker; one wake-up per millisecond sends the messages
// that came due meanwhile as one burst.
const paceTick = time.Millisecond

// run is the state shared by every connection of one Ingest call. Times are
// nanoseconds on the monotonic clock since base, never 0 (0 marks a free
// in-flight slot).
type run struct {
	base         time.Time
	start        int64   // when publishing began
	mStart, mEnd int64   // the measuring window
	window       int64   // in-flight cap per connection
	minBurst     int64   // free window slots an unpaced writer waits for (see newRun)
	rate         float64 // messages per second per connection; 0 = unpaced
	maxMsgs      int64   // cap on messages issued over all connections; 0 = none
	issued       atomic.Int64
	stop         chan struct{} // closed when writers must stop
	closing      atomic.Bool   // set before connections are closed on purpose
	errors       atomic.Int64
	firstErrOnce sync.Once
	firstErr     error
}

func (r *run) clock() int64 { return int64(time.Since(r.base)) + 1 }

// reserve takes up to n messages from the MaxMessages budget.
func (r *run) reserve(n int64) int64 {
	if r.maxMsgs == 0 {
		return n
	}
	after := r.issued.Add(n)
	if over := after - r.maxMsgs; over > 0 {
		n -= over
	}
	return max(n, 0)
}

func (r *run) fail(err error) {
	r.errors.Add(1)
	r.firstErrOnce.Do(func() { r.firstErr = err })
}

// pubConn is one publishing connection. The writer goroutine owns the fields
// marked "writer", the reader goroutine those marked "reader"; both are read
// by Ingest only after the goroutines have returned.
type pubConn struct {
	r     *run
	dev   string
	conn  net.Conn
	br    *bufio.Reader
	tmpl  []byte // one encoded PUBLISH; copies differ only in the packet id
	idOff int    // offset of the packet id in tmpl

	// sendAt[i] is the send time of the in-flight packet with id i+1, or 0
	// when that id is free. It has at least twice Window slots, so the
	// writer always finds a free id even when PUBACKs come out of order.
	sendAt   []atomic.Int64
	inflight atomic.Int64  // messages written and not yet acknowledged
	waiting  atomic.Bool   // the writer is blocked on a full window
	wake     chan struct{} // capacity 1; the reader nudges a waiting writer
	sent     atomic.Int64  // messages written, warm-up included
	acked    atomic.Int64  // PUBACKs received, warm-up included
	dead     atomic.Bool   // the connection failed

	nextSlot int   // writer
	sentWin  int64 // writer: messages written inside the measuring window

	hist     histogram // reader: latency of acked messages sent in the window
	ackedWin int64     // reader: acked messages sent in the window
	now      int64     // reader: arrival time of the bytes being decoded
	pending  int64     // reader: acks decoded but not yet released to the writer
}

func newPubConn(r *run, dev string, conn net.Conn, tmpl []byte, idOff int) *pubConn {
	slots := 64
	for slots < int(2*r.window) {
		slots *= 2
	}
	return &pubConn{
		r: r, dev: dev, conn: conn, tmpl: tmpl, idOff: idOff,
		br:     bufio.NewReaderSize(conn, 32<<10),
		sendAt: make([]atomic.Int64, min(slots, 65535)),
		wake:   make(chan struct{}, 1),
	}
}

// setLowWater sets the socket's SO_RCVLOWAT: the kernel then wakes the
// reader only once n bytes are buffered. An unpaced writer waits for
// minBurst free slots anyway, so waking the reader for fewer PUBACKs would
// only spend a read, an epoll round and a goroutine switch per packet,
// which against a broker that writes every PUBACK on its own (Mosquitto
// with TCP_NODELAY) was most of the loader's CPU. Linux reads return what
// is there regardless, and only poll readiness waits for n bytes. An error
// leaves the default of 1 byte: slower, still correct.
func (c *pubConn) setLowWater(n int) {
	conn := c.conn
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	})
}

// fail records the connection's first failure and closes it, which also
// ends its reader. Failures after Ingest started closing are not errors.
func (c *pubConn) fail(err error) {
	if c.r.closing.Load() || !c.dead.CompareAndSwap(false, true) {
		return
	}
	c.r.fail(fmt.Errorf("loadgen: device %s: %w", c.dev, err))
	c.conn.Close()
}

// writeLoop publishes until the window ends, the budget is spent or stop is
// closed. Each burst is every message the window (and the rate) allows right
// now, written with one syscall.
func (c *pubConn) writeLoop() {
	r := c.r
	buf := make([]byte, 0, int(r.window)*len(c.tmpl))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var sent int64
	lastWrite := r.clock()
	for {
		now := r.clock()
		if now >= r.mEnd || c.dead.Load() {
			return
		}
		select {
		case <-r.stop:
			return
		default:
		}
		n := r.window - c.inflight.Load()
		if n < r.minBurst {
			if !c.waitWindow() {
				return
			}
			continue
		}
		if r.rate > 0 {
			allowed := int64(float64(now-r.start)*r.rate/1e9) + 1 - sent
			if allowed <= 0 {
				next := r.start + int64(float64(sent)*1e9/r.rate)
				if !c.pace(timer, time.Duration(next-now), &lastWrite) {
					return
				}
				continue
			}
			n = min(n, allowed)
		}
		if n = r.reserve(n); n == 0 {
			return
		}
		buf = c.fill(buf[:0], n, now)
		// Count before writing: the PUBACKs may be decoded before Write
		// returns, and the reader subtracts them.
		c.inflight.Add(n)
		if _, err := c.conn.Write(buf); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		lastWrite = now
		sent += n
		c.sent.Store(sent)
		if now >= r.mStart {
			c.sentWin += n
		}
	}
}

// fill appends n PUBLISH packets stamped with send time now.
func (c *pubConn) fill(buf []byte, n, now int64) []byte {
	for range n {
		for c.sendAt[c.nextSlot].Load() != 0 {
			c.nextSlot = (c.nextSlot + 1) % len(c.sendAt)
		}
		id := c.nextSlot + 1
		c.sendAt[c.nextSlot].Store(now)
		off := len(buf) + c.idOff
		buf = append(buf, c.tmpl...)
		buf[off], buf[off+1] = byte(id>>8), byte(id)
		c.nextSlot = (c.nextSlot + 1) % len(c.sendAt)
	}
	return buf
}

// waitWindow blocks until the reader frees minBurst slots; false means stop.
func (c *pubConn) waitWindow() bool {
	// Announce the wait, then look again: the reader subtracts before it
	// checks waiting, so one of the two sees the other.
	c.waiting.Store(true)
	defer c.waiting.Store(false)
	if c.r.window-c.inflight.Load() >= c.r.minBurst {
		return true
	}
	select {
	case <-c.wake:
		return true
	case <-c.r.stop:
		return false
	}
}

// pace sleeps until the next message is due (at least paceTick), and sends a
// PINGREQ when a slow rate leaves the connection quiet for half its
// keep-alive. It returns false when the writer must stop.
func (c *pubConn) pace(timer *time.Timer, d time.Duration, lastWrite *int64) bool {
	const pingAfter = keepAlive * time.Second / 2
	if now := c.r.clock(); time.Duration(now-*lastWrite) >= pingAfter {
		if _, err := c.conn.Write(pingreq); err != nil {
			c.fail(fmt.Errorf("write ping: %w", err))
			return false
		}
		*lastWrite = now
	}
	timer.Reset(min(max(d, paceTick), pingAfter))
	select {
	case <-timer.C:
		return true
	case <-c.r.stop:
		return false
	}
}
