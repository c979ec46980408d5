package transport

import (
	"context"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Publish sends a QoS 1 message on the current connection. It blocks
// (respecting ctx) while Window publishes are unacknowledged, and returns
// ErrOffline at once when there is no connection. When it returns nil, done
// (which may be nil) is called exactly once: with nil after the PUBACK, or
// with an error when the connection ended before it. When it returns an
// error, done is never called.
func (t *Transport) Publish(ctx context.Context, topic string, payload []byte, done func(err error)) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	select {
	case c.slot <- struct{}{}:
	case <-c.stopping:
		return ErrOffline
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.slot
		return ErrOffline
	}
	id := c.allocID()
	c.inflight[id] = done
	c.mu.Unlock()

	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic, Payload: payload, PacketID: id,
	}
	if err := c.writeBehind(pk); err != nil {
		c.fail(fmt.Errorf("transport: write: %w", err))
		// Whoever removes the entry completes it: if shutdown already took
		// it, done is (or will be) called with the error there.
		c.mu.Lock()
		_, mine := c.inflight[id]
		delete(c.inflight, id)
		c.mu.Unlock()
		if mine {
			<-c.slot
			return fmt.Errorf("transport: publish: %w", err)
		}
	}
	return nil
}

// allocID returns the next packet id not in flight. The window is smaller
// than the id space, so the loop ends. Called with c.mu held.
func (c *conn) allocID() uint16 {
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, busy := c.inflight[c.nextID]; !busy {
			return c.nextID
		}
	}
}
