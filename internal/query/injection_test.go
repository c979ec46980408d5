package query_test

import (
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
)

func TestInjection(t *testing.T) {
	db := openDB(t)
	evil := `'; DROP TABLE devices; --`
	if _, err := db.Exec(`INSERT INTO devices VALUES ('d9', 'enabled', 'Connected', '', '');
		INSERT INTO twins (device_id, tags) VALUES ('d9', json_object('x', ?1, 'a''b', 1, 'a.b', 2, 'a]b', 3, 'a[0]', 4, 'é', 5));`, evil); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ text, want string }{
		{`SELECT * FROM devices WHERE tags.x = '\'; DROP TABLE devices; --'`, "d9"},
		{`SELECT * FROM devices WHERE tags.x = "'; DROP TABLE devices; --"`, "d9"},
		{`SELECT * FROM devices WHERE tags.x = '\'); DELETE FROM twins; --'`, ""},
		{`SELECT * FROM devices WHERE deviceId = 'd1'' OR ''1''=''1'`, "ERR"}, // no '' escape
		{`SELECT * FROM devices WHERE deviceId = 'd1' OR 1=1`, "ERR"},
		{`SELECT * FROM devices WHERE deviceId = "d1\" OR 1=1 --"`, ""},
		{`SELECT * FROM devices WHERE STARTS_WITH(tags.x, '\'; DROP')`, "d9"},
		{`SELECT * FROM devices WHERE tags.x IN ['\'; DROP TABLE twins; --', 'x']`, ""},
		{`SELECT * FROM devices WHERE tags['a\'b'] = 1`, "d9"},
		{`SELECT * FROM devices WHERE tags['a.b'] = 2`, "d9"},
		{`SELECT * FROM devices WHERE tags['a]b'] = 3`, "d9"},
		{`SELECT * FROM devices WHERE tags['a[0]'] = 4`, "d9"},
		{`SELECT * FROM devices WHERE tags.é = 5`, "d9"},
		{`SELECT * FROM devices WHERE tags['a'] = 1 OR tags['a\') OR 1=1 --'] = 1`, ""},
		{`SELECT * FROM devices WHERE STARTS_WITH(deviceId, '%') OR STARTS_WITH(deviceId, '_')`, ""},
		{`SELECT tags['x'] FROM devices WHERE deviceId = 'd9'`, "d9"},
	}
	for _, tt := range tests {
		q, err := query.Parse(tt.text)
		if tt.want == "ERR" {
			if !fault.Is(err, fault.Invalid) {
				t.Errorf("Parse(%q): %v, want fault.Invalid", tt.text, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.text, err)
			continue
		}
		stmt, _, err := query.Compile(q, query.DefaultSchema, query.SQLite{}, query.Page{})
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.text, err)
			continue
		}
		for _, frag := range []string{"DROP", "DELETE", "1=1", "a.b", "a]b", "é", "%"} {
			if strings.Contains(stmt, frag) {
				t.Errorf("%s: SQL contains %q: %s", tt.text, frag, stmt)
			}
		}
		if got := ids(t, db, tt.text, query.Page{}); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.text, got, tt.want)
		}
	}
	var n int
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM devices) + (SELECT COUNT(*) FROM twins)").Scan(&n); err != nil || n != 14 {
		t.Errorf("tables after the queries: %d rows, %v; want 14", n, err)
	}
}

func TestInjectionKeys(t *testing.T) {
	for _, text := range []string{
		`SELECT * FROM devices WHERE tags['a"b'] = 1`,
		`SELECT * FROM devices WHERE tags['a\\b'] = 1`,
		`SELECT * FROM devices WHERE tags['a\nb'] = 1`,
		`SELECT * FROM devices WHERE tags['$x'] = 1`,
		`SELECT * FROM devices WHERE tags.$x = 1`,
		`SELECT * FROM devices WHERE tags."x" = 1`,
	} {
		if _, err := query.Parse(text); !fault.Is(err, fault.Invalid) {
			t.Errorf("Parse(%q): %v, want fault.Invalid", text, err)
		}
	}
	// Hand-built queries are checked by Compile too.
	for _, key := range []string{`a"b`, `a\b`, "", "$version", "a\x00"} {
		q := &query.Query{Star: true, Where: &query.Call{Func: query.IsDefined,
			Field: query.Field{Root: query.Tags, Path: []string{key}}}}
		if _, _, err := query.Compile(q, query.DefaultSchema, query.SQLite{}, query.Page{}); !fault.Is(err, fault.Invalid) {
			t.Errorf("key %q: %v, want fault.Invalid", key, err)
		}
	}
	bad := query.DefaultSchema
	bad.Tags = "tags; DROP TABLE devices"
	q, _ := query.Parse("SELECT * FROM devices")
	if _, _, err := query.Compile(q, bad, query.SQLite{}, query.Page{}); err == nil {
		t.Error("schema with a bad name compiled")
	}
}
