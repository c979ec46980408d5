package registry

import (
	"context"
	"fmt"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Update replaces a device's identity with Azure's PUT-with-If-Match
// semantics. It takes status, statusReason, authentication (generating
// empty keys), capabilities, modelId, deviceScope and parentScopes from d;
// it keeps deviceId, generationId, the connection state and the message
// count; it sets a new etag, and StatusUpdatedTime when the status changes.
//
// ifMatch is the caller's If-Match value, quoted or not. "" or "*" update
// whatever the current version is; another value must equal the current etag
// or the update fails with fault.PreconditionFailed.
func (s *Service) Update(ctx context.Context, d Device, ifMatch string) (*Device, error) {
	if d.DeviceID == "" {
		return nil, fault.Invalidf("device id is required")
	}
	if err := s.prepare(&d); err != nil {
		return nil, err
	}
	cond := unquoteETag(ifMatch)
	for attempt := 0; ; attempt++ {
		next, err := s.updateOnce(ctx, &d, cond)
		if err == nil {
			s.changed(Change{Kind: ChangeUpdated, DeviceID: next.DeviceID, Device: next})
			s.log.Info("device updated", "device", next.DeviceID, "status", next.Status)
			dup := *next
			return &dup, nil
		}
		// An unconditional update conflicts only with a writer that came
		// between our read and our write: read again and merge again.
		if unconditional(cond) && fault.Is(err, fault.PreconditionFailed) && attempt < updateRetries {
			continue
		}
		return nil, fmt.Errorf("registry: update device %s: %w", d.DeviceID, err)
	}
}

// updateOnce merges d into the stored device and writes it back on the
// condition that the stored etag is still the one it read. The merge depends
// on the stored version (StatusUpdatedTime), so even an unconditional update
// is written as a compare-and-swap.
func (s *Service) updateOnce(ctx context.Context, d *Device, cond string) (*Device, error) {
	cur, err := s.store.GetDevice(ctx, d.DeviceID)
	if err != nil {
		return nil, err
	}
	if !unconditional(cond) && cond != cur.ETag {
		return nil, PreconditionFailedError(d.DeviceID)
	}
	next := *cur
	next.Status = d.Status
	next.StatusReason = d.StatusReason
	next.Authentication = d.Authentication
	next.Capabilities = d.Capabilities
	next.ModelID = d.ModelID
	next.DeviceScope = d.DeviceScope
	next.ParentScopes = d.ParentScopes
	if next.Status != cur.Status {
		next.StatusUpdatedTime = s.now().UTC()
	}
	if next.ETag, err = s.newETag(); err != nil {
		return nil, err
	}
	if err := s.store.UpdateDevice(ctx, &next, cur.ETag); err != nil {
		return nil, err
	}
	return &next, nil
}

// Delete removes a device. ifMatch follows Update's rules.
func (s *Service) Delete(ctx context.Context, id, ifMatch string) error {
	if err := s.store.DeleteDevice(ctx, id, unquoteETag(ifMatch)); err != nil {
		return fmt.Errorf("registry: delete device %s: %w", id, err)
	}
	s.changed(Change{Kind: ChangeDeleted, DeviceID: id})
	s.log.Info("device deleted", "device", id)
	return nil
}

// SetConnected records that a device connected or disconnected now. It does
// not change the etag and does not notify subscribers.
func (s *Service) SetConnected(ctx context.Context, id string, connected bool) error {
	if err := s.store.SetConnectionState(ctx, id, connected, s.now().UTC()); err != nil {
		return fmt.Errorf("registry: set connection state of %s: %w", id, err)
	}
	return nil
}
