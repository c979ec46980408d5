package hub_test

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// BenchmarkMethodRoundTrip measures REST → device → REST direct method calls
// on loopback (HTTPS to the hub, MQTT to a device answering at once), with
// calls in parallel; it reports calls/s and the latency percentiles.
func BenchmarkMethodRoundTrip(b *testing.B) {
	h := hubtest.Start(b)
	dev := h.CreateDevice(b, "bench-methods")
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		b.Fatal(code, err)
	}
	defer c.Disconnect()
	answerMethods(b, c)
	var n atomic.Int64
	lat := make([]time.Duration, 0, b.N)
	latc := make(chan time.Duration, 1024)
	done := make(chan struct{})
	go func() {
		for d := range latc {
			lat = append(lat, d)
		}
		close(done)
	}()
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			resp, err := h.Client.InvokeMethod(context.Background(), dev.ID, "", api.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 10})
			if err != nil || resp.Status != 200 {
				b.Error(err)
				return
			}
			latc <- time.Since(t0)
			n.Add(1)
		}
	})
	elapsed := time.Since(start)
	close(latc)
	<-done
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(n.Load())/elapsed.Seconds(), "calls/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkMethodAt1000PerSecond offers direct method calls at 1,000 per
// second (paced, each call on its own goroutine) and reports the
// round-trip latency percentiles: the shape of issue 3's latency bar.
func BenchmarkMethodAt1000PerSecond(b *testing.B) {
	h := hubtest.Start(b)
	dev := h.CreateDevice(b, "paced-methods")
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		b.Fatal(code, err)
	}
	defer c.Disconnect()
	answerMethods(b, c)
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			resp, err := h.Client.InvokeMethod(context.Background(), dev.ID, "", api.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 10})
			if err != nil || resp.Status != 200 {
				b.Error(err)
				return
			}
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
