package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/twin"
)

var _ twin.TrimStore = (*DB)(nil)

// The statements of trimming; tests check their query plans.
const (
	sqlTwinsOverCount = `SELECT t.device_id, t.module_id FROM twins t
		LEFT JOIN twin_history_base b ON b.device_id = t.device_id AND b.module_id = t.module_id
		WHERE (t.device_id, t.module_id) > (?, ?) AND t.version - COALESCE(b.version, 1) > ?
		ORDER BY t.device_id, t.module_id LIMIT ?`
	// Without INDEXED BY the planner prefers a scan of the whole history
	// in primary key order, which makes DISTINCT free but reads every row.
	sqlTwinsChangedBefore = `SELECT DISTINCT device_id, module_id FROM twin_history INDEXED BY twin_history_at
		WHERE at < ? LIMIT ?`
	sqlTrimTwinHistory = `DELETE FROM twin_history
		WHERE device_id = ? AND module_id = ? AND twin_version > ? AND twin_version <= ?`
)

// TwinsOverCount implements twin.TrimStore. A twin keeps one change per
// version after its base (or after the Empty twin's version 1), so its
// count is its version less the base's: one row of twins and one lookup
// of twin_history_base per twin, paged along the primary key on a reader,
// instead of counting history rows.
func (db *DB) TwinsOverCount(ctx context.Context, maxChanges int64, after twin.TwinKey, limit int) ([]twin.TwinKey, error) {
	rows, err := db.r.QueryContext(ctx, sqlTwinsOverCount, after.DeviceID, after.ModuleID, maxChanges, limit)
	return scanTwinKeys(rows, err, "twins over history count")
}

// TwinsChangedBefore implements twin.TrimStore: a range at the start of
// the twin_history_at index (0014).
func (db *DB) TwinsChangedBefore(ctx context.Context, cutoff time.Time, limit int) ([]twin.TwinKey, error) {
	rows, err := db.r.QueryContext(ctx, sqlTwinsChangedBefore, formatTime(cutoff), limit)
	return scanTwinKeys(rows, err, "twins changed before")
}

func scanTwinKeys(rows *sql.Rows, err error, op string) ([]twin.TwinKey, error) {
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ks []twin.TwinKey
	for rows.Next() {
		var k twin.TwinKey
		if err := rows.Scan(&k.DeviceID, &k.ModuleID); err != nil {
			return nil, wrap(op, err)
		}
		ks = append(ks, k)
	}
	return ks, wrap(op, rows.Err())
}

// TwinHistoryFromBase implements twin.TrimStore. Base and changes are read
// in one read transaction, so they come from one snapshot of the WAL.
func (db *DB) TwinHistoryFromBase(ctx context.Context, deviceID, moduleID string, q twin.HistoryQuery) (*twin.Twin, []twin.Change, error) {
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, wrap("twin history from base", err)
	}
	defer tx.Rollback()
	var n nullTwin
	var base *twin.Twin
	err = tx.QueryRowContext(ctx, `SELECT `+twinColumns+` FROM twin_history_base
		WHERE device_id = ? AND module_id = ?`, deviceID, moduleID).Scan(n.dests()...)
	switch {
	case err == nil:
		if base, err = n.twin(deviceID, moduleID); err != nil {
			return nil, nil, wrap("twin history base", err)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return nil, nil, wrap("twin history base", err)
	}
	cs, err := twinHistory(ctx, tx, deviceID, moduleID, q)
	return base, cs, err
}

// TrimTwinHistory implements twin.TrimStore. The delete is a range of the
// primary key of one twin, at most the rows the caller read (twin.TrimBatch).
func (db *DB) TrimTwinHistory(ctx context.Context, deviceID, moduleID string, prev int64, base *twin.Twin) (int64, error) {
	n, err := db.trimTwinHistory(ctx, deviceID, moduleID, prev, base)
	return n, wrap("trim twin history", err)
}

func (db *DB) trimTwinHistory(ctx context.Context, deviceID, moduleID string, prev int64, base *twin.Twin) (int64, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	// The twin row, not only the device: a module deleted meanwhile took
	// its history along, and must not get a base back.
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM twins WHERE device_id = ? AND module_id = ?`, deviceID, moduleID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var stored int64
	err = tx.QueryRowContext(ctx, `SELECT version FROM twin_history_base WHERE device_id = ? AND module_id = ?`,
		deviceID, moduleID).Scan(&stored)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	if stored != prev {
		return 0, fmt.Errorf("twin %s: base at version %d, not %d: %w", deviceID, stored, prev, twin.ErrTrimConflict)
	}
	res, err := tx.ExecContext(ctx, sqlTrimTwinHistory, deviceID, moduleID, prev, base.Version)
	if err != nil {
		return 0, err
	}
	deleted, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO twin_history_base (`+twinColumns+`, device_id, module_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		base.ETag, base.Version, string(base.Tags), base.TagsVersion,
		string(base.Desired.Doc), string(base.Desired.Metadata), base.Desired.Version,
		string(base.Reported.Doc), string(base.Reported.Metadata), base.Reported.Version,
		formatTime(base.UpdatedAt), deviceID, moduleID); err != nil {
		return 0, err
	}
	return deleted, tx.Commit()
}
