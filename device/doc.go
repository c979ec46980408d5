// Package device is Ferry's Go device SDK: it sends telemetry to a Ferry hub
// (or Azure IoT Hub) over MQTT, offline first.
//
// [Start] opens a local store file and connects in the background; it works
// without a network. [Stream.Enqueue] returns once a message is durably
// stored (fsynced) in that file; a single sender goroutine publishes stored
// messages whenever the hub is reachable, keeping up to [Config.Window]
// unacknowledged, and removes each one from the store when the hub
// acknowledges it (PUBACK, sent by the hub after it stored the message).
// [Stream.Send] is Enqueue plus a wait for that acknowledgement, and
// [Client.Flush] waits for everything enqueued so far.
//
// # Delivery guarantees
//
// Exactly:
//
//   - Durability: a message whose Enqueue (or Send) returned nil is in the
//     store file and survives Close, a process crash, and (on storage that
//     honours fsync) a power loss. It stays there until the hub acknowledges
//     it, across any number of restarts. A message whose Enqueue returned an
//     error was not stored. Only Config.Full = DropOldest deletes messages
//     that were not acknowledged.
//   - At least once from the device: a stored message is published until
//     the hub acknowledges it. A connection lost before the PUBACK means the
//     message is published again on a later connection (or by the next
//     Start), so the hub may receive it more than once.
//   - Exactly once in the hub's stream: every message keeps one message id
//     ($.mid), generated at Enqueue when [Message.ID] is empty and stored
//     with it, and every resend carries it. The hub drops a message whose
//     device and message id it stored within its deduplication window (10
//     minutes), so a resend within that window is stored once. A message
//     first sent and then resent more than the window apart (say, a PUBACK
//     lost and the device off for longer) can be stored twice; readers
//     that must never see a duplicate deduplicate on the message id.
//   - Order: messages are published in enqueue order. With Window 1 the
//     hub's stream holds them in enqueue order, also across reconnections.
//     With a larger window, a reconnection resends the unacknowledged ones
//     in order, but some later ones may already be stored, so the stream
//     may be out of order around a reconnection.
//
// # Streams, batches, chunks and compression
//
// [Client.Stream] names a stream group and a stream; the hub files each
// message under both ("stream-group" and "stream" properties). A message
// may carry a batch id and a batch slice id; [Stream.CompleteBatch] marks a
// batch complete. A body larger than the stream's chunk size (250,000
// bytes by default, under the hub's 256 KiB limit) is split into chunks
// that are stored together, all or none, and sent as messages with
// "message-id", "chunk-id" and "chunk-count"; chunks made by hand use
// [Message.ChunkID] and [Stream.CompleteMessage]. [WithCompression]
// gzips bodies before they are stored, only when that makes them smaller,
// and sets the content encoding to "gzip".
//
// # Device twin
//
// [Config.OnDesired] hears the desired properties: once at Start when the
// store holds them from an earlier run, then after every change. The SDK
// applies notifications in version order, ignores old ones, and GETs the
// whole twin when a version is skipped and on every new connection (token
// renewals included), since notifications sent while offline are lost.
// The newest desired document is stored before the callback hears it;
// [Client.DesiredIfNewer] polls it and [Client.Twin] fetches the twin.
// [Client.UpdateReported] stores a reported-properties merge patch
// (fsynced) and returns; the patches are sent in order whenever the hub is
// reachable and deleted when the hub answers 204. Updates made while
// earlier ones wait are merged into one patch; [Client.PendingReported]
// counts the patches waiting.
//
// # Direct methods
//
// [Config.Methods] and [Client.HandleMethod] register handlers by name
// ("" for all others). Each call runs on its own goroutine, at most
// [Config.MaxConcurrentMethods] (16) at once. A method without a handler
// is answered 404 and a panicking handler 500, both with a JSON error body.
// Payloads are bytes; a non-JSON payload carries its content type.
//
// # Cloud-to-device messages
//
// With [Config.OnC2D] set, each message is stored (fsynced) in the
// device's inbox before the hub's PUBACK is sent, and messages whose id
// was seen before are dropped. The handler gets them one at a time, in
// order, and returns a [Disposition]: Complete and Reject remove the
// message, Abandon hands it over again later, up to
// [Config.MaxC2DDeliveries]. The hub counts the PUBACK as completion, as
// Azure IoT Hub does over MQTT, so Reject and Abandon are carried out by
// the SDK on the device. Messages still in the inbox at Close are handed
// over after the next Start.
//
// # Connection
//
// The connection authenticates with SAS tokens derived from the connection
// string's key, renews them before they expire without losing messages,
// and reconnects with jittered exponential backoff (from 1 s, capped at
// 60 s, reset after a minute connected), so a refused device never spins.
// Config.OnStatus hears the changes, with the reason. [Config.Certificate]
// authenticates with an X.509 client certificate instead, and
// [Config.WebSocket] carries MQTT over a WebSocket on port 443 for networks
// that let only HTTPS out.
package device
