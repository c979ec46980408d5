package registry

import (
	"slices"
	"sync"
)

// ChangeKind says what happened to a device or module.
type ChangeKind int

// The change kinds.
const (
	ChangeUpdated       ChangeKind = iota + 1 // identity replaced (status, keys, ...)
	ChangeDeleted                             // device removed
	ChangeModuleUpdated                       // module identity replaced (keys, managedBy)
	ChangeModuleDeleted                       // module removed
)

// String returns the kind's name, for logs.
func (k ChangeKind) String() string {
	switch k {
	case ChangeUpdated:
		return "updated"
	case ChangeDeleted:
		return "deleted"
	case ChangeModuleUpdated:
		return "module updated"
	case ChangeModuleDeleted:
		return "module deleted"
	}
	return "unknown"
}

// Change describes a successful Update or Delete of a device, or
// UpdateModule or DeleteModule of a module. Module changes have their own
// kinds, so a subscriber that reacts to device changes is not misled by them.
type Change struct {
	Kind     ChangeKind
	DeviceID string
	Device   *Device // the device as written; nil on delete and for modules. Shared by all subscribers: do not modify.
	ModuleID string  // set for the module kinds
	Module   *Module // the module as written; nil on delete. Shared by all subscribers: do not modify.
}

// subscribers holds the Subscribe callbacks in subscription order.
type subscribers struct {
	mu   sync.Mutex
	next int          // guarded by mu
	subs []subscriber // guarded by mu
}

type subscriber struct {
	id int
	fn func(Change)
}

// Subscribe registers fn to be called after every successful Update,
// Delete, UpdateModule or DeleteModule made through this Service. Calls are
// synchronous, on the writer's goroutine, after the store write and after the key cache was invalidated,
// with no Service lock held; fn may call the Service but should return
// quickly, because the writer waits for it. Changes made by other hub nodes
// are not reported. cancel stops further calls and may be called more than
// once.
func (s *Service) Subscribe(fn func(Change)) (cancel func()) {
	s.subs.mu.Lock()
	id := s.subs.next
	s.subs.next++
	s.subs.subs = append(s.subs.subs, subscriber{id: id, fn: fn})
	s.subs.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.subs.mu.Lock()
			defer s.subs.mu.Unlock()
			s.subs.subs = slices.DeleteFunc(s.subs.subs, func(x subscriber) bool { return x.id == id })
		})
	}
}

// changed is the one path every identity write takes after it succeeded:
// first drop cached keys, so a subscriber that reacts by looking the device
// up sees the new state, then tell the subscribers. A device change drops
// the cached keys of its modules too, since they carry the device's status.
func (s *Service) changed(c Change) {
	if c.ModuleID == "" {
		s.keys.invalidate(c.DeviceID)
	}
	s.moduleKeys.invalidate(c.DeviceID, c.ModuleID)
	s.subs.mu.Lock()
	subs := slices.Clone(s.subs.subs)
	s.subs.mu.Unlock()
	for _, sub := range subs {
		sub.fn(c)
	}
}
