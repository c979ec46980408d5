package loadgen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/loadgen"
)

// allowAll lets every client connect and publish. It stands in for mochi's
// auth.AllowHook, whose package pulls in a YAML dependency this module does
// not carry.
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }

func (allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// startBroker runs a real mochi broker on a loopback port that accepts
// everyone, and returns its address.
func startBroker(t *testing.T) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return l.Address()
}

func devices(n int) []loadgen.Device {
	devs := make([]loadgen.Device, n)
	for i := range devs {
		id := fmt.Sprintf("dev-%05d", i)
		devs[i] = loadgen.Device{ID: id, Username: "hub.local/" + id + "/?api-version=2021-04-12", Password: "SharedAccessSignature sr=x&sig=y&se=1"}
	}
	return devs
}

func TestIngest(t *testing.T) {
	addr := startBroker(t)
	var progressCalls int
	start := time.Now()
	res, err := loadgen.Ingest(t.Context(), loadgen.IngestConfig{
		Addr:      addr,
		Devices:   devices(2),
		Warmup:    200 * time.Millisecond,
		Duration:  time.Second,
		ServerPID: os.Getpid(), // the broker runs in this process
		Progress:  func(sent, acked int64) { progressCalls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Sent == 0 || res.Acked != res.Sent {
		t.Errorf("sent %d, acked %d: want equal and > 0", res.Sent, res.Acked)
	}
	if res.Errors != 0 {
		t.Errorf("errors = %d", res.Errors)
	}
	// The window runs from a sample taken when the warm-up ends, which a
	// loaded machine may take late, to its planned end: somewhat under the
	// 1s asked for, never longer than the whole run.
	if total := time.Since(start); res.MsgsPerSec <= 0 || res.Elapsed < 500*time.Millisecond || res.Elapsed > total {
		t.Errorf("rate %v over %v (the run took %v)", res.MsgsPerSec, res.Elapsed, total)
	}
	if res.LatencyP50 <= 0 || res.LatencyP50 > res.LatencyP99 || res.LatencyP99 > res.LatencyMax {
		t.Errorf("latencies p50 %v p99 %v max %v: want 0 < p50 <= p99 <= max", res.LatencyP50, res.LatencyP99, res.LatencyMax)
	}
	if res.ServerRSSBytes <= 0 || res.LoaderCPU <= 0 {
		t.Errorf("server rss %d, loader cpu %v: want > 0", res.ServerRSSBytes, res.LoaderCPU)
	}
	if progressCalls == 0 {
		t.Error("Progress never called")
	}
}

func TestIngestRateAndCap(t *testing.T) {
	addr := startBroker(t)
	// Paced at 2,000/s over a 1s window: about 2,000 messages.
	res, err := loadgen.Ingest(t.Context(), loadgen.IngestConfig{
		Addr: addr, Devices: devices(2), Rate: 2000, Warmup: -1, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent < 1800 || res.Sent > 2200 || res.Acked != res.Sent {
		t.Errorf("paced run: sent %d acked %d, want about 2000", res.Sent, res.Acked)
	}

	// A message cap ends the run early and is never exceeded.
	res, err = loadgen.Ingest(t.Context(), loadgen.IngestConfig{
		Addr: addr, Devices: devices(3), Warmup: -1, Duration: time.Minute, MaxMessages: 5000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 5000 || res.Acked != 5000 || res.Elapsed > 30*time.Second {
		t.Errorf("capped run: sent %d acked %d in %v, want 5000 early", res.Sent, res.Acked, res.Elapsed)
	}
}

func TestIngestInterrupted(t *testing.T) {
	addr := startBroker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := loadgen.Ingest(ctx, loadgen.IngestConfig{Addr: addr, Devices: devices(1), Duration: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	// Far below the minute the run would last, however loaded the machine.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to stop", d)
	}
}

func TestConnect(t *testing.T) {
	addr := startBroker(t)
	res, conns, err := loadgen.Connect(t.Context(), loadgen.ConnectConfig{
		Addr: addr, Devices: devices(200), Concurrency: 16, Hold: true, ServerPID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	t.Logf("%+v", res)
	if res.Connected != 200 || res.Failed != 0 || conns.Len() != 200 {
		t.Fatalf("connected %d, failed %d (%v), held %d: want 200, 0, 200", res.Connected, res.Failed, res.FirstErr, conns.Len())
	}
	if res.PerSec <= 0 || res.ServerRSSAfter <= 0 {
		t.Errorf("per sec %v, rss after %d", res.PerSec, res.ServerRSSAfter)
	}
	if err := conns.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectCountsFailures(t *testing.T) {
	// Port 1 (tcpmux) has no listener here: every attempt is refused.
	res, conns, err := loadgen.Connect(t.Context(), loadgen.ConnectConfig{Addr: "127.0.0.1:1", Devices: devices(3)})
	if err != nil {
		t.Fatal(err)
	}
	if conns != nil || res.Connected != 0 || res.Failed != 3 || res.FirstErr == nil {
		t.Fatalf("%+v, conns %v: want 3 failures", res, conns)
	}
}

func TestRefusesRemoteAddress(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:1883", "192.168.1.5:1883", "8.8.8.8:1883", "example.com:1883", "[2001:db8::1]:1883"} {
		_, err := loadgen.Ingest(t.Context(), loadgen.IngestConfig{Addr: addr, Devices: devices(1)})
		if !errors.Is(err, loadgen.ErrRemoteAddr) {
			t.Errorf("Ingest(%s): err = %v, want ErrRemoteAddr", addr, err)
		}
		_, _, err = loadgen.Connect(t.Context(), loadgen.ConnectConfig{Addr: addr, Devices: devices(1)})
		if !errors.Is(err, loadgen.ErrRemoteAddr) {
			t.Errorf("Connect(%s): err = %v, want ErrRemoteAddr", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:1", "127.3.4.5:1", "[::1]:1", "localhost:1"} {
		_, _, err := loadgen.Connect(t.Context(), loadgen.ConnectConfig{Addr: addr, Devices: devices(1)})
		if errors.Is(err, loadgen.ErrRemoteAddr) {
			t.Errorf("Connect(%s) refused a loopback address", addr)
		}
	}
}
