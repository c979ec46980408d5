package route

import (
	"bytes"
	"compress/gzip"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/stream"
)

type fakeTwins map[string]string // device id -> tags JSON

func (f fakeTwins) TwinDocs(_ context.Context, dev, _ string) ([]byte, []byte, []byte, error) {
	t, ok := f[dev]
	if !ok {
		return nil, nil, nil, fault.New(fault.NotFound, "DeviceNotFound", 404001, "no %s", dev)
	}
	return []byte(t), []byte(`{"mode":"eco"}`), []byte(`{"fw":1.5}`), nil
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func sample() *stream.Message {
	return &stream.Message{
		DeviceID: "pump-7", ContentType: "application/json", MessageID: "m1", To: "/devices/monitor/messages/devicebound",
		EnqueuedTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Properties:   []stream.Property{{Key: "proto-type", Value: "pb_AlarmStatus"}, {Key: "level", Value: "3"}, {Key: "ok", Value: "true"}},
		Body:         []byte(`{"temperature": 31.5, "n": 7, "site": {"name": "A\u0042", "tags": ["x"]}, "on": true, "none": null, "msg": "pump failure"}`),
	}
}

func TestConditions(t *testing.T) {
	tests := []struct {
		cond string
		want bool
	}{
		{"", true},
		{"true", true},
		{"$body.temperature > 30", true},
		{"$body.temperature > 31.5", false},
		{"$body.temperature >= 31.5 AND $body.n = 7", true},
		{"$body.n = 7.0", true},
		{"$body.n <> 7", false},
		{"$body.site.name = 'AB'", true},
		{"$body.site['name'] = 'AB'", true},
		{"$body.on = true", true},
		{"$body.on != false", true},
		{"$body.none = null", true},
		{"$body.missing = 1", false},
		{"NOT ($body.missing = 1)", false}, // undefined stays undefined
		{"NOT ($body.missing = 1) OR $body.n = 7", true},
		{"$body.temperature = '31.5'", false}, // a number never equals a string
		{"IS_DEFINED($body.site.tags) AND IS_ARRAY($body.site.tags) AND IS_OBJECT($body.site)", true},
		{"IS_STRING($body.msg) AND IS_NUMBER($body.n) AND IS_BOOL($body.on) AND IS_NULL($body.none)", true},
		{"CONTAINS($body.msg, 'fail') AND STARTSWITH($body.msg, 'pump') AND ENDS_WITH($body.msg, 'ure')", true},
		{"$body.n IN [1, 7, 'x']", true},
		{"$body.n NIN [1, 2]", true},
		{"proto-type = 'pb_AlarmStatus'", true},
		{"$app['proto-type'] = 'pb_AlarmStatus'", true},
		{"$app.level > 2 AND level < 4", true}, // properties compare as numbers with a number
		{"ok = true", true},
		{"level = '3'", true},
		{"$connectionDeviceId = 'pump-7' AND $messageId = 'm1'", true},
		{"$CONTENTTYPE = 'application/json'", true},
		{"$to = '/devices/monitor/messages/devicebound'", true},
		{"IS_DEFINED($correlationId)", false},
		{"$enqueuedTime > '2026-01-01'", true},
		{"$twin.tags.site = 'A' AND $twin.tags.floor >= 2", true},
		{"$twin.properties.desired.mode = 'eco' AND $twin.properties.reported.fw < 2", true},
		{"$messageSource = 'telemetry'", true},
	}
	for _, tc := range tests {
		c, err := CompileCondition(tc.cond)
		if err != nil {
			t.Errorf("%q: %v", tc.cond, err)
			continue
		}
		in := &input{twins: fakeTwins{"pump-7": `{"site":"A","floor":2}`}, ctx: context.Background()}
		in.reset(sample(), Telemetry)
		if got := c.match(in); got != tc.want {
			t.Errorf("%q = %v, want %v", tc.cond, got, tc.want)
		}
	}
}

func TestConditionBodies(t *testing.T) {
	c, err := CompileCondition("$body.temperature > 30")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		ct, ce     string
		body       []byte
		want       bool
		unreadable string
	}{
		{"json", "application/json", "", []byte(`{"temperature":40}`), true, ""},
		{"no content type", "", "", []byte(`{"temperature":40}`), true, ""},
		{"charset", "application/json; charset=utf-8", "", []byte(`{"temperature":40}`), true, ""},
		{"gzip", "application/json", "gzip", gz(`{"temperature":40}`), true, ""},
		{"bad gzip", "application/json", "gzip", []byte("nope"), false, "gzip"},
		{"text", "text/plain", "", []byte(`{"temperature":40}`), false, "content type"},
		{"invalid json", "application/json", "", []byte(`{"temperature":40`), false, "not JSON"},
		{"protobuf without schema", "application/x-protobuf", "", []byte{1, 2}, false, "protobuf"},
	} {
		in := &input{ctx: context.Background()}
		in.reset(&stream.Message{ContentType: tc.ct, ContentEncoding: tc.ce, Body: tc.body}, Telemetry)
		if got := c.match(in); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if !strings.HasPrefix(in.bodyWhy, tc.unreadable) || (tc.unreadable == "") != (in.bodyWhy == "") {
			t.Errorf("%s: body unreadable %q, want %q", tc.name, in.bodyWhy, tc.unreadable)
		}
	}
}

func TestConditionErrors(t *testing.T) {
	for cond, want := range map[string]string{
		"$body.temperature >> 30": "line 1, column 20",
		"$nope = 1":               "unknown system property $nope",
		"level = ":                "line 1, column 9",
		"a = 1 b":                 "line 1, column 7",
		"$twin.foo = 1":           "tags or properties",
		"level.x = 1":             "has no fields below it",
		"(a = 1":                  "')'",
		"a = 'unterminated":       "unterminated string",
	} {
		_, err := CompileCondition(cond)
		if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an Invalid error containing %q", cond, err, want)
		}
	}
}

func TestLookupJSON(t *testing.T) {
	doc := []byte(` { "a" : { "b\"c" : [1, {"x": "}"}], "d": "e\\"}, "f": -1.5e3 } `)
	for _, tc := range []struct {
		path []string
		want string
		ok   bool
	}{
		{nil, `{ "a" : { "b\"c" : [1, {"x": "}"}], "d": "e\\"}, "f": -1.5e3 }`, true},
		{[]string{"a", `b"c`}, `[1, {"x": "}"}]`, true},
		{[]string{"a", "d"}, `"e\\"`, true},
		{[]string{"f"}, `-1.5e3`, true},
		{[]string{"a", "zz"}, "", false},
		{[]string{"f", "x"}, "", false},
	} {
		raw, ok := lookupJSON(doc, tc.path)
		if ok != tc.ok || string(raw) != tc.want {
			t.Errorf("%v: %q %v, want %q %v", tc.path, raw, ok, tc.want, tc.ok)
		}
	}
}

func TestDeviceFromTo(t *testing.T) {
	for in, want := range map[string]string{"monitor": "monitor", "/devices/monitor/messages/devicebound": "monitor",
		"/devices/d/modules/m/inputs/x": "d/m", "/devices/d": "d"} {
		if got := deviceFromTo(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
