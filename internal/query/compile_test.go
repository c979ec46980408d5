package query_test

import (
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
)

func TestCompileWhere(t *testing.T) {
	db := openDB(t)
	tests := []struct{ where, want string }{
		{"", "d1 d2 d3 d4 d5"},
		{"tags.kind = 'sensor'", "d1 d3"},
		{"tags.location.region = 'US'", "d1 d3"},
		{"tags.location.region <> 'US'", "d2"},
		{"tags.location.region != 'US'", "d2"},
		{"properties.reported.nested.a.b = 'x'", "d1"},
		{"properties.desired.interval = '5m'", "d1"},
		// A string never equals a number.
		{"tags.location.floor = 3", "d1"},
		{"tags.location.floor = '3'", "d2"},
		{"tags.location.floor = 3.0", "d1"},
		{"properties.reported.temp > 20", "d1"},
		{"properties.reported.temp >= 19", "d1 d2"},
		{"properties.reported.temp < 21.5", "d2"},
		{"properties.reported.temp <= -1", ""},
		{"properties.reported.temp > 'a'", "d3"},
		{"properties.reported.ok = true", "d1"},
		{"properties.reported.ok = false", "d2"},
		{"properties.reported.ok != true", "d2"},
		{"properties.reported.ok = 1", ""},
		{"properties.reported.ok > false", ""},
		{"properties.reported.n = null", "d2"},
		{"properties.reported.n != null", ""},
		{"properties.reported.fw = null", ""},
		// Missing fields: comparisons are unknown, and so is their NOT.
		{"NOT (properties.reported.temp > 20)", "d2"},
		{"NOT (tags.kind = 'sensor')", "d2"},
		{"NOT IS_DEFINED(tags.kind)", "d4 d5"},
		{"tags.kind IN ['sensor', 'gateway']", "d1 d3"},
		{"tags.kind NIN ['sensor', 'gateway']", "d2"},
		{"tags.location.floor IN [3, 'x']", "d1"},
		{"tags.location.floor NIN [3, 'x']", "d2"},
		{"tags.location.floor NIN []", "d1 d2"},
		{"tags.location.floor IN []", ""},
		{"properties.reported.n IN [null]", "d2"},
		{"properties.reported.ok IN [true, 'x']", "d1"},
		{"IS_DEFINED(properties.reported.fw)", "d1 d2"},
		{"IS_DEFINED(properties.reported.n)", "d2"},
		{"IS_NULL(properties.reported.n)", "d2"},
		{"NOT IS_NULL(properties.reported.n) AND IS_DEFINED(tags.kind)", "d1 d3"},
		{"IS_STRING(properties.reported.temp)", "d3"},
		{"IS_NUMBER(properties.reported.temp)", "d1 d2"},
		{"IS_BOOL(properties.reported.ok)", "d1 d2"},
		{"IS_OBJECT(tags.location)", "d1 d2 d3"},
		{"IS_OBJECT(tags)", "d1 d2 d3 d4"},
		{"IS_ARRAY(tags.list)", "d3"},
		{"IS_STRING(status) AND NOT IS_NULL(status)", "d1 d2 d3 d4 d5"},
		{"STARTS_WITH(properties.reported.fw, '1.2')", "d1"},
		{"STARTS_WITH(properties.reported.fw, '1.')", "d1 d2"},
		{"STARTS_WITH(properties.reported.fw, '')", "d1 d2"},
		{"STARTS_WITH(properties.reported.fw, '%')", ""},
		{"ENDS_WITH(properties.reported.fw, '.0')", "d1 d2"},
		{"ENDS_WITH(properties.reported.fw, '3.0')", "d2"},
		{"ENDS_WITH(properties.reported.fw, 'x1.3.0')", ""},
		{"ENDS_WITH(tags.kind, 'or')", "d1 d3 d2"},
		{"STARTS_WITH(deviceId, 'd') AND ENDS_WITH(deviceId, '5')", "d5"},
		{"STARTS_WITH(properties.reported.temp, '2')", ""},
		// NOT binds tighter than AND, AND tighter than OR.
		{"tags.kind = 'sensor' OR tags.kind = 'actuator' AND status = 'disabled'", "d1 d3"},
		{"(tags.kind = 'sensor' OR tags.kind = 'actuator') AND status = 'disabled'", "d3"},
		{"NOT tags.kind = 'sensor' AND status = 'enabled'", "d2"},
		// d5: unknown AND false is false, so its NOT is true.
		{"NOT (tags.kind = 'sensor' AND status = 'enabled')", "d2 d3 d5"},
		{"tags.location.region = 'US' AND NOT (status = 'disabled') OR deviceId = 'd5'", "d1 d5"},
		// Registry fields.
		{"deviceId = 'd2'", "d2"},
		{"deviceId IN ['d2', 'd4', 'nope']", "d2 d4"},
		{"status = 'disabled'", "d3 d5"},
		{"connectionState = 'Connected'", "d1 d4"},
		{"lastActivityTime > '2024-04-01'", "d1 d2 d4"},
		{"modelId = 'dtmi:a;1'", "d1"},
		{"modelId = ''", "d2 d3 d4 d5"},
		{"status = 1", ""},
		{"NOT (status = 1)", ""},
		{"IS_DEFINED(status)", "d1 d2 d3 d4 d5"},
		// Versions; d5 has no twin row.
		{"properties.desired.$version >= 2", "d1 d3"},
		{"properties.reported.$version = 7", "d1"},
		{"properties.reported.$version = '7'", ""},
		{"IS_DEFINED(properties.desired.$version)", "d1 d2 d3 d4"},
		{"IS_NUMBER(properties.desired.$version) AND NOT IS_STRING(properties.desired.$version)", "d1 d2 d3 d4"},
		// Quoted and digit keys.
		{"tags['floor-1'].room = 2", "d3"},
		{"tags.0.a = 1", "d3"},
		{"tags['0']['a'] = 1", "d3"},
	}
	for _, tt := range tests {
		text := "SELECT * FROM devices"
		if tt.where != "" {
			text += " WHERE " + tt.where
		}
		got := ids(t, db, text, query.Page{})
		want := sortIDs(tt.want)
		if got != want {
			t.Errorf("WHERE %s:\n got %q\nwant %q", tt.where, got, want)
		}
	}
}

// sortIDs sorts the space-separated ids of want, as rows come in id order.
func sortIDs(want string) string {
	f := strings.Fields(want)
	for i := range f {
		for j := i + 1; j < len(f); j++ {
			if f[j] < f[i] {
				f[i], f[j] = f[j], f[i]
			}
		}
	}
	return strings.Join(f, " ")
}

func TestCompileModules(t *testing.T) {
	db := openDB(t)
	tests := []struct{ text, want string }{
		{"SELECT * FROM devices.modules", "d1/m1 d1/m2 d2/m1"},
		{"SELECT * FROM devices.modules WHERE moduleId = 'm1'", "d1/m1 d2/m1"},
		{"SELECT * FROM devices.modules WHERE deviceId = 'd1' AND properties.reported.temp > 20", "d1/m1"},
		{"SELECT * FROM devices.modules WHERE tags.role = 'edge'", "d1/m1 d2/m1"},
		{"SELECT * FROM devices.modules WHERE NOT IS_DEFINED(tags.role)", "d1/m2"},
	}
	for _, tt := range tests {
		if got := ids(t, db, tt.text, query.Page{}); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.text, got, tt.want)
		}
	}
	q, err := query.Parse("SELECT * FROM devices.modules WHERE status = 'enabled'")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := query.Compile(q, query.DefaultSchema, query.SQLite{}, query.Page{}); !fault.Is(err, fault.Invalid) {
		t.Errorf("status FROM devices.modules: %v, want fault.Invalid", err)
	}
}

func TestCompileSelect(t *testing.T) {
	db := openDB(t)
	tests := []struct {
		text string
		want []string
	}{
		{"SELECT * FROM devices WHERE deviceId = 'd2'", []string{
			`d2||{"location":{"region":"EU","floor":"3"},"kind":"actuator"}|{}|{"temp":19,"fw":"1.3.0","ok":false,"n":null}|1|2|1|e|enabled|Disconnected|2024-04-01T10:00:00Z|`}},
		{"SELECT * FROM devices WHERE deviceId = 'd5'", []string{
			`d5||NULL|NULL|NULL|NULL|NULL|NULL|NULL|disabled|Disconnected|2024-01-01T10:00:00Z|`}},
		{"SELECT * FROM devices.modules WHERE moduleId = 'm2'", []string{
			`d1|m2|{}|{}|{"temp":10}|1|1|1|e|NULL|NULL|NULL|NULL`}},
		{"SELECT deviceId, tags.location, properties.reported.ok, properties.reported.n, tags.nope, status, properties.desired.$version FROM devices WHERE deviceId IN ['d1', 'd2', 'd5']", []string{
			`d1||"d1"|{"region":"US","floor":3}|true|NULL|NULL|"enabled"|3`,
			`d2||"d2"|{"region":"EU","floor":"3"}|false|null|NULL|"enabled"|1`,
			`d5||"d5"|NULL|NULL|NULL|NULL|"disabled"|NULL`}},
		{"SELECT moduleId, properties.reported.temp AS t FROM devices.modules", []string{
			`d1|m1|"m1"|30`, `d1|m2|"m2"|10`, `d2|m1|"m1"|NULL`}},
	}
	for _, tt := range tests {
		got := run(t, db, tt.text, query.Page{})
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", tt.text, got, tt.want)
		}
	}
}

func TestCompileCount(t *testing.T) {
	db := openDB(t)
	tests := []struct {
		text string
		want []string
	}{
		{"SELECT COUNT() FROM devices", []string{"5"}},
		{"SELECT COUNT() AS n FROM devices WHERE status = 'enabled'", []string{"3"}},
		{"SELECT COUNT() FROM devices.modules", []string{"3"}},
		{"SELECT tags.kind AS kind, COUNT() AS n FROM devices GROUP BY tags.kind", []string{
			"NULL|2", `"actuator"|1`, `"sensor"|2`}},
		{"SELECT COUNT(), tags.location.floor FROM devices GROUP BY tags.location.floor", []string{
			"3|NULL", `1|"3"`, "1|3"}},
		{"SELECT status, connectionState, COUNT() FROM devices GROUP BY status, connectionState", []string{
			`"disabled"|"Disconnected"|2`, `"enabled"|"Connected"|2`, `"enabled"|"Disconnected"|1`}},
		{"SELECT COUNT() FROM devices GROUP BY properties.reported.$version", []string{"1", "2", "1", "1"}},
	}
	for _, tt := range tests {
		got := run(t, db, tt.text, query.Page{})
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", tt.text, got, tt.want)
		}
	}
}

func TestCompilePaging(t *testing.T) {
	db := openDB(t)
	for _, tt := range []struct {
		text string
		want string
	}{
		{"SELECT * FROM devices", "d1 d2 d3 d4 d5"},
		{"SELECT deviceId FROM devices WHERE status = 'enabled'", "d1 d2 d4"},
		{"SELECT * FROM devices.modules", "d1/m1 d1/m2 d2/m1"},
	} {
		for limit := 1; limit <= 3; limit++ {
			var all []string
			page := query.Page{Limit: limit}
			for range 10 {
				got := run(t, db, tt.text, page)
				if len(got) > limit {
					t.Fatalf("%s: %d rows, limit %d", tt.text, len(got), limit)
				}
				if len(got) == 0 {
					break
				}
				for _, r := range got {
					f := strings.Split(r, "|")
					id := f[0]
					if f[1] != "" {
						id += "/" + f[1]
					}
					all = append(all, id)
				}
				last := strings.Split(got[len(got)-1], "|")
				page.After = query.Continuation(last[0], last[1])
			}
			if strings.Join(all, " ") != tt.want {
				t.Errorf("%s by %d: %q, want %q", tt.text, limit, all, tt.want)
			}
		}
	}
	// A device query continues after a module key as after its device.
	if got := ids(t, db, "SELECT * FROM devices", query.Page{After: query.Continuation("d2", "m1")}); got != "d3 d4 d5" {
		t.Errorf("after d2/m1: %q", got)
	}
	q, _ := query.Parse("SELECT * FROM devices")
	for _, page := range []query.Page{{Limit: -1}, {After: "!!"}, {After: "e30"}} {
		if _, _, err := query.Compile(q, query.DefaultSchema, query.SQLite{}, page); !fault.Is(err, fault.Invalid) {
			t.Errorf("page %+v: %v, want fault.Invalid", page, err)
		}
	}
}
