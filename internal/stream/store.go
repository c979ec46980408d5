package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KV buckets the Store keeps its state in.
const (
	PositionsBucket = "FERRY_POSITIONS"    // consumer-group positions
	IndexBucket     = "FERRY_STREAM_INDEX" // per-stream counts for Streams
)

// StoreConfig configures a Store. The zero value gives the defaults.
type StoreConfig struct {
	// ClockSkew is how far a message's EnqueuedTime may be ahead of the
	// time JetStream stored its batch (the hub stamps messages before they
	// are batched, and an external NATS has its own clock). Reads by time
	// start this much early and filter per message. Default 5s.
	ClockSkew time.Duration
	// ScanBytes bounds the batch bytes one Read examines, so a narrow
	// filter over a long history returns (maybe empty) pages with a
	// cursor instead of scanning for minutes. Default 16 MiB.
	ScanBytes int
	// Replicas is the replication factor of the KV buckets. Default 1.
	Replicas int
	// Logger receives warnings. Nil discards them.
	Logger *slog.Logger
}

func (c *StoreConfig) setDefaults() {
	if c.ClockSkew <= 0 {
		c.ClockSkew = 5 * time.Second
	}
	if c.ScanBytes <= 0 {
		c.ScanBytes = 16 << 20
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store reads the telemetry written by a Writer (on this node or any other
// node on the same NATS) and keeps consumer-group positions. It is safe
// for concurrent use.
type Store struct {
	cfg       StoreConfig
	js        jetstream.JetStream
	st        jetstream.Stream
	positions jetstream.KeyValue
	index     jetstream.KeyValue
	sub       *nats.Subscription

	mu      sync.Mutex
	changed chan struct{} // guarded by mu; closed on the next stored batch; nil when nobody waits
	closed  bool          // guarded by mu; set by Close: Reads no longer wait

	idxMu sync.Mutex // serialises index catch-up
	idx   *streamIndex
	idxRv uint64 // KV revision idx was loaded from or saved as; guarded by idxMu
}

// NewStore opens the ingest stream (creating it with default limits if no
// Writer has yet) and the KV buckets, and subscribes to the writers'
// notifications. Close unsubscribes.
func NewStore(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (*Store, error) {
	cfg.setDefaults()
	st, err := openIngest(ctx, js)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, js: js, st: st}
	s.positions, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: PositionsBucket, Description: "Ferry consumer-group positions",
		History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("stream: open %s: %w", PositionsBucket, err)
	}
	s.index, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: IndexBucket, Description: "Ferry stream index",
		History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("stream: open %s: %w", IndexBucket, err)
	}
	s.sub, err = js.Conn().Subscribe(NotifySubject, func(*nats.Msg) { s.notify() })
	if err != nil {
		return nil, fmt.Errorf("stream: subscribe %s: %w", NotifySubject, err)
	}
	return s, nil
}

// Close stops listening for new batches; Reads waiting for them return.
func (s *Store) Close() error {
	err := s.sub.Unsubscribe()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.notify()
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("stream: close store: %w", err)
	}
	return nil
}

// notify wakes every Read waiting for a new batch.
func (s *Store) notify() {
	s.mu.Lock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	s.mu.Unlock()
}

// Changed returns a channel closed when the next batch's notice arrives
// (from any Writer), or nil after Close. Taken before a Read that found
// nothing new, it tells the reader when to read again without missing a
// batch stored in between.
func (s *Store) Changed() <-chan struct{} { return s.changedChan() }

// changedChan returns a channel closed by the next notification, or nil
// after Close. Taking it before a scan means a batch stored during the scan
// is not missed.
func (s *Store) changedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}
