package route

import (
	"context"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/stream"
)

var fuzzSeeds = []struct{ cond, body string }{
	{"$body.temperature > 30", `{"temperature": 31}`},
	{"proto-type = 'pb_AlarmStatus' AND $body.alarm_active = true", `{"alarm_active": true}`},
	{"$twin.tags.site IN ['A', 2, null] OR NOT IS_DEFINED($body.x.y)", `{"x": {"y": [1, "]"]}}`},
	{"CONTAINS($body.msg, 'a') AND STARTSWITH($to, '/devices/')", `{"msg": "a\u00e9\"b"}`},
	{"$app['a b'] >= -1.5e3 AND level <> 'x'", `[1, 2, {"a": {}}]`},
	{"(((a = 1)))", `{"a": 1, "a": 2}`},
	{"$body.a.b.c = 'x'", `{"a": {"b": {"c": "x"}}}`},
	{"a = ", `{`},
	{"$body[", `"`},
}

// FuzzCondition checks that compiling a condition never panics and fails
// only with fault.Invalid; that a compiled condition's canonical form
// compiles again; and that evaluating it on any body never panics.
func FuzzCondition(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.cond, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, cond string, body []byte) {
		c, err := CompileCondition(cond)
		if err != nil {
			if !fault.Is(err, fault.Invalid) {
				t.Fatalf("CompileCondition(%q): %v is not fault.Invalid", cond, err)
			}
			return
		}
		if c.root != nil {
			e, err := query.ParseCondition(cond)
			if err != nil {
				t.Fatal(err)
			}
			s := query.ConditionString(e)
			e2, err := query.ParseCondition(s)
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", s, cond, err)
			}
			if s2 := query.ConditionString(e2); s2 != s {
				t.Fatalf("canonical form not stable: %q then %q", s, s2)
			}
		}
		in := &input{twins: fakeTwins{"d": string(body)}, ctx: context.Background()}
		in.reset(&stream.Message{DeviceID: "d", Body: body, Properties: []stream.Property{{Key: "level", Value: string(body)}}}, Telemetry)
		c.match(in)
	})
}

// FuzzLookupJSON checks that the path scanner never panics nor reads out
// of bounds on any document.
func FuzzLookupJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s.body), "a", "b")
	}
	f.Fuzz(func(t *testing.T, doc []byte, k1, k2 string) {
		if raw, ok := lookupJSON(doc, []string{k1, k2}); ok {
			jsonVal(raw)
		}
		lookupJSON(doc, nil)
	})
}
