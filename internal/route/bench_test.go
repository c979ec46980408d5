package route

import (
	"context"
	"fmt"
	"testing"

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
