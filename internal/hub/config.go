package hub

import (
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/twin"
)

// Durability says what an acknowledged message survives.
type Durability string

const (
	// DurabilityFsync (the default): a message is fsynced to disk before its
	// PUBACK, so it survives power loss. One fsync covers a whole batch of
	// messages from all devices (group commit).
	DurabilityFsync Durability = "fsync"
	// DurabilityProcess: a message is written to the operating system's
	// page cache before its PUBACK, so it survives a crash of the hub process
	// but not of the machine; JetStream flushes to disk every SyncInterval.
	DurabilityProcess Durability = "process"
)

// Config configures a Hub. The zero value runs the embedded defaults.
type Config struct {
	// DataDir holds every file of the hub (default "./ferry-data").
	DataDir string
	// Hosts are extra names for the server certificate and the first one is
	// the host name devices and services use (default: "localhost").
	Hosts []string

	MQTTAddr  string // plain MQTT (default "127.0.0.1:1883"; "-" disables)
	MQTTSAddr string // MQTT over TLS (default ":8883"; "-" disables)
	HTTPAddr  string // REST API, MQTT over WebSockets, metrics (default ":8080")
	// HTTPPlain serves HTTPAddr without TLS (for a TLS-terminating proxy).
	HTTPPlain bool

	Durability   Durability    // default DurabilityFsync
	SyncInterval time.Duration // flush interval in DurabilityProcess (default 2m, JetStream's)
	NATSListen   string        // expose the embedded NATS on this address ("" = in-process only)

	Linger          time.Duration // group commit linger (default: the stream writer's)
	MaxMessageBytes int           // telemetry body limit (default 256 KiB)
	// MaxPropertyBagBytes bounds a telemetry topic's property bag (default 8 KiB).
	MaxPropertyBagBytes int
	MaxInflight         int // per-connection QoS 1 messages awaiting durability (default 1024)
	// MaxTokenLifetime refuses device SAS tokens that expire further ahead
	// than this as not yet valid (default 0: any expiry in the future).
	MaxTokenLifetime time.Duration
	// MaxSubscriptions bounds the distinct topic filters one MQTT client id
	// may hold (default 50); MaxSessionExpiry bounds how long a persistent
	// session outlives its connection (default 7 days). See broker.Config.
	MaxSubscriptions int
	MaxSessionExpiry time.Duration

	// ProvisioningRetention is how long a provisioning operation is kept
	// after it ended (completed, rejected, expired) before the retention
	// sweep deletes it (default provision.DefaultOperationRetention, 24 h).
	ProvisioningRetention time.Duration
	// RetentionInterval is how often the retention sweep runs (default 10
	// minutes): it deletes ended provisioning operations, expired console
	// sessions and twin history beyond its bounds, so no table grows
	// without bound.
	RetentionInterval time.Duration
	// TwinHistoryMaxChanges is how many of a twin's newest changes its
	// history keeps (default twin.DefaultHistoryMaxChanges, 1000; negative:
	// no count bound), and TwinHistoryMaxAge how old a kept change may be
	// (default twin.DefaultHistoryMaxAge, 30 days; negative: no age
	// bound). The retention sweep trims what either bound excludes; "as
	// of" reads before the oldest kept change are then refused.
	TwinHistoryMaxChanges int64
	TwinHistoryMaxAge     time.Duration

	Logger  *slog.Logger
	Version string
	Now     func() time.Time
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "ferry-data"
	}
	if len(c.Hosts) == 0 {
		c.Hosts = []string{"localhost"}
	}
	if c.MQTTAddr == "" {
		c.MQTTAddr = "127.0.0.1:1883"
	}
	if c.MQTTSAddr == "" {
		c.MQTTSAddr = ":8883"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.Durability == "" {
		c.Durability = DurabilityFsync
	}
	if c.ProvisioningRetention <= 0 {
		c.ProvisioningRetention = provision.DefaultOperationRetention
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.TwinHistoryMaxChanges == 0 {
		c.TwinHistoryMaxChanges = twin.DefaultHistoryMaxChanges
	}
	if c.TwinHistoryMaxAge == 0 {
		c.TwinHistoryMaxAge = twin.DefaultHistoryMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// certHosts are the names the server certificate must carry.
func (c *Config) certHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	for _, h := range c.Hosts {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		hosts = append(hosts, h)
	}
	seen := map[string]bool{}
	out := hosts[:0]
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// withPort appends ":port" to host unless port is the protocol's default.
func withPort(host string, addr net.Addr, def int) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.Port == def {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(ta.Port))
}
