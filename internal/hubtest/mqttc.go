package hubtest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Conn is a minimal MQTT client for tests, built on mochi's packet codec.
// It exposes every packet the server sends, so tests can check reason codes.
type Conn struct {
	nc      net.Conn
	version byte
	in      chan packets.Packet
	mu      sync.Mutex
	nextID  uint16
	err     error
	done    chan struct{}

	manualAck bool
}

// ConnectOptions describe a CONNECT.
type ConnectOptions struct {
	ClientID, Username, Password string
	Version                      byte // 4 (3.1.1, default) or 5
	Clean                        bool
	Keepalive                    uint16
	WillTopic                    string
	WillPayload                  []byte
	// ManualAck leaves QoS 1 messages from the hub unacknowledged until Ack.
	ManualAck bool
}

// Dial connects and sends CONNECT; it returns the connection and the CONNACK
// reason code (0 = accepted). On refusal the connection is already closed.
func Dial(addr string, tlsConfig *tls.Config, o ConnectOptions) (*Conn, byte, error) {
	var nc net.Conn
	var err error
	d := net.Dialer{Timeout: 5 * time.Second}
	if tlsConfig != nil {
		nc, err = tls.DialWithDialer(&d, "tcp", addr, tlsConfig)
	} else {
		nc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, 0, err
	}
	return Handshake(nc, o)
}

// Handshake runs CONNECT/CONNACK over an established connection.
func Handshake(nc net.Conn, o ConnectOptions) (*Conn, byte, error) {
	if o.Version == 0 {
		o.Version = 4
	}
	if o.Keepalive == 0 {
		o.Keepalive = 60
	}
	c := &Conn{nc: nc, version: o.Version, in: make(chan packets.Packet, 1024), done: make(chan struct{}), manualAck: o.ManualAck}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.Version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            o.Clean,
			Keepalive:        o.Keepalive,
			ClientIdentifier: o.ClientID,
			UsernameFlag:     o.Username != "",
			Username:         []byte(o.Username),
			PasswordFlag:     o.Password != "",
			Password:         []byte(o.Password),
		},
	}
	if o.WillTopic != "" {
		pk.Connect.WillFlag = true
		pk.Connect.WillTopic = o.WillTopic
		pk.Connect.WillPayload = o.WillPayload
		pk.Connect.WillQos = 1
	}
	if err := c.write(pk); err != nil {
		nc.Close()
		return nil, 0, err
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	ack, err := readPacket(r, o.Version)
	if err != nil {
		nc.Close()
		return nil, 0, fmt.Errorf("read connack: %w", err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	if ack.FixedHeader.Type != packets.Connack {
		nc.Close()
		return nil, 0, fmt.Errorf("expected CONNACK, got packet type %d", ack.FixedHeader.Type)
	}
	if ack.ReasonCode != 0 {
		nc.Close()
		return nil, ack.ReasonCode, nil
	}
	go c.readLoop(r)
	return c, 0, nil
}

func readPacket(r *bufio.Reader, version byte) (packets.Packet, error) {
	var pk packets.Packet
	b, err := r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(buf)
	case packets.Publish:
		err = pk.PublishDecode(buf)
	case packets.Puback:
		err = pk.PubackDecode(buf)
	case packets.Suback:
		err = pk.SubackDecode(buf)
	case packets.Unsuback:
		err = pk.UnsubackDecode(buf)
	case packets.Disconnect:
		err = pk.DisconnectDecode(buf)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

func (c *Conn) readLoop(r *bufio.Reader) {
	defer close(c.done)
	defer close(c.in)
	for {
		pk, err := readPacket(r, c.version)
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 1 && !c.manualAck {
			_ = c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		c.in <- pk
	}
}

func (c *Conn) write(pk packets.Packet) error {
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.nc.Write(buf.Bytes())
	return err
}

func (c *Conn) id() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// ErrClosed is returned when the server closed the connection.
var ErrClosed = errors.New("hubtest: connection closed by the server")

// Publish sends a PUBLISH. For QoS 1 it waits for the PUBACK and returns its
// reason code; other packets that arrive meanwhile are kept for Next.
func (c *Conn) Publish(topic string, payload []byte, qos byte, retain bool) (byte, error) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     payload,
	}
	if qos > 0 {
		pk.PacketID = c.id()
	}
	if err := c.write(pk); err != nil {
		return 0, err
	}
	if qos == 0 {
		return 0, nil
	}
	return c.await(packets.Puback, pk.PacketID, 10*time.Second)
}

// PublishAsync sends a QoS 1 PUBLISH without waiting and returns its packet id.
func (c *Conn) PublishAsync(topic string, payload []byte) (uint16, error) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic, Payload: payload, PacketID: c.id(),
	}
	return pk.PacketID, c.write(pk)
}

// Subscribe subscribes to filters at QoS 1 and returns the granted codes.
func (c *Conn) Subscribe(filters ...string) ([]byte, error) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: c.id()}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	if err := c.write(pk); err != nil {
		return nil, err
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case in, ok := <-c.in:
			if !ok {
				return nil, ErrClosed
			}
			if in.FixedHeader.Type == packets.Suback && in.PacketID == pk.PacketID {
				return in.ReasonCodes, nil
			}
		case <-deadline:
			return nil, errors.New("hubtest: no SUBACK")
		}
	}
}

func (c *Conn) await(typ byte, id uint16, timeout time.Duration) (byte, error) {
	deadline := time.After(timeout)
	for {
		select {
		case in, ok := <-c.in:
			if !ok {
				return 0, ErrClosed
			}
			if in.FixedHeader.Type == typ && in.PacketID == id {
				return in.ReasonCode, nil
			}
			if in.FixedHeader.Type == packets.Disconnect {
				return in.ReasonCode, ErrClosed
			}
		case <-deadline:
			return 0, fmt.Errorf("hubtest: no answer to packet %d within %s", id, timeout)
		}
	}
}

// Next returns the next packet from the server, or ErrClosed.
func (c *Conn) Next(timeout time.Duration) (packets.Packet, error) {
	select {
	case in, ok := <-c.in:
		if !ok {
			return packets.Packet{}, ErrClosed
		}
		return in, nil
	case <-time.After(timeout):
		return packets.Packet{}, errors.New("hubtest: no packet")
	}
}

// WaitClosed waits until the server closes the connection.
func (c *Conn) WaitClosed(timeout time.Duration) error {
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		return errors.New("hubtest: connection still open")
	}
}

// Disconnect sends DISCONNECT and closes.
func (c *Conn) Disconnect() {
	_ = c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.Close()
}

// Close closes the network connection.
func (c *Conn) Close() { _ = c.nc.Close() }

// WriteRaw writes bytes as they are, for tests of malformed input.
func (c *Conn) WriteRaw(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nc.Write(p)
	return err
}

// Ack acknowledges a QoS 1 message (with ConnectOptions.ManualAck).
func (c *Conn) Ack(packetID uint16) error {
	return c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: packetID})
}
