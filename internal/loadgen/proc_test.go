package loadgen

import (
	"os"
	"testing"
)

func TestSampleSelf(t *testing.T) {
	if ticks := clockTicks(); ticks <= 0 {
		t.Fatalf("clock ticks = %d", ticks)
	}
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss <= 0 {
		t.Errorf("rss = %d, want > 0", s.rss)
	}
	if s.cpu < 0 {
		t.Errorf("cpu = %v", s.cpu)
	}
	if _, err := sampleProc(-5); err == nil {
		t.Error("sampleProc(-5) succeeded")
	}
}
