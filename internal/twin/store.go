package twin

import (
	"context"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Store persists twins and their history. Implementations must be safe for
// concurrent use. internal/store/storetest checks an implementation against
// this contract.
//
// A twin belongs to a registered device: the store answers
// DeviceNotFoundError for a device it does not know, and deletes a device's
// twins and history with the device.
type Store interface {
	// GetTwin returns the stored twin of a device (moduleID "") or module,
	// or Empty(deviceID, moduleID) when the device is registered but its
	// twin was never written.
	GetTwin(ctx context.Context, deviceID, moduleID string) (*Twin, error)
	// UpdateTwin changes one twin atomically. Inside one write transaction
	// it reads the twin as GetTwin would, calls fn with it, and, unless fn
	// returns an error, stores the twin fn modified in place and appends
	// the changes fn returned to the history. Updates of one twin are
	// serialized: fn always sees the result of the previous update. When fn
	// fails, nothing is written and UpdateTwin returns fn's error.
	UpdateTwin(ctx context.Context, deviceID, moduleID string, fn func(t *Twin) ([]Change, error)) error
	// TwinHistory returns the changes of one twin with q.From <= Time <
	// q.To, oldest first (in twin version order), at most q.Limit of them.
	// A zero From or To is unbounded; Limit <= 0 is unlimited.
	TwinHistory(ctx context.Context, deviceID, moduleID string, q HistoryQuery) ([]Change, error)
	// DeleteTwins removes the twins of a device and of all its modules,
	// with their history. A device without twins is not an error.
	DeleteTwins(ctx context.Context, deviceID string) error
}

// Update is one change of one twin in a batch: Fn is called as UpdateTwin's
// fn is.
type Update struct {
	DeviceID string
	ModuleID string // "" for the device twin
	Fn       func(t *Twin) ([]Change, error)
}

// BatchStore is a Store that can apply many updates in one write
// transaction, so that they share one commit (group commit). The Service
// uses it for reported patches when the store implements it.
type BatchStore interface {
	Store
	// UpdateTwins applies us in order inside one write transaction and
	// commits once. Each update is as UpdateTwin's: Fn sees the twin as
	// the earlier updates of the batch left it, and its changes are kept
	// unless it fails. An update whose Fn fails, or whose device is not
	// registered, changes nothing and does not affect the others: errs[i]
	// is its error, nil when it was committed. A non-nil err means the
	// transaction as a whole failed and nothing was written; errs is then
	// nil.
	//
	// Fn may be called with a copy of the twin that is thrown away when
	// Fn fails; it must not keep the pointer. The Fns of one twin run in
	// batch order, one at a time; those of different twins may run
	// concurrently.
	UpdateTwins(ctx context.Context, us []Update) (errs []error, err error)
}

// HistoryQuery selects changes of one twin by time.
type HistoryQuery struct {
	From  time.Time // inclusive; zero for no lower bound
	To    time.Time // exclusive; zero for no upper bound
	Limit int       // at most this many changes; <= 0 for all
}

// DeviceNotFoundError is the error for a twin of a device that is not
// registered. It is the registry's error, so the edges answer Azure's
// DeviceNotFound for both.
func DeviceNotFoundError(id string) *fault.Error {
	return fault.New(fault.NotFound, "DeviceNotFound", 404001, "device %q not found", id)
}

// PreconditionFailedError is the error for an If-Match etag that does not
// match the twin's etag.
func PreconditionFailedError(id string) *fault.Error {
	return fault.New(fault.PreconditionFailed, "PreconditionFailed", 412002,
		"twin of %q: etag does not match (the twin was changed meanwhile)", id)
}
