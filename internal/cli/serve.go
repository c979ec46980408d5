package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/twin"
)

const serveUsage = `Usage: ferry serve [flags]

Runs the hub: MQTT (TCP, TLS, WebSockets) for devices, the REST API, metrics.
With no flags it keeps everything in ./ferry-data and listens on:

  127.0.0.1:1883   plain MQTT (loopback only; --mqtt :1883 opens it)
  :8883            MQTT over TLS
  :8080            HTTPS: REST API, MQTT over WebSockets at /$iothub/websocket
                   and /mqtt, /metrics, /healthz, /readyz, /openapi.json

On first start it creates a CA and a server certificate (ferry-data/pki/ca.pem
is the CA devices must trust) and prints the owner connection string, which
the other ferry commands read from ferry-data/owner-connection-string.

Durability (--durability):
  fsync    (default) a telemetry message is written and fsynced to disk before
           its PUBACK: an acknowledged message survives a power loss. One
           fsync covers every message that arrived while the previous one ran.
           Reported twin properties are fsynced before their 204 the same way.
  process  a message is in the operating system's page cache before its
           PUBACK: it survives a crash of the hub, not of the machine; the
           disk is synced every --sync-interval.

Retention (--provisioning-retention):
  A background sweep deletes what would otherwise pile up: provisioning
  operations once they ended (completed, rejected, expired) more than the
  retention ago, and expired console sign-ins. A device that comes back to
  ask after that is told its operation is not found and starts a new one.
  At most 1000 operations wait for an operator at once (3 per device id);
  beyond that devices are told to try later (HTTP 429), and a device that
  asks again replaces its own waiting operation.

Twin history (--twin-history-max-changes, --twin-history-max-age):
  Every accepted twin change is kept for 'ferry twin history' and for reading
  a twin as it was at a time (GET /twins/{id}?asOf=...). The same sweep trims
  each twin's oldest changes beyond either bound, 500 rows per transaction,
  and keeps the twin as of the newest trimmed change so that reads as of any
  later time stay exact; earlier times are refused with the oldest time that
  can be read, and the history endpoint names it in Ferry-History-Start.
  A device reporting every 5 s keeps about 80 minutes at the defaults; raise
  the count to look further back (a small change takes a few hundred bytes
  of disk).

Flags:
`

func serveMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); printFlags(stderr, fs) }
	var (
		cfg       hub.Config
		hosts     stringList
		durable   = fs.String("durability", string(hub.DurabilityFsync), "what an acknowledged message survives: fsync or process")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat = fs.String("log-format", "text", "text or json")
	)
	fs.StringVar(&cfg.DataDir, "data", envOr("FERRY_DATA", "ferry-data"), "data directory (env FERRY_DATA)")
	fs.Var(&hosts, "host", "host name devices and services use; repeat for more names in the certificate (default localhost)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt", "127.0.0.1:1883", "plain MQTT listen address, - to disable")
	fs.StringVar(&cfg.MQTTSAddr, "mqtts", ":8883", "MQTT over TLS listen address, - to disable")
	fs.StringVar(&cfg.HTTPAddr, "http", ":8080", "HTTPS listen address (REST, WebSockets, metrics); :443 for SDKs that hard-code 443")
	fs.BoolVar(&cfg.HTTPPlain, "http-plain", false, "serve --http without TLS (behind a TLS-terminating proxy)")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", 0, "disk sync interval with --durability process (default 2m)")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "", "expose the embedded NATS server on this address (default: in-process only)")
	fs.DurationVar(&cfg.MaxTokenLifetime, "max-token-lifetime", 0, "refuse device SAS tokens that expire further ahead than this, as not yet valid (0: no bound)")
	fs.DurationVar(&cfg.Linger, "linger", 0, "longest wait to gather messages into one durable write (default 1ms)")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", 256*1024, "largest telemetry body accepted (Azure: 256 KiB)")
	fs.IntVar(&cfg.MaxPropertyBagBytes, "max-property-bag-bytes", 8*1024, "largest telemetry property bag (the topic's part after messages/events/)")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", 1024, "QoS 1 messages per connection awaiting durability before the hub stops reading it")
	fs.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", 50,
		"most distinct topic filters one MQTT client id may hold; a SUBSCRIBE beyond it is refused per filter (0x80, MQTT 5: 0x97). Azure devices use about 5")
	fs.DurationVar(&cfg.MaxSessionExpiry, "max-session-expiry", 7*24*time.Hour,
		"longest a persistent MQTT session (clean session false, MQTT 5 session expiry) outlives its connection; then its subscriptions are deleted. MQTT 5 clients may ask for less")
	fs.DurationVar(&cfg.ProvisioningRetention, "provisioning-retention", provision.DefaultOperationRetention,
		"keep provisioning operations this long after they ended, for devices to read their answer and operators to review it (e.g. 72h)")
	fs.Int64Var(&cfg.TwinHistoryMaxChanges, "twin-history-max-changes", twin.DefaultHistoryMaxChanges,
		"keep at most this many of each twin's newest changes in its history (0: any number)")
	fs.DurationVar(&cfg.TwinHistoryMaxAge, "twin-history-max-age", twin.DefaultHistoryMaxAge,
		"trim twin changes older than this from history (e.g. 168h; 0: any age)")
	pprofAddr := fs.String("pprof", "", "serve Go's pprof profiles on this loopback `ADDRESS` (e.g. 127.0.0.1:6060) for diagnosis")
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferry serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.ProvisioningRetention <= 0 {
		fmt.Fprintf(stderr, "ferry serve: --provisioning-retention must be positive, like 24h, not %s\n", cfg.ProvisioningRetention)
		return 2
	}
	if cfg.TwinHistoryMaxChanges < 0 {
		fmt.Fprintf(stderr, "ferry serve: --twin-history-max-changes must be a count like 1000, or 0 to keep any number, not %d\n", cfg.TwinHistoryMaxChanges)
		return 2
	}
	if cfg.TwinHistoryMaxAge < 0 {
		fmt.Fprintf(stderr, "ferry serve: --twin-history-max-age must be a duration like 720h, or 0 to keep any age, not %s\n", cfg.TwinHistoryMaxAge)
		return 2
	}
	// The hub reads zero as "the default"; here 0 turns the bound off.
	if cfg.TwinHistoryMaxChanges == 0 {
		cfg.TwinHistoryMaxChanges = -1
	}
	if cfg.TwinHistoryMaxAge == 0 {
		cfg.TwinHistoryMaxAge = -1
	}
	if cfg.MaxSubscriptions <= 0 {
		fmt.Fprintf(stderr, "ferry serve: --max-subscriptions must be a positive count like 50, not %d\n", cfg.MaxSubscriptions)
		return 2
	}
	if cfg.MaxSessionExpiry < time.Second {
		fmt.Fprintf(stderr, "ferry serve: --max-session-expiry must be at least a second, like 168h, not %s\n", cfg.MaxSessionExpiry)
		return 2
	}
	cfg.Hosts = hosts
	switch hub.Durability(*durable) {
	case hub.DurabilityFsync, hub.DurabilityProcess:
		cfg.Durability = hub.Durability(*durable)
	default:
		fmt.Fprintf(stderr, "ferry serve: --durability must be fsync or process, not %q\n", *durable)
		return 2
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return 2
	}
	cfg.Logger = logger
	cfg.Version = Version

	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr)
		if err != nil {
			fmt.Fprintf(stderr, "ferry serve: --pprof: %v\n", err)
			return 2
		}
		defer stop()
	}
	h, err := hub.New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		return 1
	}
	if err := h.Start(); err != nil {
		fmt.Fprintf(stderr, "ferry serve: %v\n", err)
		_ = h.Shutdown(context.Background())
		return 1
	}
	if h.FirstRun() {
		fmt.Fprintf(stdout, "Ferry hub created.\n  CA certificate (devices trust it): %s\n  Owner connection string (keep it secret):\n    %s\n",
			h.CAFile(), h.OwnerConnectionString())
	}
	logger.Info("ferry hub serving", "version", Version, "data", cfg.DataDir, "http", h.HTTPAddr().String(),
		"mqtt", addrString(h.MQTTAddr("tcp")), "mqtts", addrString(h.MQTTAddr("tls")), "durability", string(cfg.Durability))
	<-ctx.Done()
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "ferry serve: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func addrString(a interface{ String() string }) string {
	if a == nil || fmt.Sprint(a) == "<nil>" {
		return "off"
	}
	return a.String()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json")
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
