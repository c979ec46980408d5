package sqlite

import (
	"context"
	"database/sql"
)

// ReadQuery runs a read-only statement compiled by package query on the read
// connections. Every value in it is a bound argument.
func (db *DB) ReadQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.r.QueryContext(ctx, query, args...)
}
