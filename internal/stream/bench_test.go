package stream_test

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

// nopAcker counts acks.
type nopAcker struct{ n sync.WaitGroup }

func (a *nopAcker) Acked(uint64, error) { a.n.Done() }

// windowAcker is an MQTT client with a window of unacknowledged messages.
type windowAcker struct{ sem chan struct{} }

func (a *windowAcker) Acked(uint64, error) { <-a.sem }

// benchMsg is the DESIGN.md §7 shape: 64-byte body, a message id.
func benchMsg(dev string) stream.Message {
	return stream.Message{
		DeviceID: dev, AuthMethod: "sas", EnqueuedTime: time.Now(),
		ContentType: "application/json", MessageID: "00000000-0000-0000-0000-000000000000",
		Body: []byte(`{"temperature":21.53,"humidity":48.1,"ts":"2024-01-01T00:00:00Z"}`)[:64],
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchResult struct {
	start   time.Time
	cpu     time.Duration
	mallocs uint64
	met     *stream.Metrics
}

func startMeasure(met *stream.Metrics) benchResult {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return benchResult{start: time.Now(), cpu: cpuTime(), mallocs: ms.Mallocs, met: met}
}

func (r benchResult) report(b *testing.B, msgs int) {
	el := time.Since(r.start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	batches := float64(r.met.Batches.Load())
	b.ReportMetric(float64(msgs)/el.Seconds(), "msgs/s")
	b.ReportMetric(batches/el.Seconds(), "fsyncs/s")
	b.ReportMetric(float64(r.met.Stored.Load())/batches, "msgs/fsync")
	b.ReportMetric(float64(cpuTime()-r.cpu)/float64(time.Microsecond)/float64(msgs), "cpu-µs/msg")
	b.ReportMetric(float64(ms.Mallocs-r.mallocs)/batches, "allocs/batch")
	b.ReportMetric(float64(r.met.Latency.Snapshot().Quantile(0.99))/float64(time.Millisecond), "p99-ms")
}

// BenchmarkAppend measures Append on the real pipeline (Sync=true) from one
// goroutine; allocs/op counts every allocation in the process, including
// the per-batch ones of NATS, spread over the batch's messages.
// With dedup on, every message has its own id (from a ring larger than
// the dedup window, so ids never repeat within it).
func BenchmarkAppend(b *testing.B) {
	ids := make([]string, 1<<20)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-0000-0000-000000000000", i)
	}
	for _, dedup := range []bool{false, true} {
		b.Run(fmt.Sprintf("dedup=%v", dedup), func(b *testing.B) {
			h := startHub(b, b.TempDir())
			met := new(stream.Metrics)
			cfg := stream.WriterConfig{Metrics: met, DedupWindow: -1}
			if dedup {
				cfg.DedupWindow = time.Hour
			}
			w := newWriter(b, h, cfg)
			a := new(nopAcker)
			m := benchMsg("dev-1")
			run := func(n, from int) {
				a.n.Add(n)
				for i := range n {
					m.MessageID = ids[(from+i)%len(ids)]
					if err := w.Append(&m, a, uint64(i)); err != nil {
						b.Fatal(err)
					}
				}
				a.n.Wait()
			}
			run(300000, 0) // warm up: free list, dedup window at capacity
			met.Batches.Store(0)
			met.Stored.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			r := startMeasure(met)
			run(b.N, 300000)
			b.StopTimer()
			r.report(b, b.N)
		})
	}
}

// BenchmarkIngest is 10 clients with 100 messages in flight each, as fast
// as the store acknowledges, with natsd Sync=true (one fsync per batch).
func BenchmarkIngest(b *testing.B) {
	for _, inflight := range []int{1, 2, 4} {
		for _, linger := range []time.Duration{-1, time.Millisecond, 2 * time.Millisecond} {
			b.Run(fmt.Sprintf("inflight=%d/linger=%v", inflight, max(linger, 0)), func(b *testing.B) {
				benchIngest(b, stream.WriterConfig{InFlightBatches: inflight, Linger: linger}, 0)
			})
		}
	}
}

// BenchmarkIngestPaced offers 20,000 msgs/s from 10 clients (the light-load
// shape of DESIGN.md §7) and reports CPU per message and fsyncs/s.
func BenchmarkIngestPaced(b *testing.B) {
	for _, linger := range []time.Duration{-1, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond} {
		b.Run(fmt.Sprintf("linger=%v", max(linger, 0)), func(b *testing.B) {
			benchIngest(b, stream.WriterConfig{Linger: linger}, 2000)
		})
	}
}

// benchIngest runs 10 clients; perClientRate > 0 paces each client.
func benchIngest(b *testing.B, cfg stream.WriterConfig, perClientRate int) {
	const clients, window = 10, 100
	h := startHub(b, b.TempDir())
	cfg.Metrics = new(stream.Metrics)
	cfg.DedupWindow = -1 // the benchmark reuses message ids
	w := newWriter(b, h, cfg)
	b.ResetTimer()
	r := startMeasure(cfg.Metrics)
	var wg sync.WaitGroup
	for c := range clients {
		n := b.N / clients
		if c < b.N%clients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &windowAcker{sem: make(chan struct{}, window)}
			m := benchMsg(fmt.Sprintf("dev-%d", c))
			var tick *time.Ticker
			if perClientRate > 0 {
				tick = time.NewTicker(time.Millisecond)
				defer tick.Stop()
			}
			for i := range n {
				if tick != nil && i%(perClientRate/1000) == 0 {
					<-tick.C
				}
				a.sem <- struct{}{}
				if err := w.Append(&m, a, uint64(i)); err != nil {
					b.Error(err)
					return
				}
			}
			for range window { // wait for the last acks
				a.sem <- struct{}{}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	r.report(b, b.N)
}
