package hub

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/twin"
)

// startProvisioning creates the provisioning service. Devices it approves
// connect to DeviceHost.
func (h *Hub) startProvisioning(ctx context.Context) error {
	var err error
	h.provision, err = provision.New(ctx, h.db, provision.Options{
		Registry:   h.registry,
		Twins:      provisionTwins{h},
		DeviceHost: h.DeviceHost,
		Logger:     h.log.With("component", "provision"),
		Now:        h.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// provisionTwins sets the twin of a device an operator approved, as a
// service twin PATCH would, and pushes the desired change when the (bound)
// device happens to be connected.
type provisionTwins struct{ h *Hub }

func (p provisionTwins) SetInitial(ctx context.Context, deviceID string, tags, desired json.RawMessage) error {
	patch := map[string]any{}
	if tags != nil {
		patch["tags"] = tags
	}
	if desired != nil {
		patch["properties"] = map[string]any{"desired": desired}
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, ch, err := p.h.twins.PatchDesired(twin.WithSource(ctx, "service:provisioning"), deviceID, "", body, "")
	if err != nil {
		return err
	}
	if ch.Changed() {
		p.h.pushDesired(deviceID, ch)
	}
	return nil
}
