package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/provision"
)

var _ provision.Store = (*DB)(nil)

const tokenColumns = `id, name, secret_hash, created_at, expires_at, max_uses, uses, revoked_at, auto_approve`

const operationColumns = `id, token_id, requested_device_id, verification_code, state, created_at,
	expires_at, decided_at, device_id, model_id, data, reason`

// CreateToken implements provision.Store.
func (db *DB) CreateToken(ctx context.Context, t *provision.Token) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO provisioning_tokens (`+tokenColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.SecretHash, formatTime(t.CreatedAt), formatTime(t.ExpiresAt), t.MaxUses, t.Uses,
		nullTime(t.RevokedAt), t.AutoApprove)
	if isUniqueViolation(err) {
		err = provision.TokenExistsError(t.Name)
	}
	return wrap("create provisioning token", err)
}

// GetToken implements provision.Store.
func (db *DB) GetToken(ctx context.Context, name string) (*provision.Token, error) {
	return db.tokenWhere(ctx, db.r, "name = ?", name, name)
}

// GetTokenByID implements provision.Store.
func (db *DB) GetTokenByID(ctx context.Context, id string) (*provision.Token, error) {
	return db.tokenWhere(ctx, db.r, "id = ?", id, id)
}

// GetTokenByHash implements provision.Store.
func (db *DB) GetTokenByHash(ctx context.Context, hash []byte) (*provision.Token, error) {
	return db.tokenWhere(ctx, db.r, "secret_hash = ?", hash, "(by secret)")
}

// rowQuerier is what *sql.DB and *sql.Tx share.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) tokenWhere(ctx context.Context, q rowQuerier, cond string, arg any, name string) (*provision.Token, error) {
	row := q.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM provisioning_tokens WHERE `+cond, arg)
	t, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = provision.TokenNotFoundError(name)
	}
	if err != nil {
		return nil, wrap("get provisioning token", err)
	}
	return t, nil
}

// ListTokens implements provision.Store.
func (db *DB) ListTokens(ctx context.Context) ([]provision.Token, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM provisioning_tokens ORDER BY name`)
	if err != nil {
		return nil, wrap("list provisioning tokens", err)
	}
	defer rows.Close()
	var ts []provision.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, wrap("list provisioning tokens", err)
		}
		ts = append(ts, *t)
	}
	return ts, wrap("list provisioning tokens", rows.Err())
}

// RevokeToken implements provision.Store.
func (db *DB) RevokeToken(ctx context.Context, name string, at time.Time) (*provision.Token, error) {
	res, err := db.w.ExecContext(ctx, `UPDATE provisioning_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?`,
		formatTime(at), name)
	if err != nil {
		return nil, wrap("revoke provisioning token", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, wrap("revoke provisioning token", provision.TokenNotFoundError(name))
	}
	return db.tokenWhere(ctx, db.w, "name = ?", name, name)
}

func scanToken(r scanner) (*provision.Token, error) {
	var (
		t                provision.Token
		created, expires string
		revoked          sql.NullString
	)
	if err := r.Scan(&t.ID, &t.Name, &t.SecretHash, &created, &expires, &t.MaxUses, &t.Uses, &revoked, &t.AutoApprove); err != nil {
		return nil, err
	}
	var err error
	if t.CreatedAt, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("token %s: bad created_at: %w", t.Name, err)
	}
	if t.ExpiresAt, err = parseTime(expires); err != nil {
		return nil, fmt.Errorf("token %s: bad expires_at: %w", t.Name, err)
	}
	if revoked.Valid {
		t.Revoked = true
		if t.RevokedAt, err = parseTime(revoked.String); err != nil {
			return nil, fmt.Errorf("token %s: bad revoked_at: %w", t.Name, err)
		}
	}
	return &t, nil
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

// CreateOperation implements provision.Store.
func (db *DB) CreateOperation(ctx context.Context, op *provision.Operation) error {
	var data any
	if len(op.Data) > 0 {
		data = string(op.Data)
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO provisioning_operations (`+operationColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		op.ID, op.TokenID, op.RequestedDeviceID, op.VerificationCode, string(op.State), formatTime(op.CreatedAt),
		formatTime(op.ExpiresAt), nullTime(op.DecidedAt), op.DeviceID, op.ModelID, data, op.Reason)
	return wrap("create provisioning operation", err)
}

// OpenOperation implements provision.Store. It runs in one write
// transaction, so the counts cannot change between the check and the
// insert.
func (db *DB) OpenOperation(ctx context.Context, op *provision.Operation, lim provision.PendingLimits) (string, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return "", wrap("open provisioning operation", err)
	}
	defer tx.Rollback()
	now := formatTime(op.CreatedAt)
	var data any
	if len(op.Data) > 0 {
		data = string(op.Data)
	}
	if op.RequestedDeviceID != "" {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT id FROM provisioning_operations
			WHERE state = 'pending' AND requested_device_id = ? AND expires_at > ? AND token_id = ?
			ORDER BY expires_at DESC LIMIT 1`, op.RequestedDeviceID, now, op.TokenID).Scan(&old)
		switch {
		case err == nil:
			if _, err := tx.ExecContext(ctx, `UPDATE provisioning_operations SET id = ?, verification_code = ?,
				created_at = ?, expires_at = ?, model_id = ?, data = ? WHERE id = ?`,
				op.ID, op.VerificationCode, now, formatTime(op.ExpiresAt), op.ModelID, data, old); err != nil {
				return "", wrap("open provisioning operation: replace "+old, err)
			}
			return old, wrap("open provisioning operation", tx.Commit())
		case !errors.Is(err, sql.ErrNoRows):
			return "", wrap("open provisioning operation: find pending of "+op.RequestedDeviceID, err)
		}
		if lim.PerDevice > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM provisioning_operations o
				JOIN provisioning_tokens t ON t.id = o.token_id AND t.revoked_at IS NULL
				WHERE o.state = 'pending' AND o.requested_device_id = ? AND o.expires_at > ?`,
				op.RequestedDeviceID, now).Scan(&n); err != nil {
				return "", wrap("open provisioning operation: count pending of "+op.RequestedDeviceID, err)
			}
			if n >= lim.PerDevice {
				return "", wrap("open provisioning operation", provision.PendingLimitError(op.RequestedDeviceID, lim.PerDevice))
			}
		}
	}
	if lim.Total > 0 {
		// The index is named, as the planner would pick the state index and
		// read the expired pending operations the sweep has not reached yet
		// too. Those of a revoked token cannot be approved: revoking a
		// leaked token frees their places at once.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM provisioning_operations o
			INDEXED BY provisioning_operations_pending
			JOIN provisioning_tokens t ON t.id = o.token_id AND t.revoked_at IS NULL
			WHERE o.expires_at > ? AND o.state = 'pending'`, now).Scan(&n); err != nil {
			return "", wrap("open provisioning operation: count pending", err)
		}
		if n >= lim.Total {
			return "", wrap("open provisioning operation", provision.PendingLimitError("", lim.Total))
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO provisioning_operations (`+operationColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		op.ID, op.TokenID, op.RequestedDeviceID, op.VerificationCode, string(op.State), now,
		formatTime(op.ExpiresAt), nullTime(op.DecidedAt), op.DeviceID, op.ModelID, data, op.Reason); err != nil {
		return "", wrap("open provisioning operation", err)
	}
	return "", wrap("open provisioning operation", tx.Commit())
}

// PurgeOperations implements provision.Store. The LIMIT bounds one
// statement's work (and so the time it holds the writer) on a large
// backlog; the caller repeats it.
func (db *DB) PurgeOperations(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res, err := db.w.ExecContext(ctx, `DELETE FROM provisioning_operations WHERE id IN
		(SELECT id FROM provisioning_operations WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`,
		formatTime(cutoff), limit)
	if err != nil {
		return 0, wrap("purge provisioning operations", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("purge provisioning operations", err)
}

// GetOperation implements provision.Store.
func (db *DB) GetOperation(ctx context.Context, id string) (*provision.Operation, error) {
	return getOperation(ctx, db.r, id)
}

func getOperation(ctx context.Context, q rowQuerier, id string) (*provision.Operation, error) {
	op, err := scanOperation(q.QueryRowContext(ctx, `SELECT `+operationColumns+` FROM provisioning_operations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = provision.OperationNotFoundError(id)
	}
	if err != nil {
		return nil, wrap("get provisioning operation", err)
	}
	return op, nil
}

// ListOperations implements provision.Store.
func (db *DB) ListOperations(ctx context.Context, states []provision.State, limit int) ([]provision.Operation, error) {
	q := `SELECT ` + operationColumns + ` FROM provisioning_operations`
	args := make([]any, 0, len(states)+1)
	if len(states) > 0 {
		q += ` WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `)`
		for _, s := range states {
			args = append(args, string(s))
		}
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list provisioning operations", err)
	}
	defer rows.Close()
	var ops []provision.Operation
	for rows.Next() {
		op, err := scanOperation(rows)
		if err != nil {
			return nil, wrap("list provisioning operations", err)
		}
		ops = append(ops, *op)
	}
	return ops, wrap("list provisioning operations", rows.Err())
}

func scanOperation(r scanner) (*provision.Operation, error) {
	var (
		op               provision.Operation
		state            string
		created, expires string
		decided, data    sql.NullString
	)
	if err := r.Scan(&op.ID, &op.TokenID, &op.RequestedDeviceID, &op.VerificationCode, &state, &created,
		&expires, &decided, &op.DeviceID, &op.ModelID, &data, &op.Reason); err != nil {
		return nil, err
	}
	op.State = provision.State(state)
	var err error
	if op.CreatedAt, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("operation %s: bad created_at: %w", op.ID, err)
	}
	if op.ExpiresAt, err = parseTime(expires); err != nil {
		return nil, fmt.Errorf("operation %s: bad expires_at: %w", op.ID, err)
	}
	if decided.Valid {
		if op.DecidedAt, err = parseTime(decided.String); err != nil {
			return nil, fmt.Errorf("operation %s: bad decided_at: %w", op.ID, err)
		}
	}
	if data.Valid {
		op.Data = []byte(data.String)
	}
	return &op, nil
}

// ApproveOperation implements provision.Store.
func (db *DB) ApproveOperation(ctx context.Context, id, deviceID string, now, expires time.Time) (*provision.Operation, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap("approve provisioning operation", err)
	}
	defer tx.Rollback()
	op, err := getOperation(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if op.State != provision.StatePending {
		return nil, wrap("approve provisioning operation", provision.OperationNotPendingError(id, op.State))
	}
	if !now.Before(op.ExpiresAt) {
		return nil, wrap("approve provisioning operation", provision.OperationNotPendingError(id, provision.StateExpired))
	}
	tok, err := db.tokenWhere(ctx, tx, "id = ?", op.TokenID, op.TokenID)
	if err != nil {
		return nil, err
	}
	switch {
	case tok.Revoked:
		return nil, wrap("approve provisioning operation", provision.TokenUnusableError(tok.Name, "was revoked"))
	case tok.Exhausted():
		return nil, wrap("approve provisioning operation", provision.TokenUnusableError(tok.Name,
			fmt.Sprintf("has been used %d of %d times", tok.Uses, tok.MaxUses)))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE provisioning_tokens SET uses = uses + 1 WHERE id = ?`, tok.ID); err != nil {
		return nil, wrap("approve provisioning operation", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE provisioning_operations SET state = 'approved', device_id = ?,
		decided_at = ?, expires_at = ? WHERE id = ?`, deviceID, formatTime(now), formatTime(expires), id); err != nil {
		return nil, wrap("approve provisioning operation", err)
	}
	op.State, op.DeviceID, op.DecidedAt, op.ExpiresAt = provision.StateApproved, deviceID, now, expires
	return op, wrap("approve provisioning operation", tx.Commit())
}

// DecideOperation implements provision.Store.
func (db *DB) DecideOperation(ctx context.Context, id string, from []provision.State, to provision.State,
	reason string, now time.Time) (*provision.Operation, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap("decide provisioning operation", err)
	}
	defer tx.Rollback()
	op, err := getOperation(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, s := range from {
		ok = ok || op.State == s
	}
	if !ok {
		return nil, wrap("decide provisioning operation", provision.OperationNotPendingError(id, op.State))
	}
	if op.State == provision.StatePending {
		op.DecidedAt = now
	}
	if reason != "" {
		op.Reason = reason
	}
	op.State = to
	if _, err := tx.ExecContext(ctx, `UPDATE provisioning_operations SET state = ?, decided_at = ?, reason = ? WHERE id = ?`,
		string(op.State), nullTime(op.DecidedAt), op.Reason, id); err != nil {
		return nil, wrap("decide provisioning operation", err)
	}
	return op, wrap("decide provisioning operation", tx.Commit())
}

// SigningKey implements provision.Store.
func (db *DB) SigningKey(ctx context.Context, candidate []byte) ([]byte, error) {
	if _, err := db.w.ExecContext(ctx, `INSERT INTO provisioning_keys (id, key) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`,
		candidate); err != nil {
		return nil, wrap("provisioning signing key", err)
	}
	var key []byte
	err := db.w.QueryRowContext(ctx, `SELECT key FROM provisioning_keys WHERE id = 1`).Scan(&key)
	return key, wrap("provisioning signing key", err)
}
