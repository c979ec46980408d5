package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ferry-iot/ferry/internal/registry"
)

var _ registry.ModuleStore = (*DB)(nil)

// moduleColumns is the column list every module SELECT reads, in scanModule's order.
const moduleColumns = `device_id, module_id, generation_id, etag, connection_state,
	connection_state_updated_at, last_activity_at, c2d_message_count, auth_type, authentication, managed_by`

// CreateModule implements registry.ModuleStore.
func (db *DB) CreateModule(ctx context.Context, m *registry.Module) error {
	auth, err := json.Marshal(m.Authentication)
	if err != nil {
		return wrap("create module "+m.DeviceID+"/"+m.ModuleID, fmt.Errorf("encode authentication: %w", err))
	}
	// The device check and the insert share one transaction, so a missing
	// device is told apart from a taken module id consistently.
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("create module", err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, m.DeviceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return wrap("create module", registry.DeviceNotFoundError(m.DeviceID))
	}
	if err != nil {
		return wrap("create module", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO modules (`+moduleColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.DeviceID, m.ModuleID, m.GenerationID, m.ETag, m.ConnectionState,
		formatTime(m.ConnectionStateUpdatedTime), formatTime(m.LastActivityTime), m.CloudToDeviceMessageCount,
		string(m.Authentication.Type), string(auth), m.ManagedBy)
	if isUniqueViolation(err) {
		err = registry.ModuleExistsError(m.DeviceID, m.ModuleID)
	}
	if err != nil {
		return wrap("create module", err)
	}
	return wrap("create module", tx.Commit())
}

// GetModule implements registry.ModuleStore.
func (db *DB) GetModule(ctx context.Context, deviceID, moduleID string) (*registry.Module, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+moduleColumns+` FROM modules WHERE device_id = ? AND module_id = ?`,
		deviceID, moduleID)
	m, err := scanModule(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = registry.ModuleNotFoundError(deviceID, moduleID)
	}
	if err != nil {
		return nil, wrap("get module", err)
	}
	return m, nil
}

// UpdateModule implements registry.ModuleStore.
func (db *DB) UpdateModule(ctx context.Context, m *registry.Module, ifMatch string) error {
	auth, err := json.Marshal(m.Authentication)
	if err != nil {
		return wrap("update module "+m.DeviceID+"/"+m.ModuleID, fmt.Errorf("encode authentication: %w", err))
	}
	err = db.conditionalModuleWrite(ctx, m.DeviceID, m.ModuleID, ifMatch, `UPDATE modules SET
		generation_id = ?, etag = ?, auth_type = ?, authentication = ?, managed_by = ?
		WHERE device_id = ? AND module_id = ? AND (? IN ('', '*') OR etag = ?)`,
		m.GenerationID, m.ETag, string(m.Authentication.Type), string(auth), m.ManagedBy,
		m.DeviceID, m.ModuleID, ifMatch, ifMatch)
	return wrap("update module", err)
}

// DeleteModule implements registry.ModuleStore. The modules_twin_delete
// trigger removes the module's twin and its history in the same transaction.
func (db *DB) DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error {
	err := db.conditionalModuleWrite(ctx, deviceID, moduleID, ifMatch,
		`DELETE FROM modules WHERE device_id = ? AND module_id = ? AND (? IN ('', '*') OR etag = ?)`,
		deviceID, moduleID, ifMatch, ifMatch)
	return wrap("delete module", err)
}

// conditionalModuleWrite is conditionalWrite for modules: when the guarded
// statement touched no row, it tells a missing module from a stale etag in
// the same transaction.
func (db *DB) conditionalModuleWrite(ctx context.Context, deviceID, moduleID, ifMatch, query string, args ...any) error {
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
		err := tx.QueryRowContext(ctx, `SELECT etag FROM modules WHERE device_id = ? AND module_id = ?`,
			deviceID, moduleID).Scan(&etag)
		if errors.Is(err, sql.ErrNoRows) {
			return registry.ModuleNotFoundError(deviceID, moduleID)
		}
		if err != nil {
			return err
		}
		return registry.ModulePreconditionFailedError(deviceID, moduleID)
	}
	return tx.Commit()
}

// ListModules implements registry.ModuleStore. The device check and the
// list read one snapshot.
func (db *DB) ListModules(ctx context.Context, deviceID string) ([]registry.Module, error) {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: db.r != db.w})
	if err != nil {
		return nil, wrap("list modules", err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, deviceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("list modules", registry.DeviceNotFoundError(deviceID))
	}
	if err != nil {
		return nil, wrap("list modules", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+moduleColumns+` FROM modules WHERE device_id = ? ORDER BY module_id`, deviceID)
	if err != nil {
		return nil, wrap("list modules", err)
	}
	defer rows.Close()
	var ms []registry.Module
	for rows.Next() {
		m, err := scanModule(rows)
		if err != nil {
			return nil, wrap("list modules", err)
		}
		ms = append(ms, *m)
	}
	return ms, wrap("list modules", rows.Err())
}

// scanModule reads one row of moduleColumns.
func scanModule(s scanner) (*registry.Module, error) {
	var (
		m                registry.Module
		connAt, activity string
		authType         string
		auth             []byte
	)
	err := s.Scan(&m.DeviceID, &m.ModuleID, &m.GenerationID, &m.ETag, &m.ConnectionState,
		&connAt, &activity, &m.CloudToDeviceMessageCount, &authType, &auth, &m.ManagedBy)
	if err != nil {
		return nil, err
	}
	if m.ConnectionStateUpdatedTime, err = parseTime(connAt); err == nil {
		m.LastActivityTime, err = parseTime(activity)
	}
	if err != nil {
		return nil, fmt.Errorf("module %s/%s: bad stored time: %w", m.DeviceID, m.ModuleID, err)
	}
	if err := json.Unmarshal(auth, &m.Authentication); err != nil {
		return nil, fmt.Errorf("module %s/%s: bad stored authentication: %w", m.DeviceID, m.ModuleID, err)
	}
	m.Authentication.Type = registry.AuthType(authType)
	return &m, nil
}
