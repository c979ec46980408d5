package stream

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestAppendDoesNotAllocate checks Append alone, without the flusher
// running, so that no background allocation hides in the average.
func TestAppendDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector; the plain run checks them")
	}
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("msg-%d", i)
	}
	for _, dedupOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("dedup=%v", dedupOn), func(t *testing.T) {
			cfg := WriterConfig{MaxBatchCount: 1 << 30, MaxBatchBytes: 1 << 30, MaxPending: 1 << 30}
			cfg.setDefaults()
			w := &Writer{cfg: cfg, met: cfg.Metrics, maxRecord: 1 << 20, kick: make(chan struct{}, 1), nextNum: 1}
			w.notFull.L = &w.mu
			if dedupOn {
				w.dd = newDedup(time.Hour, 1024) // smaller than len(ids): ids never repeat within it
			}
			w.open = w.newBatchLocked()
			m := Message{DeviceID: "dev-1", EnqueuedTime: time.Now(), ContentType: "application/json",
				Properties: []Property{{"a", "b"}}, Body: make([]byte, 64)}
			i := 0
			appendOne := func() {
				m.MessageID = ids[i%len(ids)]
				i++
				if len(w.open.ents) == len(ids) { // what the flusher and completer do
					w.open.buf, w.open.ents, w.open.recs, w.pending = w.open.buf[:1], w.open.ents[:0], 0, 0
				}
				if err := w.Append(&m, nil, uint64(i)); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 * len(ids) {
				appendOne() // grow the buffers, fill the dedup window
			}
			// Count every allocation rather than take the rounded-down
			// average of testing.AllocsPerRun. The count is process-wide,
			// so the runtime's own rare allocations are tolerated (a
			// memory profile shows none in Append); one per call is not.
			const calls = 1000000
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range calls {
				appendOne()
			}
			runtime.ReadMemStats(&after)
			if n := after.Mallocs - before.Mallocs; n > calls/10000 {
				t.Errorf("%d calls of Append allocated %d times", calls, n)
			} else {
				t.Logf("%d calls, %d allocations in the process", calls, n)
			}
			if w.open.recs != len(w.open.ents) {
				t.Errorf("%d of %d messages were taken for duplicates", len(w.open.ents)-w.open.recs, len(w.open.ents))
			}
		})
	}
}
