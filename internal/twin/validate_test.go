package twin_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/twin"
)

// nest returns n objects nested under key k, around leaf; the outermost is
// the document itself, so nest(11, ...) is the deepest Azure accepts.
func nest(n int, leaf string) string {
	return strings.Repeat(`{"k":`, n) + leaf + strings.Repeat(`}`, n)
}

func TestParsePatch(t *testing.T) {
	long := strings.Repeat("x", 4096)
	tests := []struct {
		name  string
		side  twin.Side
		patch string
		want  string // "" for accepted, else a substring of the error
	}{
		{"object", twin.Reported, `{"a":1,"b":{"c":"d"},"e":null}`, ""},
		{"version ignored", twin.Reported, `{"$version":7,"a":1}`, ""},
		{"ten levels", twin.Desired, nest(11, `1`), ""},
		{"eleven levels", twin.Desired, nest(12, `1`), "desired.k.k.k.k.k.k.k.k.k.k.k: nesting deeper than 10 levels"},
		{"arrays count as levels", twin.Reported, `{"a":` + nest(10, `[1]`) + `}`, "reported.a.k.k.k.k.k.k.k.k.k.k: nesting deeper"},
		{"array in properties", twin.Reported, `{"a":[1,{"b":"c"},[2]]}`, ""},
		{"array in tags", twin.Tags, `{"a":{"b":[1]}}`, "tags.a.b: arrays are not allowed in tags"},
		{"invalid JSON", twin.Reported, `{"a":`, "reported: invalid JSON"},
		{"trailing data", twin.Reported, `{} 1`, "reported: invalid JSON"},
		{"array patch", twin.Reported, `[1]`, "reported: the patch must be a JSON object, not an array"},
		{"null patch", twin.Desired, `null`, "must be a JSON object, not null"},
		{"dot in key", twin.Reported, `{"a":{"b.c":1}}`, `reported.a: key "b.c" contains '.'`},
		{"dollar in key", twin.Desired, `{"$x":1}`, `desired: key "$x" contains '$'`},
		{"space in key", twin.Tags, `{"a b":1}`, `contains ' '`},
		{"control in key", twin.Reported, `{"a\u0001":1}`, "control character"},
		{"empty key", twin.Reported, `{"":1}`, "reported: empty key"},
		{"long key", twin.Reported, fmt.Sprintf(`{"%s":1}`, strings.Repeat("k", 1025)), "key longer than 1024 bytes"},
		{"key of 1 KiB", twin.Reported, fmt.Sprintf(`{"%s":1}`, strings.Repeat("k", 1024)), ""},
		{"long string", twin.Reported, `{"s":"` + long + `x"}`, "reported.s: string value longer than 4096 bytes"},
		{"string of 4 KiB", twin.Reported, `{"s":"` + long + `"}`, ""},
		{"string in array", twin.Reported, `{"a":["` + long + `x"]}`, "reported.a[0]: string value longer"},
		{"max int", twin.Reported, `{"n":4503599627370495,"m":-4503599627370496}`, ""},
		{"int too big", twin.Reported, `{"n":4503599627370496}`, "reported.n: integer 4503599627370496 outside"},
		{"int too small", twin.Reported, `{"n":-4503599627370497}`, "outside"},
		{"huge int", twin.Reported, `{"n":100000000000000000000}`, "outside"},
		{"float", twin.Reported, `{"n":1e300,"m":0.5}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := twin.Limits{}.ParsePatch(tt.side, []byte(tt.patch))
			if tt.want == "" {
				must(t, err)
				return
			}
			wantInvalid(t, err, tt.want)
		})
	}
}

// TestLimitsConfigurable checks that Limits fields override Azure's.
func TestLimitsConfigurable(t *testing.T) {
	l := twin.Limits{MaxDepth: 2, MaxKeyBytes: 3, MaxStringBytes: 4}
	for patch, want := range map[string]string{
		nest(4, `1`):    "nesting deeper than 2 levels",
		`{"abcd":1}`:    "key longer than 3 bytes",
		`{"a":"12345"}`: "string value longer than 4 bytes",
	} {
		_, err := l.ParsePatch(twin.Reported, []byte(patch))
		wantInvalid(t, err, want)
	}
}

// FuzzValidate checks that ParsePatch never panics, that what it accepts
// is an object within the limits and that its errors are Invalid.
func FuzzValidate(f *testing.F) {
	f.Add("reported", []byte(`{"a":{"b":[1,"x",null]},"$version":3}`))
	f.Add("tags", []byte(`{"a":[1]}`))
	f.Add("desired", []byte(nest(11, `1`)))
	f.Add("desired", []byte(`{"a.b":1e5}`))
	l := twin.Limits{MaxDepth: 3, MaxKeyBytes: 8, MaxStringBytes: 16}
	f.Fuzz(func(t *testing.T, side string, data []byte) {
		s := twin.Side(side)
		p, err := l.ParsePatch(s, data)
		if err != nil {
			if !fault.Is(err, fault.Invalid) {
				t.Fatalf("ParsePatch(%q) = %v, want an Invalid error", data, err)
			}
			return
		}
		if _, ok := p["$version"]; ok {
			t.Fatalf("ParsePatch(%q) kept $version", data)
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted patch %q does not encode: %v", data, err)
		}
		// What was accepted is accepted again.
		if _, err := l.ParsePatch(s, out); err != nil {
			t.Fatalf("re-parsing accepted %q as %q: %v", data, out, err)
		}
	})
}
