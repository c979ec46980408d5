package sqlite_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestQueryOrderUsesIndexes checks that ordering devices by a registry
// column, either way, reads an index in order on every page: no sort of
// the whole table (a temporary b-tree) and no scan of it.
func TestQueryOrderUsesIndexes(t *testing.T) {
	db := mustOpen(t, t.TempDir()+"/ferry.db")
	ctx := t.Context()
	for i := range 5 {
		d := &registry.Device{DeviceID: fmt.Sprintf("d%d", i), GenerationID: "g", ETag: "e",
			ConnectionState: registry.Disconnected, Status: registry.StatusEnabled,
			LastActivityTime: time.Date(2025, 1, 1+i%2, 0, 0, 0, 0, time.UTC),
			Authentication:   registry.Authentication{Type: registry.AuthSAS, SymmetricKey: &registry.SymmetricKey{PrimaryKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", SecondaryKey: "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="}}, ParentScopes: []string{}}
		if err := db.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, text := range []string{
		"SELECT * FROM devices",
		"SELECT * FROM devices ORDER BY deviceId DESC",
		"SELECT * FROM devices ORDER BY lastActivityTime DESC",
		"SELECT * FROM devices ORDER BY lastActivityTime",
		"SELECT * FROM devices ORDER BY status",
		"SELECT * FROM devices ORDER BY connectionState DESC",
		"SELECT * FROM devices ORDER BY modelId",
		"SELECT deviceId FROM devices WHERE STARTS_WITH(deviceId, 'd') ORDER BY lastActivityTime DESC",
	} {
		first, err := query.Run(ctx, db, text, query.Page{Limit: 2})
		if err != nil || first.Continuation == "" {
			t.Fatalf("%s: %v, %+v", text, err, first)
		}
		q, err := query.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		for _, page := range []query.Page{{Limit: 2}, {Limit: 2, After: first.Continuation}} {
			stmt, args, err := query.Compile(q, query.DefaultSchema, query.SQLite{}, page)
			if err != nil {
				t.Fatal(err)
			}
			plan := explain(t, db, stmt, args)
			if strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "SCAN d\n") ||
				!strings.Contains(plan, "INDEX") {
				t.Errorf("%s (after %q) does not page through an index:\n%s", text, page.After, plan)
			}
		}
	}
}

// explain returns the query plan of stmt, one step a line.
func explain(t *testing.T, db query.Querier, stmt string, args []any) string {
	t.Helper()
	rows, err := db.ReadQuery(t.Context(), "EXPLAIN QUERY PLAN "+stmt, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}
