package stream

import (
	"sync/atomic"
	"time"
)

// Metrics counts what a Writer does. All fields are safe to read at any
// time; the hub exports them to Prometheus. The zero value is ready to use.
type Metrics struct {
	Appended   atomic.Uint64 // messages accepted by Append (duplicates included)
	Stored     atomic.Uint64 // messages acknowledged as durably stored
	Duplicates atomic.Uint64 // messages acknowledged without storing: already stored
	Failed     atomic.Uint64 // messages acknowledged with an error
	Batches    atomic.Uint64 // batches written; with natsd Sync, one fsync each
	BatchBytes atomic.Uint64 // bytes of all batches written
	Blocked    atomic.Uint64 // Append calls that waited because MaxPending was reached
	Latency    Histogram     // from Append to Acked, per message
}

// LatencyBuckets are the upper bounds of Histogram's buckets; a last,
// implicit bucket holds everything slower.
var LatencyBuckets = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// Histogram is a fixed-bucket latency histogram ([LatencyBuckets]) made of
// atomic counters. The zero value is ready to use.
type Histogram struct {
	counts [len(LatencyBuckets) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a copy of a Histogram's state.
type HistogramSnapshot struct {
	// Counts[i] is the number of observations in bucket i: at most
	// LatencyBuckets[i] and more than the bound before it. The last entry
	// counts observations above every bound. Counts are not cumulative.
	Counts [len(LatencyBuckets) + 1]uint64
	Count  uint64        // total observations
	Sum    time.Duration // total of all observations
}

// Snapshot returns the histogram's current state. Concurrent Observe calls
// may be partly included.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Quantile returns an upper bound for the q-th quantile (0 < q <= 1): the
// bound of the bucket it falls in, or the largest bound when it falls
// above them all. It returns 0 when nothing was observed.
func (s HistogramSnapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := uint64(q * float64(s.Count))
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank && i < len(LatencyBuckets) {
			return LatencyBuckets[i]
		}
	}
	return LatencyBuckets[len(LatencyBuckets)-1]
}
