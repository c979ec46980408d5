package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Device is one simulated device: its MQTT client id and the credentials
// the broker expects. For Ferry the username is
// "{host}/{id}/?api-version=2021-04-12" and the password a SAS token; a broker
// without authentication takes empty strings.
type Device struct {
	ID                 string
	Username, Password string
}

// IngestConfig describes one telemetry run. Only Addr and Devices are
// required; every other zero field takes the default named beside it.
type IngestConfig struct {
	Addr        string      // broker address, for example "127.0.0.1:1883"
	TLS         *tls.Config // nil means plain TCP
	AllowRemote bool        // permit an Addr outside the loopback range (off: load stays on this machine)
	Devices     []Device    // one connection per device; the client id is Device.ID
	Window      int         // QoS 1 messages in flight per connection (default 100, at most 32767); unpaced runs refill it a quarter at a time
	PayloadSize int         // payload bytes per message (default 64)
	Rate        float64     // total messages per second offered over all connections; 0 = as fast as the window allows
	// Warmup is how long publishing runs before the measuring window opens.
	// It is excluded from every result, so that TCP slow start and the
	// broker's first allocations do not count (default 2s; negative: none).
	Warmup      time.Duration
	Duration    time.Duration           // length of the measuring window (default 10s)
	MaxMessages int64                   // stop once this many messages were sent in all, warm-up included (0 = no cap)
	Topic       func(id string) string  // topic per device (default "devices/{id}/messages/events/")
	ServerPID   int                     // when > 0, the broker's CPU and RSS are read from /proc at the window's edges
	Progress    func(sent, acked int64) // called about once a second with the totals so far, warm-up included
}

// IngestResult is what one Ingest run measured. Counts and latencies cover
// the messages sent inside the measuring window only.
type IngestResult struct {
	Sent  int64 // messages written inside the window
	Acked int64 // of those, how many got their PUBACK (the run waits up to 5s after the window for stragglers)
	// Elapsed is the window's length: Duration, or less when MaxMessages or
	// the context ended it early.
	Elapsed time.Duration
	// MsgsPerSec counts the PUBACKs that arrived inside the window, the
	// broker's sustained acknowledged throughput.
	MsgsPerSec float64

	// Publish→PUBACK latency: from just before the write of the burst that
	// carried the message to the read that returned its PUBACK, so it
	// includes time in the kernel's socket buffers. With Rate set it is the
	// broker's response time (the time a message waited for a full window
	// is not counted). Unpaced, the loader reads PUBACKs in groups of a
	// quarter window (see the package doc), which adds up to that group's
	// arrival spread; unpaced latency mostly measures queueing in the window
	// anyway (Little's law: Window / per-connection rate).
	LatencyP50, LatencyP90, LatencyP99, LatencyMax time.Duration

	ServerCPU       time.Duration // the broker's user+system CPU in the window (ServerPID only)
	ServerCPUPerMsg time.Duration // ServerCPU divided by the PUBACKs counted in MsgsPerSec
	ServerRSSBytes  int64         // the broker's resident memory at the window's end
	// LoaderCPU is this process's own user+system CPU in the window. On a
	// shared machine it is the share the broker did not get; when the broker
	// runs inside this process (tests), it includes the broker.
	LoaderCPU time.Duration
	Errors    int64 // connection failures and protocol surprises, also outside the window
}

// Defaults.
const (
	defaultWindow   = 100
	defaultPayload  = 64
	defaultWarmup   = 2 * time.Second
	defaultDuration = 10 * time.Second
	drainTimeout    = 5 * time.Second
	dialConcurrency = 64
)

// DefaultTopic is the device-to-cloud telemetry topic of Azure IoT Hub.
func DefaultTopic(id string) string { return "devices/" + id + "/messages/events/" }

func (cfg *IngestConfig) setDefaults() error {
	if len(cfg.Devices) == 0 {
		return errors.New("loadgen: ingest needs at least one device")
	}
	if cfg.Window == 0 {
		cfg.Window = defaultWindow
	}
	if cfg.Window < 0 || cfg.Window > 32767 {
		return fmt.Errorf("loadgen: window %d outside 1..32767", cfg.Window)
	}
	if cfg.PayloadSize == 0 {
		cfg.PayloadSize = defaultPayload
	}
	if cfg.PayloadSize < 0 || cfg.Rate < 0 || cfg.MaxMessages < 0 || cfg.Duration < 0 {
		return errors.New("loadgen: negative payload size, rate, message cap or duration")
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = defaultWarmup
	}
	cfg.Warmup = max(cfg.Warmup, 0)
	if cfg.Duration == 0 {
		cfg.Duration = defaultDuration
	}
	if cfg.Topic == nil {
		cfg.Topic = DefaultTopic
	}
	return checkAddr(cfg.Addr, cfg.AllowRemote)
}

// Ingest connects every device, publishes QoS 1 telemetry on all of them for
// the warm-up plus the measuring window, waits for outstanding PUBACKs and
// disconnects. The run always ends by itself: at the window's end, at
// MaxMessages, or when ctx is done (then the result so far comes back with
// ctx's error). A failing connection does not stop the others; the result
// counts it in Errors and the returned error names the first failure.
func Ingest(ctx context.Context, cfg IngestConfig) (IngestResult, error) {
	if err := cfg.setDefaults(); err != nil {
		return IngestResult{}, err
	}
	if err := raiseNoFile(); err != nil {
		return IngestResult{}, err
	}
	r := newRun(cfg)
	conns, err := dialPublishers(ctx, r, cfg)
	if err != nil {
		return IngestResult{}, err
	}
	r.start = r.clock()
	r.mStart = r.start + int64(cfg.Warmup)
	r.mEnd = r.mStart + int64(cfg.Duration)
	m := measure{r: r, conns: conns, pid: cfg.ServerPID, progress: cfg.Progress}
	res, err := m.run(ctx)
	if r.firstErr != nil {
		err = errors.Join(err, fmt.Errorf("loadgen: %d errors, the first: %w", r.errors.Load(), r.firstErr))
	}
	return res, err
}

// newRun sets up the shared state of a run whose clock starts now.
func newRun(cfg IngestConfig) *run {
	r := &run{
		base:     time.Now(),
		window:   int64(cfg.Window),
		minBurst: 1,
		rate:     cfg.Rate / float64(len(cfg.Devices)),
		maxMsgs:  cfg.MaxMessages,
		stop:     make(chan struct{}),
	}
	if r.rate == 0 {
		// Unpaced, a writer that refilled every freed slot at once would
		// settle into one PUBLISH per PUBACK, a syscall and a wake-up per
		// message on each side; waiting for a quarter of the window keeps
		// bursts large and the loader's CPU per message low, while at least
		// three quarters of the window stay in flight.
		r.minBurst = max(1, r.window/4)
	}
	return r
}

// dialPublishers opens one connection per device, a bounded number at a time.
func dialPublishers(ctx context.Context, r *run, cfg IngestConfig) ([]*pubConn, error) {
	conns := make([]*pubConn, len(cfg.Devices))
	err := forEach(ctx, len(cfg.Devices), dialConcurrency, func(ctx context.Context, i int) error {
		dev := cfg.Devices[i]
		tmpl, idOff, err := publishTemplate(cfg.Topic(dev.ID), cfg.PayloadSize)
		if err != nil {
			return err
		}
		conn, err := dialDevice(ctx, cfg.Addr, cfg.TLS, dev, i)
		if err != nil {
			return err
		}
		conns[i] = newPubConn(r, dev.ID, conn, tmpl, idOff)
		return nil
	})
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.conn.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}
