package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ferry-iot/ferry/internal/twin"
)

var _ twin.Store = (*DB)(nil)

// twinColumns is the column list every twin SELECT reads, in scanTwin's order.
const twinColumns = `etag, version, tags, tags_version, desired, desired_meta, desired_version,
	reported, reported_meta, reported_version, updated_at`

// GetTwin implements twin.Store. The device row is read in the same query,
// so a missing twin row of a registered device and an unknown device are
// told apart consistently.
func (db *DB) GetTwin(ctx context.Context, deviceID, moduleID string) (*twin.Twin, error) {
	var found bool
	cols := make([]any, 0, 12)
	row := db.r.QueryRowContext(ctx, `SELECT t.device_id IS NOT NULL, `+prefixed("t.", twinColumns)+`
		FROM devices d LEFT JOIN twins t ON t.device_id = d.id AND t.module_id = ?
		WHERE d.id = ?`, moduleID, deviceID)
	var n nullTwin
	cols = append(cols, &found)
	cols = append(cols, n.dests()...)
	err := row.Scan(cols...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("get twin", twin.DeviceNotFoundError(deviceID))
	}
	if err != nil {
		return nil, wrap("get twin", err)
	}
	if !found {
		return twin.Empty(deviceID, moduleID), nil
	}
	t, err := n.twin(deviceID, moduleID)
	return t, wrap("get twin", err)
}

// UpdateTwin implements twin.Store. The read, fn and the writes run in one
// IMMEDIATE transaction on the single writer connection, which serializes
// updates of every twin without a version check.
func (db *DB) UpdateTwin(ctx context.Context, deviceID, moduleID string, fn func(t *twin.Twin) ([]twin.Change, error)) error {
	err := db.updateTwin(ctx, deviceID, moduleID, fn)
	return wrap("update twin", err)
}

func (db *DB) updateTwin(ctx context.Context, deviceID, moduleID string, fn func(t *twin.Twin) ([]twin.Change, error)) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	t, exists, err := readTwin(ctx, tx, tx.StmtContext(ctx, db.twin.read), deviceID, moduleID)
	if err != nil {
		return err
	}
	cs, err := fn(t)
	if err != nil || len(cs) == 0 {
		return err
	}
	if err := writeTwin(ctx, tx, tx.StmtContext(ctx, db.twin.update), [2]string{deviceID, moduleID}, t, exists); err != nil {
		return err
	}
	for _, c := range cs {
		if _, err := tx.StmtContext(ctx, db.twin.history).ExecContext(ctx,
			deviceID, moduleID, c.TwinVersion, string(c.Side), c.Version, formatTime(c.Time), c.Source, string(c.Patch)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// readTwin reads a twin inside tx with read (twinStmts.read), or Empty when the device has none yet.
func readTwin(ctx context.Context, tx *sql.Tx, read *sql.Stmt, deviceID, moduleID string) (t *twin.Twin, exists bool, err error) {
	var n nullTwin
	err = read.QueryRowContext(ctx, deviceID, moduleID).Scan(n.dests()...)
	if err == nil {
		t, err = n.twin(deviceID, moduleID)
		return t, true, err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, err
	}
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, deviceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, twin.DeviceNotFoundError(deviceID)
	}
	if err != nil {
		return nil, false, err
	}
	return twin.Empty(deviceID, moduleID), false, nil
}

// DeleteTwins implements twin.Store. Deleting the device row deletes its
// twins too (ON DELETE CASCADE); this is for callers that delete twins
// first, and for stores without foreign keys.
func (db *DB) DeleteTwins(ctx context.Context, deviceID string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("delete twins", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM twin_history WHERE device_id = ?`, deviceID); err != nil {
		return wrap("delete twins", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM twin_history_base WHERE device_id = ?`, deviceID); err != nil {
		return wrap("delete twins", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM twins WHERE device_id = ?`, deviceID); err != nil {
		return wrap("delete twins", err)
	}
	return wrap("delete twins", tx.Commit())
}

// nullTwin receives a twins row that a LEFT JOIN may leave NULL.
type nullTwin struct {
	etag, tags, desired, desiredMeta, reported, reportedMeta, updatedAt sql.NullString
	version, tagsVersion, desiredVersion, reportedVersion               sql.NullInt64
}

// dests returns scan destinations in twinColumns order.
func (n *nullTwin) dests() []any {
	return []any{&n.etag, &n.version, &n.tags, &n.tagsVersion, &n.desired, &n.desiredMeta,
		&n.desiredVersion, &n.reported, &n.reportedMeta, &n.reportedVersion, &n.updatedAt}
}

func (n *nullTwin) twin(deviceID, moduleID string) (*twin.Twin, error) {
	at, err := parseTime(n.updatedAt.String)
	if err != nil {
		return nil, fmt.Errorf("twin %s: bad stored time: %w", deviceID, err)
	}
	return &twin.Twin{
		DeviceID: deviceID, ModuleID: moduleID,
		ETag: n.etag.String, Version: n.version.Int64,
		Tags: []byte(n.tags.String), TagsVersion: n.tagsVersion.Int64,
		Desired:   twin.Properties{Doc: []byte(n.desired.String), Metadata: []byte(n.desiredMeta.String), Version: n.desiredVersion.Int64},
		Reported:  twin.Properties{Doc: []byte(n.reported.String), Metadata: []byte(n.reportedMeta.String), Version: n.reportedVersion.Int64},
		UpdatedAt: at,
	}, nil
}

// prefixed qualifies each column of a comma-separated list with p.
func prefixed(p, cols string) string {
	var b []byte
	for i, c := range splitColumns(cols) {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, p+c...)
	}
	return string(b)
}
