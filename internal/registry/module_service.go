package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// moduleStore returns the store's module methods, or an error when the
// Store given to NewService has none.
func (s *Service) moduleStore() (ModuleStore, error) {
	ms, ok := s.store.(ModuleStore)
	if !ok {
		return nil, &fault.Error{Kind: fault.Unavailable, Code: "ServiceUnavailable", Num: 503000,
			Msg: "this hub's store does not support module identities"}
	}
	return ms, nil
}

// CreateModule registers a new module of an existing device. It validates
// the module id, defaults authentication to sas, generates missing symmetric
// keys and sets the server-owned fields (generationId, etag, connection
// state); caller values for those are ignored. An unknown device is
// DeviceNotFoundError, a taken module id ModuleExistsError.
func (s *Service) CreateModule(ctx context.Context, m Module) (*Module, error) {
	if err := ValidateDeviceID(m.DeviceID); err != nil {
		return nil, err
	}
	if err := ValidateModuleID(m.ModuleID); err != nil {
		return nil, err
	}
	ms, err := s.moduleStore()
	if err != nil {
		return nil, err
	}
	if err := s.prepareModule(&m); err != nil {
		return nil, err
	}
	if m.GenerationID, err = s.newGenerationID(); err != nil {
		return nil, err
	}
	if m.ETag, err = s.newETag(); err != nil {
		return nil, err
	}
	m.ConnectionState = Disconnected
	m.ConnectionStateUpdatedTime = s.now().UTC()
	m.LastActivityTime = time.Time{}
	m.CloudToDeviceMessageCount = 0
	if err := ms.CreateModule(ctx, &m); err != nil {
		return nil, fmt.Errorf("registry: create module %s/%s: %w", m.DeviceID, m.ModuleID, err)
	}
	// A ModuleKeys lookup that raced a delete of an earlier module with
	// this id must not keep the old keys.
	s.moduleKeys.invalidate(m.DeviceID, m.ModuleID)
	s.log.Info("module created", "device", m.DeviceID, "module", m.ModuleID, "auth", m.Authentication.Type)
	return &m, nil
}

// prepareModule validates and normalizes the caller-writable fields of m.
func (s *Service) prepareModule(m *Module) error {
	if len(m.ManagedBy) > maxManagedByLen {
		return fault.Invalidf("managedBy is %d bytes long; the limit is %d", len(m.ManagedBy), maxManagedByLen)
	}
	return s.prepareAuth(&m.Authentication)
}

// GetModule returns one module. An unknown device or module is
// ModuleNotFoundError.
func (s *Service) GetModule(ctx context.Context, deviceID, moduleID string) (*Module, error) {
	if !plausibleID(deviceID) || !plausibleID(moduleID) {
		return nil, ModuleNotFoundError(deviceID, moduleID) // cannot exist; spare the store
	}
	ms, err := s.moduleStore()
	if err != nil {
		return nil, err
	}
	m, err := ms.GetModule(ctx, deviceID, moduleID)
	if err != nil {
		return nil, fmt.Errorf("registry: get module %s/%s: %w", deviceID, moduleID, err)
	}
	return m, nil
}

// plausibleID reports whether id has a length a device or module id can have.
func plausibleID(id string) bool { return id != "" && len(id) <= MaxDeviceIDLen }

// UpdateModule replaces a module's identity with Azure's PUT-with-If-Match
// semantics: it takes authentication (generating empty keys) and managedBy
// from m, keeps the ids, generationId, connection state and message count,
// and sets a new etag. ifMatch follows Update's rules.
func (s *Service) UpdateModule(ctx context.Context, m Module, ifMatch string) (*Module, error) {
	if m.DeviceID == "" || m.ModuleID == "" {
		return nil, fault.Invalidf("device id and module id are required")
	}
	ms, err := s.moduleStore()
	if err != nil {
		return nil, err
	}
	if err := s.prepareModule(&m); err != nil {
		return nil, err
	}
	cond := unquoteETag(ifMatch)
	for attempt := 0; ; attempt++ {
		next, err := s.updateModuleOnce(ctx, ms, &m, cond)
		if err == nil {
			s.changed(Change{Kind: ChangeModuleUpdated, DeviceID: next.DeviceID, ModuleID: next.ModuleID, Module: next})
			s.log.Info("module updated", "device", next.DeviceID, "module", next.ModuleID)
			dup := *next
			return &dup, nil
		}
		// An unconditional update conflicts only with a writer that came
		// between our read and our write: read again and merge again.
		if unconditional(cond) && fault.Is(err, fault.PreconditionFailed) && attempt < updateRetries {
			continue
		}
		return nil, fmt.Errorf("registry: update module %s/%s: %w", m.DeviceID, m.ModuleID, err)
	}
}

// updateModuleOnce merges m into the stored module and writes it back on
// the condition that the stored etag is still the one it read.
func (s *Service) updateModuleOnce(ctx context.Context, ms ModuleStore, m *Module, cond string) (*Module, error) {
	cur, err := ms.GetModule(ctx, m.DeviceID, m.ModuleID)
	if err != nil {
		return nil, err
	}
	if !unconditional(cond) && cond != cur.ETag {
		return nil, ModulePreconditionFailedError(m.DeviceID, m.ModuleID)
	}
	next := *cur
	next.Authentication = m.Authentication
	next.ManagedBy = m.ManagedBy
	if next.ETag, err = s.newETag(); err != nil {
		return nil, err
	}
	if err := ms.UpdateModule(ctx, &next, cur.ETag); err != nil {
		return nil, err
	}
	return &next, nil
}

// DeleteModule removes a module and its twin. ifMatch follows Update's rules.
func (s *Service) DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error {
	ms, err := s.moduleStore()
	if err != nil {
		return err
	}
	if err := ms.DeleteModule(ctx, deviceID, moduleID, unquoteETag(ifMatch)); err != nil {
		return fmt.Errorf("registry: delete module %s/%s: %w", deviceID, moduleID, err)
	}
	s.changed(Change{Kind: ChangeModuleDeleted, DeviceID: deviceID, ModuleID: moduleID})
	s.log.Info("module deleted", "device", deviceID, "module", moduleID)
	return nil
}

// ListModules returns the modules of a device, ordered by module id. An
// unknown device is DeviceNotFoundError; a device without modules gives an
// empty, non-nil slice.
func (s *Service) ListModules(ctx context.Context, deviceID string) ([]Module, error) {
	if !plausibleID(deviceID) {
		return nil, DeviceNotFoundError(deviceID)
	}
	ms, err := s.moduleStore()
	if err != nil {
		return nil, err
	}
	list, err := ms.ListModules(ctx, deviceID)
	if err != nil {
		return nil, fmt.Errorf("registry: list modules of %s: %w", deviceID, err)
	}
	if list == nil {
		list = []Module{} // [] in JSON, not null
	}
	return list, nil
}
