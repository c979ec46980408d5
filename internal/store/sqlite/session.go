package sqlite

import (
	"context"

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

// DeleteSession implements session.Store.
func (db *DB) DeleteSession(ctx context.Context, clientID string) error {
	_, err := db.w.ExecContext(ctx, `DELETE FROM mqtt_subscriptions WHERE client_id = ?`, clientID)
	return wrap("delete session of "+clientID, err)
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
