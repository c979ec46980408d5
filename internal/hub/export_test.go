package hub

import (
	"context"
	"encoding/json"

	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/stream"
)

// ConsoleModel is what the console's model-driven view gets for id.
func (h *Hub) ConsoleModel(ctx context.Context, id string) (json.RawMessage, error) {
	return consoleModels{h.pnp.repo}.Model(ctx, id)
}

// AnnounceModel is what the broker does when a device connects with a
// model id.
func (h *Hub) AnnounceModel(deviceID, modelID string) { h.pnp.onModelID(deviceID, "", modelID) }

// CheckTelemetry checks msg against its device's model as stored
// telemetry is checked.
func (h *Hub) CheckTelemetry(ctx context.Context, msg *stream.Message) []model.Problem {
	return h.pnp.check(ctx, msg)
}
