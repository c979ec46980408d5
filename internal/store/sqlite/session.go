package sqlite

import (
	"context"
	"time"

	"github.com/ferry-iot/ferry/internal/session"
)

// SaveSubscriptions implements session.Store. All subscriptions are written
// in one transaction: a SUBSCRIBE packet's filters persist together or not.
func (db *DB) SaveSubscriptions(ctx context.Context, subs []session.Subscription) error {
	if len(subs) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("save subscriptions", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO mqtt_subscriptions (client_id, filter, qos) VALUES (?, ?, ?)
		ON CONFLICT (client_id, filter) DO UPDATE SET qos = excluded.qos`)
	if err != nil {
		return wrap("save subscriptions", err)
	}
	defer stmt.Close()
	for _, s := range subs {
		if _, err := stmt.ExecContext(ctx, s.ClientID, s.Filter, int(s.QoS)); err != nil {
			return wrap("save subscription of "+s.ClientID, err)
		}
	}
	return wrap("save subscriptions", tx.Commit())
}

// DeleteSubscriptions implements session.Store.
func (db *DB) DeleteSubscriptions(ctx context.Context, clientID string, filters []string) error {
	if len(filters) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("delete subscriptions", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `DELETE FROM mqtt_subscriptions WHERE client_id = ? AND filter = ?`)
	if err != nil {
		return wrap("delete subscriptions", err)
	}
	defer stmt.Close()
	for _, f := range filters {
		if _, err := stmt.ExecContext(ctx, clientID, f); err != nil {
			return wrap("delete subscriptions of "+clientID, err)
		}
	}
	return wrap("delete subscriptions", tx.Commit())
}

// DeleteSession implements session.Store. The session's end, if one was
// recorded, goes with its subscriptions.
func (db *DB) DeleteSession(ctx context.Context, clientID string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("delete session of "+clientID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_subscriptions WHERE client_id = ?`, clientID); err != nil {
		return wrap("delete session of "+clientID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_expiry WHERE client_id = ?`, clientID); err != nil {
		return wrap("delete session of "+clientID, err)
	}
	return wrap("delete session of "+clientID, tx.Commit())
}

// SetSessionExpiry records when a disconnected client's persistent session
// ends if the client does not come back.
func (db *DB) SetSessionExpiry(ctx context.Context, clientID string, at time.Time) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO mqtt_session_expiry (client_id, expires_at) VALUES (?, ?)
		ON CONFLICT (client_id) DO UPDATE SET expires_at = excluded.expires_at`, clientID, at.Unix())
	return wrap("set session expiry of "+clientID, err)
}

// ClearSessionExpiry forgets the end of a session whose client came back.
func (db *DB) ClearSessionExpiry(ctx context.Context, clientID string) error {
	_, err := db.w.ExecContext(ctx, `DELETE FROM mqtt_session_expiry WHERE client_id = ?`, clientID)
	return wrap("clear session expiry of "+clientID, err)
}

// PurgeExpiredSessions deletes the subscriptions of every session that ended
// at or before now (and ends without subscriptions left), in one
// transaction. It reports how many sessions it deleted.
func (db *DB) PurgeExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, wrap("purge expired sessions", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_subscriptions WHERE client_id IN
		(SELECT client_id FROM mqtt_session_expiry WHERE expires_at <= ?)`, now.Unix()); err != nil {
		return 0, wrap("purge expired sessions", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_expiry WHERE expires_at <= ?
		OR client_id NOT IN (SELECT client_id FROM mqtt_subscriptions)`, now.Unix())
	if err != nil {
		return 0, wrap("purge expired sessions", err)
	}
	n, _ := res.RowsAffected()
	return int(n), wrap("purge expired sessions", tx.Commit())
}

// LoadSessionExpiries returns the recorded end of every disconnected
// persistent session, by client id.
func (db *DB) LoadSessionExpiries(ctx context.Context) (map[string]time.Time, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT client_id, expires_at FROM mqtt_session_expiry`)
	if err != nil {
		return nil, wrap("load session expiries", err)
	}
	defer rows.Close()
	out := make(map[string]time.Time)
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, wrap("load session expiries", err)
		}
		out[id] = time.Unix(at, 0)
	}
	return out, wrap("load session expiries", rows.Err())
}

// LoadSubscriptions implements session.Store. Rows come ordered by client id
// and filter, so each client's subscriptions are adjacent.
func (db *DB) LoadSubscriptions(ctx context.Context) ([]session.Subscription, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT client_id, filter, qos FROM mqtt_subscriptions ORDER BY client_id, filter`)
	if err != nil {
		return nil, wrap("load subscriptions", err)
	}
	defer rows.Close()
	var subs []session.Subscription
	for rows.Next() {
		var s session.Subscription
		if err := rows.Scan(&s.ClientID, &s.Filter, &s.QoS); err != nil {
			return nil, wrap("load subscriptions", err)
		}
		subs = append(subs, s)
	}
	return subs, wrap("load subscriptions", rows.Err())
}
