package stream

import (
	"errors"
	"log/slog"
	"strconv"
	"time"
)

// completeLoop is the completer goroutine: it waits for each published
// batch's acknowledgement in seal order and delivers the Acked calls. Doing
// this on one goroutine, in order, is what keeps acks in append order per
// client even with several batches in flight.
func (w *Writer) completeLoop() {
	defer close(w.exited)
	defer w.cancel()
	var note []byte
	for b := range w.sent {
		if b.fut != nil {
			select {
			case ack := <-b.fut.Ok():
				b.seq = ack.Sequence
			case err := <-b.fut.Err():
				b.err = err
			case <-w.ctx.Done():
				b.err = ErrClosed
			}
		}
		w.complete(b)
		if b.recs > 0 && w.cfg.Settled != nil {
			w.cfg.Settled(b.num, b.seq, b.recs, b.err)
		}
		if b.err == nil && b.recs > 0 {
			// Wake readers waiting for new data. Best effort: a reader
			// that misses it still sees the batch on its next read.
			note = strconv.AppendUint(note[:0], b.seq, 10)
			_ = w.nc.Publish(NotifySubject, note)
		}
		slot := b.slot
		w.recycle(b)
		if slot {
			w.slots <- struct{}{} // cannot block: the slot was taken from it
		}
	}
}

// complete delivers the Acked calls of b and AfterBatch.
func (w *Writer) complete(b *batch) {
	if b.err != nil && !errors.Is(b.err, ErrClosed) {
		w.cfg.Logger.Error("stream: batch not stored", slog.Int("messages", len(b.ents)), slog.Any("err", b.err))
	}
	w.settleDedup(b)
	now := time.Since(w.epoch)
	var stored, dups, failed uint64
	for i := range b.ents {
		e := &b.ents[i]
		err := b.err
		if e.dup && err == nil && !e.originStored {
			err = errDupUnsure
		}
		if e.acker != nil { // QoS 0 messages have nobody to tell
			if e.acker != nil {
				e.acker.Acked(e.token, err)
			}
		}
		switch {
		case err != nil:
			failed++
		case e.dup:
			dups++
		default:
			stored++
		}
		w.met.Latency.Observe(now - e.at)
	}
	w.met.Stored.Add(stored)
	w.met.Duplicates.Add(dups)
	w.met.Failed.Add(failed)
	if b.recs > 0 && b.err == nil {
		w.met.Batches.Add(1)
		w.met.BatchBytes.Add(uint64(len(b.buf)))
	}
	if w.cfg.AfterBatch != nil {
		w.cfg.AfterBatch()
	}
}

// errDupUnsure fails a duplicate whose original's fate is unknown; the
// device resends it and the resend is stored.
var errDupUnsure = errors.New("stream: duplicate of a message that was not stored")

// settleDedup updates the dedup window for b's outcome: ids of a failed
// batch are forgotten so resends get stored, and each duplicate learns
// whether its original is stored.
func (w *Writer) settleDedup(b *batch) {
	if w.dd == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range b.ents {
		e := &b.ents[i]
		switch {
		case e.dup:
			e.originStored = w.dd.stored(e.key, e.origin)
		case e.keyed && b.err != nil:
			w.dd.forget(e.key, b.num)
		}
	}
}

// recycle returns b's entries to the pending budget and b to the free
// list. A failed batch's buffer is dropped: the NATS client may still hold
// it for a retry.
func (w *Writer) recycle(b *batch) {
	clear(b.ents) // drop Acker references
	w.mu.Lock()
	w.pending -= len(b.ents)
	if w.waiters > 0 {
		w.notFull.Broadcast()
	}
	if b.err == nil && cap(b.buf) <= 2*w.cfg.MaxBatchBytes {
		b.buf, b.ents, b.recs, b.fut, b.seq, b.slot = b.buf[:1], b.ents[:0], 0, nil, 0, false
		w.free = append(w.free, b)
	}
	w.mu.Unlock()
}
