package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
)

// ModuleKeys returns a module's decoded symmetric keys and the status of its
// device, for SAS verification of module clients ("{deviceId}/{moduleId}")
// on the MQTT connect path. Modules that do not use SAS authentication have
// nil keys. An unknown module is fault.NotFound.
//
// Results are cached like Keys: UpdateModule and DeleteModule invalidate the
// module's entry, and Update and Delete of the device invalidate the entries
// of all its modules, before they return. The returned slices are the
// caller's own.
func (s *Service) ModuleKeys(ctx context.Context, deviceID, moduleID string) (primary, secondary []byte, status Status, err error) {
	if !plausibleID(deviceID) || !plausibleID(moduleID) {
		return nil, nil, "", ModuleNotFoundError(deviceID, moduleID) // cannot exist; spare the store
	}
	now := s.now()
	e, ok := s.moduleKeys.get(deviceID, moduleID, now)
	if !ok {
		gen := s.moduleKeys.generation()
		if e, err = s.loadModuleKeys(ctx, deviceID, moduleID); err != nil {
			return nil, nil, "", fmt.Errorf("registry: keys of %s/%s: %w", deviceID, moduleID, err)
		}
		e.expires = now.Add(s.ttl)
		s.moduleKeys.put(deviceID, moduleID, e, gen)
	}
	return bytes.Clone(e.primary), bytes.Clone(e.secondary), e.status, nil
}

// loadModuleKeys reads the module and its device's status from the store.
func (s *Service) loadModuleKeys(ctx context.Context, deviceID, moduleID string) (keyEntry, error) {
	ms, err := s.moduleStore()
	if err != nil {
		return keyEntry{}, err
	}
	m, err := ms.GetModule(ctx, deviceID, moduleID)
	if err != nil {
		return keyEntry{}, err
	}
	d, err := s.store.GetDevice(ctx, deviceID)
	if err != nil {
		return keyEntry{}, err // deleted between the two reads
	}
	e := keyEntry{status: d.Status}
	sk := m.Authentication.SymmetricKey
	if m.Authentication.Type != AuthSAS || sk == nil {
		return e, nil
	}
	if e.primary, err = base64.StdEncoding.DecodeString(sk.PrimaryKey); err != nil {
		return e, fmt.Errorf("stored primary key is not base64: %w", err)
	}
	if e.secondary, err = base64.StdEncoding.DecodeString(sk.SecondaryKey); err != nil {
		return e, fmt.Errorf("stored secondary key is not base64: %w", err)
	}
	return e, nil
}

// moduleKeyCache maps device id, then module id, to keys, so that a device
// change drops all its modules' entries in O(1). It holds at most max
// entries in all; eviction drops an arbitrary device's entries. A nil
// *moduleKeyCache caches nothing.
type moduleKeyCache struct {
	max int

	mu  sync.RWMutex
	gen uint64                         // guarded by mu; incremented by every invalidate
	n   int                            // guarded by mu; entries over all devices
	m   map[string]map[string]keyEntry // guarded by mu
}

func newModuleKeyCache(max int) *moduleKeyCache {
	if max < 0 {
		return nil
	}
	return &moduleKeyCache{max: max, m: make(map[string]map[string]keyEntry)}
}

// get returns the unexpired entry of a module.
func (c *moduleKeyCache) get(deviceID, moduleID string, now time.Time) (keyEntry, bool) {
	if c == nil {
		return keyEntry{}, false
	}
	c.mu.RLock()
	e, ok := c.m[deviceID][moduleID]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return keyEntry{}, false
	}
	return e, true
}

// generation returns the invalidation counter, as keyCache.generation does.
func (c *moduleKeyCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores e unless an invalidation happened since gen was read.
func (c *moduleKeyCache) put(deviceID, moduleID string, e keyEntry, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	mods := c.m[deviceID]
	if _, ok := mods[moduleID]; !ok {
		for c.n >= c.max && c.n > 0 {
			for d, victims := range c.m {
				c.n -= len(victims)
				delete(c.m, d)
				break
			}
			mods = c.m[deviceID]
		}
		if c.max == 0 {
			return
		}
		c.n++
	}
	if mods == nil {
		mods = make(map[string]keyEntry)
		c.m[deviceID] = mods
	}
	mods[moduleID] = e
}

// invalidate drops one module's entry, or every module entry of the device
// when moduleID is "", and fails every fill that is under way.
func (c *moduleKeyCache) invalidate(deviceID, moduleID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	mods, ok := c.m[deviceID]
	switch {
	case !ok:
	case moduleID == "":
		c.n -= len(mods)
		delete(c.m, deviceID)
	default:
		if _, ok := mods[moduleID]; ok {
			c.n--
			delete(mods, moduleID)
		}
		if len(mods) == 0 {
			delete(c.m, deviceID)
		}
	}
}

// len returns the number of cached module entries.
func (c *moduleKeyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.n
}
