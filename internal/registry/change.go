package registry

import (
	"slices"
	"sync"
)

// ChangeKind says what happened to a device.
type ChangeKind int

// The change kinds.
const (
	ChangeUpdated ChangeKind = iota + 1 // identity replaced (status, keys, ...)
	ChangeDeleted                       // device removed
)

// String returns the kind's name, for logs.
func (k ChangeKind) String() string {
	switch k {
	case ChangeUpdated:
		return "updated"
	case ChangeDeleted:
		return "deleted"
	}
	return "unknown"
}

// Change describes a successful Update or Delete.
type Change struct {
	Kind     ChangeKind
	DeviceID string
	Device   *Device // the device as written; nil on delete. Shared by all subscribers: do not modify.
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

// Subscribe registers fn to be called after every successful Update or
// Delete made through this Service. Calls are synchronous, on the writer's
// goroutine, after the store write and after the key cache was invalidated,
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
// up sees the new state, then tell the subscribers.
func (s *Service) changed(c Change) {
	s.keys.invalidate(c.DeviceID)
	s.subs.mu.Lock()
	subs := slices.Clone(s.subs.subs)
	s.subs.mu.Unlock()
	for _, sub := range subs {
		sub.fn(c)
	}
}
