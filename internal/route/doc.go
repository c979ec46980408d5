// Package route routes device messages and hub events to endpoints: other
// streams, webhooks, NATS subjects, and other devices (a direct method call
// or a cloud-to-device message), by conditions over their properties,
// their JSON (or protobuf) body and the sender's twin. It is what turns
// seed 000's "serverless functions" forwarding a parcel from one device to
// another into configuration.
//
// # Routes
//
// A [Route] has a name, a [Source] (telemetry, twinChangeEvents,
// deviceLifecycleEvents), a condition, one or more endpoints, an enabled
// flag, enrichments and an allow-list. Routes live in the store (SQLite)
// and a change takes effect for the next message the router reads: the
// [Service] swaps an immutable table of compiled routes.
//
// # Where routing runs
//
// The router follows the durable ingest store (internal/stream), never on
// the PUBACK path, so routing can neither slow nor endanger
// acknowledgements. Behind, it reads pages of up to 1000 messages from
// its own position (consumer group [PositionGroup] in the stream store's
// positions bucket), evaluates every enabled route on each message, hands
// the matches to their endpoints, waits until every delivery of the page
// was handed off (stored, published and flushed, answered, queued, or
// dead-lettered) and only then commits the page's end. The committed
// position is written to the store at most every 250 ms (each write is a
// synced JetStream put, and under load the disk's syncs belong to
// ingest), soon after traffic stops, and at shutdown. Delivery is
// therefore at least once: a crash routes again what was handed off
// since the last write, and a normal shutdown finishes the page first. The very first start begins at the end of the
// store: history is not routed.
//
// At the end of the store the router does not wait for the disk: the
// hub's ingest writer shows it each message as it is appended to a batch
// ([Service.Tap], a stream.Tap), and the router routes it while the
// batch's fsync runs; the writer then tells it the batch's fate
// ([Service.Settled]). A device-to-device parcel therefore reaches its
// target in about a millisecond whatever fsync costs at that moment
// (ferry_route_batches_handed_total counts these pages). The page's
// position is committed once its batch is stored, so a restart resumes
// exactly as before. A batch that fails to store was routed all the
// same; its devices get no PUBACK and send the messages again, which are
// then routed again: still at least once, and a routed message may be
// missing from the store only if its device never sends it again (it
// was not acknowledged). The writer shows messages in runs that begin
// only when nothing is pending and stop at the first message the router
// cannot take (it fell behind: it reads the rest from the store), so the
// order of routing is the order of the store; a batch the router did not
// see (another writer's) ends the run, and the router steps over its own
// routed copies ([Service.CopyStored]).
//
// Twin changes and lifecycle events (created, deleted, connected,
// disconnected) are not telemetry: the hub publishes them, after the
// change is committed, into a JetStream stream of their own ([Events],
// FERRY_EVENTS), which the router reads with a durable consumer and
// acknowledges per page in the same way. Publishing is asynchronous and
// best effort (the code that notices the change never waits for routing);
// an event in flight when the process dies is lost. Events are published
// only while an enabled route reads their source, so connects and twin
// writes cost nothing when no route wants them. Creations are reported for
// devices made through the REST API.
//
// # Fallback
//
// Ferry stores every message in the stream its device named (default
// "default") before routing, so a message that matches no route is
// already in the built-in stream: that is the fallback, counted by
// ferry_route_fallback_total. Turning the fallback off cannot un-store
// messages (an acknowledged message is never dropped); it changes the
// count to ferry_route_unrouted_total and route test's report. Unlike
// Azure IoT Hub, a message that matches a route also stays in its stream.
//
// # Conditions
//
// Conditions use the WHERE grammar and three-valued semantics of the
// twin query language (internal/query, ParseCondition) over message
// fields, as Azure IoT Hub's routing queries write them:
//
//	$contentType = 'application/json' AND $connectionDeviceId IN ['a', 'b']
//	proto-type = 'pb_AlarmStatus'                 -- an application property
//	$app['level'] > 3                             -- properties are text; they compare as numbers or booleans with such literals
//	$body.temperature > 30 AND IS_DEFINED($body.site)
//	$twin.tags.site = 'A' OR $twin.properties.reported.fw < 2
//	STARTSWITH($connectionDeviceId, 'pump-') AND CONTAINS($body.msg, 'fail')
//
// System properties: $messageId, $correlationId, $userId, $to,
// $contentType, $contentEncoding, $expiryTimeUtc, $creationTimeUtc,
// $connectionDeviceId, $connectionModuleId, $enqueuedTime,
// $connectionAuthMethod, $component, $interfaceId, $outputName, $stream,
// $streamGroup, $messageSource (Azure's iothub- names work too).
//
// The body is read as JSON when the content type is JSON (or absent and
// the body is valid JSON), inflated first when the content encoding is
// gzip (as the Go SDK compresses), and decoded with the registered schema
// when the content type is application/x-protobuf and a proto-type
// property names the type (internal/schema). Any other body has no JSON
// form: body fields are undefined, so a condition on them is false, and
// ferry_route_body_unreadable_total counts it. This is not an error: the
// message is stored and other routes still see it. Evaluation allocates
// nothing beyond decoding the body once per message for all routes.
//
// # Endpoints
//
//   - stream: the message is stored again in the ingest store under
//     another stream name, body and system properties untouched, the
//     enrichments, ferry-route and ferry-hops added, marked [RoutedType]
//     so it is not routed again.
//   - webhook: an HTTP POST of the body with the system properties as
//     Ferry-* headers, the application properties form-encoded in
//     X-Ferry-Properties, and X-Ferry-Signature (HMAC-SHA256 of the body
//     under the endpoint's secret). 408, 429, 5xx and network errors are
//     retried with exponential backoff and full jitter; what still fails
//     goes to the [DeadLetterStream] with the error as a property. At most
//     8 requests are in flight per endpoint and Config.Concurrency in all.
//   - nats: a core NATS publish on the hub's NATS, properties as headers.
//   - method: a direct method call (name configured) with the body as the
//     payload and its content type (a gzip body is sent inflated); the
//     device's answer, whatever its status, completes the delivery.
//   - c2d: a cloud-to-device message with the body, content type and
//     encoding, and the enriched properties.
//
// A device endpoint's target is fixed, or taken from each message: its
// $.to ("dev", "/devices/dev/...") or a named application property. The
// route's [Allow] list can require the sender to be one of some devices,
// the target to be one of some devices, or the target's twin to carry
// some tags; a target must be a registered device. A delivery that breaks
// a rule is refused: counted in ferry_route_refused_total by reason,
// logged, never delivered, not dead-lettered.
//
// Loops (device A's message routed to B, whose answer is routed back to
// A...) are bounded by the ferry-hops application property: each routing
// sets it one higher on what it delivers (C2D messages carry it to the
// device), a device that forwards a message keeps it, and the router
// refuses a message whose count reached Config.MaxHops.
package route
