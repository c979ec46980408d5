package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

// session is one signed-in browser. Its fields do not change after sign-in.
type session struct {
	id      string
	csrf    string
	policy  string           // access policy name
	rights  []registry.Right // the policy's rights at sign-in (pages re-check the key on every request)
	key     []byte           // the policy key the operator gave; nil when signed in with a token
	token   string           // the SAS token the operator gave; "" when signed in with a key
	expires time.Time
}

// can reports whether the session's policy grants r.
func (s *session) can(r registry.Right) bool {
	return registry.Policy{Rights: s.rights}.Has(r)
}

// sessions is the server-side session store: in memory, so a hub restart
// signs everyone out.
type sessions struct {
	now func() time.Time
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]*session // guarded by mu
}

func newSessions(now func() time.Time, ttl time.Duration, max int) *sessions {
	return &sessions{now: now, ttl: ttl, max: max, m: make(map[string]*session)}
}

// create stores a new session for s (policy, rights, credential) and fills
// in its id, CSRF token and expiry (never later than notAfter when set).
func (ss *sessions) create(s *session, notAfter time.Time) *session {
	s.id, s.csrf = randomToken(), randomToken()
	s.expires = ss.now().Add(ss.ttl)
	if !notAfter.IsZero() && notAfter.Before(s.expires) {
		s.expires = notAfter
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= ss.max {
		ss.sweepLocked()
	}
	if len(ss.m) >= ss.max {
		// Still full of live sessions: drop the one closest to expiry.
		var oldest *session
		for _, o := range ss.m {
			if oldest == nil || o.expires.Before(oldest.expires) {
				oldest = o
			}
		}
		delete(ss.m, oldest.id)
	}
	ss.m[s.id] = s
	return s
}

// get returns the live session with id, or nil.
func (ss *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

func (ss *sessions) sweepLocked() {
	now := ss.now()
	for id, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, id)
		}
	}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// equalSecret compares two secrets in constant time.
func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// rightsOf copies a policy's rights.
func rightsOf(p *registry.Policy) []registry.Right { return slices.Clone(p.Rights) }
