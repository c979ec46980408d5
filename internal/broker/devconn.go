package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// Devices are served by a lean connection loop of the broker's own instead of
// mochi's: one goroutine per connection, no per-connection write goroutine,
// and no read buffer held while the device is idle (a pooled buffer is taken
// when bytes arrive and returned when they are consumed). Most devices are
// idle most of the time, so what an idle connection costs decides how many
// devices one hub holds. Ordinary MQTT clients that authenticate with an
// access policy are handed to mochi, which is a full broker.

const (
	connectTimeout = 10 * time.Second
	readBufSize    = 4096
)

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// serveConn reads the CONNECT of a new connection and serves it: devices on
// the lean loop, policy clients through mochi (establish).
func (b *Broker) serveConn(listener string, nc net.Conn, establish listeners.EstablishFn) {
	_ = nc.SetReadDeadline(time.Now().Add(connectTimeout))
	raw, pk, err := readConnect(nc, uint32(b.cfg.MaxMessageBytes+64*1024))
	if err != nil {
		b.log.Debug("no valid CONNECT", "listener", listener, "remote", nc.RemoteAddr().String(), "error", err)
		_ = nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	if isPolicyClient(&pk) {
		// mochi's codec can panic on malformed packets and mochi does not
		// recover; its deferred clean-up still runs as the panic unwinds.
		defer func() {
			if r := recover(); r != nil {
				b.log.Warn("mqtt client sent a malformed packet", "client", pk.Connect.ClientIdentifier, "panic", fmt.Sprint(r))
				_ = nc.Close()
			}
		}()
		if err := establish(listener, &replayConn{Conn: nc, pending: raw}); err != nil && !quietClose(err) {
			b.log.Debug("mqtt connection ended", "listener", listener, "error", err)
		}
		return
	}
	c := b.acceptDevice(nc, &pk)
	if c == nil {
		return
	}
	b.connWG.Add(1)
	// A fresh goroutine for the loop: the CONNECT work above went deeper than
	// an idle read ever will, and a new goroutine starts with a small stack.
	go c.readLoop()
}

// isPolicyClient reports a CONNECT signed with a hub-level policy token: an
// ordinary MQTT client, not a device.
func isPolicyClient(pk *packets.Packet) bool {
	tok, err := protocol.ParseSAS(string(pk.Connect.Password))
	if err != nil || tok.KeyName == "" || isDPSUsername(pk.Connect.Username) {
		return false
	}
	res, err := tok.ResourceURI()
	return err == nil && !strings.Contains(res, "/devices/")
}

// readConnect reads one packet, which must be a CONNECT, and returns its raw
// bytes and its decoding.
func readConnect(r io.Reader, maxSize uint32) ([]byte, packets.Packet, error) {
	var pk packets.Packet
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return nil, pk, err
	}
	if err := pk.FixedHeader.Decode(hdr[0]); err != nil {
		return nil, pk, err
	}
	if pk.FixedHeader.Type != packets.Connect {
		return nil, pk, errors.New("first packet is not CONNECT")
	}
	n, lenBytes := 0, 0
	for shift := 0; ; shift += 7 {
		if lenBytes == 4 {
			return nil, pk, packets.ErrMalformedVariableByteInteger
		}
		if _, err := io.ReadFull(r, hdr[1+lenBytes:2+lenBytes]); err != nil {
			return nil, pk, err
		}
		v := hdr[1+lenBytes]
		lenBytes++
		n |= int(v&0x7f) << shift
		if v&0x80 == 0 {
			break
		}
	}
	if uint32(n) > maxSize {
		return nil, pk, packets.ErrPacketTooLarge
	}
	raw := make([]byte, 1+lenBytes+n)
	copy(raw, hdr[:1+lenBytes])
	if _, err := io.ReadFull(r, raw[1+lenBytes:]); err != nil {
		return nil, pk, err
	}
	pk.FixedHeader.Remaining = n
	if err := decodeConnect(&pk, raw[1+lenBytes:]); err != nil {
		return nil, pk, err
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return nil, pk, code
	}
	return raw, pk, nil
}

// decodeConnect decodes a CONNECT body; a panic in the codec on malformed
// input (see decodeBody) becomes an error.
func decodeConnect(pk *packets.Packet, body []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: malformed CONNECT", errProtocol)
		}
	}()
	return pk.ConnectDecode(body)
}

// acceptDevice authenticates a device's CONNECT, answers it, and registers
// the connection (taking over an older one with the same client id).
func (b *Broker) acceptDevice(nc net.Conn, pk *packets.Packet) *conn {
	clientID := pk.Connect.ClientIdentifier
	c, code, reason := b.authenticateCertOffStack(clientID, pk, peerCertificates(nc))
	if c == nil {
		b.cfg.Metrics.authFailure(reason)
		b.log.Info("mqtt connection refused", "client", clientID, "remote", nc.RemoteAddr().String(), "reason", reason)
		_ = writeConnack(nc, pk.ProtocolVersion, code, false, 0)
		_ = nc.Close()
		return nil
	}
	if c.kind == identDPS {
		b.startDPS(c, nc, pk)
		return nil
	}
	if c.kind != identDevice {
		_ = writeConnack(nc, pk.ProtocolVersion, packets.ErrNotAuthorized, false, 0)
		_ = nc.Close()
		return nil
	}
	c.nc = nc
	c.version = pk.ProtocolVersion
	c.keepalive = time.Duration(pk.Connect.Keepalive) * time.Second
	c.clean = pk.Connect.Clean
	if pk.Connect.WillFlag {
		c.willTopic, c.willPayload = pk.Connect.WillTopic, pk.Connect.WillPayload
	}

	b.mu.Lock()
	old := b.byID[clientID]
	b.byID[clientID] = c
	b.devices[c] = struct{}{}
	b.mu.Unlock()
	if old != nil {
		old.closeWith(packets.ErrSessionTakenOver) // Azure: the newer connection wins
		if b.cfg.C2D != nil && c.moduleID == "" {
			// What was in flight on the old connection is delivered again on
			// this one (the old one's own end no longer speaks for the device).
			b.cfg.C2D.Gone(c.deviceID)
		}
	}

	present := false
	if c.clean {
		b.forgetSession(clientID)
	} else {
		c.sessionTTL = b.sessionTTL(c.version >= 5, pk.Properties)
		b.sessionResumed(clientID)
		b.sessMu.Lock()
		for _, s := range b.persisted[clientID] {
			c.subs = append(c.subs, s)
		}
		b.sessMu.Unlock()
		present = len(c.subs) > 0
	}
	if err := writeConnack(nc, c.version, packets.CodeSuccess, present, uint16(min(b.cfg.MaxInflight, 65535))); err != nil {
		b.dropDevice(c)
		_ = nc.Close()
		return nil
	}
	if c.expires != 0 {
		// After the CONNACK, which a DISCONNECT must not overtake; the read
		// loop's end (dropDevice) takes it out of the schedule.
		b.sched.add(c)
	}
	b.cfg.Metrics.connected()
	if b.cfg.OnPresence != nil {
		b.cfg.OnPresence(clientID, true, c.since)
	}
	if c.modelID != "" && b.cfg.OnModelID != nil {
		b.cfg.OnModelID(c.deviceID, c.moduleID, c.modelID)
	}
	if present && b.cfg.OnMethodsSubscribed != nil {
		if _, ok := c.subscriptionFor(methodsProbe); ok {
			b.cfg.OnMethodsSubscribed(clientID)
		}
	}
	if present && b.cfg.C2D != nil && c.moduleID == "" {
		b.cfg.C2D.Ready(c.deviceID) // a restored subscription may have messages waiting
	}
	return c
}

// writeConnack answers a CONNECT; refusals get MQTT 3.1.1's return codes
// for 3.1.1 clients. MQTT 5 clients learn how many QoS 1 messages they may
// have waiting for durability (receiveMax) before the hub stops reading.
func writeConnack(w io.Writer, version byte, code packets.Code, present bool, receiveMax uint16) error {
	if version < 5 {
		switch code.Code {
		case packets.ErrBadUsernameOrPassword.Code:
			code = packets.ErrMalformedUsernameOrPassword // 0x04: bad user name or password
		case packets.ErrNotAuthorized.Code:
			code = packets.Err3NotAuthorized // 0x05
		case packets.ErrServerUnavailable.Code:
			code = packets.Err3ServerUnavailable
		}
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connack},
		ProtocolVersion: version,
		SessionPresent:  present && code == packets.CodeSuccess,
		ReasonCode:      code.Code,
	}
	if version >= 5 {
		pk.Properties.MaximumQos, pk.Properties.MaximumQosFlag = 1, true
		pk.Properties.RetainAvailable, pk.Properties.RetainAvailableFlag = 0, true
		pk.Properties.WildcardSubAvailable, pk.Properties.WildcardSubAvailableFlag = 1, true
		pk.Properties.SubIDAvailable, pk.Properties.SubIDAvailableFlag = 0, true
		pk.Properties.SharedSubAvailable, pk.Properties.SharedSubAvailableFlag = 0, true
		pk.Mods.AllowResponseInfo = true
		if code.Code >= 0x80 {
			pk.Properties.ReasonString = code.Reason
		}
		pk.Properties.ReceiveMaximum = receiveMax
	}
	var buf bytes.Buffer
	if err := pk.ConnackEncode(&buf); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// dropDevice unregisters a device connection. It reports whether the
// connection was registered, and whether it was the client's current one
// (not one a newer connection had taken over).
func (b *Broker) dropDevice(c *conn) (registered, current bool) {
	b.mu.Lock()
	_, registered = b.devices[c]
	delete(b.devices, c)
	if b.byID[c.clientID] == c {
		delete(b.byID, c.clientID)
		current = true
	}
	b.mu.Unlock()
	b.sched.remove(c)
	return registered, current
}

// replayConn hands mochi a connection whose CONNECT was read already.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// writeRaw writes encoded packets to the connection; one writer at a time.
func (c *conn) writeRaw(p []byte) error {
	if c.cl != nil {
		c.cl.Lock()
		defer c.cl.Unlock()
		_, err := c.cl.Net.Conn.Write(p)
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(p)
	return err
}

// writeTimeout bounds a write to a device that does not read: it then loses
// its connection instead of holding up the PUBACKs of everyone else.
const writeTimeout = 10 * time.Second

// writePacket encodes and writes one packet.
func (c *conn) writePacket(pk packets.Packet) error {
	if c.cl != nil {
		return c.cl.WritePacket(pk)
	}
	pk.ProtocolVersion = c.version
	pk.Mods.AllowResponseInfo = true
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Suback:
		err = pk.SubackEncode(&buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("broker: cannot write packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	return c.writeRaw(buf.Bytes())
}

// close ends the connection.
func (c *conn) close() {
	if c.cl != nil {
		c.cl.Stop(errors.New("closed by the hub"))
		return
	}
	_ = c.nc.Close()
}

// closeWith ends the connection for a protocol reason: MQTT 5 clients get a
// DISCONNECT with the reason code first; MQTT 3.1.1 has no server
// DISCONNECT, so the connection is just closed.
func (c *conn) closeWith(code packets.Code) {
	if c.cl != nil {
		c.b.disconnect(c.cl, code)
		return
	}
	if c.version >= 5 {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code.Code}
		if code.Code >= 0x80 {
			pk.Properties.ReasonString = code.Reason
		}
		_ = c.writePacket(pk)
	}
	_ = c.nc.Close()
}

// subscriptionFor returns the granted QoS of the device's subscription that
// matches topic.
func (c *conn) subscriptionFor(topic string) (byte, bool) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	for _, s := range c.subs {
		if topicMatch(s.Filter, topic) {
			return s.QoS, true
		}
	}
	return 0, false
}

// topicMatch reports whether an MQTT topic filter matches a topic name.
func topicMatch(filter, topic string) bool {
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}
