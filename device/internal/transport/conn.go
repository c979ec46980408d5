package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// conn is one MQTT connection. Its read goroutine is the only reader; writes
// from any goroutine go through wmu. The run loop owns it: it dials it, waits
// for dead, and calls shutdown, which fails whatever is still in flight.
type conn struct {
	t    *Transport
	nc   net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
	slot chan struct{} // window semaphore: a token per unacknowledged publish

	bmu       sync.Mutex    // guards the write-behind queue (writebehind.go)
	pend      []byte        // encoded publishes waiting for the flusher; guarded by bmu
	flushIdle chan struct{} // non-nil while a flusher runs, closed when it exits; guarded by bmu
	wclosed   bool          // the connection is ending: no more write-behind; guarded by bmu

	mu       sync.Mutex
	inflight map[uint16]func(error)
	nextID   uint16
	closing  bool          // no new publishes (renewal drain or teardown)
	stopping chan struct{} // closed with closing, wakes publishers waiting for a slot
	drained  chan struct{} // signalled when inflight becomes empty while closing
	pongDue  bool          // a PINGREQ is unanswered
	suback   chan []byte   // the one SUBACK the handshake waits for

	dead     chan struct{} // closed when the connection failed
	deadOnce sync.Once
	err      error // why it died, set before dead is closed
	readDone chan struct{}
	pingDone chan struct{}
}

// dial connects, sends CONNECT with a fresh token, and subscribes. It returns
// the running connection and the token's expiry.
func (t *Transport) dial(ctx context.Context) (*conn, time.Time, error) {
	cfg := &t.cfg
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	nc, err := cfg.open(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() }) // Close during the handshake
	defer stop()
	c := &conn{
		t: t, nc: nc, r: bufio.NewReader(nc),
		slot:     make(chan struct{}, cfg.Window),
		inflight: make(map[uint16]func(error)),
		stopping: make(chan struct{}),
		drained:  make(chan struct{}, 1),
		suback:   make(chan []byte, 1),
		dead:     make(chan struct{}),
		readDone: make(chan struct{}),
		pingDone: make(chan struct{}),
	}
	var tok string
	exp := time.Now().Add(100 * 365 * 24 * time.Hour) // a certificate is not renewed by reconnecting
	if len(cfg.Key) > 0 {
		tok, exp = cfg.token(time.Now())
	}
	if err := c.handshake(tok); err != nil {
		_ = nc.Close()
		var refused *RefusedError
		switch {
		case len(cfg.Key) > 0:
		case errors.As(err, &refused):
			// A hub that checks certificates at CONNECT refuses there.
			err = fmt.Errorf("%w (%s)", err, certHint(cfg.TLS))
		default:
			// With TLS 1.3 a hub that checks a client certificate in TLS
			// does so after the client's handshake is done, so a refusal
			// shows up here as a reset, not as a TLS error.
			err = fmt.Errorf("%w (the hub closed the connection after TLS: %s)", err, certHint(cfg.TLS))
		}
		return nil, time.Time{}, err
	}
	_ = nc.SetDeadline(time.Time{})
	go c.readLoop()
	go c.pingLoop()
	if err := c.subscribe(ctx); err != nil {
		c.fail(err)
		c.shutdown(err)
		return nil, time.Time{}, err
	}
	return c, exp, nil
}

// open dials the hub and layers TLS and the WebSocket as configured. One
// deadline, ctx's, covers the TLS and WebSocket handshakes and stays set on
// the connection for the MQTT handshake; the caller clears it.
func (cfg *Config) open(ctx context.Context) (net.Conn, error) {
	nc, err := cfg.Dial(ctx, "tcp", cfg.addr())
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", cfg.addr(), err)
	}
	// A silent hub must not hold the caller past ctx's deadline.
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() }) // Close during a dial
	defer stop()
	if !cfg.InsecureTCP {
		tconn := tls.Client(nc, tlsConfig(cfg))
		if err := tconn.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("transport: tls: %w", err)
		}
		nc = tconn
	}
	if cfg.WebSocket {
		ws, err := upgrade(ctx, nc, cfg.Host)
		if err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = ws
	}
	return nc, nil
}

func tlsConfig(cfg *Config) *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if tc.ServerName == "" {
		host := cfg.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		tc.ServerName = host
	}
	return tc
}

func (c *conn) handshake(token string) error {
	cfg := &c.t.cfg
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            true, // subscriptions are made again on every connect
			Keepalive:        uint16(min(cfg.KeepAlive/time.Second, 65535)),
			ClientIdentifier: cfg.clientID(),
			UsernameFlag:     true,
			Username:         []byte(cfg.username()),
			PasswordFlag:     token != "",
			Password:         []byte(token),
		},
	}
	if err := c.write(pk); err != nil {
		return fmt.Errorf("transport: send CONNECT: %w", err)
	}
	ack, err := readPacket(c.r)
	if err != nil {
		return fmt.Errorf("transport: read CONNACK: %w", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		return fmt.Errorf("transport: expected CONNACK, got packet type %d", ack.FixedHeader.Type)
	}
	if ack.ReasonCode != 0 {
		return &RefusedError{Code: ack.ReasonCode}
	}
	return nil
}

// subscribe sends the configured filters and waits for the SUBACK, so that
// "Connected" means C2D and method requests can already arrive.
func (c *conn) subscribe(ctx context.Context) error {
	subs := c.t.cfg.Subscriptions
	if len(subs) == 0 {
		return nil
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1}
	for _, f := range subs {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	if err := c.write(pk); err != nil {
		return fmt.Errorf("transport: send SUBSCRIBE: %w", err)
	}
	select {
	case codes := <-c.suback:
		for i, code := range codes {
			if code >= 0x80 && i < len(subs) {
				// A refused filter is a configuration error that reconnecting
				// would not fix; log it and keep the rest.
				c.t.cfg.Logger.Warn("transport: subscription refused", "filter", subs[i], "code", code)
			}
		}
		return nil
	case <-c.dead:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("transport: no SUBACK: %w", ctx.Err())
	}
}

// write encodes and writes one packet. The write deadline keeps a stalled
// TCP connection from blocking publishers forever.
func (c *conn) write(pk packets.Packet) error { return c.writeWithin(pk, c.t.cfg.KeepAlive) }

func (c *conn) writeWithin(pk packets.Packet, d time.Duration) error {
	b, err := encode(pk)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	_, err = c.nc.Write(b)
	return err
}

// encode encodes one MQTT 3.1.1 packet of the kinds a device sends.
func encode(pk packets.Packet) ([]byte, error) {
	pk.ProtocolVersion = 4
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
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("transport: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// readPacket reads one MQTT 3.1.1 packet.
func readPacket(r *bufio.Reader) (packets.Packet, error) {
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
	pk.ProtocolVersion = 4
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(buf)
	case packets.Publish:
		err = pk.PublishDecode(buf)
	case packets.Puback:
		err = pk.PubackDecode(buf)
	case packets.Suback:
		err = pk.SubackDecode(buf)
	case packets.Pingresp, packets.Unsuback, packets.Disconnect:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// certHint describes why a hub may refuse the client certificate in tc.
func certHint(tc *tls.Config) string {
	if tc != nil && len(tc.Certificates) > 0 && len(tc.Certificates[0].Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0]); err == nil {
			now := time.Now()
			switch {
			case now.After(leaf.NotAfter):
				return fmt.Sprintf("the client certificate %q expired at %s", leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
			case now.Before(leaf.NotBefore):
				return fmt.Sprintf("the client certificate %q is not valid before %s", leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339))
			}
			return fmt.Sprintf("is the client certificate %q (issued by %q) registered or signed by a CA the hub trusts?", leaf.Subject.CommonName, leaf.Issuer.CommonName)
		}
	}
	return "is the client certificate trusted by the hub?"
}
