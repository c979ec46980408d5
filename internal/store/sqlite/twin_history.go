package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/ferry-iot/ferry/internal/twin"
)

// TwinHistory implements twin.Store. Trimmed changes are gone; see
// TrimTwinHistory.
func (db *DB) TwinHistory(ctx context.Context, deviceID, moduleID string, q twin.HistoryQuery) ([]twin.Change, error) {
	return twinHistory(ctx, db.r, deviceID, moduleID, q)
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func twinHistory(ctx context.Context, db querier, deviceID, moduleID string, q twin.HistoryQuery) ([]twin.Change, error) {
	from, to := "", "~" // '~' sorts after every formatted time
	if !q.From.IsZero() {
		from = formatTime(q.From)
	}
	if !q.To.IsZero() {
		to = formatTime(q.To)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	// The history of one twin is read along the primary key; times grow
	// with versions, so the time range is a contiguous run of it.
	rows, err := db.QueryContext(ctx, `SELECT twin_version, side, version, at, source, patch
		FROM twin_history WHERE device_id = ? AND module_id = ? AND at >= ? AND at < ?
		ORDER BY twin_version, side LIMIT ?`, deviceID, moduleID, from, to, limit)
	if err != nil {
		return nil, wrap("twin history", err)
	}
	defer rows.Close()
	var cs []twin.Change
	for rows.Next() {
		c := twin.Change{DeviceID: deviceID, ModuleID: moduleID}
		var side, at, patch string
		if err := rows.Scan(&c.TwinVersion, &side, &c.Version, &at, &c.Source, &patch); err != nil {
			return nil, wrap("twin history", err)
		}
		if c.Time, err = parseTime(at); err != nil {
			return nil, wrap("twin history", fmt.Errorf("twin %s: bad stored time: %w", deviceID, err))
		}
		c.Side, c.Patch = twin.Side(side), []byte(patch)
		cs = append(cs, c)
	}
	return cs, wrap("twin history", rows.Err())
}

// splitColumns splits a comma-separated column list.
func splitColumns(cols string) []string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}
