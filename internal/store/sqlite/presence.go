package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

// ConnectionState is one device's connection state at a moment.
type ConnectionState struct {
	DeviceID  string
	Connected bool
	At        time.Time
}

// SetConnectionStates records many devices' connection states in one
// transaction; unknown devices are skipped (deleted meanwhile).
func (db *DB) SetConnectionStates(ctx context.Context, states []ConnectionState) error {
	if len(states) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("set connection states", err)
	}
	defer tx.Rollback()
	stmt := tx.StmtContext(ctx, db.setConnectionState)
	for _, s := range states {
		state := registry.Disconnected
		if s.Connected {
			state = registry.Connected
		}
		ts := formatTime(s.At)
		if _, err := stmt.ExecContext(ctx, state, ts, ts, s.DeviceID); err != nil {
			return wrap("set connection states", fmt.Errorf("device %s: %w", s.DeviceID, err))
		}
	}
	return wrap("set connection states", tx.Commit())
}

// ResetConnectionStates marks every device disconnected: at start-up nobody
// is connected, whatever the last run recorded before it stopped.
func (db *DB) ResetConnectionStates(ctx context.Context, at time.Time) error {
	_, err := db.w.ExecContext(ctx, `UPDATE devices SET connection_state = ?, connection_state_updated_at = ?
		WHERE connection_state <> ?`, registry.Disconnected, formatTime(at), registry.Disconnected)
	return wrap("reset connection states", err)
}
