package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// Keys returns a device's decoded symmetric keys and its status, for SAS
// verification on the MQTT connect path. Devices that do not use SAS
// authentication have nil keys. An unknown device is fault.NotFound.
//
// Results are cached (see Options.KeyCacheSize and CacheTTL); Update, Delete
// and Create through this Service invalidate the entry before they return.
// The returned slices are the caller's own.
func (s *Service) Keys(ctx context.Context, id string) (primary, secondary []byte, status Status, err error) {
	e, err := s.keyEntry(ctx, id)
	if err != nil {
		return nil, nil, "", err
	}
	return bytes.Clone(e.primary), bytes.Clone(e.secondary), e.status, nil
}

// DeviceAuth is how a device authenticates, for the MQTT connect path.
type DeviceAuth struct {
	Type   AuthType
	Status Status
	// Thumbprints are the decoded registered thumbprints (SHA-1 or SHA-256)
	// of a selfSigned device, primary first.
	Thumbprints [][]byte
}

// DeviceAuth returns a device's authentication type, status and decoded
// thumbprints. It shares Keys' cache, and so its invalidation: Create,
// Update and Delete through this Service drop the entry before they return.
// An unknown device is fault.NotFound.
func (s *Service) DeviceAuth(ctx context.Context, id string) (DeviceAuth, error) {
	e, err := s.keyEntry(ctx, id)
	if err != nil {
		return DeviceAuth{}, err
	}
	a := DeviceAuth{Type: e.auth, Status: e.status}
	for _, tp := range e.thumbprints {
		a.Thumbprints = append(a.Thumbprints, bytes.Clone(tp))
	}
	return a, nil
}

// keyEntry returns the cached entry of id, reading the store on a miss.
func (s *Service) keyEntry(ctx context.Context, id string) (keyEntry, error) {
	if id == "" || len(id) > MaxDeviceIDLen {
		return keyEntry{}, DeviceNotFoundError(id) // cannot exist; spare the store
	}
	now := s.now()
	e, ok := s.keys.get(id, now)
	if !ok {
		gen := s.keys.generation()
		d, err := s.store.GetDevice(ctx, id)
		if err != nil {
			return keyEntry{}, fmt.Errorf("registry: keys of %s: %w", id, err)
		}
		if e, err = decodeKeys(d); err != nil {
			return keyEntry{}, err
		}
		e.expires = now.Add(s.ttl)
		s.keys.put(id, e, gen)
	}
	return e, nil
}

// decodeKeys extracts the cache entry of d.
func decodeKeys(d *Device) (keyEntry, error) {
	e := keyEntry{status: d.Status, auth: d.Authentication.Type}
	if d.Authentication.Type == AuthSelfSigned {
		tp := d.Authentication.X509Thumbprint
		for _, h := range []*string{tp.PrimaryThumbprint, tp.SecondaryThumbprint} {
			if h == nil || *h == "" {
				continue
			}
			b, err := hex.DecodeString(*h)
			if err != nil {
				return e, fmt.Errorf("registry: stored thumbprint of %s is not hex: %w", d.DeviceID, err)
			}
			e.thumbprints = append(e.thumbprints, b)
		}
	}
	sk := d.Authentication.SymmetricKey
	if d.Authentication.Type != AuthSAS || sk == nil {
		return e, nil
	}
	var err error
	if e.primary, err = base64.StdEncoding.DecodeString(sk.PrimaryKey); err != nil {
		return e, fmt.Errorf("registry: stored primary key of %s is not base64: %w", d.DeviceID, err)
	}
	if e.secondary, err = base64.StdEncoding.DecodeString(sk.SecondaryKey); err != nil {
		return e, fmt.Errorf("registry: stored secondary key of %s is not base64: %w", d.DeviceID, err)
	}
	return e, nil
}

// keyEntry is what Keys caches for one device.
type keyEntry struct {
	primary, secondary []byte
	status             Status
	auth               AuthType
	thumbprints        [][]byte // selfSigned devices only
	expires            time.Time
}

// keyCache is a bounded map from device id to keys. A nil *keyCache caches
// nothing. Eviction drops an arbitrary entry (Go randomizes map iteration):
// it costs O(1) and, unlike LRU, lets hits take only the read lock.
type keyCache struct {
	max int
	ttl time.Duration

	mu  sync.RWMutex
	gen uint64              // guarded by mu; incremented by every invalidate
	m   map[string]keyEntry // guarded by mu
}

func newKeyCache(max int, ttl time.Duration) *keyCache {
	if max < 0 {
		return nil
	}
	return &keyCache{max: max, ttl: ttl, m: make(map[string]keyEntry)}
}

// get returns the unexpired entry for id.
func (c *keyCache) get(id string, now time.Time) (keyEntry, bool) {
	if c == nil {
		return keyEntry{}, false
	}
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return keyEntry{}, false
	}
	return e, true
}

// generation returns the invalidation counter; a miss reads it before going
// to the store and passes it to put.
func (c *keyCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores e unless an invalidation happened since gen was read: the
// store read may then predate the write that invalidated, and caching it
// would resurrect old keys until the TTL ran out.
func (c *keyCache) put(id string, e keyEntry, gen uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = e
}

// invalidate drops id and fails every fill that is under way.
func (c *keyCache) invalidate(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, id)
}

// len returns the number of cached entries.
func (c *keyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
