package protocol_test

import (
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// TestAllocations pins the allocation counts of the hot paths, which the
// package documentation promises.
func TestAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts in -short mode are not pinned")
	}
	tok, err := protocol.ParseSAS(vectorToken)
	if err != nil {
		t.Fatal(err)
	}
	now := vectorExpiry.Add(-time.Hour)
	for _, tt := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"empty bag", 0, func() { sinkProps, sinkErr = protocol.ParsePropertyBag("") }},
		{"bag without escapes or app properties", 0, func() { sinkProps, sinkErr = protocol.ParsePropertyBag("$.mid=m1&$.ct=json") }},
		{"node bag", 2, func() { sinkProps, sinkErr = protocol.ParsePropertyBagLimit(nodeBag, 4096, 64) }},
		{"telemetry topic", 0, func() { sinkTopic, sinkErr = protocol.ParseTopic("devices/dev1/messages/events/" + nodeBag) }},
		{"twin topic", 0, func() { sinkTopic, sinkErr = protocol.ParseTopic("$iothub/twin/GET/?$rid=1") }},
		{"verify", 8, func() { sinkErr = tok.Verify(vectorKey, now) }},
	} {
		if got := testing.AllocsPerRun(100, tt.f); got > tt.max {
			t.Errorf("%s: %v allocations, want at most %v", tt.name, got, tt.max)
		}
	}
}
