package model

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Sync states of a writable property.
const (
	StateInSync     = "in sync"     // the device accepted (ac 200) the desired value
	StatePending    = "pending"     // desired, not acknowledged yet (or acknowledged for an older value)
	StateInProgress = "in progress" // the device answered ac 202 for the desired value
	StateRejected   = "rejected"    // the device answered ac >= 400 for the desired value
	StateDeviceSet  = "device set"  // no desired value; the device reported one (typically ac 203)
	StateUnset      = "unset"       // neither desired nor reported
)

// WritableState is a writable property's desired value and the device's
// acknowledgement of it (Plug and Play's {"value", "ac", "av", "ad"}).
type WritableState struct {
	Component string          `json:"component,omitempty"`
	Name      string          `json:"name"`
	Schema    *Schema         `json:"schema"`
	Unit      string          `json:"unit,omitempty"`
	Desired   json.RawMessage `json:"desired,omitempty"`        // the desired value; absent when none
	DesiredV  int64           `json:"desiredVersion,omitempty"` // desired $version
	Reported  json.RawMessage `json:"reported,omitempty"`       // the acknowledged value
	AckCode   int             `json:"ac,omitempty"`
	AckVer    int64           `json:"av,omitempty"`
	AckDesc   string          `json:"ad,omitempty"`
	State     string          `json:"state"`
	// Problems lists what the desired value gets wrong against the schema.
	Problems []Problem `json:"problems,omitempty"`
}

// WritableStates compares a twin's desired and reported properties for
// every writable property of the model. desired and reported are the
// twin's properties.desired and properties.reported objects (with
// $version).
func WritableStates(m *Model, desired, reported json.RawMessage) []WritableState {
	var des, rep map[string]json.RawMessage
	_ = json.Unmarshal(desired, &des)
	_ = json.Unmarshal(reported, &rep)
	var dver int64
	_ = json.Unmarshal(des["$version"], &dver)
	var out []WritableState
	for _, w := range m.Writables() {
		st := WritableState{Component: w.Component, Name: w.Name, Schema: w.Schema, Unit: w.Unit, DesiredV: dver}
		st.Desired = member(des, w.Component, w.Name)
		var ack struct {
			Value json.RawMessage `json:"value"`
			AC    int             `json:"ac"`
			AV    int64           `json:"av"`
			AD    string          `json:"ad"`
		}
		if r := member(rep, w.Component, w.Name); r != nil {
			if json.Unmarshal(r, &ack) == nil {
				st.Reported, st.AckCode, st.AckVer, st.AckDesc = ack.Value, ack.AC, ack.AV, ack.AD
			}
		}
		if st.Desired != nil {
			if v, err := decode(st.Desired); err == nil {
				st.Problems = CheckValue(w.Schema, v, "desired")
			}
		}
		st.State = state(&st)
		out = append(out, st)
	}
	return out
}

func state(st *WritableState) string {
	switch {
	case st.Desired == nil && st.Reported == nil:
		return StateUnset
	case st.Desired == nil:
		return StateDeviceSet
	case st.Reported == nil && st.AckCode == 0:
		return StatePending
	}
	same := jsonEqual(st.Desired, st.Reported)
	switch {
	case st.AckCode >= 400 && (same || st.AckVer >= st.DesiredV):
		return StateRejected
	case st.AckCode == 202 && same:
		return StateInProgress
	case st.AckCode == 200 && same:
		return StateInSync
	}
	return StatePending
}

// member returns doc[component][name] (doc[name] for the default
// component), or nil.
func member(doc map[string]json.RawMessage, component, name string) json.RawMessage {
	if doc == nil {
		return nil
	}
	if component != "" {
		var sub map[string]json.RawMessage
		if json.Unmarshal(doc[component], &sub) != nil {
			return nil
		}
		doc = sub
	}
	v, ok := doc[name]
	if !ok || string(bytes.TrimSpace(v)) == "null" {
		return nil
	}
	return v
}

func jsonEqual(a, b json.RawMessage) bool {
	va, err1 := decode(a)
	vb, err2 := decode(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return canonical(va) == canonical(vb)
}

// canonical renders a decoded value with numbers compared by value.
func canonical(v any) string {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return fmt.Sprintf("%g", f)
		}
		return x.String()
	case map[string]any:
		s := "{"
		for _, k := range sortedKeys(x) {
			s += fmt.Sprintf("%q:%s,", k, canonical(x[k]))
		}
		return s + "}"
	case []any:
		s := "["
		for _, e := range x {
			s += canonical(e) + ","
		}
		return s + "]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// DesiredPatch builds the twin patch that sets a writable property:
// {"properties":{"desired":{"component":{"__t":"c","name":value}}}} for a
// component, {"properties":{"desired":{"name":value}}} for the default
// component. The value is checked against the property's schema.
func DesiredPatch(m *Model, path string, value json.RawMessage) ([]byte, error) {
	comp, name := "", path
	for i := 0; i < len(path); i++ {
		if path[i] == '.' {
			comp, name = path[:i], path[i+1:]
			break
		}
	}
	c := m.Component(comp)
	if c == nil {
		return nil, fmt.Errorf("model %s has no component %q", m.ID, comp)
	}
	p := c.Property(name)
	if p == nil {
		return nil, fmt.Errorf("%s has no property %q", c.describe(), name)
	}
	if !p.Writable {
		return nil, fmt.Errorf("property %s is not writable: the device reports it", path)
	}
	v, err := decode(value)
	if err != nil {
		return nil, fmt.Errorf("the value is not JSON (quote a string: '\"text\"'): %v", err)
	}
	if probs := CheckValue(p.Schema, v, path); len(probs) > 0 {
		return nil, fmt.Errorf("%s", (&InvalidError{probs}).Error()[len("invalid DTDL: "):])
	}
	var desired map[string]any
	if comp == "" {
		desired = map[string]any{name: json.RawMessage(value)}
	} else {
		desired = map[string]any{comp: map[string]any{"__t": "c", name: json.RawMessage(value)}}
	}
	return json.Marshal(map[string]any{"properties": map[string]any{"desired": desired}})
}
