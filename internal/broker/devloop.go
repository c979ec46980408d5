package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/session"
)

// errProtocol ends a connection that broke the protocol.
var errProtocol = errors.New("broker: protocol violation")

// readLoop reads and handles the device's packets until the connection ends.
// Decoded packets point into the read buffer, which is reused: a handler
// that keeps a string or a slice past its return must copy it.
// While the device is idle it blocks on a read into a few bytes of its own;
// the bytes that follow are read into a pooled buffer, which goes back to
// the pool once every complete packet in it has been handled.
func (c *conn) readLoop() {
	b := c.b
	defer b.connWG.Done()
	var (
		small    [16]byte
		graceful bool
		err      error
	)
	for err == nil && !graceful {
		c.refreshDeadline()
		var n int
		n, err = c.nc.Read(small[:])
		if n == 0 {
			continue
		}
		bufp := readBufs.Get().(*[]byte)
		buf := append((*bufp)[:0], small[:n]...)
		buf, graceful, err = c.drain(buf)
		if cap(buf) == readBufSize {
			*bufp = buf[:0]
			readBufs.Put(bufp)
		}
	}
	c.finish(graceful, err)
}

// drain handles every complete packet in buf, reading more from the
// connection while a packet is incomplete, and returns when buf holds no
// partial packet. It returns the (possibly grown) buffer.
func (c *conn) drain(buf []byte) (_ []byte, graceful bool, err error) {
	for {
		used, pk, perr := c.parse(buf)
		switch {
		case perr != nil:
			return buf, false, perr
		case pk != nil:
			if graceful, err = c.handle(pk); err != nil || graceful {
				return buf, graceful, err
			}
			buf = buf[:copy(buf, buf[used:])]
			if len(buf) == 0 {
				return buf, false, nil
			}
			continue
		}
		// Incomplete: need more bytes (used is the size needed, or 0 when
		// the header itself is incomplete).
		if used > cap(buf) {
			grown := make([]byte, len(buf), used)
			copy(grown, buf)
			buf = grown
		} else if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		c.refreshDeadline()
		n, rerr := c.nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil && n == 0 {
			return buf, false, rerr
		}
	}
}

// parse decodes the first packet in buf. It returns the packet and the bytes
// it used; or nil and the total size the packet needs (0 if unknown yet).
func (c *conn) parse(buf []byte) (int, *packets.Packet, error) {
	if len(buf) < 2 {
		return 0, nil, nil
	}
	rem, hl, ok := remainingLength(buf[1:])
	if !ok {
		if len(buf) >= 5 {
			return 0, nil, packets.ErrMalformedVariableByteInteger
		}
		return 0, nil, nil
	}
	total := 1 + hl + rem
	if rem > c.b.cfg.MaxMessageBytes+64*1024 {
		return 0, nil, packets.ErrPacketTooLarge
	}
	if len(buf) < total {
		return total, nil, nil
	}
	pk := &packets.Packet{ProtocolVersion: c.version}
	if err := pk.FixedHeader.Decode(buf[0]); err != nil {
		return 0, nil, err
	}
	pk.FixedHeader.Remaining = rem
	body := buf[1+hl : total]
	err := decodeBody(pk, body)
	if err != nil {
		return 0, nil, err
	}
	return total, pk, nil
}

// decodeBody decodes a packet's body with mochi's codec. The codec can
// panic on some malformed input (an index out of range in SubscribeDecode,
// found by FuzzParsePacket), and one hostile device must not take the hub
// down: a panic here is a protocol error that ends that connection.
func decodeBody(pk *packets.Packet, body []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: malformed %s packet", errProtocol, packets.PacketNames[pk.FixedHeader.Type])
		}
	}()
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return pk.PublishDecode(body)
	case packets.Puback:
		return pk.PubackDecode(body)
	case packets.Subscribe:
		return pk.SubscribeDecode(body)
	case packets.Unsubscribe:
		return pk.UnsubscribeDecode(body)
	case packets.Pingreq:
		return nil
	case packets.Disconnect:
		if len(body) > 0 {
			return pk.DisconnectDecode(body)
		}
		return nil
	}
	return errProtocol
}

// remainingLength decodes MQTT's variable byte integer.
func remainingLength(b []byte) (n, size int, ok bool) {
	for i := 0; i < 4 && i < len(b); i++ {
		n |= int(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return n, i + 1, true
		}
	}
	return 0, 0, false
}

// handle acts on one packet. It reports a DISCONNECT (graceful end) or an
// error that ends the connection.
func (c *conn) handle(pk *packets.Packet) (graceful bool, err error) {
	b := c.b
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos == 2 {
			// Azure IoT Hub closes the connection on QoS 2, and so does Ferry.
			b.cfg.Metrics.refused("qos2")
			b.log.Info("qos 2 publish refused", "client", c.clientID, "topic", pk.TopicName)
			c.closeWith(packets.ErrQosNotSupported)
			return false, packets.ErrQosNotSupported
		}
		if !protocol.DeviceMayPublish(c.deviceID, c.moduleID, pk.TopicName) {
			c.denyTopic(pk.TopicName, true)
			if pk.FixedHeader.Qos == 0 {
				return false, nil
			}
			if c.v5 {
				return false, c.writePacket(puback(pk.PacketID, packets.ErrNotAuthorized))
			}
			c.closeWith(packets.ErrNotAuthorized)
			return false, packets.ErrNotAuthorized
		}
		if err := b.devicePublish(c, *pk); err != nil && !errors.Is(err, packets.ErrRejectPacket) {
			return false, err
		}
		return false, nil
	case packets.Puback:
		if b.cfg.C2D != nil && c.moduleID == "" {
			b.cfg.C2D.Acked(c.deviceID, pk.PacketID) // a device-bound message arrived
		}
		return false, nil
	case packets.Subscribe:
		return false, c.subscribe(pk)
	case packets.Unsubscribe:
		return false, c.unsubscribe(pk)
	case packets.Pingreq:
		return false, c.writeRaw([]byte{packets.Pingresp << 4, 0})
	case packets.Disconnect:
		return true, nil
	}
	return false, errProtocol
}

func (c *conn) denyTopic(topic string, publish bool) {
	c.b.cfg.Metrics.aclDenied()
	if c.denied < 10 { // a hostile device must not flood the log
		c.denied++
		c.b.log.Warn("topic refused", "client", c.clientID, "topic", topic, "publish", publish)
	}
}

// subscribe grants the filters a device may use (QoS at most 1, as Azure
// grants) and refuses the others; CleanSession=0 subscriptions are stored.
func (c *conn) subscribe(pk *packets.Packet) error {
	codes := make([]byte, len(pk.Filters))
	var keep []session.Subscription
	quota := false
	c.subMu.Lock()
	for i, f := range pk.Filters {
		if !protocol.DeviceOwnsFilter(c.deviceID, c.moduleID, f.Filter) {
			c.denyTopic(f.Filter, false)
			codes[i] = packets.ErrNotAuthorized.Code
			if !c.v5 {
				codes[i] = 0x80
			}
			continue
		}
		if !hasFilter(c.subs, f.Filter) && len(c.subs) >= c.b.cfg.MaxSubscriptions {
			// Each distinct filter is a stored row for a persistent session:
			// the cap keeps one client from growing the hub without bound.
			codes[i] = quotaCode(c.v5)
			quota = true
			c.refuseQuota(f.Filter)
			continue
		}
		codes[i] = min(f.Qos, 1)
		// The decoded filter points into the pooled read buffer: copy what is kept.
		s := session.Subscription{ClientID: c.clientID, Filter: strings.Clone(f.Filter), QoS: codes[i]}
		keep = append(keep, s)
		c.subs = replaceSub(c.subs, s)
	}
	c.subMu.Unlock()
	if len(keep) > 0 && !c.clean && c.b.cfg.Sessions != nil {
		c.b.offStack(func() {
			if err := c.b.cfg.Sessions.SaveSubscriptions(context.Background(), keep); err != nil {
				c.b.log.Error("persist subscriptions", "client", c.clientID, "error", err)
				return
			}
			c.b.sessMu.Lock()
			for _, s := range keep {
				c.b.persisted[c.clientID] = replaceSub(c.b.persisted[c.clientID], s)
			}
			c.b.sessMu.Unlock()
		})
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Suback},
		PacketID:    pk.PacketID,
		ReasonCodes: codes,
	}
	if quota && c.v5 {
		ack.Properties.ReasonString = c.b.quotaReason
	}
	err := c.writePacket(ack)
	if err == nil && c.b.cfg.OnMethodsSubscribed != nil {
		for _, s := range keep {
			if topicMatch(s.Filter, methodsProbe) {
				c.b.cfg.OnMethodsSubscribed(c.clientID)
				break
			}
		}
	}
	if err == nil && c.b.cfg.C2D != nil && c.moduleID == "" {
		for _, s := range keep {
			if topicMatch(s.Filter, c2dProbe(c.deviceID)) {
				c.b.cfg.C2D.Ready(c.deviceID)
				break
			}
		}
	}
	return err
}

func hasFilter(list []session.Subscription, filter string) bool {
	for i := range list {
		if list[i].Filter == filter {
			return true
		}
	}
	return false
}

func replaceSub(list []session.Subscription, s session.Subscription) []session.Subscription {
	for i := range list {
		if list[i].Filter == s.Filter {
			list[i] = s
			return list
		}
	}
	return append(list, s)
}

func (c *conn) unsubscribe(pk *packets.Packet) error {
	codes := make([]byte, len(pk.Filters))
	filters := make([]string, 0, len(pk.Filters))
	c.subMu.Lock()
	for i, f := range pk.Filters {
		codes[i] = 0x11 // no subscription existed
		for j := range c.subs {
			if c.subs[j].Filter == f.Filter {
				c.subs = append(c.subs[:j], c.subs[j+1:]...)
				codes[i] = 0
				break
			}
		}
		filters = append(filters, strings.Clone(f.Filter)) // kept past the pooled read buffer
	}
	c.subMu.Unlock()
	if !c.clean && c.b.cfg.Sessions != nil {
		c.b.offStack(func() {
			if err := c.b.cfg.Sessions.DeleteSubscriptions(context.Background(), c.clientID, filters); err != nil {
				c.b.log.Error("forget subscriptions", "client", c.clientID, "error", err)
			}
			c.b.sessMu.Lock()
			kept := c.b.persisted[c.clientID][:0]
			for _, s := range c.b.persisted[c.clientID] {
				drop := false
				for _, f := range filters {
					drop = drop || s.Filter == f
				}
				if !drop {
					kept = append(kept, s)
				}
			}
			c.b.persisted[c.clientID] = kept
			c.b.sessMu.Unlock()
		})
	}
	return c.writePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Unsuback},
		PacketID:    pk.PacketID,
		ReasonCodes: codes,
	})
}

// refreshDeadline keeps the read deadline at 1.5 times the keep-alive (as
// MQTT asks), resetting it at most every quarter keep-alive: a deadline
// per packet would cost a timer update per message.
func (c *conn) refreshDeadline() {
	if c.keepalive <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(c.deadlineSet) < c.keepalive/4 {
		return
	}
	c.deadlineSet = now
	_ = c.nc.SetReadDeadline(now.Add(c.keepalive * 3 / 2))
}

// finish cleans up after the connection ended: unregisters it, stores the
// will of a connection that ended without DISCONNECT.
func (c *conn) finish(graceful bool, err error) {
	b := c.b
	_ = c.nc.Close()
	registered, current := b.dropDevice(c)
	if registered {
		b.cfg.Metrics.disconnected()
	}
	if current && b.cfg.C2D != nil && c.moduleID == "" {
		b.cfg.C2D.Gone(c.deviceID)
	}
	if current && b.cfg.OnPresence != nil {
		b.cfg.OnPresence(c.clientID, false, b.cfg.Now())
	}
	if !graceful && c.willTopic != "" {
		b.storeWill(c, c.willTopic, c.willPayload)
	}
	if c.clean {
		b.forgetSession(c.clientID)
	} else if current {
		b.deviceLeft(c)
	}
	var ne net.Error
	if err != nil && !graceful && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()) {
		b.log.Debug("device connection ended", "client", c.clientID, "error", err)
	}
}
