package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ConsoleSession is one web console sign-in (package console). The store
// never sees the session id or a key, only their hashes.
type ConsoleSession struct {
	ID       []byte    // SHA-256 of the session id
	Policy   string    // access policy name
	KeyHash  []byte    // SHA-256 of the policy key the session signed in with
	Created  time.Time // sign-in
	LastSeen time.Time // last request, to within a minute
	Expires  time.Time // absolute end
}

// CreateConsoleSession stores s. When max sessions are kept already, it
// first removes those closest to expiry, in the same transaction, so that
// at most max remain (max <= 0 is no limit).
func (db *DB) CreateConsoleSession(ctx context.Context, s ConsoleSession, max int) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("create console session", err)
	}
	defer tx.Rollback()
	if max > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_sessions`).Scan(&n); err != nil {
			return wrap("create console session: count", err)
		}
		if n >= max {
			if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash IN
				(SELECT id_hash FROM console_sessions ORDER BY expires_at LIMIT ?)`, n-max+1); err != nil {
				return wrap("create console session: evict", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO console_sessions
		(id_hash, policy, key_hash, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.ID, s.Policy, s.KeyHash, formatTime(s.Created), formatTime(s.LastSeen), formatTime(s.Expires)); err != nil {
		return wrap("create console session", err)
	}
	return wrap("create console session", tx.Commit())
}

// ConsoleSession returns the session whose id hashes to idHash; ok is
// false when there is none. Expiry is the caller's to check.
func (db *DB) ConsoleSession(ctx context.Context, idHash []byte) (s ConsoleSession, ok bool, err error) {
	var created, seen, expires string
	err = db.r.QueryRowContext(ctx, `SELECT id_hash, policy, key_hash, created_at, last_seen_at, expires_at
		FROM console_sessions WHERE id_hash = ?`, idHash).
		Scan(&s.ID, &s.Policy, &s.KeyHash, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleSession{}, false, nil
	}
	if err != nil {
		return ConsoleSession{}, false, wrap("read console session", err)
	}
	if s.Created, err = parseTime(created); err == nil {
		if s.LastSeen, err = parseTime(seen); err == nil {
			s.Expires, err = parseTime(expires)
		}
	}
	if err != nil {
		return ConsoleSession{}, false, wrap("read console session", err)
	}
	return s, true, nil
}

// TouchConsoleSession records a request of the session at at.
func (db *DB) TouchConsoleSession(ctx context.Context, idHash []byte, at time.Time) error {
	_, err := db.w.ExecContext(ctx, `UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?`,
		formatTime(at), idHash)
	return wrap("touch console session", err)
}

// DeleteConsoleSession removes the session whose id hashes to idHash.
func (db *DB) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	_, err := db.w.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash)
	return wrap("delete console session", err)
}

// PurgeConsoleSessions removes up to limit sessions that expired by now,
// or whose last request was before idleSince when it is not zero, and
// returns how many it removed.
func (db *DB) PurgeConsoleSessions(ctx context.Context, now, idleSince time.Time, limit int) (int64, error) {
	// Without an idle limit the expired sessions are a range of the
	// expires_at index; the idle test reads every row (there are at most
	// the console's maximum).
	q, args := `DELETE FROM console_sessions WHERE id_hash IN
		(SELECT id_hash FROM console_sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`,
		[]any{formatTime(now), limit}
	if !idleSince.IsZero() {
		q, args = `DELETE FROM console_sessions WHERE id_hash IN
			(SELECT id_hash FROM console_sessions WHERE expires_at <= ? OR last_seen_at < ? LIMIT ?)`,
			[]any{formatTime(now), formatTime(idleSince), limit}
	}
	res, err := db.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, wrap("purge console sessions", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("purge console sessions", err)
}
