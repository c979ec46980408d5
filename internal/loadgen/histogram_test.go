package loadgen

import (
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	// 1..10000 µs, each once: the p-th percentile is p*100 µs.
	for i := int64(1); i <= 10000; i++ {
		h.record(i * int64(time.Microsecond))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 5 * time.Millisecond},
		{90, 9 * time.Millisecond},
		{99, 9900 * time.Microsecond},
		{100, 10 * time.Millisecond},
	} {
		got := h.percentile(tc.p)
		// Buckets report their upper edge, at most 1/64 above the value.
		if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/subBuckets) {
			t.Errorf("p%v = %v, want %v (+%.1f%%)", tc.p, got, tc.want, 100.0/subBuckets)
		}
	}
	if h.max != int64(10*time.Millisecond) {
		t.Errorf("max = %v, want 10ms", time.Duration(h.max))
	}
}

func TestHistogramSmallAndHuge(t *testing.T) {
	var h histogram
	if got := h.percentile(99); got != 0 {
		t.Fatalf("empty p99 = %v, want 0", got)
	}
	for v := int64(0); v < 64; v++ {
		h.record(v) // exact buckets
	}
	if got := h.percentile(50); got != 31 {
		t.Errorf("p50 of 0..63 = %d, want 31", got)
	}
	h.record(int64(time.Hour)) // beyond the range: last bucket, max stays exact
	if got := h.percentile(100); got != time.Hour {
		t.Errorf("p100 = %v, want 1h (capped at the exact max)", got)
	}
}

func TestBucketEdges(t *testing.T) {
	// Every value falls into a bucket whose upper edge is >= the value and
	// within 1/64 of it, and bucket indexes never go down as values grow.
	prev := 0
	for v := int64(1); v < 1<<40; v = v*9/8 + 1 {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", v, i, prev)
		}
		prev = i
		hi := bucketHigh(i)
		if hi < v || float64(hi-v) > float64(v)/subBuckets {
			t.Fatalf("bucketHigh(bucketOf(%d)) = %d", v, hi)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b histogram
	for range 90 {
		a.record(1000)
	}
	for range 10 {
		b.record(100000)
	}
	a.merge(&b)
	if a.total != 100 || a.max != 100000 {
		t.Fatalf("merged total %d max %d", a.total, a.max)
	}
	if p := a.percentile(90); p > 1100 {
		t.Errorf("p90 = %d, want ~1000", p)
	}
	if p := a.percentile(91); p < 100000 {
		t.Errorf("p91 = %d, want ~100000", p)
	}
}
