package console

import (
	"encoding/json"

	"github.com/ferry-iot/ferry/internal/stream"
)

// maxLivePoints bounds the points of one update: a burst is sampled evenly,
// keeping the newest.
const maxLivePoints = 200

// update is one live batch for a device page.
type update struct {
	Points  []point    `json:"points"`
	Tail    []tailItem `json:"tail"`
	Sampled bool       `json:"sampled,omitempty"` // older messages were skipped under heavy ingest
}

// point is one message's numeric fields at its enqueued time (Unix ms).
type point struct {
	T int64              `json:"t"`
	V map[string]float64 `json:"v"`
}

// tailItem is a message for the raw tail, its body cut to 2 KiB.
type tailItem struct {
	T          int64             `json:"t"`
	ID         string            `json:"id,omitempty"`
	Module     string            `json:"module,omitempty"`
	Component  string            `json:"component,omitempty"` // Plug and Play component ($.sub)
	Stream     string            `json:"stream,omitempty"`
	Props      map[string]string `json:"props,omitempty"`
	Body       string            `json:"body"`
	Truncated  bool              `json:"truncated,omitempty"`
	BinaryBody bool              `json:"binary,omitempty"`
}

const maxTail = 20

func encodeUpdate(msgs []stream.Message, sampled bool) []byte {
	u := update{Points: samplePoints(pointsOf(msgs), maxLivePoints), Tail: tailOf(msgs, maxTail), Sampled: sampled}
	b, _ := json.Marshal(u)
	return b
}

// pointsOf turns messages into chart points. A Plug and Play component's
// telemetry ($.sub, Component) is charted under "component/field", so two
// thermostats' temperatures are two series.
func pointsOf(msgs []stream.Message) []point {
	out := make([]point, 0, len(msgs))
	for i := range msgs {
		v := numericFields(msgs[i].Body)
		if len(v) == 0 {
			continue
		}
		if c := msgs[i].Component; c != "" {
			named := make(map[string]float64, len(v))
			for k, x := range v {
				named[c+"/"+k] = x
			}
			v = named
		}
		out = append(out, point{T: msgs[i].EnqueuedTime.UnixMilli(), V: v})
	}
	return out
}

// samplePoints keeps at most n points, evenly spread, always the last.
func samplePoints(p []point, n int) []point {
	if len(p) <= n {
		return p
	}
	out := make([]point, 0, n)
	step := float64(len(p)-1) / float64(n-1)
	for i := range n {
		out = append(out, p[int(float64(i)*step+0.5)])
	}
	return out
}

func tailOf(msgs []stream.Message, n int) []tailItem {
	if len(msgs) > n {
		msgs = msgs[len(msgs)-n:]
	}
	out := make([]tailItem, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		it := tailItem{T: m.EnqueuedTime.UnixMilli(), ID: m.MessageID, Module: m.ModuleID, Component: m.Component, Stream: m.Stream}
		if len(m.Properties) > 0 {
			it.Props = make(map[string]string, len(m.Properties))
			for _, p := range m.Properties {
				it.Props[p.Key] = p.Value
			}
		}
		body := m.Body
		if len(body) > 2048 {
			body, it.Truncated = body[:2048], true
		}
		if json.Valid(m.Body) || isText(body) {
			it.Body = string(body)
		} else {
			it.BinaryBody = true
			it.Body = hexPreview(body)
		}
		out = append(out, it)
	}
	return out
}

// numericFields returns the numbers of a JSON object body: top-level fields
// and one level of nesting ("thermostat1.temperature"); booleans count as
// 0/1. Anything else is not charted.
func numericFields(body []byte) map[string]float64 {
	if len(body) == 0 || body[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	out := make(map[string]float64)
	for k, raw := range m {
		addNumber(out, k, raw)
		if len(raw) > 0 && raw[0] == '{' {
			var inner map[string]json.RawMessage
			if json.Unmarshal(raw, &inner) == nil {
				for k2, r2 := range inner {
					addNumber(out, k+"."+k2, r2)
				}
			}
		}
		if len(out) >= 32 {
			break
		}
	}
	return out
}

func addNumber(out map[string]float64, k string, raw json.RawMessage) {
	var f float64
	switch {
	case len(raw) == 0:
	case string(raw) == "true":
		out[k] = 1
	case string(raw) == "false":
		out[k] = 0
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		if json.Unmarshal(raw, &f) == nil {
			out[k] = f
		}
	}
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

func hexPreview(b []byte) string {
	const hexdig = "0123456789abcdef"
	if len(b) > 256 {
		b = b[:256]
	}
	out := make([]byte, 0, len(b)*3)
	for i, c := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, hexdig[c>>4], hexdig[c&15])
	}
	return string(out)
}
