package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
	"github.com/ferry-iot/ferry/device/internal/transport"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// Config configures a [Client]. ConnectionString and StorePath are required.
type Config struct {
	// ConnectionString is the device's connection string:
	// "HostName=...;DeviceId=...;SharedAccessKey=...". When it has a
	// GatewayHostName, that host is dialed (and its certificate checked)
	// while HostName still names the hub in the credentials. Leave it empty
	// to get credentials through Provisioning or DPS instead.
	ConnectionString string
	// Provisioning gets the credentials with a provisioning token and an
	// operator's approval; see [Provisioning].
	Provisioning *Provisioning
	// DPS gets the credentials from a Device Provisioning Service; see
	// [DPS].
	DPS *DPS
	// ModelID is the IoT Plug and Play model the device implements, such as
	// "dtmi:com:example:Thermostat;1": the hub shows it in the twin and can
	// check telemetry, properties and commands against the model. It is
	// announced on every connection.
	ModelID string
	// StorePath is the local store file. Every enqueued message stays in it
	// until the hub acknowledges it, across restarts and crashes. Its
	// directory must exist; one process at a time may use it.
	StorePath string
	// CAFile is a PEM file of the certificates to trust for the hub's TLS
	// certificate. Empty means the system roots.
	CAFile string
	// InsecureTCP speaks plain MQTT without TLS, for tests and local
	// brokers only.
	InsecureTCP bool
	// WebSocket carries MQTT over a WebSocket to /$iothub/websocket on port
	// 443 (unless HostName has a port), for networks that let only HTTPS
	// out.
	WebSocket bool
	// Certificate is the device's X.509 client certificate and key (see
	// tls.LoadX509KeyPair). With it the connection string needs no
	// SharedAccessKey ("HostName=...;DeviceId=...;x509=true"): the device
	// authenticates in the TLS handshake and sends no SAS token.
	Certificate *tls.Certificate
	// Window is the number of messages sent and not yet acknowledged by the
	// hub (default 32). 1 keeps the hub's stream in enqueue order even
	// across reconnections; larger windows drain a backlog faster.
	Window int
	// MaxPending bounds the number of messages held in the store (default
	// 1,000,000); Full says what Enqueue does at the bound.
	MaxPending int
	// Full is the policy at MaxPending: Block (the default), RejectNew or
	// DropOldest.
	Full FullPolicy
	// OnStatus hears every change of the connection's status, in order,
	// from one goroutine. It must not call Close.
	OnStatus func(Status, error)
	// Logger receives the SDK's diagnostics; nil discards them.
	Logger *slog.Logger

	// OnDesired hears the device twin's desired properties: the whole
	// document with its version, once at Start when the store holds it
	// from an earlier run (so an offline start has the last known
	// settings), then after every change, in version order. It runs on a
	// goroutine of its own and always gets the newest document, so a slow
	// callback skips versions but never holds up the SDK. It must not call
	// Close. See Client.DesiredIfNewer for polling instead.
	OnDesired func(TwinProperties)
	// Methods are the direct method handlers by name, in place before the
	// first connection; the one under "" answers every other method. See
	// Client.HandleMethod.
	Methods map[string]MethodHandler
	// MaxConcurrentMethods bounds the method handlers running at once
	// (default 16); further calls wait for a free slot (beyond 1024
	// waiting, the device answers 503 at once).
	MaxConcurrentMethods int
	// OnC2D handles cloud-to-device messages. Without it the device does
	// not subscribe to them: the hub keeps them queued (up to its limit
	// and their expiry) and messages already in the device's inbox wait.
	OnC2D C2DHandler
	// MaxC2DDeliveries is how often a message is handed to OnC2D before an
	// Abandon counts as Reject (default 10).
	MaxC2DDeliveries int

	// Test hooks, set through export_test.go.
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	backoff  transport.Backoff
	c2dRetry time.Duration // first delay before an abandoned message is handed over again
	noResync bool          // no twin GET on a new connection: only a version gap triggers one
}

// FullPolicy says what Enqueue does when the store holds MaxPending messages.
type FullPolicy int

const (
	// Block makes Enqueue wait until acknowledgements free space, or its
	// context ends.
	Block FullPolicy = iota
	// RejectNew makes Enqueue fail with ErrQueueFull.
	RejectNew
	// DropOldest deletes the oldest pending messages to make room (counted
	// by Client.Dropped). A dropped message is not sent, unless
	// the sender had already read it from the store (it reads at most
	// Window plus 64 messages ahead of the acknowledgements).
	DropOldest
)

// Status is the state of the connection to the hub.
type Status int

// The statuses reported to Config.OnStatus. Disconnected means the
// connection was lost or refused and is retried after a backoff delay (the
// error says why); Closed is final, after Close.
const (
	Connecting Status = iota
	Connected
	Disconnected
	Closed
)

// String returns the status in lower case, as "connected".
func (s Status) String() string { return transport.Status(s).String() }

// Errors returned by the package. Returned errors wrap them, so test with
// errors.Is.
var (
	// ErrClosed is returned by calls on a closed Client, and by Send and
	// Flush calls that Close interrupted.
	ErrClosed = errors.New("device: client closed")
	// ErrQueueFull is returned by Enqueue when the store is full and
	// Config.Full is RejectNew.
	ErrQueueFull = errors.New("device: queue full")
	// ErrStoreCorrupt is returned by Start when the store file is not a
	// store or fails its checks. The file is left as it is.
	ErrStoreCorrupt = errors.New("device: store file is corrupt")
	// ErrStoreLocked is returned by Start when another process (or Client)
	// has the store file open.
	ErrStoreLocked = errors.New("device: store file is in use")
	// ErrInvalidMessage is returned by Enqueue for a message the hub would
	// refuse (bad stream name or property, body too large).
	ErrInvalidMessage = errors.New("device: invalid message")
)

// queueOptions maps the Config onto the store's options.
func (c *Config) queueOptions() queue.Options {
	full := queue.Block
	switch c.Full {
	case RejectNew:
		full = queue.RejectNew
	case DropOldest:
		full = queue.DropOldest
	}
	return queue.Options{MaxRecords: c.MaxPending, Full: full, Logger: c.Logger}
}

// transportConfig parses the connection string and builds the transport's
// configuration.
func (c *Config) transportConfig(onStatus func(transport.Status, error)) (transport.Config, protocol.ConnectionString, error) {
	cs, err := protocol.ParseConnectionString(c.ConnectionString)
	if err != nil {
		return transport.Config{}, cs, fmt.Errorf("device: %w", err)
	}
	if cs.DeviceID == "" {
		return transport.Config{}, cs, errors.New("device: the connection string needs a DeviceId")
	}
	var key []byte
	switch {
	case c.Certificate != nil:
		if c.InsecureTCP {
			return transport.Config{}, cs, errors.New("device: a client certificate needs TLS; InsecureTCP is set")
		}
	case cs.SharedAccessKey == "":
		return transport.Config{}, cs, errors.New("device: the connection string needs a SharedAccessKey (or set Config.Certificate for X.509)")
	default:
		if key, err = protocol.DecodeKey(cs.SharedAccessKey); err != nil {
			return transport.Config{}, cs, fmt.Errorf("device: SharedAccessKey: %w", err)
		}
	}
	tc := transport.Config{
		Host: cs.HostName, DeviceID: cs.DeviceID, ModuleID: cs.ModuleID, ModelID: c.ModelID, Key: key,
		InsecureTCP: c.InsecureTCP, WebSocket: c.WebSocket, Window: c.Window, Backoff: c.backoff,
		OnStatus: onStatus, Logger: c.Logger, Dial: c.dial,
	}
	if tc.TLS, err = c.tlsConfig(); err != nil {
		return transport.Config{}, cs, err
	}
	if gw := cs.GatewayHostName; gw != "" {
		addr := gw
		if _, _, err := net.SplitHostPort(gw); err != nil {
			port := "8883"
			if c.WebSocket {
				port = "443"
			}
			addr = net.JoinHostPort(gw, port)
		}
		if tc.TLS != nil {
			tc.TLS.ServerName = hostOnly(gw)
		}
		dial := c.dial
		if dial == nil {
			var d net.Dialer
			dial = d.DialContext
		}
		tc.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, addr)
		}
	}
	return tc, cs, nil
}

// tlsConfig is the TLS configuration of connections to the hub or the
// provisioning service: the CA file's roots and the client certificate.
// It is nil with InsecureTCP.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if c.InsecureTCP {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.Certificate != nil {
		tc.Certificates = []tls.Certificate{*c.Certificate}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("device: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("device: CA file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// hostOnly strips a port from host.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}
