package model

import "time"

// DeviceState is a device's Plug and Play state: its model, the
// acknowledgement state of each writable property, and how its telemetry
// fits the model. GET /api/v1/devices/{id}/pnp returns it.
type DeviceState struct {
	DeviceID string `json:"deviceId"`
	ModelID  string `json:"modelId,omitempty"` // "" when the device announced none
	Model    *Model `json:"model,omitempty"`
	// ModelError says why Model is missing although ModelID is set (not
	// in the repository, or a component's interface is missing).
	ModelError string          `json:"modelError,omitempty"`
	Writable   []WritableState `json:"writable,omitempty"`
	Telemetry  TelemetryStats  `json:"telemetry"`
}

// TelemetryStats counts a device's telemetry checked against its model
// since the hub started.
type TelemetryStats struct {
	Checked    uint64 `json:"checked"`
	Mismatched uint64 `json:"mismatched"`
	// Last mismatch: when, from which component, what was wrong, and the
	// message's position in the stream store.
	LastMismatchAt     time.Time `json:"lastMismatchAt,omitzero"`
	LastMismatchSub    string    `json:"lastMismatchComponent,omitempty"`
	LastMismatchCursor string    `json:"lastMismatchCursor,omitempty"`
	LastProblems       []Problem `json:"lastProblems,omitempty"`
}
