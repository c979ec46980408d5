package hub

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"

	"github.com/ferry-iot/ferry/internal/fault"
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
		CAs:        h.registry,
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

// dpsProvisioner hands the broker's DPS registrations to the provisioning
// service, which starts after the broker.
type dpsProvisioner struct{ h *Hub }

func (p dpsProvisioner) service() (*provision.Service, error) {
	if p.h.provision == nil {
		return nil, fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "provisioning is not running")
	}
	return p.h.provision, nil
}

func (p dpsProvisioner) AuthenticateDPS(ctx context.Context, idScope, registrationID, password string) (*provision.DPSIdentity, error) {
	s, err := p.service()
	if err != nil {
		return nil, err
	}
	return s.AuthenticateDPS(ctx, idScope, registrationID, password)
}

func (p dpsProvisioner) AuthenticateDPSX509(ctx context.Context, idScope, registrationID string, certs []*x509.Certificate) (*provision.DPSIdentity, error) {
	s, err := p.service()
	if err != nil {
		return nil, err
	}
	return s.AuthenticateDPSX509(ctx, idScope, registrationID, certs)
}

func (p dpsProvisioner) AssignDPS(ctx context.Context, id *provision.DPSIdentity, payload json.RawMessage) (*provision.RegistrationState, error) {
	s, err := p.service()
	if err != nil {
		return nil, err
	}
	return s.AssignDPS(ctx, id, payload)
}
