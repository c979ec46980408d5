package query_test

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
)

// seeds are valid and invalid queries added to the corpora in testdata.
var seeds = []string{
	"SELECT * FROM devices",
	"SELECT * FROM devices.modules WHERE moduleId = 'm1' AND properties.reported.temp > 20",
	"SELECT deviceId, tags.a AS a FROM devices WHERE tags.x IN ['a', 1, true, null] OR NOT tags.y NIN []",
	"SELECT tags.kind, COUNT() AS n FROM devices GROUP BY tags.kind",
	`SELECT * FROM devices WHERE tags['a b'].c = "q\"\u00e9" AND STARTS_WITH(deviceId, 'x')`,
	"SELECT * FROM devices WHERE properties.desired.$version >= -1.5e3 AND IS_DEFINED(tags)",
	"SELECT * FROM devices WHERE (((tags.a = 1)))",
	"SELECT * FROM devices WHERE tags.x = AND",
	"SELECT * FROM devices WHERE tags.",
}

// FuzzParse checks that Parse never panics, fails only with fault.Invalid,
// and that the canonical form of a query parses to the same canonical form.
//
// Minimizing each new input can keep the workers busy for the default 60s,
// which the progress lines show as 0 execs/sec; -fuzzminimizetime=5s keeps
// a short run fuzzing.
func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		q, err := query.Parse(text)
		if err != nil {
			if !fault.Is(err, fault.Invalid) {
				t.Fatalf("Parse(%q): error %v is not fault.Invalid", text, err)
			}
			return
		}
		s := q.String()
		q2, err := query.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", text, s, err)
		}
		if s2 := q2.String(); s2 != s {
			t.Fatalf("String of %q is not stable:\n%s\n%s", text, s, s2)
		}
	})
}

// FuzzCompile checks that every parsed query compiles or fails with
// fault.Invalid, whatever the page.
func FuzzCompile(f *testing.F) {
	for _, s := range seeds {
		f.Add(s, 2, "")
	}
	f.Add("SELECT * FROM devices.modules", 1, query.Continuation("d1", "m1"))
	f.Fuzz(func(t *testing.T, text string, limit int, after string) {
		q, err := query.Parse(text)
		if err != nil {
			return
		}
		page := query.Page{Limit: limit, After: after}
		_, _, err = query.Compile(q, query.DefaultSchema, query.SQLite{}, page)
		if err != nil && !fault.Is(err, fault.Invalid) {
			t.Fatalf("Compile(%q, %+v): error %v is not fault.Invalid", text, page, err)
		}
	})
}

func BenchmarkParseCompile(b *testing.B) {
	const text = "SELECT * FROM devices WHERE tags.location.region = 'US' AND " +
		"(properties.reported.temp > 20 OR STARTS_WITH(properties.reported.fw, '1.2')) AND status = 'enabled'"
	page := query.Page{Limit: 100, After: query.Continuation("d1", "")}
	for b.Loop() {
		q, err := query.Parse(text)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := query.Compile(q, query.DefaultSchema, query.SQLite{}, page); err != nil {
			b.Fatal(err)
		}
	}
}
