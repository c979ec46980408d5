package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/mochi-mqtt/server/v2/packets"
)

// readLoop is the connection's only reader. It ends when the connection is
// closed or breaks, and then marks the connection dead.
func (c *conn) readLoop() {
	defer close(c.readDone)
	for {
		pk, err := readPacket(c.r)
		if err != nil {
			c.fail(fmt.Errorf("transport: read: %w", err))
			return
		}
		switch pk.FixedHeader.Type {
		case packets.Puback:
			c.acked(pk.PacketID)
		case packets.Pingresp:
			c.mu.Lock()
			c.pongDue = false
			c.mu.Unlock()
		case packets.Suback:
			select {
			case c.suback <- pk.ReasonCodes:
			default:
			}
		case packets.Publish:
			c.deliver(pk)
		case packets.Disconnect:
			c.fail(errors.New("transport: the hub sent DISCONNECT"))
			return
		}
	}
}

// deliver hands an incoming message to OnMessage, then acknowledges it: a
// QoS 1 message is acked only once the application has accepted it. A
// refused message fails the connection instead, so the hub redelivers it.
func (c *conn) deliver(pk packets.Packet) {
	if f := c.t.cfg.OnMessage; f != nil {
		var props protocol.Properties
		if tp, err := protocol.ParseTopic(pk.TopicName); err == nil &&
			(tp.Kind == protocol.TopicC2D || tp.Kind == protocol.TopicModuleInput) {
			if p, err := protocol.ParsePropertyBag(tp.Bag); err == nil {
				props = p
			}
		}
		if err := f(pk.TopicName, props, pk.Payload); err != nil {
			c.fail(fmt.Errorf("transport: message on %s refused: %w", pk.TopicName, err))
			return
		}
	}
	if pk.FixedHeader.Qos > 0 {
		if err := c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}); err != nil {
			c.fail(fmt.Errorf("transport: write PUBACK: %w", err))
		}
	}
}

// acked completes the publish with this packet id, if it is still pending.
func (c *conn) acked(id uint16) {
	c.mu.Lock()
	done, ok := c.inflight[id]
	delete(c.inflight, id)
	if ok && c.closing && len(c.inflight) == 0 {
		select {
		case c.drained <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	if !ok {
		return // a duplicate or unknown ack: nothing waits for it
	}
	<-c.slot
	if done != nil {
		done(nil)
	}
}

// pingLoop sends a PINGREQ every keep-alive period, and declares the
// connection dead when the previous one is still unanswered: a half-open TCP
// connection would otherwise look healthy until the next write times out.
func (c *conn) pingLoop() {
	defer close(c.pingDone)
	tick := time.NewTicker(c.t.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		late := c.pongDue
		c.pongDue = true
		c.mu.Unlock()
		if late {
			c.fail(fmt.Errorf("transport: no PINGRESP within %s", c.t.cfg.KeepAlive))
			return
		}
		if err := c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}); err != nil {
			c.fail(fmt.Errorf("transport: write PINGREQ: %w", err))
			return
		}
	}
}

// fail marks the connection dead (first error wins) and closes the socket,
// which ends the read goroutine.
func (c *conn) fail(err error) {
	c.deadOnce.Do(func() {
		c.err = err
		close(c.dead)
		_ = c.nc.Close()
	})
}

// stopAccepting makes new publishes fail with ErrOffline and wakes those
// waiting for a window slot.
func (c *conn) stopAccepting() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.closing = true
		close(c.stopping)
		if len(c.inflight) == 0 {
			c.drained <- struct{}{}
		}
	}
}

// drain waits until every in-flight publish is acknowledged, the connection
// dies, or the timeout passes.
func (c *conn) drain(ctx context.Context, timeout time.Duration) {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-c.drained:
	case <-c.dead:
	case <-tm.C:
	case <-ctx.Done():
	}
}

// shutdown ends the connection: DISCONNECT when still healthy, close, wait
// for its goroutines, then fail what is still in flight with failErr.
func (c *conn) shutdown(failErr error) {
	c.stopAccepting()
	c.stopWriteBehind() // nothing queued goes out after the DISCONNECT
	select {
	case <-c.dead:
	default:
		// A short deadline: a stalled network must not hold up Close.
		_ = c.writeWithin(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}, disconnectLinger)
		c.fail(failErr)
	}
	<-c.readDone
	<-c.pingDone
	c.waitFlusher()
	c.mu.Lock()
	pending := c.inflight
	c.inflight = map[uint16]func(error){}
	c.mu.Unlock()
	for _, done := range pending {
		if done != nil {
			done(failErr)
		}
	}
}
