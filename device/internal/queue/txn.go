package queue

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// delta is what one commit changed, applied to the counters only after the
// transaction is durable.
type delta struct {
	count   int
	bytes   int64
	dropped uint64
	touched int64 // bytes added plus bytes removed
}

// commit applies batch in one bbolt transaction (one fsync), then updates
// the counters and completes every request in it with the outcome.
func (q *Queue) commit(batch []*request) {
	var last uint64
	for _, req := range batch {
		if len(req.vals) > 0 {
			req.seq = q.next
			// Advanced even if the commit fails: a skipped Seq is harmless,
			// and it keeps Seqs strictly increasing within this run.
			q.next += uint64(len(req.vals))
			last = q.next - 1
		}
	}
	q.mu.Lock()
	q.started++ // Settle waits until the counters include this commit
	gen := q.started
	q.mu.Unlock()
	var d delta
	err := q.db.Update(func(tx *bbolt.Tx) error {
		var err error
		d, err = q.apply(tx.Bucket(recordsBucket), batch, last)
		if err != nil {
			return err
		}
		return applyKV(tx, batch)
	})
	if err != nil {
		err = fmt.Errorf("commit of %d requests to %s: %w", len(batch), q.path, err)
		q.opts.Logger.Error("queue commit failed", "path", q.path, "requests", len(batch), "err", err)
	}

	q.mu.Lock()
	for _, req := range batch {
		if req.reserved {
			q.resCount -= len(req.vals)
			q.resBytes -= req.size
		}
	}
	if err == nil {
		q.count += d.count
		q.bytes += d.bytes
		q.dropped += d.dropped
	}
	q.settled = gen
	q.broadcast()
	q.mu.Unlock()

	for _, req := range batch {
		req.err = err
		close(req.done)
	}
	if err == nil {
		q.touched += d.touched
		if q.touched >= releaseEvery {
			q.touched = 0
			q.releaseMapped()
		}
	}
}

// releaseEvery is how many bytes of records are added or removed between
// two releaseMapped calls: it bounds the store's pages in the resident set
// to a few times that.
const releaseEvery = 1 << 20

// apply runs inside the write transaction: acks first (so they free space
// for the adds), then the adds, then DropOldest's deletions.
func (q *Queue) apply(b *bbolt.Bucket, batch []*request, last uint64) (delta, error) {
	// Seqs only grow: records are appended at the right edge, where
	// bbolt's default split (half full) would leave every page half empty.
	b.FillPercent = 1.0
	var d delta
	for _, req := range batch {
		for _, seq := range req.acks {
			k := seqKey(seq)
			if v := b.Get(k); v != nil {
				d.count--
				d.bytes -= int64(len(v))
				d.touched += int64(len(v))
				if err := b.Delete(k); err != nil {
					return delta{}, fmt.Errorf("ack %d: %w", seq, err)
				}
			}
		}
	}
	for _, req := range batch {
		for i, val := range req.vals {
			seq := req.seq + uint64(i)
			if err := b.Put(seqKey(seq), val); err != nil {
				return delta{}, fmt.Errorf("put %d: %w", seq, err)
			}
		}
		d.count += len(req.vals)
		d.bytes += req.size
		d.touched += req.size
	}
	if last != 0 {
		// The bucket's sequence remembers the last Seq even once every
		// record is acknowledged, so Seqs are never reused after a restart.
		if err := b.SetSequence(last); err != nil {
			return delta{}, err
		}
	}
	if q.opts.Full == DropOldest {
		if err := q.dropOldest(b, &d); err != nil {
			return delta{}, err
		}
	}
	return d, nil
}

// dropOldest deletes the oldest records until the queue, as this
// transaction leaves it, is within its bounds.
func (q *Queue) dropOldest(b *bbolt.Bucket, d *delta) error {
	q.mu.Lock()
	count, bytes := q.count+d.count, q.bytes+d.bytes
	q.mu.Unlock()
	c := b.Cursor()
	for count > q.opts.MaxRecords || bytes > q.opts.MaxBytes {
		k, v := c.First()
		if k == nil {
			break
		}
		seq, size := binary.BigEndian.Uint64(k), int64(len(v))
		if err := c.Delete(); err != nil {
			return fmt.Errorf("drop %d: %w", seq, err)
		}
		count--
		bytes -= size
		d.count--
		d.bytes -= size
		d.dropped++
	}
	return nil
}
