package broker

import (
	"bytes"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/stream"
)

// messages recycles the Message each publish fills: Append does not retain
// it, and a pool instead of one per connection keeps idle connections small.
var messages = sync.Pool{New: func() any { return new(stream.Message) }}

// Application properties that choose where a message is stored.
const (
	propStream      = "stream"
	propStreamGroup = "stream-group"
)

// devicePublish handles a PUBLISH from a device. It always returns
// packets.ErrRejectPacket (the broker owns the message from here on: stores it
// and acknowledges it), or an error that ends the connection.
func (b *Broker) devicePublish(c *conn, pk packets.Packet) error {
	c.lastSeen.Store(b.cfg.Now().UnixNano())
	t, err := protocol.ParseTopic(pk.TopicName)
	if err != nil {
		return b.refuse(c, pk, packets.ErrTopicNameInvalid, "bad_topic", err.Error())
	}
	switch t.Kind {
	case protocol.TopicTelemetry:
		return b.ingest(c, pk, t)
	case protocol.TopicTwinGet, protocol.TopicTwinPatchReported:
		return b.twinRequest(c, pk, t)
	case protocol.TopicMethodResponse:
		if b.cfg.Methods != nil {
			// The payload points into the reused read buffer: the waiting
			// call keeps it, so it gets a copy.
			ct := ""
			if q, err := url.ParseQuery(t.Bag); err == nil {
				ct = q.Get("$.ct")
			}
			if !b.cfg.Methods.HandleResponse(c.clientID, t.RID, t.Status, bytes.Clone(pk.Payload), ct) {
				b.log.Info("method response for no waiting call", "client", c.clientID, "rid", t.RID)
			}
		}
		if pk.FixedHeader.Qos == 1 {
			_ = c.writePacket(puback(pk.PacketID, packets.CodeSuccess))
		}
		return packets.ErrRejectPacket
	default:
		// Twin and method traffic is answered by later capabilities; until
		// then a QoS 1 request still gets its PUBACK, so that SDKs that
		// publish those at QoS 1 do not stall.
		if pk.FixedHeader.Qos == 1 {
			_ = c.writePacket(puback(pk.PacketID, packets.CodeSuccess))
		}
		return packets.ErrRejectPacket
	}
}

func (b *Broker) ingest(c *conn, pk packets.Packet, t protocol.Topic) error {
	if len(pk.Payload) > b.cfg.MaxMessageBytes {
		return b.refuse(c, pk, packets.ErrPacketTooLarge, "too_large",
			fmt.Sprintf("message body of %d bytes exceeds the limit of %d bytes", len(pk.Payload), b.cfg.MaxMessageBytes))
	}
	props, err := protocol.ParsePropertyBagLimit(t.Bag, b.cfg.MaxPropertyBagBytes, b.cfg.MaxProperties)
	if err != nil {
		return b.refuse(c, pk, packets.ErrTopicNameInvalid, "bad_properties", err.Error())
	}
	m := messages.Get().(*stream.Message)
	defer func() { m.Body = nil; messages.Put(m) }()
	*m = stream.Message{Properties: m.Properties[:0]}
	m.DeviceID, m.ModuleID = c.deviceID, c.moduleID
	m.EnqueuedTime = time.Unix(0, c.lastSeen.Load())
	m.AuthMethod = c.auth
	m.MessageID, m.CorrelationID, m.UserID, m.To = props.MessageID, props.CorrelationID, props.UserID, props.To
	m.ContentType, m.ContentEncoding, m.Expiry = props.ContentType, props.ContentEncoding, props.Expiry
	m.Component, m.InterfaceID, m.OutputName, m.CreationTime = props.Component, props.InterfaceID, props.OutputName, props.CreationTime
	for _, p := range props.App {
		switch p.Key {
		case propStream:
			m.Stream = p.Value
		case propStreamGroup:
			m.Group = p.Value
		}
		m.Properties = append(m.Properties, stream.Property{Key: p.Key, Value: p.Value})
	}
	if c.v5 {
		b.mergeV5(m, pk)
	}
	if pk.FixedHeader.Retain {
		m.Properties = append(m.Properties, stream.Property{Key: "mqtt-retain", Value: "true"})
	}
	if err := validName(m.Group); err != nil {
		return b.refuse(c, pk, packets.ErrTopicNameInvalid, "bad_stream", "stream-group: "+err.Error())
	}
	if err := validName(m.Stream); err != nil {
		return b.refuse(c, pk, packets.ErrTopicNameInvalid, "bad_stream", "stream: "+err.Error())
	}
	m.Body = pk.Payload

	if pk.FixedHeader.Qos == 0 {
		if err := b.cfg.Appender.Append(m, nil, 0); err != nil {
			b.cfg.Metrics.refused("unavailable")
		} else {
			b.cfg.Metrics.received(len(pk.Payload))
		}
		return packets.ErrRejectPacket
	}
	if c.inflow == nil {
		c.inflow = make(chan struct{}, b.cfg.MaxInflight)
	}
	c.inflow <- struct{}{} // waits while MaxInflight messages of this client are not yet durable
	if err := b.cfg.Appender.Append(m, c, uint64(pk.PacketID)); err != nil {
		<-c.inflow
		return b.refuse(c, pk, packets.ErrServerUnavailable, "unavailable", "the hub is shutting down")
	}
	b.cfg.Metrics.received(len(pk.Payload))
	return packets.ErrRejectPacket
}

// mergeV5 takes MQTT 5 user properties and content type as message properties.
func (b *Broker) mergeV5(m *stream.Message, pk packets.Packet) {
	for _, u := range pk.Properties.User {
		switch u.Key {
		case propStream:
			m.Stream = u.Val
		case propStreamGroup:
			m.Group = u.Val
		}
		m.Properties = append(m.Properties, stream.Property{Key: u.Key, Value: u.Val})
	}
	if m.ContentType == "" {
		m.ContentType = pk.Properties.ContentType
	}
	if m.CorrelationID == "" && len(pk.Properties.CorrelationData) > 0 {
		m.CorrelationID = string(pk.Properties.CorrelationData)
	}
}

// refuse rejects one message: MQTT 5 gets a PUBACK with the reason code and
// reason string; MQTT 3.1.1 has no way to say no, so the connection is
// closed as Azure IoT Hub does. QoS 0 messages are dropped. Nothing is stored.
func (b *Broker) refuse(c *conn, pk packets.Packet, code packets.Code, metric, why string) error {
	b.cfg.Metrics.refused(metric)
	b.log.Info("message refused", "client", c.clientID, "reason", why)
	if pk.FixedHeader.Qos == 0 {
		return packets.ErrRejectPacket
	}
	if c.v5 {
		ack := puback(pk.PacketID, packets.Code{Code: code.Code, Reason: why})
		ack.Properties.ReasonString = why
		_ = c.writePacket(ack)
		return packets.ErrRejectPacket
	}
	c.closeWith(packets.Code{Code: code.Code, Reason: why})
	return packets.Code{Code: code.Code, Reason: why}
}

func puback(id uint16, code packets.Code) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Puback},
		PacketID:    id,
		ReasonCode:  code.Code,
	}
}

// storeWill keeps a device's will message as telemetry with the application
// property iothub-MessageType=Will (PROTOCOL.md §1.4).
func (b *Broker) storeWill(c *conn, topic string, payload []byte) {
	t, err := protocol.ParseTopic(topic)
	if err != nil || t.Kind != protocol.TopicTelemetry {
		return
	}
	props, err := protocol.ParsePropertyBagLimit(t.Bag, b.cfg.MaxPropertyBagBytes, b.cfg.MaxProperties)
	if err != nil || len(payload) > b.cfg.MaxMessageBytes {
		return
	}
	m := &stream.Message{
		DeviceID: c.deviceID, ModuleID: c.moduleID, EnqueuedTime: b.cfg.Now(), AuthMethod: c.auth,
		MessageID: props.MessageID, CorrelationID: props.CorrelationID, ContentType: props.ContentType,
		ContentEncoding: props.ContentEncoding, MessageType: "Will", Body: payload,
	}
	for _, p := range props.App {
		m.Properties = append(m.Properties, stream.Property{Key: p.Key, Value: p.Value})
	}
	m.Properties = append(m.Properties, stream.Property{Key: "iothub-MessageType", Value: "Will"})
	if validName(m.Group) != nil || validName(m.Stream) != nil {
		return
	}
	if err := b.cfg.Appender.Append(m, nil, 0); err != nil {
		b.log.Warn("will message not stored", "client", c.clientID, "error", err)
	}
}

// validName checks a stream or stream group name: empty (meaning "default"),
// or 1 to 64 of letters, digits, '-', '_' and '.'.
func validName(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("name %.16q... is longer than 64 characters", s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return fmt.Errorf("name %q may hold only letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}
