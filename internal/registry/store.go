package registry

import (
	"context"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Store persists devices and policies. Implementations must be safe for
// concurrent use and must report the errors below (wrapped with context is
// fine) so that the edges map them to Azure's codes. internal/store/storetest
// checks an implementation against this contract.
type Store interface {
	// CreateDevice inserts d as given. It fails with DeviceExistsError if
	// the id is taken.
	CreateDevice(ctx context.Context, d *Device) error
	// GetDevice returns one device, or DeviceNotFoundError.
	GetDevice(ctx context.Context, id string) (*Device, error)
	// UpdateDevice replaces the stored identity of d.DeviceID with d: every
	// field except the connection state, its time and the last activity time,
	// which belong to SetConnectionState, and the cloud-to-device message
	// count, which the C2D queue maintains. ifMatch "" or "*"
	// replaces unconditionally; any other value must equal the stored etag,
	// else the update fails with PreconditionFailedError. The check and the
	// write are atomic. A missing device is DeviceNotFoundError.
	UpdateDevice(ctx context.Context, d *Device, ifMatch string) error
	// DeleteDevice removes a device, with UpdateDevice's ifMatch rules.
	DeleteDevice(ctx context.Context, id, ifMatch string) error
	// ListDevices returns up to limit devices with ids greater than after,
	// ordered by id (byte order).
	ListDevices(ctx context.Context, after string, limit int) ([]Device, error)
	// CountDevices returns the number of devices.
	CountDevices(ctx context.Context) (total int, err error)
	// SetConnectionState records a connect or disconnect at time at: it sets
	// the connection state, its time and the last activity time, and leaves
	// the etag alone (Azure does not count connection state as an identity
	// change).
	SetConnectionState(ctx context.Context, id string, connected bool, at time.Time) error
	// ListPolicies returns every access policy, ordered by name.
	ListPolicies(ctx context.Context) ([]Policy, error)
	// PutPolicy inserts or replaces the policy named p.KeyName.
	PutPolicy(ctx context.Context, p Policy) error
}

// DeviceNotFoundError is the error for a device id that is not registered.
func DeviceNotFoundError(id string) *fault.Error {
	return fault.New(fault.NotFound, "DeviceNotFound", 404001, "device %q not found", id)
}

// DeviceExistsError is the error for creating a device whose id is taken.
func DeviceExistsError(id string) *fault.Error {
	return fault.New(fault.Conflict, "DeviceAlreadyExists", 409001, "device %q already exists", id)
}

// PreconditionFailedError is the error for an If-Match etag that does not
// match the device's current etag.
func PreconditionFailedError(id string) *fault.Error {
	return fault.New(fault.PreconditionFailed, "PreconditionFailed", 412002,
		"device %q: etag does not match (the device was changed meanwhile)", id)
}
