// Package stream stores device-to-cloud telemetry durably in NATS
// JetStream and reads it back.
//
// # Model
//
// A [Message] (body, system properties, application properties) belongs to
// a stream, and streams belong to stream groups; both default to
// [DefaultName]. All messages of all streams go through one JetStream
// stream, [IngestStream], in batches: each JetStream message is one batch
// in the compact binary encoding of [Encode]. A [Cursor] (batch sequence
// and index in the batch) names a message's position.
//
// # Writing
//
// [Writer.Append] encodes a message into the open batch and returns at
// once. A flusher goroutine writes batches (group commit, see
// [WriterConfig.Linger]); a completer goroutine waits for JetStream's
// acknowledgement of each batch and then calls [Acker.Acked] for each of
// its messages, followed by [WriterConfig.AfterBatch].
//
// The guarantees, exactly:
//
//   - Exactly once per successful Append, Acked is called for its token:
//     with a nil error only after JetStream acknowledged the batch holding
//     the message (or, for a duplicate, the batch holding the original).
//     With natsd's Sync option that acknowledgement follows an fsync, so
//     an acked message survives a crash of the process or the machine.
//   - Acked calls happen on one goroutine, in the order of the Append
//     calls that returned nil, across all Ackers. In particular each
//     Acker sees its tokens in its own append order, errors included.
//   - A non-nil error means the message may or may not be stored (for
//     example the acknowledgement timed out): the client should resend,
//     which is why stored messages are at least once, not exactly once.
//   - Messages with a MessageID are deduplicated on (DeviceID, ModuleID,
//     MessageID) within [WriterConfig.DedupWindow]: a resend is acked and
//     not stored again. The window is rebuilt from the stream's tail when
//     a Writer starts.
//   - Append blocks only when [WriterConfig.MaxPending] messages await
//     their ack; that is the backpressure on a publishing client.
//   - After [Writer.Close] returns, every Acked call has been made.
//
// # Reading
//
// [Store.Read] returns pages of messages in stream order filtered by group,
// stream, device and EnqueuedTime, and waits for new messages on request;
// the Writer publishes a notice on [NotifySubject] after each batch. Reads
// by time start at the first batch stored at or after the start time
// (less [StoreConfig.ClockSkew]) using JetStream's direct get, so they do
// not scan older data. [Store.Streams] summarises streams from an index
// kept in a KV bucket; [Store.Position] and [Store.Commit] keep each
// consumer group's cursor in another.
package stream
