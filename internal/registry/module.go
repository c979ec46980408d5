package registry

import (
	"context"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Module is a module identity: a separately authenticated client of one
// device (client id "{deviceId}/{moduleId}"). Its JSON form is Azure IoT
// Hub's module JSON. A module has no status of its own; it may connect while
// its device is enabled.
type Module struct {
	ModuleID                   string         `json:"moduleId"`
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"` // differs between two modules that reused one id
	ETag                       string         `json:"etag"`         // changes on every identity update
	ConnectionState            string         `json:"connectionState"`
	ConnectionStateUpdatedTime time.Time      `json:"connectionStateUpdatedTime"`
	LastActivityTime           time.Time      `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	ManagedBy                  string         `json:"managedBy"` // free text, e.g. "IotEdge" for Edge-managed modules
}

// moduleJSON has Module's fields without its methods.
type moduleJSON Module

// UnmarshalJSON decodes Azure's module JSON, accepting timestamps with or
// without a zone as Device.UnmarshalJSON does.
func (m *Module) UnmarshalJSON(b []byte) error {
	var aux struct {
		*moduleJSON
		ConnectionStateUpdatedTime flexTime `json:"connectionStateUpdatedTime"`
		LastActivityTime           flexTime `json:"lastActivityTime"`
	}
	aux.moduleJSON = (*moduleJSON)(m)
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	m.ConnectionStateUpdatedTime = time.Time(aux.ConnectionStateUpdatedTime)
	m.LastActivityTime = time.Time(aux.LastActivityTime)
	return nil
}

// MaxModuleIDLen is Azure's limit on the length of a module id.
const MaxModuleIDLen = 128

// maxManagedByLen bounds managedBy, which Azure leaves free-form.
const maxManagedByLen = 128

// ValidateModuleID checks id against Azure's rules, which are the device id
// rules: 1 to 128 characters, ASCII letters, digits and - . + % _ # * ? ! ( )
// , : = @ $ ' ;.
func ValidateModuleID(id string) error {
	if id == "" {
		return fault.Invalidf("module id is required")
	}
	if len(id) > MaxModuleIDLen {
		return fault.Invalidf("module id is %d bytes long; the limit is %d", len(id), MaxModuleIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idAllowed[id[i]] {
			r, _ := utf8.DecodeRuneInString(id[i:])
			return fault.Invalidf("module id %q: character %q at position %d is not allowed "+
				"(use ASCII letters, digits and %s)", id, r, i, idSpecials)
		}
	}
	return nil
}

// ModuleStore persists module identities. It is separate from Store so that
// stores without modules keep compiling; Service's module methods need the
// Store given to NewService to implement it too. Implementations must be
// safe for concurrent use, report the errors below, and delete a device's
// modules with the device. internal/store/storetest checks an
// implementation against this contract.
type ModuleStore interface {
	// CreateModule inserts m as given. It fails with DeviceNotFoundError if
	// m.DeviceID is not registered and with ModuleExistsError if the
	// device has a module with that id already.
	CreateModule(ctx context.Context, m *Module) error
	// GetModule returns one module, or ModuleNotFoundError (also when the
	// device does not exist).
	GetModule(ctx context.Context, deviceID, moduleID string) (*Module, error)
	// UpdateModule replaces the stored identity of the module with m: the
	// generation id, etag, authentication and managedBy. ifMatch "" or "*"
	// replaces unconditionally; any other value must equal the stored etag,
	// else the update fails with ModulePreconditionFailedError. The check
	// and the write are atomic. A missing module is ModuleNotFoundError.
	UpdateModule(ctx context.Context, m *Module, ifMatch string) error
	// DeleteModule removes a module and its twin, with UpdateModule's
	// ifMatch rules.
	DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error
	// ListModules returns the modules of a device ordered by module id
	// (byte order), or DeviceNotFoundError for an unknown device.
	ListModules(ctx context.Context, deviceID string) ([]Module, error)
}

// ModuleNotFoundError is the error for a module id that the device does not have.
func ModuleNotFoundError(deviceID, moduleID string) *fault.Error {
	return fault.New(fault.NotFound, "ModuleNotFound", 404010, "module %q not found on device %q", moduleID, deviceID)
}

// ModuleExistsError is the error for creating a module whose id the device has already.
func ModuleExistsError(deviceID, moduleID string) *fault.Error {
	return fault.New(fault.Conflict, "ModuleAlreadyExistsOnDevice", 409301,
		"module %q already exists on device %q", moduleID, deviceID)
}

// ModulePreconditionFailedError is the error for an If-Match etag that does
// not match the module's current etag.
func ModulePreconditionFailedError(deviceID, moduleID string) *fault.Error {
	return fault.New(fault.PreconditionFailed, "PreconditionFailed", 412002,
		"module %q of device %q: etag does not match (the module was changed meanwhile)", moduleID, deviceID)
}
