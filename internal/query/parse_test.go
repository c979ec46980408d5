package query_test

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string // want is the canonical form
	}{
		{"SELECT * FROM devices", ""},
		{"select * from DEVICES.Modules", "SELECT * FROM devices.modules"},
		{"SELECT * FROM devices WHERE tags.location.region = 'US'", ""},
		{`SELECT * FROM devices WHERE tags.a = "it's \"x\"\n"`, `SELECT * FROM devices WHERE tags.a = 'it\'s "x"\n'`},
		{`SELECT * FROM devices WHERE tags.a = '\u00e9\ud83d\ude00\/'`, "SELECT * FROM devices WHERE tags.a = 'é😀/'"},
		{"SELECT * FROM devices WHERE tags.a = 'x' AND tags.b = 1 OR tags.c = 2",
			"SELECT * FROM devices WHERE tags.a = 'x' AND tags.b = 1 OR tags.c = 2"},
		{"SELECT * FROM devices WHERE tags.a = 'x' AND (tags.b = 1 OR tags.c = 2)", ""},
		{"SELECT * FROM devices WHERE tags.a = 1 OR (tags.b = 1 OR tags.c = 2)", ""},
		{"SELECT * FROM devices WHERE ((tags.a = 1 OR tags.b = 1)) OR tags.c = 2",
			"SELECT * FROM devices WHERE tags.a = 1 OR tags.b = 1 OR tags.c = 2"},
		{"SELECT * FROM devices WHERE NOT tags.a = 1 AND NOT IS_DEFINED(tags.b)",
			"SELECT * FROM devices WHERE NOT (tags.a = 1) AND NOT IS_DEFINED(tags.b)"},
		{"SELECT * FROM devices WHERE not not (tags.a <> 1)", "SELECT * FROM devices WHERE NOT (NOT (tags.a != 1))"},
		{"SELECT * FROM devices WHERE tags.n >= -1.5e3 AND tags.m < 2.0 AND tags.k <= 0.25 AND tags.j > 1e300",
			"SELECT * FROM devices WHERE tags.n >= -1500 AND tags.m < 2 AND tags.k <= 0.25 AND tags.j > 1e+300"},
		{"SELECT * FROM devices WHERE tags.a IN ['a', 1, true, null] AND tags.b NIN [] AND tags.c in [false]",
			"SELECT * FROM devices WHERE tags.a IN ['a', 1, true, null] AND tags.b NIN [] AND tags.c IN [false]"},
		{"SELECT deviceId, tags.x AS x, properties.reported.a.b FROM devices", ""},
		{"SELECT COUNT() FROM devices", ""},
		{"SELECT count() as n FROM devices WHERE status = 'enabled'", "SELECT COUNT() AS n FROM devices WHERE status = 'enabled'"},
		{"SELECT properties.reported.x AS x, COUNT() AS n FROM devices GROUP BY properties.reported.x", ""},
		{"SELECT COUNT() FROM devices GROUP BY tags.a, status", ""},
		{"SELECT * FROM devices WHERE properties.desired.$version >= 2 AND properties.reported.$version = 1", ""},
		{"SELECT * FROM devices WHERE tags['floor-1'].room = 2 AND tags.0.a = 1", ""},
		{"SELECT * FROM devices WHERE tags['plain'] = 1", "SELECT * FROM devices WHERE tags.plain = 1"},
		{"SELECT * FROM devices WHERE is_null(tags.a) OR is_string(tags.a) OR IS_NUMBER(tags.a) OR IS_BOOL(tags.a) OR IS_OBJECT(tags) OR IS_ARRAY(tags.a)", "SELECT * FROM devices WHERE IS_NULL(tags.a) OR IS_STRING(tags.a) OR IS_NUMBER(tags.a) OR IS_BOOL(tags.a) OR IS_OBJECT(tags) OR IS_ARRAY(tags.a)"},
		{"SELECT * FROM devices WHERE starts_with(deviceId, 'a') AND ENDS_WITH(tags.x, \"b\")",
			"SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a') AND ENDS_WITH(tags.x, 'b')"},
		{"SELECT * FROM devices.modules WHERE moduleId = 'm' AND DeviceId = 'd'",
			"SELECT * FROM devices.modules WHERE moduleId = 'm' AND deviceId = 'd'"},
		{"SELECT *\nFROM devices\n\tWHERE connectionState = 'Connected' AND lastActivityTime > '2024' AND modelId = ''",
			"SELECT * FROM devices WHERE connectionState = 'Connected' AND lastActivityTime > '2024' AND modelId = ''"},
		{"SELECT * FROM devices WHERE tags.x = 9223372036854775807 AND tags.y = 9223372036854775808",
			"SELECT * FROM devices WHERE tags.x = 9223372036854775807 AND tags.y = 9.223372036854776e+18"},
		{"SELECT * FROM devices ORDER BY lastActivityTime DESC", ""},
		{"select * from devices where status = 'enabled' order by tags.site asc, DeviceId desc",
			"SELECT * FROM devices WHERE status = 'enabled' ORDER BY tags.site, deviceId DESC"},
		{"SELECT deviceId, tags.a AS a FROM devices.modules ORDER BY moduleId, properties.reported.$version DESC, tags['a b'], properties.desired.x.y", ""},
		{"SELECT * FROM devices ORDER BY status, connectionState, modelId DESC", ""},
	}
	for _, tt := range tests {
		q, err := query.Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		want := tt.want
		if want == "" {
			want = tt.in
		}
		if got := q.String(); got != want {
			t.Errorf("Parse(%q).String():\n got %s\nwant %s", tt.in, got, want)
		}
		q2, err := query.Parse(q.String())
		if err != nil || q2.String() != q.String() {
			t.Errorf("reparse of %q: %v, %v", q.String(), q2, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "line 1, column 1: expected SELECT, found end of query"},
		{"SELEC * FROM devices", "line 1, column 1: expected SELECT, found 'SELEC'"},
		{"SELECT FROM devices", "line 1, column 8: expected '*', COUNT() or a field after SELECT, found 'FROM'"},
		{"SELECT * FROM twins", "line 1, column 15: expected devices or devices.modules after FROM, found 'twins'"},
		{"SELECT * FROM devices.jobs", "line 1, column 23: expected modules after 'devices.', found 'jobs'"},
		{"SELECT * FROM devices WHERE tags.x = AND", "line 1, column 38: expected a value after '=', found 'AND'"},
		{"SELECT * FROM devices WHERE tags.x = 1 AND", "line 1, column 43: expected a condition, found end of query"},
		{"SELECT * FROM devices WHERE tags.x 1", "line 1, column 36: expected a comparison operator, IN or NIN after tags.x, found '1'"},
		{"SELECT * FROM devices WHERE (tags.x = 1", "line 1, column 40: expected ')' or an operator, found end of query"},
		{"SELECT * FROM devices WHERE tags.x = 'abc", "line 1, column 38: unterminated string"},
		{`SELECT * FROM devices WHERE tags.x = 'a\qb'`, `line 1, column 40: invalid escape '\q' in string`},
		{`SELECT * FROM devices WHERE tags.x = '\u12'`, `line 1, column 39: invalid \u escape in string: expected four hex digits`},
		{`SELECT * FROM devices WHERE tags.x = '\ud800'`, `line 1, column 39: invalid \u escape in string: unpaired surrogate`},
		{"SELECT * FROM devices\n  WHERE tags.x ! 1", "line 2, column 16: unexpected character '!'; did you mean '!='?"},
		{"SELECT * FROM devices WHERE tags.x = 1 ;", "line 1, column 40: unexpected character ';'"},
		{"SELECT * FROM devices WHERE tags.x = 12ab", "line 1, column 38: malformed number \"12a\""},
		{"SELECT * FROM devices WHERE tags.x = 1e999", "line 1, column 38: number 1e999 is out of range"},
		{"SELECT * FROM devices WHERE color = 'red'", "line 1, column 29: unknown field 'color'; fields are deviceId, moduleId, status, connectionState, lastActivityTime, modelId, tags..., properties.desired... and properties.reported..."},
		{"SELECT * FROM devices WHERE properties.x = 1", "line 1, column 40: expected desired or reported after 'properties.', found 'x'"},
		{"SELECT * FROM devices WHERE status.x = 1", "line 1, column 35: status has no fields below it"},
		{"SELECT * FROM devices WHERE tags. = 1", "line 1, column 35: expected a key after '.', found '='"},
		{"SELECT * FROM devices WHERE tags.$version = 1", "line 1, column 34: '$version': the only $ key is properties.desired.$version or properties.reported.$version"},
		{"SELECT * FROM devices WHERE properties.desired.a.$version = 1", "line 1, column 50: '$version': the only $ key is properties.desired.$version or properties.reported.$version"},
		{"SELECT * FROM devices WHERE properties.desired.$version.a = 1", "line 1, column 56: properties.desired.$version has no fields below it"},
		{"SELECT * FROM devices WHERE tags[''] = 1", "line 1, column 34: empty key"},
		{`SELECT * FROM devices WHERE tags['a"b'] = 1`, `line 1, column 34: key "a\"b" contains '"', which keys may not contain`},
		{"SELECT * FROM devices WHERE tags['a' = 1", "line 1, column 38: expected ']', found '='"},
		{"SELECT * FROM devices WHERE tags.a IN 'x'", "line 1, column 39: expected '[' after IN, found ''x''"},
		{"SELECT * FROM devices WHERE tags.a IN ['x' 'y']", "line 1, column 44: expected ',' or ']', found ''y''"},
		{"SELECT * FROM devices WHERE tags.a NIN [tags.b]", "line 1, column 41: expected a value in the list, found 'tags'"},
		{"SELECT * FROM devices WHERE STARTS_WITH(tags.a, 1)", "line 1, column 49: expected a string as the second argument of STARTS_WITH, found '1'"},
		{"SELECT * FROM devices WHERE IS_DEFINED(tags.a, 'x')", "line 1, column 46: expected ')' after the arguments of IS_DEFINED, found ','"},
		{"SELECT * FROM devices WHERE IS_DEFINED('x')", "line 1, column 40: expected a field as the argument of IS_DEFINED, found ''x''"},
		{"SELECT * FROM devices WHERE moduleId = 'a'", "line 1, column 29: moduleId is defined only FROM devices.modules"},
		{"SELECT * FROM devices GROUP BY tags.b", "line 1, column 32: GROUP BY needs COUNT() in the SELECT list"},
		{"SELECT tags.a, COUNT() FROM devices GROUP BY tags.b", "line 1, column 8: tags.a must be in GROUP BY to be selected with COUNT()"},
		{"SELECT tags.a, COUNT() FROM devices", "line 1, column 8: tags.a must be in GROUP BY to be selected with COUNT()"},
		{"SELECT COUNT() AS from FROM devices", "line 1, column 19: expected a name after AS, found 'from'"},
		{"SELECT COUNT( FROM devices", "line 1, column 15: expected ')' after 'COUNT(', found 'FROM'"},
		{"SELECT * FROM devices GROUP tags.a", "line 1, column 29: expected BY after GROUP, found 'tags'"},
		{"SELECT * FROM devices WHERE tags.a = 1 tags.b = 2", "line 1, column 40: expected end of query, found 'tags'"},
		{"SELECT * FROM devices WHERE tags.a = 'a very long string literal indeed'", "line 1, column 38: expected end of query"},
		{"SELECT * FROM devices WHERE tags.x = '\xff'", "line 1, column 39: query is not valid UTF-8"},
		{"SELECT * FROM devices ORDER tags.a", "line 1, column 29: expected BY after ORDER, found 'tags'"},
		{"SELECT * FROM devices ORDER BY", "line 1, column 31: expected a field after ORDER BY, found end of query"},
		{"SELECT * FROM devices ORDER BY 'x'", "line 1, column 32: expected a field after ORDER BY, found ''x''"},
		{"SELECT * FROM devices ORDER BY tags.a,", "line 1, column 39: expected a field after ORDER BY, found end of query"},
		{"SELECT * FROM devices ORDER BY color DESC", "line 1, column 32: unknown field 'color'; fields are deviceId, moduleId, status, connectionState, lastActivityTime, modelId, tags..., properties.desired... and properties.reported..."},
		{"SELECT * FROM devices ORDER BY status.x", "line 1, column 38: status has no fields below it"},
		{"SELECT * FROM devices ORDER BY tags.a DESC ASC", "line 1, column 44: expected end of query, found 'ASC'"},
		{"SELECT * FROM devices ORDER BY tags.a WHERE tags.a = 1", "line 1, column 39: expected end of query, found 'WHERE'"},
		{"SELECT * FROM devices ORDER BY tags.a DESC, tags['a']", "line 1, column 45: tags.a appears twice in ORDER BY"},
		{"SELECT * FROM devices ORDER BY moduleId", "line 1, column 32: moduleId is defined only FROM devices.modules"},
		{"SELECT COUNT() FROM devices ORDER BY status", "line 1, column 38: ORDER BY cannot be used with COUNT(); groups come ordered by the GROUP BY fields"},
		{"SELECT tags.a AS order FROM devices", "line 1, column 18: expected a name after AS, found 'order'"},
	}
	for _, tt := range tests {
		_, err := query.Parse(tt.in)
		if tt.want == "line 1, column 38: expected end of query" {
			// A long literal is fine; this row checks that it parses.
			if err != nil {
				t.Errorf("Parse(%q): %v", tt.in, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Parse(%q): no error, want %q", tt.in, tt.want)
			continue
		}
		if !fault.Is(err, fault.Invalid) {
			t.Errorf("Parse(%q): error %v is not fault.Invalid", tt.in, err)
		}
		if got := err.Error(); got != "query: "+tt.want {
			t.Errorf("Parse(%q):\n got %s\nwant query: %s", tt.in, got, tt.want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	deep := "SELECT * FROM devices WHERE "
	for range 100 {
		deep += "("
	}
	if _, err := query.Parse(deep + "tags.a = 1"); !fault.Is(err, fault.Invalid) {
		t.Errorf("deep nesting: %v", err)
	}
	long := make([]byte, query.MaxLength+1)
	if _, err := query.Parse(string(long)); !fault.Is(err, fault.Invalid) {
		t.Errorf("long query: %v", err)
	}
}
