package stream

import (
	"time"
)

// flushLoop is the flusher goroutine: it seals batches and publishes them,
// at most InFlightBatches awaiting acknowledgement at once. It exits after
// the writer is closed and everything is handed to the completer.
func (w *Writer) flushLoop() {
	defer close(w.sent)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		// Take an in-flight slot before sealing: while all slots are
		// busy, the open batch keeps filling, which is how batches grow
		// under load.
		select {
		case <-w.slots:
		case <-w.ctx.Done():
			w.failRest()
			return
		}
		b := w.next(timer)
		if b == nil {
			if w.ctx.Err() != nil {
				w.failRest()
			}
			return
		}
		b.slot = true
		w.publish(b)
		w.sent <- b
	}
}

// next waits until a batch should be written and seals it. It returns nil
// when the writer is closing and nothing is left, or when it gave up.
func (w *Writer) next(timer *time.Timer) *batch {
	for {
		w.mu.Lock()
		if len(w.ready) > 0 {
			b := w.ready[0]
			w.ready = w.ready[1:]
			if len(w.ready) == 0 {
				w.ready = w.ready[:0:0] // let the backing array go
			}
			w.lastSeal = time.Now()
			w.mu.Unlock()
			return b
		}
		var wait time.Duration
		if len(w.open.ents) > 0 {
			now := time.Now()
			wait = w.lastSeal.Add(w.cfg.Linger).Sub(now)
			if w.closing || wait <= 0 {
				b := w.open
				w.open = w.newBatchLocked()
				w.lastSeal = now
				w.mu.Unlock()
				return b
			}
		} else if w.closing {
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-w.kick:
			timer.Stop() // since Go 1.23 no stale tick can follow
		case <-timer.C:
		case <-w.ctx.Done():
			return nil
		}
	}
}

// publish sends b to JetStream without waiting for the acknowledgement. A
// batch of duplicates only is not sent at all.
func (w *Writer) publish(b *batch) {
	if b.recs == 0 {
		return
	}
	b.msg.Data = b.buf
	b.fut, b.err = w.js.PublishMsgAsync(&b.msg)
}

// failRest hands every batch not yet published to the completer with
// ErrClosed, in order, so their Acked calls keep per-client order.
func (w *Writer) failRest() {
	w.mu.Lock()
	rest := append(w.ready, w.open)
	w.ready, w.open = nil, nil
	w.mu.Unlock()
	for _, b := range rest {
		if b != nil && len(b.ents) > 0 {
			b.err = ErrClosed
			w.sent <- b
		}
	}
}
