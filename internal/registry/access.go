package registry

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// policyCache holds every policy in memory: service requests look a policy up
// on each call, and policies change rarely.
type policyCache struct {
	ensureMu sync.Mutex // serializes EnsureDefaultPolicies within this process

	mu      sync.Mutex        // held across a reload, so concurrent misses read the store once
	m       map[string]Policy // guarded by mu; nil until first loaded
	expires time.Time         // guarded by mu
}

// EnsureDefaultPolicies creates Azure's default policies (iothubowner,
// service, device, registryRead, registryReadWrite), each with two random
// keys, if the store has no policy at all, and returns every policy. Calling
// it again changes nothing.
func (s *Service) EnsureDefaultPolicies(ctx context.Context) ([]Policy, error) {
	s.policies.ensureMu.Lock()
	defer s.policies.ensureMu.Unlock()
	ps, err := s.store.ListPolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: list policies: %w", err)
	}
	if len(ps) == 0 {
		for _, p := range defaultPolicies() {
			if p.PrimaryKey, err = s.newKey(); err != nil {
				return nil, err
			}
			if p.SecondaryKey, err = s.newKey(); err != nil {
				return nil, err
			}
			if err := s.store.PutPolicy(ctx, p); err != nil {
				return nil, fmt.Errorf("registry: create policy %s: %w", p.KeyName, err)
			}
			s.log.Info("access policy created", "policy", p.KeyName)
		}
		if ps, err = s.store.ListPolicies(ctx); err != nil {
			return nil, fmt.Errorf("registry: list policies: %w", err)
		}
	}
	s.policies.mu.Lock()
	s.policies.setLocked(ps, s.now().Add(s.ttl))
	s.policies.mu.Unlock()
	return ps, nil
}

// Policy returns the named access policy, from memory when the cached copy
// is younger than Options.CacheTTL. An unknown name is fault.Unauthorized:
// callers use it to check a token's skn.
func (s *Service) Policy(ctx context.Context, name string) (*Policy, error) {
	c := &s.policies
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	if c.m == nil || !now.Before(c.expires) {
		ps, err := s.store.ListPolicies(ctx)
		switch {
		case err == nil:
			c.setLocked(ps, now.Add(s.ttl))
		case c.m == nil:
			return nil, fmt.Errorf("registry: load policies: %w", err)
		default:
			// Keep authenticating with what we know rather than failing every
			// service request while the store is unwell.
			s.log.Warn("reloading access policies failed; using cached ones", "err", err)
		}
	}
	p, ok := c.m[name]
	if !ok {
		return nil, fault.New(fault.Unauthorized, "IotHubUnauthorizedAccess", 401002, "unknown access policy %q", name)
	}
	p.Rights = slices.Clone(p.Rights)
	return &p, nil
}

// setLocked replaces the cached policies; c.mu must be held.
func (c *policyCache) setLocked(ps []Policy, expires time.Time) {
	c.m = make(map[string]Policy, len(ps))
	for _, p := range ps {
		c.m[p.KeyName] = p
	}
	c.expires = expires
}
