// Package transport is the device SDK's MQTT 3.1.1 connection to a Ferry (or
// Azure IoT Hub) device endpoint: it connects in the background, keeps the
// connection alive, reconnects with jittered exponential backoff, renews the
// SAS token by reconnecting before it expires, and publishes with QoS 1 inside
// a bounded window of unacknowledged messages.
//
// Guarantees, exactly:
//
//   - Publish returns nil if and only if the PUBLISH was handed to the current
//     connection; then its done callback is called exactly once: with nil after
//     the hub's PUBACK for that packet id, or with an error if the connection
//     ended first (the message may or may not have been stored: the caller
//     resends it, so delivery is at least once). When Publish returns an
//     error, done is never called.
//   - PUBACKs are matched by packet id, so out-of-order acknowledgements
//     complete the right messages. done callbacks run on the connection's
//     read goroutine in the order the PUBACKs arrive; failures run on the
//     connection's owner goroutine when it ends.
//   - Publishes from one goroutine are written to the wire in call order.
//     Concurrent callers are written in the order they take the write lock.
//     Nothing is retransmitted by this package: after a lost connection the
//     order of resent messages is the caller's business.
//   - At most Config.Window publishes are unacknowledged at any time.
//   - A planned token renewal stops accepting new publishes (they get
//     ErrOffline until the new connection is up), waits for the in-flight
//     ones to be acknowledged, and only then disconnects: renewal loses
//     nothing and reports no Disconnected status.
//   - OnStatus is called from one goroutine, in order; OnMessage and the done
//     callbacks must not call Close (Close waits for them).
package transport

import "errors"

// Status is the state of the connection, as reported to Config.OnStatus.
type Status int

// The statuses. Disconnected means "lost or refused, retrying after a backoff
// delay"; Closed is final.
const (
	Connecting Status = iota
	Connected
	Disconnected
	Closed
)

func (s Status) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Closed:
		return "closed"
	}
	return "unknown"
}

var (
	// ErrOffline is returned by Publish when there is no usable connection;
	// wait on Connected and try again.
	ErrOffline = errors.New("transport: offline")
	// ErrClosed is returned after Close, and passed to the done callbacks of
	// publishes in flight when Close ran.
	ErrClosed = errors.New("transport: closed")
	// ErrConnectionLost is passed to done callbacks whose PUBACK never came
	// because the connection ended.
	ErrConnectionLost = errors.New("transport: connection lost before PUBACK")
	// ErrRefused wraps a CONNACK refusal; see RefusedError.
	ErrRefused = errors.New("transport: connection refused")
)

// RefusedError is a CONNACK with a non-zero return code.
type RefusedError struct{ Code byte }

func (e *RefusedError) Error() string {
	reason := "unknown reason"
	switch e.Code {
	case 1:
		reason = "unacceptable protocol version"
	case 2:
		reason = "client identifier rejected"
	case 3:
		reason = "server unavailable"
	case 4:
		reason = "bad user name or password (check the key and the host name)"
	case 5:
		reason = "not authorized (unknown or disabled device, or a bad token)"
	}
	return "transport: connection refused: " + reason
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }
