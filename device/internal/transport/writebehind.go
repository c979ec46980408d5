package transport

import (
	"fmt"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// writeBehind queues an encoded QoS 1 PUBLISH for the connection's flusher
// and returns without waiting for the socket. One flusher goroutine runs
// while there is something queued: it writes everything queued so far in
// one Write (one TLS record and one system call for a burst of publishes,
// instead of one each), then what was queued meanwhile, and exits when
// the queue is empty. A write error fails the connection, which fails the
// queued publishes through shutdown, as Publish's contract requires.
//
// Only publishes go this way: their outcome is their PUBACK. Other packets
// (CONNECT, PUBACK, PINGREQ, DISCONNECT) are written at once by
// writeWithin; both take wmu around the socket write, so packets never
// interleave.
func (c *conn) writeBehind(pk packets.Packet) error {
	b, err := encode(pk)
	if err != nil {
		return err
	}
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if c.wclosed {
		return net.ErrClosed
	}
	c.pend = append(c.pend, b...)
	if c.flushIdle == nil {
		c.flushIdle = make(chan struct{})
		go c.flush(c.flushIdle)
	}
	return nil
}

// flush is the flusher goroutine; it closes idle when it exits.
func (c *conn) flush(idle chan struct{}) {
	defer close(idle)
	var spare []byte
	for {
		c.bmu.Lock()
		out := c.pend
		if len(out) == 0 || c.wclosed {
			c.pend, c.flushIdle = nil, nil
			c.bmu.Unlock()
			return
		}
		c.pend = spare[:0]
		c.bmu.Unlock()

		c.wmu.Lock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.t.cfg.KeepAlive))
		_, err := c.nc.Write(out)
		c.wmu.Unlock()
		if err != nil {
			c.fail(fmt.Errorf("transport: write: %w", err))
			c.bmu.Lock()
			c.pend, c.flushIdle, c.wclosed = nil, nil, true
			c.bmu.Unlock()
			return
		}
		if cap(out) <= maxSpare {
			spare = out
		} else {
			spare = nil
		}
	}
}

// maxSpare is the largest write buffer a flusher keeps for the next burst.
const maxSpare = 256 << 10

// stopWriteBehind makes later writeBehind calls fail and a running flusher
// drop what is queued after its current write: shutdown fails those
// publishes.
func (c *conn) stopWriteBehind() {
	c.bmu.Lock()
	c.wclosed = true
	c.bmu.Unlock()
}

// waitFlusher waits for a running flusher to exit. Called once the socket
// is closed, so that its Write returns.
func (c *conn) waitFlusher() {
	c.bmu.Lock()
	idle := c.flushIdle
	c.bmu.Unlock()
	if idle != nil {
		<-idle
	}
}
