// Package loadgen is the whole-system load generator behind
// `ferry bench ingest`: it drives a broker over real MQTT connections, with
// the devices' real credentials, and measures what the performance bars
// name. It works against any MQTT 3.1.1 broker, so the same loader measures
// Ferry and a reference broker such as Mosquitto in one run.
//
// # Runs
//
// [Ingest] opens one connection per [Device] and publishes QoS 1 telemetry
// with a window of in-flight messages per connection, optionally paced to a
// total rate. After a warm-up it measures, over a fixed window, the
// acknowledged messages per second, publish→PUBACK latency percentiles, and,
// given the broker's PID, the broker's CPU time per message and its RSS.
//
// [Connect] opens a connection per device as fast as a bounded number of
// workers allows and measures accepted connects per second and, given the
// broker's PID, the broker's resident memory per idle connection.
//
// # Keeping the loader's share small
//
// On a two-core machine the loader competes with the broker, so it is built
// to spend as little CPU per message as it can: per connection one writer
// goroutine that copies a pre-encoded PUBLISH for every message the window
// allows and writes the whole burst in one syscall, and one reader goroutine
// that decodes PUBACKs in place from a buffered reader and frees window
// slots once per read, not per packet. Latencies go to a fixed-bucket
// histogram per connection; nothing on the message path allocates.
//
// Left to itself, an unpaced window settles into one PUBLISH per PUBACK: a
// write, a read and two goroutine wake-ups per message. Against Mosquitto
// (which writes each PUBACK on its own) that cost the loader 20 µs per
// message, twice the broker's own cost. So an unpaced writer waits until a
// quarter of its window is free, and the reader's socket gets SO_RCVLOWAT of
// as many PUBACKs, so that the kernel wakes it once per group rather than
// per packet; this cut the loader to about 2 µs per message. Paced runs
// (Rate > 0) do neither and send what is due every millisecond.
//
// Connections to a loopback target are spread over 32 loopback source
// addresses, which keeps the kernel's ephemeral-port search, and so each
// connect(), cheap at tens of thousands of connections.
//
// The loader's own CPU time in the window is reported next to the broker's
// (IngestResult.LoaderCPU), so a comparison can state how the machine was
// shared; the broker's CPU per message is the figure that depends least on
// that share.
//
// # Bounded load
//
// Every run stops by itself: Ingest at the end of its window or at
// MaxMessages, Connect after the last device. Both refuse an address outside
// the loopback range unless AllowRemote is set, so load stays on this
// machine by default.
//
// The MQTT codec is mochi-mqtt's packets package (the broker Ferry embeds)
// for CONNECT and the PUBLISH template; the fixed-size packets on the hot
// path are encoded and decoded by hand.
package loadgen
