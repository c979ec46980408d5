package queue

import (
	"context"
	"fmt"
	"time"
)

// maxBatch bounds the requests applied in one transaction, so one commit's
// dirty pages (and its latency for the first caller in it) stay bounded.
const maxBatch = 4096

// request is one Enqueue (vals set), Ack (acks set) or key-value Update
// (kv set) handed to the committer. The committer sets seq (the first
// record's; the others follow consecutively) and err, then closes done.
type request struct {
	vals     [][]byte // encoded records
	size     int64    // total length of vals
	reserved bool     // Enqueue reserved space for vals; release it after the commit
	acks     []uint64 // Seqs to remove
	kv       []KVOp   // key-value changes, values already encoded
	seq      uint64
	err      error
	done     chan struct{}
}

// Enqueue stores r and returns it with Seq (and ID and Enqueued, when they
// were empty) filled in. It returns only after the commit that holds r is
// fsynced, so the record survives a crash from then on. r.Body is copied;
// the caller may reuse it.
//
// ctx bounds the wait for space (Block) and for handing r to the
// committer. Once the committer has taken r, Enqueue waits for the commit
// whatever ctx does, so an error always means r was not stored.
func (q *Queue) Enqueue(ctx context.Context, r Record) (Record, error) {
	out, err := q.EnqueueBatch(ctx, []Record{r})
	if err != nil {
		return Record{}, err
	}
	return out[0], nil
}

// EnqueueBatch is Enqueue for several records at once: they are committed
// together (all or none) with consecutive Seqs in slice order. A producer
// with many records ready should use it, because each producer waits for
// one commit (one fsync) per call.
func (q *Queue) EnqueueBatch(ctx context.Context, recs []Record) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("queue: enqueue: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	out := make([]Record, len(recs))
	req := &request{vals: make([][]byte, len(recs)), done: make(chan struct{})}
	for i, r := range recs {
		if r.ID == "" {
			r.ID = newID()
		}
		if r.Enqueued.IsZero() {
			r.Enqueued = time.Now()
		}
		r.Seq = 0
		out[i] = r
		req.vals[i] = encode(r)
		req.size += int64(len(req.vals[i]))
	}
	if req.size > q.opts.MaxBytes || len(recs) > q.opts.MaxRecords {
		return nil, fmt.Errorf("%w: %d records, %d bytes encoded; MaxRecords is %d, MaxBytes %d",
			ErrTooLarge, len(recs), req.size, q.opts.MaxRecords, q.opts.MaxBytes)
	}
	if q.opts.Full != DropOldest {
		if err := q.reserve(ctx, len(recs), req.size); err != nil {
			return nil, err
		}
		req.reserved = true
	}
	if err := q.submit(ctx, req); err != nil {
		return nil, fmt.Errorf("queue: enqueue: %w", err)
	}
	for i := range out {
		out[i].Seq = req.seq + uint64(i)
	}
	return out, nil
}

// Ack removes the records with the given Seqs and returns after the
// removal is fsynced. Seqs that are not in the queue (already acknowledged,
// dropped, or never assigned) are ignored, so Acks may come in any order
// and more than once.
func (q *Queue) Ack(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	req := &request{acks: seqs, done: make(chan struct{})}
	if err := q.submit(context.Background(), req); err != nil {
		return fmt.Errorf("queue: ack %d records: %w", len(seqs), err)
	}
	return nil
}

// reserve waits until n records of size bytes in total fit within the
// bounds, counting records other Enqueues have reserved but not yet
// committed, and reserves room for them.
func (q *Queue) reserve(ctx context.Context, n int, size int64) error {
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if q.count+q.resCount+n <= q.opts.MaxRecords && q.bytes+q.resBytes+size <= q.opts.MaxBytes {
			q.resCount += n
			q.resBytes += size
			q.mu.Unlock()
			return nil
		}
		if q.opts.Full == RejectNew {
			err := fmt.Errorf("%w: %d records, %d bytes held or reserved", ErrQueueFull, q.count+q.resCount, q.bytes+q.resBytes)
			q.mu.Unlock()
			return err
		}
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-changed:
		case <-q.done:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("queue: enqueue: waiting for space: %w", ctx.Err())
		}
		q.mu.Lock()
	}
}

// submit hands req to the committer and waits for its outcome.
func (q *Queue) submit(ctx context.Context, req *request) error {
	select {
	case q.reqs <- req:
	case <-q.done:
		q.release(req)
		return ErrClosed
	case <-ctx.Done():
		q.release(req)
		return ctx.Err()
	}
	select {
	case <-req.done:
		return req.err
	case <-q.stopped:
		// The committer may have finished req just before returning.
		select {
		case <-req.done:
			return req.err
		default:
			return ErrClosed
		}
	}
}

// release gives back the space reserved for a request that never reached
// the committer.
func (q *Queue) release(req *request) {
	if !req.reserved {
		return
	}
	q.mu.Lock()
	q.resCount -= len(req.vals)
	q.resBytes -= req.size
	q.broadcast()
	q.mu.Unlock()
}

// broadcast wakes everyone waiting for a change of the counters. q.mu must
// be held.
func (q *Queue) broadcast() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// run is the committer goroutine: it gathers waiting requests and applies
// them in one transaction, until Close.
func (q *Queue) run() {
	defer close(q.stopped)
	batch := make([]*request, 0, 64)
	for {
		select {
		case req := <-q.reqs:
			batch = append(batch, req)
		case <-q.done:
			return
		}
		if q.opts.Linger > 0 {
			batch = q.linger(batch)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case req := <-q.reqs:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		q.commit(batch)
		clear(batch) // drop references so finished requests can be collected
		batch = batch[:0]
	}
}

// linger gathers requests for up to Options.Linger.
func (q *Queue) linger(batch []*request) []*request {
	t := time.NewTimer(q.opts.Linger)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case req := <-q.reqs:
			batch = append(batch, req)
		case <-t.C:
			return batch
		case <-q.done:
			return batch
		}
	}
	return batch
}
