package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// These tests drive migrate with made-up migration lists, which only the
// package itself can pass in.

func TestMigrateAppliesOnlyNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	// Each step fails if run twice (CREATE TABLE without IF NOT EXISTS).
	v1 := migration{1, "a", `CREATE TABLE a (x TEXT); INSERT INTO a VALUES ('one')`}
	v2 := migration{2, "b", `CREATE TABLE b (x TEXT)`}
	v5 := migration{5, "c", `INSERT INTO a VALUES ('five'); CREATE TABLE c (x TEXT)`}

	db, err := openWith(t.Context(), path, []migration{v1, v2})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = openWith(t.Context(), path, []migration{v1, v2, v5})
	if err != nil {
		t.Fatalf("reopen with one new migration: %v", err)
	}
	defer db.Close()

	var versions string
	if err := db.r.QueryRow(`SELECT group_concat(version, ',') FROM (SELECT version FROM schema_migrations ORDER BY version)`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != "1,2,5" {
		t.Errorf("recorded versions = %s, want 1,2,5", versions)
	}
	var n int
	if err := db.r.QueryRow(`SELECT COUNT(*) FROM a`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows in a = %d, %v; want 2 (v1 once, v5 once)", n, err)
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	v1 := migration{1, "a", `CREATE TABLE a (x TEXT)`}
	bad := migration{2, "bad", `CREATE TABLE b (x TEXT); INSERT INTO nosuchtable VALUES (1)`}
	_, err := openWith(t.Context(), path, []migration{v1, bad})
	if err == nil || !strings.Contains(err.Error(), "migration 2 (bad)") {
		t.Fatalf("open with a failing migration = %v, want an error naming migration 2 (bad)", err)
	}
	// The failed step left nothing behind; the good one stayed.
	db, err := openWith(t.Context(), path, []migration{v1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables string
	if err := db.r.QueryRow(`SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master
		WHERE type = 'table' AND name IN ('a', 'b') ORDER BY name)`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != "a" {
		t.Errorf("tables after the failed migration = %q, want a", tables)
	}
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.version != i+1 || m.name == "" || m.sql == "" {
			t.Errorf("embedded migration %d = {%d %q}, want version %d with a name and SQL", i, m.version, m.name, i+1)
		}
	}

	bad := map[string]fstest.MapFS{
		"no number": {"migrations/init.sql": {Data: []byte("SELECT 1")}},
		"zero":      {"migrations/0000_init.sql": {Data: []byte("SELECT 1")}},
		"duplicate": {
			"migrations/0001_a.sql": {Data: []byte("SELECT 1")},
			"migrations/001_b.sql":  {Data: []byte("SELECT 1")},
		},
	}
	for name, fsys := range bad {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations succeeded, want an error", name)
		}
	}
	ms, err = loadMigrations(fstest.MapFS{
		"migrations/0010_c.sql": {Data: []byte("c")},
		"migrations/0002_b.sql": {Data: []byte("b")},
	})
	if err != nil || len(ms) != 2 || ms[0].version != 2 || ms[1].version != 10 {
		t.Errorf("loadMigrations = %+v, %v; want versions 2, 10 in order", ms, err)
	}
}
