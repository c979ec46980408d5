package hub

import (
	"context"
	"encoding/json"
)

// ConsoleModel is what the console's model-driven view gets for id.
func (h *Hub) ConsoleModel(ctx context.Context, id string) (json.RawMessage, error) {
	return consoleModels{h.pnp.repo}.Model(ctx, id)
}
