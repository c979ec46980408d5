package stream

import (
	"log/slog"
	"time"
)

// Names in NATS. The ingest stream holds one message per batch on one
// subject; the notify subject carries a core NATS message (the batch's
// sequence) after each stored batch, so that waiting readers wake up.
const (
	IngestStream  = "FERRY_INGEST"
	IngestSubject = "ferry.ingest"
	NotifySubject = "ferry.notify.ingest"
)

// WriterConfig configures a Writer. The zero value gives the defaults.
type WriterConfig struct {
	// Linger is the least time between two batch writes: while the
	// previous write began less than Linger ago, new messages wait (at
	// most Linger) and join one batch. After a quiet spell a message is
	// written at once. So fsyncs per second stay at most 1/Linger under
	// light load, and batches grow with load. Default 1ms; negative means 0.
	Linger time.Duration
	// MaxBatchBytes caps a batch's size; a batch always takes at least
	// one whole message. Default 1 MiB.
	MaxBatchBytes int
	// MaxBatchCount caps the messages in a batch. Default 4096.
	MaxBatchCount int
	// MaxPending bounds the messages appended but not yet acknowledged.
	// Append blocks while it is reached, which stalls the publishing
	// client's read loop (MQTT backpressure); Metrics.Blocked counts it.
	// Default 65536.
	MaxPending int
	// InFlightBatches is how many batches may await their JetStream
	// acknowledgement at once. Default 2.
	InFlightBatches int
	// AckTimeout is how long to wait for JetStream to acknowledge a batch
	// before failing its messages. Default 10s.
	AckTimeout time.Duration
	// AfterBatch, when set, is called after all Acked calls of one batch,
	// on the same goroutine, so an Acker can flush what Acked buffered.
	AfterBatch func()
	// Tap, when set, is shown the messages as they are appended, before
	// they are stored; see Tap.
	Tap Tap
	// Settled, when set, is told the fate of every batch that holds
	// records, in batch order, on the completer goroutine after the
	// batch's Acked calls: its number (as given to Tap.Record) and its
	// JetStream sequence with a nil error when it is stored, or the error
	// when it is not, and how many records it holds. It must return at
	// once.
	Settled func(num, seq uint64, records int, err error)
	// Metrics, when set, receives the writer's counters.
	Metrics *Metrics
	// Logger receives errors. Nil discards them.
	Logger *slog.Logger

	// MaxAge and MaxBytes bound the ingest stream's retention; zero means
	// unlimited. Replicas is its replication factor (default 1; 3 on a
	// cluster).
	MaxAge   time.Duration
	MaxBytes int64
	Replicas int

	// DedupWindow is how long a message id is remembered: a message whose
	// (DeviceID, ModuleID, MessageID) was appended within the window is
	// acknowledged without being stored again. Default 10 minutes;
	// negative disables deduplication. Messages without MessageID are
	// never deduplicated.
	DedupWindow time.Duration
	// DedupMax bounds the remembered ids; under heavy load the effective
	// window is the last DedupMax messages. Default 262144.
	DedupMax int

	// Now returns the current time; it sets how far back NewWriter looks
	// for ids to deduplicate. Default time.Now.
	Now func() time.Time
}

func (c *WriterConfig) setDefaults() {
	if c.Linger == 0 {
		c.Linger = time.Millisecond
	} else if c.Linger < 0 {
		c.Linger = 0
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 1 << 20
	}
	if c.MaxBatchCount <= 0 {
		c.MaxBatchCount = 4096
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 65536
	}
	if c.InFlightBatches <= 0 {
		c.InFlightBatches = 2
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = new(Metrics)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 10 * time.Minute
	}
	if c.DedupMax <= 0 {
		c.DedupMax = 1 << 18
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Tap is shown a writer's messages as they are appended, before they are
// stored: the router routes from it while it waits at the end of the
// store, so a device-to-device message does not wait for the disk. Its
// methods run with the writer's lock held and must return at once.
//
// The writer shows messages in runs. It asks Begin only when nothing is
// pending (every message appended so far is acknowledged), so a run starts
// at a batch's first record and everything before it is settled; the run
// then shows every record appended, in order, until Record returns false.
// Duplicates (acknowledged without storing) are not records and are not
// shown. Every batch that holds a shown record is later given to
// WriterConfig.Settled.
type Tap interface {
	// Begin reports whether to start a run.
	Begin() bool
	// Record shows one record: its batch's number, its index in the batch
	// and its encoding (see DecodeRecord), which must not be kept.
	// Returning false ends the run.
	Record(num uint64, index uint32, rec []byte) bool
}
