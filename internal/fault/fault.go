// Package fault is Ferry's small vocabulary of error kinds. Capability
// packages return *Error values (or wrap them); each edge (HTTP, MQTT, CLI)
// maps a Kind to its own status in exactly one place.
//
// An Error carries the Azure IoT Hub error code name and number where Azure
// has one (for example DeviceNotFound, 404001), so that Azure's service SDKs
// recognise Ferry's errors.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the edges that report it.
type Kind int

// The kinds. Internal is the zero value on purpose: an unclassified error is
// never shown to a user in detail.
const (
	Internal           Kind = iota // a bug or a failing dependency; details are logged, not shown
	Invalid                        // the input is malformed or breaks a rule
	NotFound                       // the named resource does not exist
	Conflict                       // the resource exists already, or its state forbids the change
	PreconditionFailed             // an If-Match etag did not match
	Unauthorized                   // no or bad credentials
	Forbidden                      // credentials are fine but lack the permission
	TooLarge                       // the input exceeds a size limit
	Throttled                      // too many requests
	Unavailable                    // the hub cannot serve this now (shutting down, not ready)
	Timeout                        // a peer did not answer in time
)

var kindNames = [...]string{"internal", "invalid", "not found", "conflict", "precondition failed",
	"unauthorized", "forbidden", "too large", "throttled", "unavailable", "timeout"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a classified error with a public message.
type Error struct {
	Kind Kind   // classification used by the edges
	Code string // Azure-style error code name, e.g. "DeviceNotFound"; may be empty
	Num  int    // Azure-style numeric error code, e.g. 404001; 0 when there is none
	Msg  string // public message, safe to show to the caller
	Err  error  // internal cause; logged, never shown
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil && e.Msg != "" {
		return e.Msg + ": " + e.Err.Error()
	}
	if e.Msg != "" {
		return e.Msg
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Kind.String()
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an Error of kind k with a public message.
func New(k Kind, code string, num int, format string, args ...any) *Error {
	return &Error{Kind: k, Code: code, Num: num, Msg: fmt.Sprintf(format, args...)}
}

// Invalidf is shorthand for an Invalid error with Azure's generic ArgumentInvalid code.
func Invalidf(format string, args ...any) *Error {
	return New(Invalid, "ArgumentInvalid", 400004, format, args...)
}

// TooLargef is shorthand for a TooLarge error.
func TooLargef(format string, args ...any) *Error {
	return New(TooLarge, "MessageTooLarge", 413001, format, args...)
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err's chain holds an *Error of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Public returns the message that may be shown to a caller: the *Error's
// message, or "internal error" for anything unclassified.
func Public(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		if e.Msg != "" {
			return e.Msg
		}
		return e.Kind.String()
	}
	return "internal error"
}

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
