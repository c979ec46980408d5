package loadgen

import (
	"math/bits"
	"time"
)

// The histogram keeps latencies in log-linear buckets, the layout HDR
// histograms use: every power of two is split into subBuckets equal parts, so
// a recorded value is off by at most 1/subBuckets (1.6%) and recording is a
// few integer operations with no allocation. Values below subBuckets ns get a
// bucket each.
const (
	subBucketBits = 6
	subBuckets    = 1 << subBucketBits
	// maxExp bounds the range at 2^(maxExp+subBucketBits) ns (about 36 minutes);
	// larger values land in the last bucket.
	maxExp     = 35
	numBuckets = (maxExp + 1) * subBuckets
)

// histogram is a fixed-size latency histogram. It is not safe for concurrent
// use: each connection's reader owns one, and they are merged at the end.
type histogram struct {
	counts [numBuckets]uint32
	total  int64
	max    int64 // exact, not bucketed
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v int64) int {
	if v < subBuckets {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	// e is how far v must be shifted right to leave subBucketBits+1 bits,
	// the top one always set.
	e := bits.Len64(uint64(v)) - subBucketBits - 1
	if e >= maxExp {
		return numBuckets - 1
	}
	return (e+1)*subBuckets + int(v>>e) - subBuckets
}

// bucketHigh returns the largest value that falls into bucket i, so that a
// reported percentile never understates a latency.
func bucketHigh(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	e := i/subBuckets - 1
	m := int64(i%subBuckets + subBuckets)
	return (m+1)<<e - 1
}

// record adds one value in nanoseconds.
func (h *histogram) record(v int64) {
	h.counts[bucketOf(v)]++
	h.total++
	if v > h.max {
		h.max = v
	}
}

// merge adds every value of o to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// percentile returns the value at or below which p percent (0 < p <= 100) of
// the recorded values lie, as the upper edge of its bucket capped at the
// exact maximum. It returns 0 when nothing was recorded.
func (h *histogram) percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	// rank is the 1-based position of the wanted value in sorted order.
	rank := int64(float64(h.total)*p/100 + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen int64
	for i, c := range h.counts {
		seen += int64(c)
		if seen >= rank && i == numBuckets-1 {
			return time.Duration(h.max) // the overflow bucket has no upper edge
		}
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}
