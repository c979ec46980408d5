package cli

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
)

func TestPayloadJSON(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"object", `{"temperature": 21.5, "unit":"C"}`, `{"temperature": 21.5, "unit":"C"}`},
		{"number", `42`, `42`},
		{"string", `"quoted"`, `"quoted"`},
		{"text", `hello <world> & "you"`, `"hello <world> & \"you\""`},
		{"invalid JSON is text", `{"t":`, `"{\"t\":"`},
		{"unicode text", "grüße", `"grüße"`},
		{"empty", "", `""`},
		{"blank", "  ", `"  "`},
		{"binary", "\x00\x01\xfe\xff", `{"hex":"0001feff"}`},
		{"latin-1 is not UTF-8", "caf\xe9", `{"hex":"636166e9"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(payloadJSON([]byte(tt.body))); got != tt.want {
				t.Errorf("payloadJSON(%q) = %s, want %s", tt.body, got, tt.want)
			}
		})
	}
}

var testMessage = api.Message{
	Stream: "default", Group: "default", DeviceID: "d1", ModuleID: "m",
	EnqueuedTime:     time.Date(2026, 11, 23, 5, 0, 0, 123000000, time.UTC),
	Cursor:           "7.1",
	SystemProperties: api.SystemProperties{MessageID: "m1", ContentType: "application/json"},
	Properties:       map[string]string{"b": "2", "a": "<1>"},
	Body:             []byte(`{"t": [1, 2]}`),
}

func TestEventCompact(t *testing.T) {
	var b strings.Builder
	if err := newEventWriter(&b, false).write(&testMessage); err != nil {
		t.Fatal(err)
	}
	want := `{"event":{"origin":"d1","module":"m","stream":"default","group":"default",` +
		`"enqueuedTime":"2026-11-23T05:00:00.123Z","properties":{"system":{"messageId":"m1",` +
		`"contentType":"application/json"},"application":{"a":"<1>","b":"2"}},"payload":{"t":[1,2]}}}` + "\n"
	if b.String() != want {
		t.Errorf("compact event:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestEventPretty(t *testing.T) {
	m := testMessage
	m.Properties = nil
	m.SystemProperties = api.SystemProperties{}
	var b strings.Builder
	if err := newEventWriter(&b, true).write(&m); err != nil {
		t.Fatal(err)
	}
	want := `{
    "event": {
        "origin": "d1",
        "module": "m",
        "stream": "default",
        "group": "default",
        "enqueuedTime": "2026-11-23T05:00:00.123Z",
        "properties": {
            "system": {},
            "application": {}
        },
        "payload": {
            "t": [
                1,
                2
            ]
        }
    }
}
`
	if b.String() != want {
		t.Errorf("pretty event:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestParseFrom(t *testing.T) {
	now := time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"":                          "",
		"beginning":                 "beginning",
		"now":                       "now",
		"10m":                       "2026-11-23T04:50:00Z",
		"2026-11-23T06:00:00+01:00": "2026-11-23T05:00:00Z",
	} {
		if got, err := parseFrom(in, now); err != nil || got != want {
			t.Errorf("parseFrom(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "2026-11-23"} {
		if _, err := parseFrom(bad, now); exitCode(err) != exitUsageError {
			t.Errorf("parseFrom(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestEventInflatesGzip(t *testing.T) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte(`{"celsius":21.5}`))
	zw.Close()
	m := testMessage
	m.SystemProperties.ContentEncoding = "gzip"
	m.Body = z.Bytes()
	if got := string(newEvent(&m).Event.Payload); got != `{"celsius":21.5}` {
		t.Errorf("gzipped payload shown as %s", got)
	}
	m.Body = []byte("not gzip at all")
	if got := string(newEvent(&m).Event.Payload); got != `"not gzip at all"` {
		t.Errorf("a body that does not inflate is shown as %s, want it as stored", got)
	}
}
