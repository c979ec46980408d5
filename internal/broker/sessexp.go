package broker

import (
	"context"
	"math"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Session expiry: a persistent session (clean session false, or MQTT 5 with
// a session expiry interval) outlives its connection by its interval, capped
// by Config.MaxSessionExpiry; then its subscriptions are deleted, from the
// store and from memory, so that client ids that never come back do not keep
// rows forever. mochi times the sessions of policy clients (its
// MaximumSessionExpiryInterval and OnClientExpired); the broker's own timers
// time devices' sessions. The store records each disconnected session's end,
// so that sessions that ended while the hub was down are purged at startup
// and the others keep what was left of their time.

// sessionExpiries is the part of the session store that records sessions'
// ends; the sqlite store has it. Without it sessions expire only while the
// hub runs.
type sessionExpiries interface {
	SetSessionExpiry(ctx context.Context, clientID string, at time.Time) error
	ClearSessionExpiry(ctx context.Context, clientID string) error
	PurgeExpiredSessions(ctx context.Context, now time.Time) (int, error)
	LoadSessionExpiries(ctx context.Context) (map[string]time.Time, error)
}

func (b *Broker) expiries() sessionExpiries {
	e, _ := b.cfg.Sessions.(sessionExpiries)
	return e
}

// sessionTTL is how long a session outlives its connection: MQTT 5 clients
// ask (0, the default, ends it with the connection), MQTT 3.1.1 clients
// with clean session false get the maximum.
func (b *Broker) sessionTTL(v5 bool, props packets.Properties) time.Duration {
	if !v5 {
		return b.cfg.MaxSessionExpiry
	}
	if !props.SessionExpiryIntervalFlag {
		return 0
	}
	return min(time.Duration(props.SessionExpiryInterval)*time.Second, b.cfg.MaxSessionExpiry)
}

// maxSessionExpirySeconds is MaxSessionExpiry in MQTT's unit, for mochi.
func (b *Broker) maxSessionExpirySeconds() uint32 {
	s := math.Ceil(b.cfg.MaxSessionExpiry.Seconds())
	return uint32(min(max(s, 1), math.MaxUint32))
}

// restoreSessionEnds runs before mochi loads the stored sessions: it purges
// the sessions that ended while the hub was down and remembers the ends of
// the others.
func (b *Broker) restoreSessionEnds() error {
	e := b.expiries()
	if e == nil {
		return nil
	}
	ctx := context.Background()
	n, err := e.PurgeExpiredSessions(ctx, b.cfg.Now())
	if err != nil {
		return err
	}
	if n > 0 {
		b.log.Info("expired mqtt sessions deleted", "sessions", n)
	}
	ends, err := e.LoadSessionExpiries(ctx)
	if err != nil {
		return err
	}
	b.sessMu.Lock()
	b.restoredEnds = ends
	b.sessMu.Unlock()
	return nil
}

// restoredEnd is when a restored session ends: its recorded end, or a full
// maximum from now when none was recorded (the hub stopped while its client
// was connected).
func (b *Broker) restoredEnd(clientID string, now time.Time) time.Time {
	b.sessMu.Lock()
	at, ok := b.restoredEnds[clientID]
	b.sessMu.Unlock()
	if !ok {
		return now.Add(b.cfg.MaxSessionExpiry)
	}
	return at
}

// timeDeviceSessions starts the timers of the devices' sessions restored at
// startup (mochi times the policy clients' ones it loaded).
func (b *Broker) timeDeviceSessions() {
	now := b.cfg.Now()
	b.sessMu.Lock()
	var ids []string
	for id, subs := range b.persisted {
		if deviceSession(subs) {
			ids = append(ids, id)
		}
	}
	b.sessMu.Unlock()
	for _, id := range ids {
		if !b.Connected(id) {
			b.expireAt(id, b.restoredEnd(id, now), false)
		}
	}
	b.sessMu.Lock()
	b.restoredEnds = nil // read once, at startup
	b.sessMu.Unlock()
}

// deviceLeft starts the clock of a device's persistent session when its
// connection ends (and it was the client's current one).
func (b *Broker) deviceLeft(c *conn) {
	if b.cfg.Sessions == nil {
		return
	}
	b.sessMu.Lock()
	has := len(b.persisted[c.clientID]) > 0
	b.sessMu.Unlock()
	if !has {
		return
	}
	if c.sessionTTL <= 0 {
		b.forgetSession(c.clientID) // MQTT 5 with no session expiry: it ends now
		return
	}
	b.expireAt(c.clientID, b.cfg.Now().Add(c.sessionTTL), true)
}

// expireAt arranges for a device's session to be deleted at the given time
// unless the device comes back first; record writes the end to the store.
func (b *Broker) expireAt(clientID string, at time.Time, record bool) {
	var t *time.Timer
	t = time.AfterFunc(max(at.Sub(b.cfg.Now()), 0), func() {
		// Under sessMu, so that a device coming back at this moment either
		// finds its session (acceptDevice registers it before reading the
		// session) or finds none, never half of one.
		b.sessMu.Lock()
		if b.ending[clientID] != t || b.Connected(clientID) {
			b.sessMu.Unlock()
			return // the device came back, or left again since
		}
		delete(b.ending, clientID)
		delete(b.persisted, clientID)
		b.sessMu.Unlock()
		b.log.Info("mqtt session expired", "client", clientID)
		b.offStack(func() {
			if err := b.cfg.Sessions.DeleteSession(context.Background(), clientID); err != nil {
				b.log.Error("forget session", "client", clientID, "error", err)
			}
		})
	})
	b.sessMu.Lock()
	if old := b.ending[clientID]; old != nil {
		old.Stop()
	}
	b.ending[clientID] = t
	b.sessMu.Unlock()
	if e := b.expiries(); record && e != nil {
		b.offStack(func() {
			if err := e.SetSessionExpiry(context.Background(), clientID, at); err != nil {
				b.log.Error("record session expiry", "client", clientID, "error", err)
			}
		})
	}
}

// sessionResumed stops the clock of a client's session when it comes back
// (callers hold no locks). Only a client with stored subscriptions costs a
// database write: the common connect without a stored session costs none.
func (b *Broker) sessionResumed(clientID string) {
	b.sessMu.Lock()
	if t := b.ending[clientID]; t != nil {
		t.Stop()
		delete(b.ending, clientID)
	}
	had := len(b.persisted[clientID]) > 0
	b.sessMu.Unlock()
	if e := b.expiries(); had && e != nil {
		b.offStack(func() {
			if err := e.ClearSessionExpiry(context.Background(), clientID); err != nil {
				b.log.Error("clear session expiry", "client", clientID, "error", err)
			}
		})
	}
}

// policyClientLeft records when a policy client's session ends; mochi's own
// expiry deletes it then (OnClientExpired).
func (b *Broker) policyClientLeft(cl *mqtt.Client) {
	e := b.expiries()
	if e == nil {
		return
	}
	b.sessMu.Lock()
	has := len(b.persisted[cl.ID]) > 0
	b.sessMu.Unlock()
	if !has {
		return
	}
	ttl := b.cfg.MaxSessionExpiry
	if cl.Properties.ProtocolVersion >= 5 {
		ttl = time.Duration(cl.Properties.Props.SessionExpiryInterval) * time.Second // capped by mochi at CONNACK
	}
	at := b.cfg.Now().Add(ttl)
	id := cl.ID
	b.offStack(func() {
		if err := e.SetSessionExpiry(context.Background(), id, at); err != nil {
			b.log.Error("record session expiry", "client", id, "error", err)
		}
	})
}

// OnClientExpired deletes a policy client's session that mochi expired:
// its stored subscriptions, and mochi's subscriptions of it (mochi only
// forgets the client).
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	if h.b.Connected(cl.ID) {
		return
	}
	h.b.log.Info("mqtt session expired", "client", cl.ID)
	h.b.server.UnsubscribeClient(cl)
	h.b.forgetSession(cl.ID)
}

// storedClient is how a policy client's restored session is handed to
// mochi: as MQTT 5 with the rest of its time as expiry interval, so that
// mochi ends it when it would have ended had the hub not stopped.
func (b *Broker) storedClient(id string, now time.Time) storage.Client {
	left := b.restoredEnd(id, now).Sub(now)
	secs := uint32(min(max(math.Ceil(left.Seconds()), 1), float64(b.maxSessionExpirySeconds())))
	return storage.Client{ID: id, ProtocolVersion: 5, Clean: false, Listener: "tcp",
		Properties: storage.ClientProperties{SessionExpiryInterval: secs, SessionExpiryIntervalFlag: true}}
}
