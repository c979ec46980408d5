package query_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/ferry-iot/ferry/internal/query"
)

// schemaSQL is the part of the store's schema that queries read.
const schemaSQL = `
CREATE TABLE devices (
	id TEXT NOT NULL PRIMARY KEY,
	status TEXT NOT NULL,
	connection_state TEXT NOT NULL,
	last_activity_at TEXT NOT NULL,
	model_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE twins (
	device_id TEXT NOT NULL,
	module_id TEXT NOT NULL DEFAULT '',
	tags TEXT NOT NULL DEFAULT '{}',
	desired TEXT NOT NULL DEFAULT '{}',
	reported TEXT NOT NULL DEFAULT '{}',
	desired_version INTEGER NOT NULL DEFAULT 1,
	reported_version INTEGER NOT NULL DEFAULT 1,
	version INTEGER NOT NULL DEFAULT 1,
	etag TEXT NOT NULL DEFAULT 'e',
	PRIMARY KEY (device_id, module_id)
);
INSERT INTO devices VALUES
	('d1', 'enabled', 'Connected', '2024-05-01T10:00:00Z', 'dtmi:a;1'),
	('d2', 'enabled', 'Disconnected', '2024-04-01T10:00:00Z', ''),
	('d3', 'disabled', 'Disconnected', '2024-03-01T10:00:00Z', ''),
	('d4', 'enabled', 'Connected', '2024-06-01T10:00:00Z', ''),
	('d5', 'disabled', 'Disconnected', '2024-01-01T10:00:00Z', '');
INSERT INTO twins (device_id, module_id, tags, desired, reported, desired_version, reported_version) VALUES
	('d1', '', '{"location":{"region":"US","floor":3},"kind":"sensor"}', '{"interval":"5m"}',
		'{"temp":21.5,"fw":"1.2.0","ok":true,"nested":{"a":{"b":"x"}}}', 3, 7),
	('d2', '', '{"location":{"region":"EU","floor":"3"},"kind":"actuator"}', '{}',
		'{"temp":19,"fw":"1.3.0","ok":false,"n":null}', 1, 2),
	('d3', '', '{"location":{"region":"US"},"kind":"sensor","floor-1":{"room":2},"0":{"a":1},"list":[1,2]}', '{}',
		'{"temp":"hot"}', 2, 1),
	('d4', '', '{}', '{}', '{}', 1, 1),
	('d1', 'm1', '{"role":"edge"}', '{}', '{"temp":30}', 1, 1),
	('d1', 'm2', '{}', '{}', '{"temp":10}', 1, 1),
	('d2', 'm1', '{"role":"edge"}', '{}', '{}', 1, 1);
`

// openDB creates the test database in a temporary directory.
func openDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "query.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(schemaSQL); err != nil {
		t.Fatal(err)
	}
	return db
}

// run parses, compiles and executes text and returns the rows, each
// rendered as its columns joined by '|' (NULL as "NULL").
func run(t *testing.T, db *sql.DB, text string, page query.Page) []string {
	t.Helper()
	q, err := query.Parse(text)
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	stmt, args, err := query.Compile(q, query.DefaultSchema, query.SQLite{}, page)
	if err != nil {
		t.Fatalf("Compile(%q): %v", text, err)
	}
	rows, err := db.Query(stmt, args...)
	if err != nil {
		t.Fatalf("%q: %v\n%s %v", text, err, stmt, args)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ids runs a non-aggregate query and returns "dev" or "dev/mod" per row.
func ids(t *testing.T, db *sql.DB, text string, page query.Page) string {
	t.Helper()
	var out []string
	for _, r := range run(t, db, text, page) {
		f := strings.Split(r, "|")
		id := f[0]
		if f[1] != "" {
			id += "/" + f[1]
		}
		out = append(out, id)
	}
	return strings.Join(out, " ")
}
