// Package sqlite stores Ferry's state in one SQLite file: the device
// registry, access policies and persistent MQTT subscriptions. It uses the
// pure-Go driver modernc.org/sqlite, so Ferry builds without cgo.
//
// # Concurrency
//
// SQLite admits one writer at a time. A DB therefore keeps two pools: a
// writer of exactly one connection whose transactions begin IMMEDIATE, so
// concurrent writes queue in Go (and honour their contexts) instead of
// failing with SQLITE_BUSY halfway through a transaction, and a pool of
// read-only connections that WAL lets run beside the writer. busy_timeout
// covers other processes that open the same file. An in-memory database
// exists per connection, so ":memory:" uses the single writer connection for
// reads too.
//
// # Schema
//
// Migrations are the numbered files in migrations/, embedded in the binary
// and applied by Open in order, each in one transaction recorded in
// schema_migrations. A file written by a newer Ferry is refused.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/session"
)

// Interface guards.
var (
	_ registry.Store = (*DB)(nil)
	_ session.Store  = (*DB)(nil)
)

// busyTimeout is how long a connection waits for a lock held by another
// process before giving up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// DB is an open Ferry database. It is safe for concurrent use.
type DB struct {
	path string
	w    *sql.DB // the one writer connection
	r    *sql.DB // read-only connections; == w for ":memory:"

	// Statements on the MQTT connect path, prepared once: parsing SQL
	// costs more than running these point queries.
	getDevice          *sql.Stmt // on r
	setConnectionState *sql.Stmt // on w
	twin               twinStmts // on w

	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the database at path and brings its schema up to
// date. path ":memory:" gives a private in-memory database (for tests). The
// file is put in WAL mode with synchronous=NORMAL: a commit is durable once
// the WAL is checkpointed or the OS flushes it, and a crash never corrupts
// the file, only loses the last commits on power loss.
func Open(ctx context.Context, path string) (*DB, error) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		return nil, err
	}
	db, err := openWith(ctx, path, ms)
	if err != nil {
		return nil, err
	}
	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// openWith opens the database and applies the given migrations; tests of
// migrate pass their own.
func openWith(ctx context.Context, path string, ms []migration) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: empty database path")
	}
	if strings.ContainsRune(path, '?') {
		// The driver reads everything after '?' as connection parameters.
		return nil, fmt.Errorf("sqlite: database path %q must not contain '?'", path)
	}
	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", path+"?"+common+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0) // an in-memory database lives only as long as its connection
	db := &DB{path: path, w: w, r: w}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, w, ms, time.Now()); err != nil {
		w.Close()
		return nil, fmt.Errorf("%w (database %s)", err, path)
	}
	if path != ":memory:" {
		r, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
		}
		r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
		r.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
		db.r = r
	}
	return db, nil
}

// prepare prepares the hot statements.
func (db *DB) prepare(ctx context.Context) error {
	var err error
	db.getDevice, err = db.r.PrepareContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`)
	if err != nil {
		return err
	}
	db.setConnectionState, err = db.w.PrepareContext(ctx, `UPDATE devices SET connection_state = ?,
		connection_state_updated_at = ?, last_activity_at = ? WHERE id = ?`)
	if err != nil {
		return err
	}
	return db.prepareTwin(ctx)
}

// Close closes the database. Later calls return the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		for _, st := range []*sql.Stmt{db.getDevice, db.setConnectionState} {
			if st != nil {
				st.Close()
			}
		}
		db.twin.close()
		var rerr error
		if db.r != db.w {
			rerr = db.r.Close()
		}
		werr := db.w.Close()
		if err := errors.Join(rerr, werr); err != nil {
			db.closeErr = fmt.Errorf("sqlite: close %s: %w", db.path, err)
		}
	})
	return db.closeErr
}

// timeLayout is how times are stored: UTC with a fixed number of digits, so
// that text order is time order in SQL comparisons.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }
