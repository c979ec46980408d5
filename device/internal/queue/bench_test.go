package queue_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
)

// BenchmarkEnqueue measures durable enqueue throughput with 200-byte
// payloads. Each producer has one call outstanding at a time, so one
// commit carries at most batch records per producer: throughput is bounded
// by producers × batch × commits (fsyncs) per second.
func BenchmarkEnqueue(b *testing.B) {
	for _, bc := range []struct {
		producers, batch int
		noSync           bool
	}{{16, 1, false}, {64, 1, false}, {256, 1, false}, {16, 1, true}, {16, 16, false}} {
		name := fmt.Sprintf("producers=%d/batch=%d/fsync", bc.producers, bc.batch)
		if bc.noSync {
			name = fmt.Sprintf("producers=%d/batch=%d/nosync", bc.producers, bc.batch)
		}
		b.Run(name, func(b *testing.B) {
			q := openQueue(b, tempPath(b), queue.Options{NoSync: bc.noSync})
			body := make([]byte, 200)
			b.SetParallelism((bc.producers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			recs := make([]queue.Record, bc.batch)
			for i := range recs {
				recs[i] = queue.Record{Stream: "bench", Body: body}
			}
			b.ResetTimer()
			// Each b.N iteration is one message; a batched producer sends
			// its batch every batch-th iteration.
			b.RunParallel(func(pb *testing.PB) {
				n := 0
				for pb.Next() {
					if n++; n < bc.batch {
						continue
					}
					if _, err := q.EnqueueBatch(context.Background(), recs[:n]); err != nil {
						b.Error(err)
						return
					}
					n = 0
				}
				if n > 0 { // the tail of this producer's share
					q.EnqueueBatch(context.Background(), recs[:n])
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkEnqueueLatency measures one producer's durable Enqueue latency:
// each call is one commit and one fsync.
func BenchmarkEnqueueLatency(b *testing.B) {
	q := openQueue(b, tempPath(b), queue.Options{})
	body := make([]byte, 200)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if _, err := q.Enqueue(context.Background(), queue.Record{Stream: "bench", Body: body}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkDrain measures the sender's side: Peek pages of 1,000 and Ack
// 100,000 records, either a page per Ack or one Ack per record from 32
// concurrent goroutines (as PUBACKs arrive with 32 messages in flight).
func BenchmarkDrain(b *testing.B) {
	const total, page = 100_000, 1000
	for _, each := range []bool{false, true} {
		name := "ack=page"
		if each {
			name = "ack=each/inflight=32"
		}
		b.Run(name, func(b *testing.B) {
			path := tempPath(b)
			var q *queue.Queue
			for b.Loop() {
				b.StopTimer()
				fill(b, path, total)
				q = openQueue(b, path, queue.Options{})
				b.StartTimer()
				drain(b, q, page, each)
				b.StopTimer()
				if n, _ := q.Pending(); n != 0 {
					b.Fatalf("%d records left after drain", n)
				}
				q.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// fill adds n records without fsync (setup only) from many producers.
func fill(b *testing.B, path string, n int) {
	q, err := queue.Open(path, queue.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var wg sync.WaitGroup
	const producers = 64
	for range producers {
		wg.Go(func() {
			for range n / producers {
				q.Enqueue(context.Background(), queue.Record{Stream: "bench", Body: make([]byte, 200)})
			}
		})
	}
	wg.Wait()
	for i := n / producers * producers; i < n; i++ {
		q.Enqueue(context.Background(), queue.Record{Stream: "bench", Body: make([]byte, 200)})
	}
}

func drain(b *testing.B, q *queue.Queue, page int, each bool) {
	var after uint64
	for {
		recs, err := q.Peek(after, page)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			return
		}
		seqs := make([]uint64, len(recs))
		for i, r := range recs {
			seqs[i] = r.Seq
		}
		after = seqs[len(seqs)-1]
		if !each {
			if err := q.Ack(seqs...); err != nil {
				b.Fatal(err)
			}
			continue
		}
		work := make(chan uint64)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for s := range work {
					if err := q.Ack(s); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for _, s := range seqs {
			work <- s
		}
		close(work)
		wg.Wait()
	}
}
