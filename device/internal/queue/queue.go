package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// Errors returned by the queue. Returned errors wrap them with context, so
// test with errors.Is.
var (
	// ErrClosed is returned by calls on a closed queue.
	ErrClosed = errors.New("queue: closed")
	// ErrQueueFull is returned by Enqueue when the queue is full and
	// Options.Full is RejectNew.
	ErrQueueFull = errors.New("queue: full")
	// ErrTooLarge is returned by Enqueue for a record that alone exceeds
	// Options.MaxBytes, so it could never fit.
	ErrTooLarge = errors.New("queue: record larger than MaxBytes")
	// ErrCorrupt is returned by Open when the file is not a queue store or
	// fails its checks. The queue never starts empty over such a file.
	ErrCorrupt = errors.New("queue: store file is corrupt")
	// ErrLocked is returned by Open when another process (or another open
	// Queue) holds the file's lock for longer than Options.LockTimeout.
	ErrLocked = errors.New("queue: store file is locked by another user")
)

// FullPolicy says what Enqueue does when the queue is at its bounds.
type FullPolicy int

const (
	// Block makes Enqueue wait until Acks free enough space, or its
	// context ends.
	Block FullPolicy = iota
	// RejectNew makes Enqueue return ErrQueueFull.
	RejectNew
	// DropOldest deletes the oldest records, in the same transaction that
	// adds the new one, and counts them in Dropped.
	DropOldest
)

// Default bounds, used for zero Options fields.
const (
	DefaultMaxRecords  = 1_000_000
	DefaultMaxBytes    = 1 << 30
	DefaultLockTimeout = 2 * time.Second
)

// Options configures a Queue. The zero value is usable.
type Options struct {
	// MaxRecords bounds the number of records held; 0 means
	// DefaultMaxRecords.
	MaxRecords int
	// MaxBytes bounds the encoded size of the records held (payload plus
	// about 20 bytes plus stream, id and properties); 0 means
	// DefaultMaxBytes. bbolt maps the whole file, and 32-bit arm can map at
	// most 2 GB, so keep it well below that there.
	MaxBytes int64
	// Full is what Enqueue does at the bounds; the default is Block.
	Full FullPolicy
	// Linger is how long the committer gathers requests after the first
	// one arrives before committing. 0 (the default) commits whatever is
	// waiting as soon as the previous commit finishes, which already
	// batches concurrent callers; a small Linger trades latency for fewer
	// fsyncs when callers are few.
	Linger time.Duration
	// LockTimeout is how long Open waits for the file lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// NoSync skips fsync on commit. It is for tests and benchmarks only: a
	// crash of the machine (not just the process) can then lose committed
	// records or corrupt the file.
	NoSync bool
	// Logger receives commit failures; nil discards them.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxRecords <= 0 {
		o.MaxRecords = DefaultMaxRecords
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Bucket names and the schema version stored in the meta bucket.
var (
	recordsBucket = []byte("records")
	metaBucket    = []byte("meta")
	versionKey    = []byte("version")
)

const schemaVersion = 1

// Queue is a durable FIFO of outgoing records backed by one bbolt file. It
// is safe for concurrent use.
type Queue struct {
	db   *bbolt.DB
	path string
	opts Options

	reqs    chan *request // to the committer; bounded, senders wait
	done    chan struct{} // closed by Close to stop the committer
	stopped chan struct{} // closed when the committer has returned
	close   sync.Once

	next uint64 // next Seq to assign; owned by the committer goroutine
	// touched counts the bytes written or removed since the last
	// releaseMapped; owned by the committer goroutine.
	touched int64

	mu       sync.Mutex
	count    int           // committed records; guarded by mu
	bytes    int64         // committed encoded bytes; guarded by mu
	resCount int           // records reserved by Enqueues not yet committed; guarded by mu
	resBytes int64         // bytes reserved likewise; guarded by mu
	dropped  uint64        // records deleted by DropOldest; guarded by mu
	changed  chan struct{} // closed and replaced when count or bytes change; guarded by mu
	closed   bool          // guarded by mu
	started  uint64        // commits begun (Peek may see them before the counters do); guarded by mu
	settled  uint64        // the last commit whose outcome is in the counters; guarded by mu
}

// Open opens or creates the queue store at path. It fails with a clear
// error, never an empty queue, when the file is corrupt (ErrCorrupt), when
// it cannot be created or written, or when another process holds it
// (ErrLocked). The directory must exist.
func Open(path string, opts Options) (*Queue, error) {
	opts.setDefaults()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: opts.LockTimeout,
		// The map freelist and not persisting the freelist keep commits
		// small and fast; the freelist is rebuilt by a scan at open.
		FreelistType:   bbolt.FreelistMapType,
		NoFreelistSync: true,
		NoSync:         opts.NoSync,
	})
	switch {
	case errors.Is(err, bbolt.ErrTimeout):
		return nil, fmt.Errorf("queue: open %s: %w (waited %v)", path, ErrLocked, opts.LockTimeout)
	case errors.Is(err, bbolt.ErrInvalid), errors.Is(err, bbolt.ErrChecksum), errors.Is(err, bbolt.ErrVersionMismatch):
		return nil, fmt.Errorf("queue: open %s: %w: %w", path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	q := &Queue{
		db:      db,
		path:    path,
		opts:    opts,
		reqs:    make(chan *request, 1024),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		changed: make(chan struct{}),
	}
	if err := q.load(); err != nil {
		db.Close()
		return nil, err
	}
	go q.run()
	return q, nil
}

// loadChunk is the number of records load checks per read transaction.
const loadChunk = 20_000

// load creates the buckets of a new file, checks an existing one, and
// recomputes the in-memory counters by scanning every record.
func (q *Queue) load() (err error) {
	// bbolt panics on some kinds of page corruption; report them as such.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("queue: open %s: %w: %v", q.path, ErrCorrupt, p)
		}
	}()
	err = q.db.Update(func(tx *bbolt.Tx) error {
		meta, recs := tx.Bucket(metaBucket), tx.Bucket(recordsBucket)
		if meta == nil && recs == nil {
			return initBuckets(tx)
		}
		if meta == nil || recs == nil {
			return fmt.Errorf("%w: missing bucket", ErrCorrupt)
		}
		if v := meta.Get(versionKey); len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
			return fmt.Errorf("%w: unknown schema version %x", ErrCorrupt, v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: open %s: %w", q.path, err)
	}
	// Scan the records in read transactions of loadChunk records, letting
	// go of the mapped pages after each, so a large backlog is not all
	// resident at once.
	var from []byte
	for {
		var more bool
		err = q.db.View(func(tx *bbolt.Tx) error {
			recs := tx.Bucket(recordsBucket)
			last := recs.Sequence()
			c := recs.Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == loadChunk {
					from, more = bytes.Clone(k), true
					return nil
				}
				n++
				if len(k) != 8 || binary.BigEndian.Uint64(k) > last {
					return fmt.Errorf("%w: bad key %x", ErrCorrupt, k)
				}
				if _, err := decode(0, v); err != nil {
					return fmt.Errorf("%w: record %d: %w", ErrCorrupt, binary.BigEndian.Uint64(k), err)
				}
				q.count++
				q.bytes += int64(len(v))
			}
			return nil
		})
		q.releaseMapped()
		if err != nil || !more {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("queue: open %s: %w", q.path, err)
	}
	return q.db.View(func(tx *bbolt.Tx) error {
		q.next = tx.Bucket(recordsBucket).Sequence() + 1
		return nil
	})
}

func initBuckets(tx *bbolt.Tx) error {
	meta, err := tx.CreateBucket(metaBucket)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucket(recordsBucket); err != nil {
		return err
	}
	return meta.Put(versionKey, binary.BigEndian.AppendUint64(nil, schemaVersion))
}

// Peek returns up to max records with Seq greater than after, in Seq order.
// It does not remove them; the sender Acks what the hub acknowledged.
func (q *Queue) Peek(after uint64, max int) ([]Record, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	var out []Record
	err := q.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(recordsBucket).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			r, err := decode(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return fmt.Errorf("%w: record %d: %w", ErrCorrupt, r.Seq, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: peek after %d: %w", after, err)
	}
	return out, nil
}

// Pending returns the number of committed, unacknowledged records and
// their encoded size in bytes.
func (q *Queue) Pending() (count int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count, q.bytes
}

// Settle waits until a commit in progress has updated the counters, so
// that Pending agrees with what Peek has already shown: a reader that saw
// its records gone from Peek calls it before reporting Pending. It waits
// for at most the commit in progress.
func (q *Queue) Settle() {
	q.mu.Lock()
	target := q.started
	for q.settled < target && !q.closed {
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-changed:
		case <-q.stopped:
			return
		}
		q.mu.Lock()
	}
	q.mu.Unlock()
}

// Dropped returns how many records DropOldest has deleted since Open.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// Wait returns nil once Pending reports no records, ctx's error if ctx
// ends first, or ErrClosed if the queue is closed first.
func (q *Queue) Wait(ctx context.Context) error {
	for {
		q.mu.Lock()
		n, changed, closed := q.count, q.changed, q.closed
		q.mu.Unlock()
		switch {
		case n == 0:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-changed:
		case <-q.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the committer, failing requests it has not taken with
// ErrClosed, and closes the file. It is safe to call more than once; later
// calls return nil.
func (q *Queue) Close() error {
	var err error
	q.close.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.done)
		<-q.stopped
		// Write the free page list in a last commit, so the next Open
		// reads it instead of walking every page of the file (which bbolt
		// does when the list is not stored, as after a crash). Commits
		// leave it out otherwise: writing it each time makes Acks slow
		// once a drained backlog has freed many pages.
		q.db.NoFreelistSync = false
		_ = q.db.Update(func(*bbolt.Tx) error { return nil })
		if cerr := q.db.Close(); cerr != nil {
			err = fmt.Errorf("queue: close %s: %w", q.path, cerr)
		}
	})
	return err
}

func (q *Queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}
