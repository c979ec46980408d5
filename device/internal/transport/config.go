package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// Config describes the connection. Host, DeviceID and Key are required.
type Config struct {
	// Host is the hub's host name with an optional port (default 8883). It is
	// dialed, and it is the host of the MQTT username and the token's resource.
	Host               string
	DeviceID, ModuleID string
	// ModelID is the IoT Plug and Play model the device implements
	// (dtmi:...;1), announced in the username as "model-id".
	ModelID string
	// Key is the device's (or module's) symmetric key, decoded, that signs
	// the SAS tokens. Without a Key the device authenticates with the client
	// certificate in TLS.Certificates (X.509) and sends no password.
	Key []byte
	// TokenTTL is the lifetime of each SAS token (default 1h). The transport
	// reconnects with a fresh token when 90% of it has passed.
	TokenTTL time.Duration
	// TLS configures TLS (nil: the system roots). Its ServerName defaults to
	// Host's name.
	TLS *tls.Config
	// Refused, when set, is called after the hub refused the credentials
	// (CONNACK 4 or 5: bad or unknown key, or not authorized). It may block
	// (re-provisioning can wait for an operator) until ctx ends at Close. A
	// key it returns replaces Key for the next attempts; an error or nil key
	// keeps Key and the backoff.
	Refused func(ctx context.Context, err error) (key []byte, e error)
	// InsecureTCP speaks plain MQTT, for tests and local brokers only.
	InsecureTCP bool
	// WebSocket carries MQTT over a WebSocket at /$iothub/websocket (default
	// port 443), for networks that only let HTTPS out.
	WebSocket bool
	// KeepAlive is the MQTT keep-alive (default 60s). A PINGREQ is sent every
	// KeepAlive, and a connection whose PINGRESP did not come back by the next
	// one is treated as dead.
	KeepAlive time.Duration
	// Window is the number of unacknowledged QoS 1 publishes (default 32).
	Window int
	// Backoff is the delay between failed connection attempts.
	Backoff Backoff
	// OnStatus hears every status change, from one goroutine, in order.
	OnStatus func(Status, error)
	// OnMessage receives what the hub publishes (C2D, method requests, twin
	// responses). It runs on the read goroutine and holds up later packets,
	// including PUBACKs, so it must return quickly and must not wait for a
	// QoS 1 Publish (which may need those PUBACKs). props are the decoded
	// property bag of devices/... topics; empty for $iothub/... topics. A
	// QoS 1 message is acknowledged after OnMessage returns nil; an error
	// refuses it: no PUBACK, and the connection is dropped (and made again
	// after a backoff delay) so that the hub sends the message again.
	OnMessage func(topic string, props protocol.Properties, payload []byte) error
	// Subscriptions are subscribed at QoS 1 on every connection (the session
	// is clean), before the status turns Connected.
	Subscriptions []string
	Logger        *slog.Logger
	// Dial opens the network connection (default: a net.Dialer). TLS is
	// layered on top of what it returns unless InsecureTCP is set.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Backoff is exponential backoff with full jitter above a floor: the delay
// before retry n (from 0) is uniform in [Min, min(Max, Min·2^(n+1))). The
// floor keeps a refused or unreachable device from ever spinning; the jitter
// spreads a fleet that lost its hub at the same moment.
type Backoff struct {
	Min time.Duration // default 1s
	Max time.Duration // default 60s
	// StablePeriod is how long a connection must stay up for the next
	// failure to start again from Min (default 60s).
	StablePeriod time.Duration
}

// Delay returns the delay before retry n.
func (b Backoff) Delay(n int) time.Duration {
	ceil := b.Max
	if n < 30 { // beyond that the shift overflows; Max applies anyway
		if c := b.Min << (n + 1); c > 0 && c < ceil {
			ceil = c
		}
	}
	if ceil <= b.Min {
		return b.Min
	}
	return b.Min + rand.N(ceil-b.Min)
}

const (
	defaultPort      = "8883"
	connectTimeout   = 30 * time.Second // dial, TLS, CONNACK and SUBACK together
	drainTimeout     = 10 * time.Second // how long a renewal waits for in-flight PUBACKs
	disconnectLinger = time.Second      // how long Close waits to write DISCONNECT
)

func (c *Config) setDefaults() error {
	if c.Host == "" || c.DeviceID == "" {
		return errors.New("transport: Host and DeviceID are required")
	}
	if len(c.Key) == 0 && (c.TLS == nil || len(c.TLS.Certificates) == 0 && c.TLS.GetClientCertificate == nil) {
		return errors.New("transport: a Key or a client certificate (TLS.Certificates) is required")
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = time.Hour
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 60 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 32
	}
	if c.Window > 65535 {
		c.Window = 65535 // packet ids are 16 bits
	}
	if c.Backoff.Min <= 0 {
		c.Backoff.Min = time.Second
	}
	if c.Backoff.Max < c.Backoff.Min {
		c.Backoff.Max = max(60*time.Second, c.Backoff.Min)
	}
	if c.Backoff.StablePeriod <= 0 {
		c.Backoff.StablePeriod = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	return nil
}

// addr is Host with the default port added when it has none.
func (c *Config) addr() string {
	if _, _, err := net.SplitHostPort(c.Host); err == nil {
		return c.Host
	}
	if c.WebSocket {
		return net.JoinHostPort(c.Host, "443")
	}
	return net.JoinHostPort(c.Host, defaultPort)
}

// clientID and username follow PROTOCOL.md §1.2.
func (c *Config) clientID() string {
	if c.ModuleID != "" {
		return c.DeviceID + "/" + c.ModuleID
	}
	return c.DeviceID
}

func (c *Config) username() string {
	u := c.Host + "/" + c.clientID() + "/?api-version=2021-04-12"
	if c.ModelID != "" {
		// Percent-encoded, as Azure's Python SDK sends it; hubs decode both.
		u += "&model-id=" + url.QueryEscape(c.ModelID)
	}
	return u
}

// token signs a SAS token expiring TokenTTL from now and returns it with its
// expiry (whole seconds, as the token carries it).
func (c *Config) token(now time.Time) (string, time.Time) {
	exp := now.Add(c.TokenTTL).Truncate(time.Second)
	return protocol.SignSAS(c.Key, protocol.DeviceResource(c.Host, c.DeviceID, c.ModuleID), exp, ""), exp
}
