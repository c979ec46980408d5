package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/session"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
	"github.com/ferry-iot/ferry/internal/store/storetest"
)

// openers are the two ways the suite runs: a WAL file (as the hub runs) and
// an in-memory database (one connection).
var openers = []struct {
	name string
	path func(t *testing.T) string
}{
	{"file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "ferry.db") }},
	{"memory", func(t *testing.T) string { return ":memory:" }},
}

// mustOpen opens a database closed at the end of the test.
func mustOpen(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func TestRegistry(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			storetest.RunRegistry(t, func(t *testing.T) registry.Store { return mustOpen(t, o.path(t)) })
		})
	}
}

func TestSession(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			storetest.RunSession(t, func(t *testing.T) session.Store { return mustOpen(t, o.path(t)) })
		})
	}
}

// TestReopen checks that data and schema survive a close, and that opening
// an up-to-date file applies nothing.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	ctx := t.Context()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutPolicy(ctx, registry.Policy{KeyName: "device", PrimaryKey: "a2V5", SecondaryKey: "a2V5"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	before := migrationRows(t, path)

	db = mustOpen(t, path)
	ps, err := db.ListPolicies(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("after reopen: %d policies, %v; want 1", len(ps), err)
	}
	if after := migrationRows(t, path); after != before {
		t.Errorf("schema_migrations changed on reopen: %q -> %q", before, after)
	}
}

// TestNewerSchemaRefused checks that a file migrated by a newer Ferry is not
// touched by this one.
func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw := openRaw(t, path)
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', '')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	_, err = sqlite.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema = %v, want an error naming version 9999 as newer", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, path := range []string{"", "a?b.db", filepath.Join(t.TempDir(), "missing-dir", "ferry.db")} {
		if db, err := sqlite.Open(t.Context(), path); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestWALMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	mustOpen(t, path)
	var mode string
	if err := openRaw(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

// openRaw opens the file without Ferry's setup, to inspect or tamper with it.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// migrationRows returns schema_migrations as text.
func migrationRows(t *testing.T, path string) string {
	t.Helper()
	raw := openRaw(t, path)
	rows, err := raw.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var v int
		var name, at string
		if err := rows.Scan(&v, &name, &at); err != nil {
			t.Fatal(err)
		}
		b.WriteString(name + "@" + at + ";")
	}
	return b.String()
}
