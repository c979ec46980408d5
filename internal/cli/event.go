package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/model"
)

// event is what monitor prints for one message. Its shape follows
// `az iot hub monitor-events --properties all`, so people and scripts used to
// that output read ours the same way.
type event struct {
	Event eventBody `json:"event"`
}

// eventBody is the content of event.
type eventBody struct {
	Origin       string          `json:"origin"` // device id
	Module       string          `json:"module"`
	Stream       string          `json:"stream"`
	Group        string          `json:"group"`
	EnqueuedTime string          `json:"enqueuedTime"`
	Properties   eventProperties `json:"properties"`
	Payload      json.RawMessage `json:"payload"`
	// PnPMismatch (Ferry's addition) lists how the message breaks its
	// device's Plug and Play model; absent when it fits or there is none.
	PnPMismatch []model.Problem `json:"pnpMismatch,omitempty"`
}

// eventProperties are a message's system and application properties.
type eventProperties struct {
	System      api.SystemProperties `json:"system"`
	Application map[string]string    `json:"application"`
}

// newEvent converts a message read from the hub.
func newEvent(m *api.Message) event {
	app := m.Properties
	if app == nil {
		app = map[string]string{} // {} rather than null: scripts index it
	}
	return event{Event: eventBody{
		Origin:       m.DeviceID,
		Module:       m.ModuleID,
		Stream:       m.Stream,
		Group:        m.Group,
		EnqueuedTime: m.EnqueuedTime.UTC().Format(time.RFC3339Nano),
		Properties:   eventProperties{System: m.SystemProperties, Application: app},
		Payload:      payloadJSON(decoded(m)),
		PnPMismatch:  m.PnPMismatch,
	}}
}

// maxInflated bounds a decompressed body, so a small hostile payload
// cannot make monitor allocate without limit.
const maxInflated = 16 << 20

// decoded returns m's body, decompressed when its content encoding is
// gzip (the device SDK's compression). A body that does not inflate, or
// inflates past maxInflated, is shown as stored.
func decoded(m *api.Message) []byte {
	if !strings.EqualFold(m.SystemProperties.ContentEncoding, "gzip") {
		return m.Body
	}
	zr, err := gzip.NewReader(bytes.NewReader(m.Body))
	if err != nil {
		return m.Body
	}
	plain, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil || len(plain) > maxInflated {
		return m.Body
	}
	return plain
}

// payloadJSON renders a message body (decompressed when it was gzipped) as a JSON value: the body itself when
// it is JSON (the common case for telemetry), a string when it is UTF-8
// text, else {"hex": "..."} so binary payloads (protobuf, CBOR) stay
// readable and lossless.
func payloadJSON(body []byte) json.RawMessage {
	if len(bytes.TrimSpace(body)) > 0 && json.Valid(body) {
		return json.RawMessage(body)
	}
	if utf8.Valid(body) {
		return marshalNoEscape(string(body))
	}
	return marshalNoEscape(map[string]string{"hex": hex.EncodeToString(body)})
}

// marshalNoEscape is json.Marshal without HTML escaping, which would turn a
// payload's "<" into "\u003c" on a terminal.
func marshalNoEscape(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings and string maps always encode
	return bytes.TrimRight(b.Bytes(), "\n")
}

// eventWriter prints events, pretty (indented, for people) or one compact
// JSON object per line (--json, for scripts).
type eventWriter struct {
	enc *json.Encoder
	// decode, when set, renders a body the writer cannot read by itself
	// (a protobuf body with a registered schema); nil means no rendering.
	decode func(m *api.Message) json.RawMessage
}

func newEventWriter(w io.Writer, pretty bool) *eventWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if pretty {
		enc.SetIndent("", "    ")
	}
	return &eventWriter{enc: enc}
}

// write prints the event of m.
func (w *eventWriter) write(m *api.Message) error {
	ev := newEvent(m)
	if w.decode != nil {
		if js := w.decode(m); js != nil {
			ev.Event.Payload = js
		}
	}
	return w.enc.Encode(ev)
}
