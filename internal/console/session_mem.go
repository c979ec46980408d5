package console

import (
	"context"
	"sync"
	"time"
)

// memSessions is a SessionStore in memory, for a console built without a
// store (unit tests): a restart signs everyone out. The hub passes its
// SQLite database instead.
type memSessions struct {
	mu sync.Mutex
	m  map[string]StoredSession // guarded by mu; by string(ID)
}

var _ SessionStore = (*memSessions)(nil)

func newMemSessions() *memSessions { return &memSessions{m: make(map[string]StoredSession)} }

func (ms *memSessions) CreateSession(_ context.Context, s StoredSession, max int) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for max > 0 && len(ms.m) >= max {
		var oldest string
		for k, o := range ms.m {
			if oldest == "" || o.Expires.Before(ms.m[oldest].Expires) {
				oldest = k
			}
		}
		delete(ms.m, oldest)
	}
	ms.m[string(s.ID)] = s
	return nil
}

func (ms *memSessions) Session(_ context.Context, id []byte) (StoredSession, bool, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	s, ok := ms.m[string(id)]
	return s, ok, nil
}

func (ms *memSessions) TouchSession(_ context.Context, id []byte, at time.Time) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if s, ok := ms.m[string(id)]; ok {
		s.LastSeen = at
		ms.m[string(id)] = s
	}
	return nil
}

func (ms *memSessions) DeleteSession(_ context.Context, id []byte) error {
	ms.mu.Lock()
	delete(ms.m, string(id))
	ms.mu.Unlock()
	return nil
}

func (ms *memSessions) PurgeSessions(_ context.Context, now, idleSince time.Time, limit int) (int64, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var n int64
	for k, s := range ms.m {
		if n >= int64(limit) {
			break
		}
		if !now.Before(s.Expires) || s.LastSeen.Before(idleSince) {
			delete(ms.m, k)
			n++
		}
	}
	return n, nil
}
