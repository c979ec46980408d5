package twin_test

import (
	"encoding/json"
	"testing"

	"github.com/ferry-iot/ferry/internal/twin"
)

// TestMergePatch covers RFC 7396's appendix A examples.
func TestMergePatch(t *testing.T) {
	tests := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{``, `{"a":1}`, `{"a":1}`},
		// Integers keep their exact text beyond float64 precision.
		{`{"n":4503599627370495}`, `{"m":1}`, `{"m":1,"n":4503599627370495}`},
	}
	for _, tt := range tests {
		got, err := twin.MergePatch([]byte(tt.target), []byte(tt.patch))
		if err != nil {
			t.Errorf("MergePatch(%s, %s): %v", tt.target, tt.patch, err)
			continue
		}
		if string(got) != tt.want && !jsonEqual(t, got, []byte(tt.want)) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", tt.target, tt.patch, got, tt.want)
		}
	}
	for _, bad := range [][2]string{{`{`, `{}`}, {`{}`, `{"a":}`}, {`{}`, `{} {}`}} {
		if _, err := twin.MergePatch([]byte(bad[0]), []byte(bad[1])); err == nil {
			t.Errorf("MergePatch(%s, %s) accepted invalid JSON", bad[0], bad[1])
		}
	}
}

// FuzzMergePatch checks that a merge never panics, yields valid JSON and is
// idempotent: applying the same patch again changes nothing.
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":null,"c":[1,{"d":null}]}}`))
	f.Add([]byte(`[1]`), []byte(`{"a":null}`))
	f.Add([]byte(`{"a":1}`), []byte(`"x"`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		once, err := twin.MergePatch(target, patch)
		if err != nil {
			return
		}
		if !json.Valid(once) {
			t.Fatalf("MergePatch(%q, %q) = %q: invalid JSON", target, patch, once)
		}
		twice, err := twin.MergePatch(once, patch)
		if err != nil {
			t.Fatalf("second MergePatch of %q: %v", once, err)
		}
		if string(once) != string(twice) {
			t.Fatalf("not idempotent: %q then %q", once, twice)
		}
	})
}
