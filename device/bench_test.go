//go:build unix

package device_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// offlineConfig is a Config whose hub is never reachable, so benchmarks of
// the store measure Enqueue alone.
func offlineConfig(b *testing.B) device.Config {
	cfg := device.Config{
		ConnectionString: "HostName=127.0.0.1:1;DeviceId=bench;SharedAccessKey=a2V5a2V5a2V5a2V5",
		StorePath:        filepath.Join(b.TempDir(), "device.db"),
		InsecureTCP:      true,
		MaxPending:       50_000_000,
	}
	device.SetTestHooks(&cfg, func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("bench: offline")
	}, time.Hour)
	return cfg
}

// BenchmarkEnqueue measures durable enqueue throughput through the public
// API with 200-byte payloads and 16 producers, one message per Enqueue or
// batch messages per EnqueueBatch. Each call waits for its own fsynced
// commit, so one record per call is bound by fsyncs per second.
func BenchmarkEnqueue(b *testing.B) {
	const producers = 16
	for _, batch := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("producers=%d/batch=%d", producers, batch), func(b *testing.B) {
			c, err := device.Start(context.Background(), offlineConfig(b))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s := c.Stream("", "bench")
			body := make([]byte, 200)
			ms := make([]device.Message, batch)
			for i := range ms {
				ms[i] = device.Message{Body: body}
			}
			b.SetParallelism((producers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			// Each b.N iteration is one message; a batched producer sends
			// its batch every batch-th iteration.
			b.RunParallel(func(pb *testing.PB) {
				n := 0
				for pb.Next() {
					if n++; n < batch {
						continue
					}
					if err := enqueue(s, ms[:n]); err != nil {
						b.Error(err)
						return
					}
					n = 0
				}
				if n > 0 {
					if err := enqueue(s, ms[:n]); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

func enqueue(s *device.Stream, ms []device.Message) error {
	if len(ms) == 1 {
		_, err := s.Enqueue(context.Background(), ms[0])
		return err
	}
	_, err := s.EnqueueBatch(context.Background(), ms)
	return err
}

// BenchmarkEnqueueLatency measures one producer's Enqueue latency: each
// call is one commit and one fsync.
func BenchmarkEnqueueLatency(b *testing.B) {
	c, err := device.Start(context.Background(), offlineConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := c.Stream("", "bench")
	m := device.Message{Body: make([]byte, 200)}
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if _, err := s.Enqueue(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkDrain measures how fast a device that starts with a backlog of
// 100,000 stored messages (200-byte payloads) delivers it to a local hub
// over loopback TLS: from Start until Flush returns, connection included.
// Window 1 drains 10,000 (one message per round trip). cpu-s/drain is the
// CPU time of the whole process, hub included, which varies less than the
// wall time on a shared machine.
func BenchmarkDrain(b *testing.B) {
	for _, window := range []int{0, 1, 128} {
		name := fmt.Sprintf("window=%d", window)
		if window == 0 {
			name = "window=default"
		}
		total := 100_000
		if window == 1 {
			total = 10_000
		}
		b.Run(name, func(b *testing.B) {
			cfg := hubConfig(b)
			cfg.Window = window
			var sec, cpu float64
			for b.Loop() {
				b.StopTimer()
				cfg.StorePath = filepath.Join(b.TempDir(), "device.db")
				fillStore(b, cfg, total)
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				c, err := device.Start(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				err = c.Flush(ctx)
				cancel()
				sec += time.Since(start).Seconds()
				cpu += cpuTime() - cpu0
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n, _ := c.Pending(); n != 0 {
					b.Fatalf("%d pending after Flush", n)
				}
				c.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*total)/sec, "msg/s")
			b.ReportMetric(sec/float64(b.N), "s/drain")
			b.ReportMetric(cpu/float64(b.N), "cpu-s/drain")
		})
	}
}

// cpuTime returns the process's user and system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// hubConfig starts a hub, registers a device and returns a Config for it
// that connects over loopback TLS at once.
func hubConfig(b testing.TB) device.Config {
	b.Helper()
	h := hubtest.Start(b)
	d := h.CreateDevice(b, "dev1")
	cfg := device.Config{
		ConnectionString: fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s",
			d.Host, d.ID, base64.StdEncoding.EncodeToString(d.Key)),
		StorePath: filepath.Join(b.TempDir(), "device.db"),
		CAFile:    h.CAFile(),
	}
	var dial net.Dialer
	device.SetTestHooks(&cfg, dial.DialContext, 50*time.Millisecond)
	return cfg
}

// fillStore stores n 200-byte messages in cfg's store with the network down.
func fillStore(b testing.TB, cfg device.Config, n int) {
	b.Helper()
	device.SetTestHooks(&cfg, func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("bench: offline while filling")
	}, time.Hour)
	c, err := device.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := c.Stream("", "drain")
	var wg sync.WaitGroup
	const page = 1000
	for g := range 4 {
		wg.Go(func() {
			ms := make([]device.Message, page)
			for i := range ms {
				ms[i] = device.Message{Body: make([]byte, 200)}
			}
			for k := g * page; k < n; k += 4 * page {
				if _, err := s.EnqueueBatch(context.Background(), ms[:min(page, n-k)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, _ := c.Pending(); got != n {
		b.Fatalf("filled %d, want %d", got, n)
	}
}
