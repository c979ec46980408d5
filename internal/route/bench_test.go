package route

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

// BenchmarkTenBodyConditions evaluates ten body conditions on one
// message, as the router does: the body is checked once, then each
// condition scans it for its path.
func BenchmarkTenBodyConditions(b *testing.B) {
	var conds []*Condition
	for i := range 10 {
		c, err := CompileCondition(fmt.Sprintf("$body.temperature > %d AND $body.site = 'A' AND level = '3'", 20+i))
		if err != nil {
			b.Fatal(err)
		}
		conds = append(conds, c)
	}
	m := &stream.Message{DeviceID: "d", ContentType: "application/json",
		Properties: []stream.Property{{Key: "level", Value: "3"}},
		Body:       []byte(`{"deviceId":"sim-00001","seq":12345,"temperature":25.5,"humidity":40,"site":"A"}`)}
	in := &input{ctx: context.Background()}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		in.reset(m, Telemetry)
		for _, c := range conds {
			if c.match(in) {
				n++
			}
		}
	}
	if n == 0 {
		b.Fatal("nothing matched")
	}
}

// BenchmarkTap shows records to the router's tap in bursts of 64 and takes
// them as the router does, decoding each. Tapping itself allocates nothing
// once its two buffers are grown; what remains per record is the decoded
// message's own memory (its strings and body).
func BenchmarkTap(b *testing.B) {
	m := stream.Message{DeviceID: "sim-00001", AuthMethod: "sas", ContentType: "application/json",
		MessageID: "3f2a9c", EnqueuedTime: time.Now(),
		Body: []byte(`{"deviceId":"sim-00001","seq":12345,"temperature":25.5,"humidity":40,"site":"A"}`)}
	rec := stream.Encode(nil, []stream.Message{m})[1:] // one record, without the batch's version byte
	t := newTap()
	t.open()
	t.Begin()
	var (
		events []tapEvent
		data   []byte
	)
	const burst = 64
	b.ReportAllocs()
	for b.Loop() {
		for i := range burst {
			if !t.Record(1, uint32(i), rec) {
				b.Fatal("the tap refused a record")
			}
		}
		events, data, _ = t.take(events, data)
		for _, e := range events {
			if _, err := stream.DecodeRecord(e.data); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*burst), "ns/record")
}
