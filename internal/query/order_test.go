package query_test

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
)

// sqlDB runs compiled statements on a *sql.DB, as the store does.
type sqlDB struct{ *sql.DB }

func (d sqlDB) ReadQuery(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return d.QueryContext(ctx, q, args...)
}

// fillOrdered adds n devices to the test database whose fields tie often
// and whose tags.x takes every JSON type, or is missing.
func fillOrdered(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	xs := []string{``, `null`, `true`, `false`, `0`, `-3`, `2.5`, `7`, `1e3`, `"a"`, `"b"`, `""`, `"10"`,
		`[1,2]`, `[]`, `{"k":1}`, `{}`}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("o%04d", r.IntN(100000))
		status := []string{"enabled", "disabled"}[r.IntN(2)]
		conn := []string{"Connected", "Disconnected"}[r.IntN(2)]
		last := fmt.Sprintf("2024-0%d-01T00:00:00Z", 1+r.IntN(5))
		model := []string{"", "", "dtmi:a;1", "dtmi:b;1"}[r.IntN(4)]
		tags := map[string]json.RawMessage{"y": json.RawMessage(fmt.Sprint(r.IntN(4)))}
		if x := xs[r.IntN(len(xs))]; x != "" {
			tags["x"] = json.RawMessage(x)
		}
		tb, _ := json.Marshal(tags)
		reported := "{}"
		if i%3 > 0 {
			reported = fmt.Sprintf(`{"temp":%d}`, r.IntN(30))
		}
		if _, err := tx.Exec(`INSERT OR IGNORE INTO devices VALUES (?, ?, ?, ?, ?)`, id, status, conn, last, model); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT OR IGNORE INTO twins (device_id, tags, reported, desired_version) VALUES (?, ?, ?, ?)`,
			id, string(tb), reported, 1+r.IntN(3)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			for _, m := range []string{"m1", "m2"} {
				if _, err := tx.Exec(`INSERT OR IGNORE INTO twins (device_id, module_id, tags) VALUES (?, ?, ?)`,
					id, m, fmt.Sprintf(`{"role":%q}`, []string{"edge", "leaf"}[r.IntN(2)])); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// rowID names a result item: "dev" or "dev/mod".
func rowID(t *testing.T, item json.RawMessage) string {
	t.Helper()
	var v struct{ DeviceID, ModuleID string }
	if err := json.Unmarshal(item, &v); err != nil {
		t.Fatal(err)
	}
	if v.ModuleID != "" {
		return v.DeviceID + "/" + v.ModuleID
	}
	return v.DeviceID
}

// unpaged returns the ids of every row of text in one statement.
func unpaged(t *testing.T, db *sql.DB, text string) []string {
	t.Helper()
	var out []string
	for _, r := range run(t, db, text, query.Page{}) {
		f := strings.Split(r, "|")
		id := f[0]
		if f[1] != "" {
			id += "/" + f[1]
		}
		out = append(out, id)
	}
	return out
}

func TestOrderByPaging(t *testing.T) {
	db := openDB(t)
	fillOrdered(t, db, 1000)
	ctx := context.Background()
	for _, text := range []string{
		"SELECT * FROM devices ORDER BY lastActivityTime DESC",
		"SELECT * FROM devices ORDER BY lastActivityTime",
		"SELECT * FROM devices ORDER BY deviceId DESC",
		"SELECT * FROM devices ORDER BY status, lastActivityTime DESC",
		"SELECT * FROM devices ORDER BY tags.x",
		"SELECT * FROM devices ORDER BY tags.x DESC, deviceId",
		"SELECT * FROM devices ORDER BY connectionState DESC, modelId, tags.y DESC",
		"SELECT * FROM devices WHERE status = 'enabled' ORDER BY properties.reported.temp DESC",
		"SELECT * FROM devices ORDER BY properties.desired.$version DESC, tags.y",
		"SELECT deviceId, tags.x FROM devices WHERE IS_DEFINED(tags.x) ORDER BY tags.x DESC",
		"SELECT * FROM devices.modules ORDER BY tags.role DESC",
		"SELECT * FROM devices.modules ORDER BY moduleId, tags.role",
		"SELECT * FROM devices.modules",
		"SELECT * FROM devices",
	} {
		want := unpaged(t, db, text)
		if len(want) < 20 {
			t.Fatalf("%s: only %d rows", text, len(want))
		}
		for _, size := range []int{7, 100} {
			var got []string
			var items []json.RawMessage
			page := query.Page{Limit: size}
			for n := 0; ; n++ {
				if n > len(want)+1 {
					t.Fatalf("%s by %d: more pages than rows", text, size)
				}
				res, err := query.Run(ctx, sqlDB{db}, text, page)
				if err != nil {
					t.Fatalf("%s by %d, page %d: %v", text, size, n, err)
				}
				if len(res.Items) > size || len(res.Items) < size && res.Continuation != "" {
					t.Fatalf("%s by %d, page %d: %d items, continuation %q", text, size, n, len(res.Items), res.Continuation)
				}
				for _, it := range res.Items {
					got = append(got, rowID(t, it))
				}
				items = append(items, res.Items...)
				if res.Continuation == "" {
					break
				}
				page.After = res.Continuation
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s by %d: pages differ from the unpaged order\n got %d rows %.200q\nwant %d rows %.200q",
					text, size, len(got), got, len(want), want)
			}
			if size == 7 && strings.HasPrefix(text, "SELECT * ") {
				checkSorted(t, text, items)
			}
		}
	}
}

// checkSorted checks items (twins) against an order computed in Go from
// the ORDER BY clause of text, with missing < null < booleans < numbers <
// strings < arrays < objects and ties broken by id in the direction of the
// last item. Arrays and objects are compared by rank only.
func checkSorted(t *testing.T, text string, items []json.RawMessage) {
	t.Helper()
	q, err := query.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, it := range items {
		id := rowID(t, it)
		if seen[id] {
			t.Fatalf("%s: %s twice", text, id)
		}
		seen[id] = true
		if i == 0 {
			continue
		}
		prev, cur := decode(t, items[i-1]), decode(t, it)
		c, known := 0, true
		desc := false
		for _, o := range q.OrderBy {
			desc = o.Desc
			c, known = compareJSON(lookup(prev, o.Field), lookup(cur, o.Field))
			if o.Desc {
				c = -c
			}
			if c != 0 || !known {
				break
			}
		}
		if c == 0 && known {
			c = strings.Compare(rowID(t, items[i-1]), id)
			if desc {
				c = -c
			}
		}
		if c > 0 {
			t.Errorf("%s: %s sorts before %s", text, items[i-1], it)
			return
		}
	}
}

func decode(t *testing.T, b json.RawMessage) map[string]any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// lookup returns the value of f in a twin, or nil with ok false.
func lookup(twin map[string]any, f query.Field) *any {
	var path []string
	switch s := f.Root.String(); {
	case f.Root.IsDocument():
		path = append(strings.Split(s, "."), f.Path...)
	case strings.HasSuffix(s, ".$version"):
		path = strings.Split(s, ".")
	default:
		path = []string{s}
	}
	var v any = twin
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[k]; !ok {
			return nil
		}
	}
	return &v
}

func rank(v *any) int {
	if v == nil {
		return 0
	}
	switch (*v).(type) {
	case nil:
		return 1
	case bool:
		return 2
	case json.Number:
		return 3
	case string:
		return 4
	case []any:
		return 5
	}
	return 6
}

// compareJSON compares two values in ORDER BY's order; known is false for
// two arrays or two objects, which this test does not order.
func compareJSON(a, b *any) (c int, known bool) {
	if c := cmp.Compare(rank(a), rank(b)); c != 0 || rank(a) < 2 {
		return c, true
	}
	switch x := (*a).(type) {
	case bool:
		y := (*b).(bool)
		return cmp.Compare(fmt.Sprint(x), fmt.Sprint(y)), true // "false" < "true"
	case json.Number:
		fx, _ := x.Float64()
		fy, _ := (*b).(json.Number).Float64()
		return cmp.Compare(fx, fy), true
	case string:
		return strings.Compare(x, (*b).(string)), true
	}
	return 0, false
}

func TestOrderByTokens(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	byTime := "SELECT * FROM devices ORDER BY lastActivityTime DESC"
	first, err := query.Run(ctx, sqlDB{db}, byTime, query.Page{Limit: 2})
	if err != nil || first.Continuation == "" {
		t.Fatalf("first page: %v, %+v", err, first)
	}
	// The same query in another spelling is the same query.
	next, err := query.Run(ctx, sqlDB{db}, "select * from devices order by lastactivitytime desc", query.Page{Limit: 2, After: first.Continuation})
	if err != nil || len(next.Items) != 2 || rowID(t, next.Items[0]) != "d2" {
		t.Fatalf("second page in another spelling: %v, %s", err, next.Items)
	}
	plain, err := query.Run(ctx, sqlDB{db}, "SELECT * FROM devices", query.Page{Limit: 2})
	if err != nil || plain.Continuation == "" {
		t.Fatalf("plain first page: %v", err)
	}
	b, _ := base64.RawURLEncoding.DecodeString(first.Continuation)
	var tok map[string]any
	if err := json.Unmarshal(b, &tok); err != nil {
		t.Fatalf("token %s is not JSON: %v", b, err)
	}
	forge := func(keys ...any) string {
		b, _ := json.Marshal(map[string]any{"q": tok["q"], "k": keys})
		return base64.RawURLEncoding.EncodeToString(b)
	}
	const foreign = "query: the continuation token was issued for a different query; run the query again without it"
	const malformed = "query: malformed continuation token"
	for _, tt := range []struct {
		name, text, after, want string
	}{
		{"another order's token", "SELECT * FROM devices ORDER BY lastActivityTime", first.Continuation, foreign},
		{"another condition's token", "SELECT * FROM devices WHERE status = 'enabled' ORDER BY lastActivityTime DESC", first.Continuation, foreign},
		{"an unordered query's token", byTime, plain.Continuation, foreign},
		{"an ordered query's token, unordered", "SELECT * FROM devices", first.Continuation, foreign},
		{"an old token", byTime, query.Continuation("d1", ""), foreign},
		{"not base64", byTime, "!!", malformed},
		{"empty JSON", byTime, "e30", malformed},
		{"trailing data", byTime, base64.RawURLEncoding.EncodeToString(append(b, "{}"...)), malformed},
		{"unknown field", byTime, base64.RawURLEncoding.EncodeToString([]byte(`{"q":"x","k":[],"z":1}`)), malformed},
		{"too few keys", byTime, forge("2024"), foreign},
		{"a number for a text column", byTime, forge(1, "d1"), foreign},
		{"a boolean", byTime, forge(true, "d1"), foreign},
	} {
		_, err := query.Run(ctx, sqlDB{db}, tt.text, query.Page{Limit: 2, After: tt.after})
		if !fault.Is(err, fault.Invalid) || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// A JSON key's values must fit its rank.
	q := "SELECT * FROM devices ORDER BY tags.location.floor"
	res, err := query.Run(ctx, sqlDB{db}, q, query.Page{Limit: 1})
	if err != nil || res.Continuation == "" {
		t.Fatalf("%s: %v", q, err)
	}
	b, _ = base64.RawURLEncoding.DecodeString(res.Continuation)
	_ = json.Unmarshal(b, &tok)
	for _, keys := range [][]any{{3, "x", "d1"}, {4, 1, "d1"}, {2, 5, "d1"}, {7, 0, "d1"}, {0, 0, 5}} {
		if _, err := query.Run(ctx, sqlDB{db}, q, query.Page{Limit: 1, After: forge(keys...)}); !fault.Is(err, fault.Invalid) {
			t.Errorf("keys %v: %v, want fault.Invalid", keys, err)
		}
	}
	if _, err := query.Run(ctx, sqlDB{db}, q, query.Page{Limit: 1, After: forge(3, 2.5, "d1")}); err != nil {
		t.Errorf("a fractional number: %v", err)
	}
}
