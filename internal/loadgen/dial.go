package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrRemoteAddr is returned for a target outside the loopback range when
// AllowRemote is not set.
var ErrRemoteAddr = errors.New("loadgen: refusing a non-loopback address (set AllowRemote to target it)")

// keepAlive is the MQTT keep-alive every connection announces, in seconds.
// It is close to what Azure's device SDKs use; held connections are pinged
// well within it (see Conns), so no broker drops them as idle.
const keepAlive = 240

// connectTimeout bounds one TCP (and TLS) handshake plus the CONNACK wait.
const connectTimeout = 10 * time.Second

// checkAddr makes sure load goes only to this machine unless the caller
// opted out. Only literal loopback addresses and "localhost" pass: a name is
// not resolved, because what it resolves to can change between the check
// and the dial.
func checkAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("loadgen: address %q: %w", addr, err)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrRemoteAddr, addr)
	}
	return nil
}

// dialDevice opens one MQTT 3.1.1 session for dev: TCP (and TLS when cfg is
// set), CONNECT with a clean session, then waits for an accepted CONNACK.
// It reads the CONNACK straight from the connection, without a buffered
// reader, so that nothing past it is consumed and held connections carry no
// reader memory.
// The i-th connection of a run picks its source address with sourceAddr.
func dialDevice(ctx context.Context, addr string, cfg *tls.Config, dev Device, i int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var d net.Dialer
	if la := sourceAddr(addr, i); la != nil {
		d.LocalAddr, d.Control = la, bindAddressNoPort
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: device %s: %w", dev.ID, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if cfg != nil {
		tc := tls.Client(conn, tlsFor(cfg, addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("loadgen: device %s: tls: %w", dev.ID, err)
		}
		conn = tc
	}
	if err := handshake(conn, dev); err != nil {
		conn.Close()
		return nil, fmt.Errorf("loadgen: device %s: %w", dev.ID, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// sourceSpread is how many loopback source addresses connections to a
// loopback IPv4 target are spread over.
const sourceSpread = 32

// sourceAddr spreads connections to a 127.0.0.0/8 target over the source
// addresses 127.0.0.1 to 127.0.0.32 (all of 127/8 is local on Linux).
// From a single source address, connect() must find an ephemeral port not
// yet paired with the same destination, and the kernel's search walks past
// every port already so paired: at 19,000 connections that cost about 300 µs
// of kernel CPU per connect and halved the connect rate, making the loader
// the bottleneck. It returns nil for other targets.
func sourceAddr(addr string, i int) *net.TCPAddr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() || !ip.IsLoopback() {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%sourceSpread))}
}

// bindAddressNoPort sets IP_BIND_ADDRESS_NO_PORT before the dialer binds the
// source address, so the port is picked at connect() for the full 4-tuple
// rather than at bind() for the address alone, which would cap each source
// address at one connection per ephemeral port across all destinations.
func bindAddressNoPort(_, _ string, c syscall.RawConn) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	const ipBindAddressNoPort = 24 // linux/in.h
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	return errors.Join(err, serr)
}

// tlsFor fills in ServerName from addr when the caller left it empty, as
// tls.Dial would.
func tlsFor(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" || cfg.InsecureSkipVerify {
		return cfg
	}
	host, _, _ := net.SplitHostPort(addr)
	c := cfg.Clone()
	c.ServerName = host
	return c
}

// handshake writes CONNECT and checks the CONNACK.
func handshake(conn net.Conn, dev Device) error {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4, // MQTT 3.1.1, what Azure IoT Hub speaks
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: dev.ID,
			Clean:            true,
			Keepalive:        keepAlive,
			UsernameFlag:     dev.Username != "",
			Username:         []byte(dev.Username),
			PasswordFlag:     dev.Password != "",
			Password:         []byte(dev.Password),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		return fmt.Errorf("encode connect: %w", err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write connect: %w", err)
	}
	// A 3.1.1 CONNACK is exactly 0x20 0x02 flags code.
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return fmt.Errorf("read connack: %w", err)
	}
	if ack[0] != packets.Connack<<4 || ack[1] != 2 {
		return fmt.Errorf("unexpected reply to connect: % x", ack)
	}
	if ack[3] != 0 {
		return fmt.Errorf("connect refused: return code %d", ack[3])
	}
	return nil
}

// Fixed packets the loader sends, encoded by hand because they have no
// variable part.
var (
	pingreq    = []byte{packets.Pingreq << 4, 0}
	disconnect = []byte{packets.Disconnect << 4, 0}
)

// publishTemplate encodes one QoS 1 PUBLISH of size bytes on topic with the
// mochi codec and returns it with the offset of its packet id, which the
// writer patches for every copy.
func publishTemplate(topic string, size int) ([]byte, int, error) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 4,
		TopicName:       topic,
		PacketID:        1,
		Payload:         payload,
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return nil, 0, fmt.Errorf("loadgen: encode publish: %w", err)
	}
	b := buf.Bytes()
	return b, len(b) - size - 2, nil
}

// CheckAddr refuses addr ("host:port") unless its host is a literal
// loopback address or "localhost", or allowRemote is set: the rule every
// run of this package follows, for other load tools to share.
func CheckAddr(addr string, allowRemote bool) error { return checkAddr(addr, allowRemote) }
