package twin_test

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkPatchReported applies reported patches round-robin over 1,000
// devices in a real SQLite file, one transaction per patch, from as many
// goroutines as GOMAXPROCS (-cpu), the way device connections would.
func BenchmarkPatchReported(b *testing.B) {
	const devices = 1000
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%04d", i)
	}
	e := newEnv(b, ids...)
	ctx := b.Context()
	patches := make([][]byte, 16)
	for i := range patches {
		patches[i] = fmt.Appendf(nil, `{"temperature":{"value":%d.5,"ac":200,"av":3},"fw":"1.2.%d","$version":1}`, 20+i, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var n int64
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	next := func() int64 {
		<-mu
		n++
		v := n
		mu <- struct{}{}
		return v
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next()
			if _, err := e.svc.PatchReported(ctx, ids[i%devices], "", patches[i%int64(len(patches))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "patches/s")
}

// BenchmarkPatchReportedParallel applies reported patches over 1,000
// devices from many concurrent callers (-cpu times 128 goroutines), as a
// hub with many connected devices would: each caller waits for its patch's
// acknowledgement before sending the next, so throughput comes from
// committing concurrent patches together. sync=true fsyncs every batch
// (sqlite.DB.SyncTwins), as the hub's fsync durability asks.
func BenchmarkPatchReportedParallel(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", on), func(b *testing.B) { benchParallel(b, on) })
	}
}

func benchParallel(b *testing.B, syncTwins bool) {
	const devices = 1000
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%04d", i)
	}
	e := newEnv(b, ids...)
	e.db.SyncTwins(syncTwins)
	ctx := b.Context()
	patches := make([][]byte, 16)
	for i := range patches {
		patches[i] = fmt.Appendf(nil, `{"temperature":{"value":%d.5,"ac":200,"av":3},"fw":"1.2.%d","$version":1}`, 20+i, i)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(128)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := e.svc.PatchReported(ctx, ids[i%devices], "", patches[i%int64(len(patches))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "patches/s")
}
