// Package queue is the device SDK's durable outgoing message queue: a
// single bbolt file that holds every message between Enqueue and the hub's
// acknowledgement.
//
// # Durability
//
// [Queue.Enqueue] returns nil only after the record is committed to the
// store file and the file is fsynced (unless [Options.NoSync] is set, which
// is for tests and benchmarks only). A record whose Enqueue returned nil
// survives a process crash (SIGKILL) and, on storage that honours fsync, a
// power loss. A record whose Enqueue returned an error was not stored,
// except that nothing can be promised for the records of a commit whose
// fsync itself failed. [Queue.Ack] likewise returns after the removal is
// fsynced; an Ack lost to a crash only means the record is sent again, and
// the hub drops the duplicate by [Record.ID].
//
// # Ordering
//
// Every committed record gets a [Record.Seq] that is strictly greater than
// the Seq of every record committed before it, including records committed
// (and perhaps acknowledged) in earlier runs of the process: Seqs are never
// reused. Concurrent Enqueue calls are ordered by the commit that takes
// them, and within one commit by arrival at the committer. [Queue.Peek]
// returns records in Seq order.
//
// # Group commit
//
// One committer goroutine owns all writes. It takes every Enqueue and Ack
// request waiting at that moment (after [Options.Linger], if set) and
// applies them in one bbolt transaction, so one fsync covers them all. This
// is what makes durable enqueues cheap: an fsync costs about a millisecond
// on SSD and much more on an SD card, whatever it carries.
//
// # Bounds
//
// The queue holds at most [Options.MaxRecords] records and
// [Options.MaxBytes] bytes of encoded records. When full, [Options.Full]
// decides: [Block] waits for Acks to free space, [RejectNew] returns
// [ErrQueueFull], and [DropOldest] deletes the oldest records in the same
// transaction that adds the new one and counts them in [Queue.Dropped].
//
// The file is locked while open, so two processes cannot share it.
//
// # Key-value state
//
// The SDK's other durable state (twin documents, reported-property
// patches, the cloud-to-device inbox) lives in named key-value buckets of
// the same file: [Queue.Update] (and [Queue.Put], [Queue.Delete]) go
// through the committer and return once fsynced, all ops of one call in
// one transaction; [Queue.Get] and [Queue.ForEach] read committed state.
// Every value carries a CRC-32C like a record does.
package queue
