package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// deviceColumns is the column list every device SELECT reads, in scanDevice's order.
const deviceColumns = `id, generation_id, etag, status, status_reason, status_updated_at,
	connection_state, connection_state_updated_at, last_activity_at, c2d_message_count,
	auth_type, model_id, authentication, attributes`

// attributes is the JSON column for device fields nothing queries on their own.
type attributes struct {
	Capabilities registry.Capabilities `json:"capabilities"`
	DeviceScope  *string               `json:"deviceScope"`
	ParentScopes []string              `json:"parentScopes"`
}

// CreateDevice implements registry.Store.
func (db *DB) CreateDevice(ctx context.Context, d *registry.Device) error {
	auth, attrs, err := encodeDocs(d)
	if err != nil {
		return wrap("create device "+d.DeviceID, err)
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO devices (`+deviceColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.DeviceID, d.GenerationID, d.ETag, string(d.Status), d.StatusReason, formatTime(d.StatusUpdatedTime),
		d.ConnectionState, formatTime(d.ConnectionStateUpdatedTime), formatTime(d.LastActivityTime),
		d.CloudToDeviceMessageCount, string(d.Authentication.Type), d.ModelID, auth, attrs)
	if isUniqueViolation(err) {
		err = registry.DeviceExistsError(d.DeviceID)
	}
	return wrap("create device", err)
}

// GetDevice implements registry.Store.
func (db *DB) GetDevice(ctx context.Context, id string) (*registry.Device, error) {
	row := db.getDevice.QueryRowContext(ctx, id)
	d, err := scanDevice(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = registry.DeviceNotFoundError(id)
	}
	if err != nil {
		return nil, wrap("get device", err)
	}
	return d, nil
}

// UpdateDevice implements registry.Store.
func (db *DB) UpdateDevice(ctx context.Context, d *registry.Device, ifMatch string) error {
	auth, attrs, err := encodeDocs(d)
	if err != nil {
		return wrap("update device "+d.DeviceID, err)
	}
	err = db.conditionalWrite(ctx, d.DeviceID, ifMatch, `UPDATE devices SET
		generation_id = ?, etag = ?, status = ?, status_reason = ?, status_updated_at = ?,
		auth_type = ?, model_id = ?, authentication = ?, attributes = ?
		WHERE id = ? AND (? IN ('', '*') OR etag = ?)`,
		d.GenerationID, d.ETag, string(d.Status), d.StatusReason, formatTime(d.StatusUpdatedTime),
		string(d.Authentication.Type), d.ModelID, auth, attrs,
		d.DeviceID, ifMatch, ifMatch)
	return wrap("update device", err)
}

// DeleteDevice implements registry.Store.
func (db *DB) DeleteDevice(ctx context.Context, id, ifMatch string) error {
	err := db.conditionalWrite(ctx, id, ifMatch,
		`DELETE FROM devices WHERE id = ? AND (? IN ('', '*') OR etag = ?)`, id, ifMatch, ifMatch)
	return wrap("delete device", err)
}

// conditionalWrite runs a statement guarded by an etag condition and, when it
// touched no row, tells a missing device from a stale etag. Both happen in
// one transaction, so the answer describes the state the write saw.
func (db *DB) conditionalWrite(ctx context.Context, id, ifMatch, query string, args ...any) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		var etag string
		err := tx.QueryRowContext(ctx, `SELECT etag FROM devices WHERE id = ?`, id).Scan(&etag)
		if errors.Is(err, sql.ErrNoRows) {
			return registry.DeviceNotFoundError(id)
		}
		if err != nil {
			return err
		}
		return registry.PreconditionFailedError(id)
	}
	return tx.Commit()
}

// ListDevices implements registry.Store.
func (db *DB) ListDevices(ctx context.Context, after string, limit int) ([]registry.Device, error) {
	if limit <= 0 {
		return nil, wrap("list devices", fault.Invalidf("list limit must be positive, not %d", limit))
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, wrap("list devices", err)
	}
	defer rows.Close()
	var ds []registry.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, wrap("list devices", err)
		}
		ds = append(ds, *d)
	}
	return ds, wrap("list devices", rows.Err())
}

// CountDevices implements registry.Store.
func (db *DB) CountDevices(ctx context.Context) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices`).Scan(&n)
	return n, wrap("count devices", err)
}

// SetConnectionState implements registry.Store.
func (db *DB) SetConnectionState(ctx context.Context, id string, connected bool, at time.Time) error {
	state := registry.Disconnected
	if connected {
		state = registry.Connected
	}
	ts := formatTime(at)
	res, err := db.setConnectionState.ExecContext(ctx, state, ts, ts, id)
	if err != nil {
		return wrap("set connection state", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("set connection state", err)
	} else if n == 0 {
		return wrap("set connection state", registry.DeviceNotFoundError(id))
	}
	return nil
}

// encodeDocs returns the JSON columns of d.
// They are strings because the columns are STRICT TEXT and refuse a BLOB.
func encodeDocs(d *registry.Device) (auth, attrs string, err error) {
	a, err := json.Marshal(d.Authentication)
	if err != nil {
		return "", "", fmt.Errorf("encode authentication: %w", err)
	}
	b, err := json.Marshal(attributes{Capabilities: d.Capabilities, DeviceScope: d.DeviceScope, ParentScopes: d.ParentScopes})
	if err != nil {
		return "", "", fmt.Errorf("encode attributes: %w", err)
	}
	return string(a), string(b), nil
}

// scanner is the Scan method shared by *sql.Row and *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanDevice reads one row of deviceColumns.
func scanDevice(s scanner) (*registry.Device, error) {
	var (
		d                            registry.Device
		status, authType             string
		statusAt, connAt, activityAt string
		auth, attrs                  []byte
		a                            attributes
	)
	err := s.Scan(&d.DeviceID, &d.GenerationID, &d.ETag, &status, &d.StatusReason, &statusAt,
		&d.ConnectionState, &connAt, &activityAt, &d.CloudToDeviceMessageCount,
		&authType, &d.ModelID, &auth, &attrs)
	if err != nil {
		return nil, err
	}
	d.Status = registry.Status(status)
	if d.StatusUpdatedTime, err = parseTime(statusAt); err == nil {
		if d.ConnectionStateUpdatedTime, err = parseTime(connAt); err == nil {
			d.LastActivityTime, err = parseTime(activityAt)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("device %s: bad stored time: %w", d.DeviceID, err)
	}
	if err := json.Unmarshal(auth, &d.Authentication); err != nil {
		return nil, fmt.Errorf("device %s: bad stored authentication: %w", d.DeviceID, err)
	}
	if err := json.Unmarshal(attrs, &a); err != nil {
		return nil, fmt.Errorf("device %s: bad stored attributes: %w", d.DeviceID, err)
	}
	d.Authentication.Type = registry.AuthType(authType)
	d.Capabilities, d.DeviceScope, d.ParentScopes = a.Capabilities, a.DeviceScope, a.ParentScopes
	return &d, nil
}
