package stream_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

// recTap is a stream.Tap that ends every run after runLen records and
// checks what the writer promises about runs.
type recTap struct {
	t      *testing.T
	mu     sync.Mutex
	runLen int
	inRun  int
	last   struct{ num, index uint64 }
	shown  map[uint64]int // batch number: records shown
	fates  []uint64       // batch numbers settled, in order
	recs   map[uint64]int // batch number: records it holds
	runs   int
}

func (r *recTap) Begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs++
	r.inRun = 0
	return true
}

func (r *recTap) Record(num uint64, index uint32, rec []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := stream.DecodeRecord(rec); err != nil {
		r.t.Errorf("record %d/%d: %v", num, index, err)
	}
	switch {
	case r.inRun == 0 && index != 0:
		r.t.Errorf("a run starts at record %d of batch %d, not at a batch's first", index, num)
	case r.inRun == 0 && len(r.fates) > 0 && r.fates[len(r.fates)-1] >= num:
		r.t.Errorf("a run starts in batch %d, not after the last settled %d", num, r.fates[len(r.fates)-1])
	case r.inRun > 0 && !(num == r.last.num && uint64(index) == r.last.index+1 || num > r.last.num && index == 0):
		r.t.Errorf("record %d/%d follows %d/%d in a run", num, index, r.last.num, r.last.index)
	}
	r.last.num, r.last.index = num, uint64(index)
	r.shown[num]++
	r.inRun++
	return r.inRun < r.runLen
}

func (r *recTap) settled(num, seq uint64, recs int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.t.Errorf("batch %d: %v", num, err)
	}
	if n := len(r.fates); n > 0 && r.fates[n-1] >= num {
		r.t.Errorf("batch %d settled after %d", num, r.fates[n-1])
	}
	r.fates = append(r.fates, num)
	r.recs[num] = recs
}

// The writer shows records in runs that start at a batch's first record
// once everything before is settled, and show every record after in
// order until the tap ends the run; every batch with records is settled
// once, in order, with its record count; duplicates are not records.
func TestWriterTapRuns(t *testing.T) {
	h := startHub(t, t.TempDir())
	tap := &recTap{t: t, runLen: 7, shown: map[uint64]int{}, recs: map[uint64]int{}}
	w := newWriter(t, h, stream.WriterConfig{MaxBatchCount: 5, Tap: tap, Settled: tap.settled})
	const msgs = 400
	r := newRecorder(2 * msgs)
	for i := range msgs {
		m := msg("d", i, time.Now())
		if err := w.Append(&m, r, uint64(i)); err != nil {
			t.Fatal(err)
		}
		if i%9 == 0 { // let everything settle: a new run may start
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
				r.mu.Lock()
				n := len(r.acks)
				r.mu.Unlock()
				if n == i+1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d acknowledged", n, i+1)
				}
			}
		}
	}
	for i := range msgs { // the same ids again: duplicates, neither shown nor settled
		m := msg("d", i, time.Now())
		if err := w.Append(&m, r, uint64(msgs+i)); err != nil {
			t.Fatal(err)
		}
	}
	r.wait(t, 10*time.Second)
	tap.mu.Lock()
	defer tap.mu.Unlock()
	total, shown := 0, 0
	for _, num := range tap.fates {
		total += tap.recs[num]
		if s := tap.shown[num]; s > tap.recs[num] {
			t.Errorf("batch %d: %d records shown of %d", num, s, tap.recs[num])
		}
	}
	for _, n := range tap.shown {
		shown += n
	}
	if total != msgs {
		t.Errorf("settled batches hold %d records, want %d", total, msgs)
	}
	if tap.runs < 10 || shown == 0 {
		t.Errorf("%d runs showed %d records", tap.runs, shown)
	}
	t.Logf("%d batches, %d runs, %d of %d records shown", len(tap.fates), tap.runs, shown, msgs)
}
