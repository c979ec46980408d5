package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/loadgen"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// benchMain runs `ferry bench VERB`: whole-system load against a hub (or any
// MQTT broker, with --no-auth), bounded in time and count, loopback only.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now}
	return e.runNoun(ctx, benchNoun(), args)
}

func benchNoun() *noun {
	return &noun{
		name:    "bench",
		summary: "measure the hub under load: telemetry ingest and connection storms",
		verbs:   []*command{benchIngest(), benchConnect()},
		examples: `  ferry bench ingest --devices 10 --window 100 --duration 10s --server-pid $(pgrep -f 'ferry serve')
  ferry bench ingest --addr 127.0.0.1:1884 --no-auth --server-pid $(pgrep mosquitto)   # a peer broker, same load
  ferry bench connect --connections 19000 --server-pid $(pgrep -f 'ferry serve')`,
	}
}

// benchTarget holds the flags shared by the bench verbs.
type benchTarget struct {
	hubFlags
	addr      string
	useTLS    bool
	noAuth    bool
	prefix    string
	serverPID int
	jsonOut   bool
}

func (b *benchTarget) register(fs *flag.FlagSet) {
	b.hubFlags.register(fs)
	fs.StringVar(&b.addr, "addr", "127.0.0.1:1883", "MQTT `ADDRESS` to load (loopback only)")
	fs.BoolVar(&b.useTLS, "tls", false, "connect with TLS, trusting --ca")
	fs.BoolVar(&b.noAuth, "no-auth", false, "send no credentials (for a peer broker with auth off); devices are not created")
	fs.StringVar(&b.prefix, "prefix", "bench-", "device id `PREFIX`; devices PREFIX0..PREFIXn-1 are created when missing")
	fs.IntVar(&b.serverPID, "server-pid", 0, "`PID` of the broker process, to report its CPU per message and memory")
	fs.BoolVar(&b.jsonOut, "json", false, "print the result as JSON")
}

// devices returns n devices with credentials: created on the hub when
// missing, with SAS tokens signed by their keys.
func (b *benchTarget) devices(ctx context.Context, e *env, n int) ([]loadgen.Device, error) {
	out := make([]loadgen.Device, n)
	for i := range out {
		out[i].ID = fmt.Sprintf("%s%d", b.prefix, i)
	}
	if b.noAuth {
		return out, nil
	}
	client, err := e.client(&b.hubFlags)
	if err != nil {
		return nil, err
	}
	info, err := client.Hub(ctx)
	if err != nil {
		return nil, err
	}
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		firstErr   error
	)
	stop := progress(e.stderr, "devices", int64(n), &done)
	defer stop()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				key, err := ensureDevice(ctx, client, out[i].ID)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				host := info.DeviceHostName
				out[i].Username = host + "/" + out[i].ID + "/?api-version=2021-04-12"
				out[i].Password = protocol.SignSAS(key, protocol.DeviceResource(host, out[i].ID, ""), time.Now().Add(24*time.Hour), "")
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, ctx.Err()
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func ensureDevice(ctx context.Context, c *api.Client, id string) ([]byte, error) {
	d, err := c.CreateDevice(ctx, registry.Device{DeviceID: id})
	if fault.Is(err, fault.Conflict) {
		d, err = c.GetDevice(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	if d.Authentication.SymmetricKey == nil {
		return nil, fmt.Errorf("device %s has no symmetric key", id)
	}
	return protocol.DecodeKey(d.Authentication.SymmetricKey.PrimaryKey)
}

func (b *benchTarget) tlsConfig(e *env) (*tls.Config, error) {
	if !b.useTLS {
		return nil, nil
	}
	t, err := b.hubFlags.resolve(e.getenv)
	if err != nil && b.ca == "" {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "localhost"}
	ca := firstOf(b.ca, t.caFile)
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", ca)
		}
	}
	return cfg, nil
}

// progress prints "label: done/total" to w every second until stopped.
func progress(w io.Writer, label string, total int64, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				fmt.Fprintf(w, "\r%s: %d/%d\n", label, done.Load(), total)
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%s: %d/%d", label, done.Load(), total)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); wg.Wait() }) }
}

func benchIngest() *command {
	return &command{
		path:    "bench ingest",
		summary: "publish QoS 1 telemetry from N devices and report msgs/s, PUBACK latency, server CPU per message",
		help: `Opens one connection per device (real SAS authentication, devices created when
missing), keeps --window QoS 1 messages in flight on each, and reports the
acknowledged messages per second, publish-to-PUBACK latency percentiles and,
with --server-pid, the server's own CPU time per message and its memory.
The run is bounded by --duration (after --warmup) and --max-messages.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var (
				t        benchTarget
				n        = fs.Int("devices", 10, "number of device connections")
				window   = fs.Int("window", 100, "QoS 1 messages in flight per connection")
				payload  = fs.Int("payload", 64, "payload bytes per message")
				rate     = fs.Float64("rate", 0, "total messages per second offered (0 = as fast as the windows allow)")
				duration = fs.Duration("duration", 10*time.Second, "measuring time")
				warmup   = fs.Duration("warmup", 2*time.Second, "publishing time before measuring starts")
				maxMsgs  = fs.Int64("max-messages", 0, "stop after this many messages (0 = no cap)")
			)
			t.register(fs)
			return func(ctx context.Context, e *env, _ []string) error {
				devs, err := t.devices(ctx, e, *n)
				if err != nil {
					return err
				}
				tlsCfg, err := t.tlsConfig(e)
				if err != nil {
					return err
				}
				res, err := loadgen.Ingest(ctx, loadgen.IngestConfig{
					Addr: t.addr, TLS: tlsCfg, Devices: devs, Window: *window, PayloadSize: *payload,
					Rate: *rate, Warmup: *warmup, Duration: *duration, MaxMessages: *maxMsgs, ServerPID: t.serverPID,
					Progress: func(sent, acked int64) { fmt.Fprintf(e.stderr, "\rsent %d, acknowledged %d", sent, acked) },
				})
				fmt.Fprintln(e.stderr)
				if err != nil {
					return err
				}
				if t.jsonOut {
					return writeJSON(e.stdout, res)
				}
				fmt.Fprintf(e.stdout, "messages/s      %.0f (%d acknowledged of %d sent in %s)\n", res.MsgsPerSec, res.Acked, res.Sent, res.Elapsed.Round(time.Millisecond))
				fmt.Fprintf(e.stdout, "PUBACK latency  p50 %s  p90 %s  p99 %s  max %s\n", res.LatencyP50, res.LatencyP90, res.LatencyP99, res.LatencyMax)
				if t.serverPID > 0 {
					fmt.Fprintf(e.stdout, "server CPU      %s total, %.2f µs/msg, RSS %.1f MiB\n", res.ServerCPU.Round(time.Millisecond),
						float64(res.ServerCPUPerMsg.Nanoseconds())/1000, float64(res.ServerRSSBytes)/(1<<20))
				}
				fmt.Fprintf(e.stdout, "loader CPU      %s\n", res.LoaderCPU.Round(time.Millisecond))
				if res.Errors > 0 {
					fmt.Fprintf(e.stdout, "errors          %d\n", res.Errors)
				}
				return nil
			}
		},
	}
}

func benchConnect() *command {
	return &command{
		path:    "bench connect",
		summary: "open N authenticated connections; report connects/s and server memory per idle connection",
		help: `Opens --connections sessions (CONNECT with a SAS token, wait for CONNACK),
--concurrency at a time, and reports connects per second; with --server-pid
also the server's resident memory per idle connection, sampled after the
connections have been idle for a moment. The file-descriptor limit of this
machine (20,000 per process) bounds --connections near 19,000.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var (
				t           benchTarget
				n           = fs.Int("connections", 1000, "number of connections")
				concurrency = fs.Int("concurrency", 64, "connection attempts in progress at once")
				hold        = fs.Duration("hold", 0, "keep the connections open this long after measuring")
			)
			t.register(fs)
			return func(ctx context.Context, e *env, _ []string) error {
				devs, err := t.devices(ctx, e, *n)
				if err != nil {
					return err
				}
				tlsCfg, err := t.tlsConfig(e)
				if err != nil {
					return err
				}
				var done atomic.Int64
				stop := progress(e.stderr, "connections", int64(*n), &done)
				res, conns, err := loadgen.Connect(ctx, loadgen.ConnectConfig{
					Addr: t.addr, TLS: tlsCfg, Devices: devs, Concurrency: *concurrency, Hold: true, ServerPID: t.serverPID,
					Progress: func(d int) { done.Store(int64(d)) },
				})
				stop()
				if err != nil {
					return err
				}
				if *hold > 0 {
					select {
					case <-time.After(*hold):
					case <-ctx.Done():
					}
				}
				_ = conns.Close()
				if t.jsonOut {
					return writeJSON(e.stdout, res)
				}
				fmt.Fprintf(e.stdout, "connected       %d (%d failed) in %s: %.0f connects/s\n", res.Connected, res.Failed, res.Elapsed.Round(time.Millisecond), res.PerSec)
				if res.FirstErr != nil {
					fmt.Fprintf(e.stdout, "first failure   %v\n", res.FirstErr)
				}
				if t.serverPID > 0 {
					fmt.Fprintf(e.stdout, "server RSS      %.1f MiB before, %.1f MiB after: %.2f KiB per idle connection\n",
						float64(res.ServerRSSBefore)/(1<<20), float64(res.ServerRSSAfter)/(1<<20), res.PerConnBytes/1024)
				}
				if res.Connected < *n {
					return errors.New("not every connection was accepted")
				}
				return nil
			}
		},
	}
}
