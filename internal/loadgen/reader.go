package loadgen

import (
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// pubackSize is the length of an MQTT 3.1.1 PUBACK.
const pubackSize = 4

var errMalformedLength = errors.New("malformed remaining length")

// readLoop decodes what the broker sends until the connection closes. The
// hot path is the PUBACK (0x40 0x02 idHi idLo), decoded in place from the
// buffered reader without allocating; anything else but PINGRESP counts as
// an error and is skipped.
func (c *pubConn) readLoop() {
	defer c.release()
	for {
		b, err := c.peek(2)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		typ, rem, hl := b[0]>>4, int(b[1]), 2
		if rem >= 0x80 {
			if rem, hl, err = c.longLength(); err != nil {
				c.fail(err)
				return
			}
		}
		if typ == packets.Puback && rem == 2 {
			if b, err = c.peek(4); err != nil {
				c.fail(fmt.Errorf("read: %w", err))
				return
			}
			c.ack(int(b[2])<<8 | int(b[3]))
			_, _ = c.br.Discard(4) // cannot fail: the bytes are buffered
			continue
		}
		if typ != packets.Pingresp {
			c.r.fail(fmt.Errorf("loadgen: device %s: unexpected packet type %d", c.dev, typ))
		}
		if _, err := c.br.Discard(hl + rem); err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
	}
}

// peek returns the next n buffered bytes. When it has to wait for the
// network it first hands the acks decoded so far to the writer, so the
// window refills once per read rather than once per PUBACK, and afterwards
// stamps the arrival time used for every packet in that read.
func (c *pubConn) peek(n int) ([]byte, error) {
	if c.br.Buffered() >= n {
		return c.br.Peek(n)
	}
	c.release()
	b, err := c.br.Peek(n)
	c.now = c.r.clock()
	return b, err
}

// longLength decodes a remaining length of two or more bytes. Such a packet
// has at least 128 bytes after its fixed header, so peeking five bytes
// cannot wait for data that never comes.
func (c *pubConn) longLength() (rem, hl int, err error) {
	b, err := c.peek(5)
	if err != nil {
		return 0, 0, fmt.Errorf("read: %w", err)
	}
	mul := 1
	for i := 1; i < 5; i++ {
		rem += int(b[i]&0x7f) * mul
		if b[i] < 0x80 {
			return rem, i + 1, nil
		}
		mul <<= 7
	}
	return 0, 0, errMalformedLength
}

// ack frees the packet id and records the latency of a message sent inside
// the measuring window.
func (c *pubConn) ack(id int) {
	if id < 1 || id > len(c.sendAt) {
		c.r.fail(fmt.Errorf("loadgen: device %s: PUBACK for unknown packet id %d", c.dev, id))
		return
	}
	t := c.sendAt[id-1].Swap(0)
	if t == 0 {
		c.r.fail(fmt.Errorf("loadgen: device %s: PUBACK for packet id %d not in flight", c.dev, id))
		return
	}
	c.pending++
	if t >= c.r.mStart && t < c.r.mEnd {
		c.hist.record(c.now - t)
		c.ackedWin++
	}
}

// release publishes the pending acks to the writer and wakes it if it waits.
func (c *pubConn) release() {
	if c.pending == 0 {
		return
	}
	c.acked.Add(c.pending)
	c.inflight.Add(-c.pending)
	c.pending = 0
	if c.waiting.Load() && c.r.window-c.inflight.Load() >= c.r.minBurst {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}
