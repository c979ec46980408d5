package route

import (
	"math"
	"sync"

	"github.com/ferry-iot/ferry/internal/stream"
)

// tapLimit bounds the records shown to the router and not yet taken by it;
// beyond it the run ends and the router reads the rest from the store.
const tapLimit = 4096

// tapEvent is one record shown by the ingest writer, or one batch's fate.
type tapEvent struct {
	record bool
	num    uint64 // the writer's batch number
	index  uint32 // record: its index in the batch
	data   []byte // record: a copy of its encoding, in the tap's buffer
	seq    uint64 // fate: the batch's sequence when stored
	recs   int    // fate: how many records the batch holds
	err    error  // fate: why it was not stored
}

// tap is the router's side of the ingest writer's stream.Tap and Settled
// hook: while the router waits at the end of the store it is active, and
// every record the writer shows and every batch's fate queue up, in the
// order they happened, for the router to take.
type tap struct {
	wake  chan struct{} // cap 1: events were queued
	limit int           // tapLimit; smaller in tests

	mu       sync.Mutex
	active   bool            // guarded by mu; the router takes events
	want     bool            // guarded by mu; the router routes shown records
	broken   bool            // guarded by mu; the writer's run was refused: Record refuses until Begin
	overflow bool            // guarded by mu; a record was refused because the router is behind
	events   []tapEvent      // guarded by mu
	data     []byte          // guarded by mu; the records' data of events
	records  int             // guarded by mu; record events in events
	copies   map[uint64]bool // guarded by mu; sequences of stored routed copies not yet passed
	stored   uint64          // guarded by mu; the sequence of the last ingest batch stored
}

func newTap() *tap { return &tap{wake: make(chan struct{}, 1), limit: tapLimit} }

// Begin implements stream.Tap.
func (t *tap) Begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.want {
		return false
	}
	t.broken = false
	return true
}

// Record implements stream.Tap.
func (t *tap) Record(num uint64, index uint32, rec []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.want || t.broken || t.records >= t.limit {
		if t.want && !t.broken {
			t.overflow = true // the router is behind: it reads the rest from the store
		}
		t.broken = true
		return false
	}
	t.records++
	start := len(t.data)
	t.data = append(t.data, rec...)
	// Full slice expression: appending to data never writes into an
	// earlier record's (a reallocated data leaves them in the old array).
	t.push(tapEvent{record: true, num: num, index: index, data: t.data[start:len(t.data):len(t.data)]})
	return true
}

// settled is the ingest writer's Settled hook.
func (t *tap) settled(num, seq uint64, recs int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil && seq > t.stored {
		t.stored = seq
	}
	if t.active {
		t.push(tapEvent{num: num, seq: seq, recs: recs, err: err})
	}
}

// push queues e; mu is held.
func (t *tap) push(e tapEvent) {
	t.events = append(t.events, e)
	if len(t.events) == 1 {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// open starts taking events and records. The writer's next run starts
// only when nothing of it is pending (Begin), so nothing is missed. It
// returns the sequence of the last ingest batch stored before: one stored
// after the router's last read and before open has no fate event, and
// routing a later batch from the tap would route out of order.
func (t *tap) open() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.active, t.want, t.broken, t.overflow = true, true, true, false
	return t.stored
}

// stop takes no more records; fates still come until close.
func (t *tap) stop() {
	t.mu.Lock()
	t.want, t.broken = false, true
	t.mu.Unlock()
}

// close stops taking events and drops those not taken.
func (t *tap) close() {
	t.mu.Lock()
	t.active, t.want, t.broken = false, false, true
	clear(t.events)
	t.events, t.data, t.records = t.events[:0], t.data[:0], 0
	t.mu.Unlock()
}

// maxSpare bounds the data buffer the tap keeps for reuse: a burst of large
// records should not pin its memory for good.
const maxSpare = 4 << 20

// take returns the queued events, the buffer holding their records' data,
// and whether a record was refused because the router was behind. The
// caller hands back the events and data of its previous take, which it is
// done with, for the tap to reuse: under load the router and the writer
// swap two pairs of buffers instead of allocating.
func (t *tap) take(spare []tapEvent, spareData []byte) ([]tapEvent, []byte, bool) {
	clear(spare)
	if cap(spareData) > maxSpare {
		spareData = nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ev, data := t.events, t.data
	t.events, t.data, t.records = spare[:0], spareData[:0], 0
	return ev, data, t.overflow
}

// Tap is shown the ingest writer's records before they are stored
// (stream.WriterConfig.Tap); the router routes them while it waits at the
// end of the store.
func (s *Service) Tap() stream.Tap { return s.tap }

// Settled is the ingest writer's Settled hook: the fate of each batch.
func (s *Service) Settled(num, seq uint64, records int, err error) {
	s.tap.settled(num, seq, records, err)
}

// CopyStored is the Settled hook of the writer that stores routed copies
// and dead letters: the router, which never routes them, steps over such
// a batch at the end of the store instead of taking it for a gap.
func (s *Service) CopyStored(_, seq uint64, _ int, err error) {
	if err != nil {
		return
	}
	t := s.tap
	t.mu.Lock()
	if t.copies == nil {
		t.copies = make(map[uint64]bool)
	}
	t.copies[seq] = true
	t.mu.Unlock()
}

// skipCopies moves pos over the routed copies stored right after it.
func (t *tap) skipCopies(pos stream.Cursor) stream.Cursor {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pos.Index == math.MaxUint32 && t.copies[pos.Seq+1] {
		delete(t.copies, pos.Seq+1)
		pos = stream.Cursor{Seq: pos.Seq + 1, Index: math.MaxUint32}
	}
	return pos
}

// forgetCopies drops the routed copies at or before seq: reading passed them.
func (t *tap) forgetCopies(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.copies {
		if c <= seq {
			delete(t.copies, c)
		}
	}
}
