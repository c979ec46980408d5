package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"slices"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// session is one signed-in browser, as loaded for one request.
type session struct {
	id      string           // the cookie's value; never stored
	hash    []byte           // hashID(id): the session's key in the store
	csrf    string           // derived from id (csrfOf)
	policy  string           // access policy name
	rights  []registry.Right // the policy's rights now
	key     []byte           // the policy key the session signed in with (or that verified its SAS token)
	expires time.Time
}

// can reports whether the session's policy grants r.
func (s *session) can(r registry.Right) bool {
	return registry.Policy{Rights: s.rights}.Has(r)
}

// StoredSession is a session as a SessionStore keeps it: hashes of the
// session id and of the policy key, never the id or the key themselves.
type StoredSession struct {
	ID       []byte    // SHA-256 of the session id
	Policy   string    // access policy name
	KeyHash  []byte    // SHA-256 of the policy key the session signed in with
	Created  time.Time // sign-in
	LastSeen time.Time // last request, to within a minute
	Expires  time.Time // absolute end: the session lifetime, or the SAS token's expiry if sooner
}

// SessionStore keeps sign-in sessions where a hub restart does not lose
// them (the hub's SQLite database).
type SessionStore interface {
	// CreateSession stores s; when max sessions are kept already it first
	// removes those closest to expiry.
	CreateSession(ctx context.Context, s StoredSession, max int) error
	// Session returns the session whose id hashes to id; ok is false when
	// there is none.
	Session(ctx context.Context, id []byte) (s StoredSession, ok bool, err error)
	// TouchSession sets the session's LastSeen.
	TouchSession(ctx context.Context, id []byte, at time.Time) error
	DeleteSession(ctx context.Context, id []byte) error
	// PurgeSessions removes up to limit sessions that expired by now or,
	// when idleSince is not zero, were last seen before it.
	PurgeSessions(ctx context.Context, now, idleSince time.Time, limit int) (int64, error)
}

const (
	touchEvery = time.Minute // a session's LastSeen is written at most this often
	// purgeBatch is the most expired sessions one sign-in removes. The
	// hub's retention sweep removes them too, so a console nobody signs in
	// to does not keep them until the MaxSessions eviction; this keeps a
	// console without that sweep (or with an idle limit, which the sweep
	// does not know) tidy as well.
	purgeBatch = 256
)

// sessions applies the console's session rules (lifetime, idle limit,
// maximum, LastSeen sampling) over a SessionStore.
type sessions struct {
	store SessionStore
	now   func() time.Time
	ttl   time.Duration // absolute lifetime
	idle  time.Duration // 0: no idle limit
	max   int
	log   *slog.Logger
}

// create stores a new session for policy, signed in with key, and returns
// it. It expires after the lifetime, never later than notAfter when set.
func (ss *sessions) create(ctx context.Context, policy string, key []byte, rights []registry.Right, notAfter time.Time) (*session, error) {
	now := ss.now()
	s := &session{id: randomToken(), policy: policy, rights: rights, key: key, expires: now.Add(ss.ttl)}
	if !notAfter.IsZero() && notAfter.Before(s.expires) {
		s.expires = notAfter
	}
	s.hash, s.csrf = hashID(s.id), csrfOf(s.id)
	if _, err := ss.store.PurgeSessions(ctx, now, ss.idleSince(now), purgeBatch); err != nil {
		ss.log.Warn("console: purge expired sessions", "error", err)
	}
	st := StoredSession{ID: s.hash, Policy: policy, KeyHash: hashKey(key), Created: now, LastSeen: now, Expires: s.expires}
	if err := ss.store.CreateSession(ctx, st, ss.max); err != nil {
		return nil, err
	}
	return s, nil
}

func (ss *sessions) idleSince(now time.Time) time.Time {
	if ss.idle <= 0 {
		return time.Time{}
	}
	return now.Add(-ss.idle)
}

// load returns the live stored session with id. One that expired or sat
// idle too long is deleted.
func (ss *sessions) load(ctx context.Context, id string) (StoredSession, bool) {
	if id == "" {
		return StoredSession{}, false
	}
	st, ok, err := ss.store.Session(ctx, hashID(id))
	if err != nil {
		ss.log.Warn("console: read session", "error", err)
		return StoredSession{}, false
	}
	if !ok {
		return StoredSession{}, false
	}
	now := ss.now()
	if !now.Before(st.Expires) || (ss.idle > 0 && st.LastSeen.Before(ss.idleSince(now))) {
		ss.delete(ctx, st.ID)
		return StoredSession{}, false
	}
	return st, true
}

// touch records a request of st, writing at most once per touchEvery.
func (ss *sessions) touch(ctx context.Context, st StoredSession) {
	now := ss.now()
	if now.Sub(st.LastSeen) < touchEvery {
		return
	}
	if err := ss.store.TouchSession(ctx, st.ID, now); err != nil {
		ss.log.Warn("console: record session activity", "error", err)
	}
}

func (ss *sessions) delete(ctx context.Context, hash []byte) {
	if err := ss.store.DeleteSession(context.WithoutCancel(ctx), hash); err != nil {
		ss.log.Warn("console: delete session", "error", err)
	}
}

// hashID is the store's key for a session id.
func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// hashKey fingerprints a policy key.
func hashKey(key []byte) []byte {
	h := sha256.Sum256(key)
	return h[:]
}

// csrfOf derives a session's CSRF token from its id, so the store needs
// no copy of it and the token does not reveal the id.
func csrfOf(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("ferry console csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// keyWithHash returns pol's key whose fingerprint is h, or nil when
// neither key has it any more (the key was regenerated).
func keyWithHash(pol *registry.Policy, h []byte) []byte {
	for _, k := range []string{pol.PrimaryKey, pol.SecondaryKey} {
		pk, err := protocol.DecodeKey(k)
		if err == nil && subtle.ConstantTimeCompare(hashKey(pk), h) == 1 {
			return pk
		}
	}
	return nil
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
