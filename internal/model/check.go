package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"time"
)

// decode reads a JSON value with numbers kept exact.
func decode(data []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// CheckTelemetry checks a telemetry message's JSON body against the
// component's telemetry (component "" is the default component, the one a
// message without $.sub belongs to). The body is an object whose members
// are telemetry names. It returns nil when the message fits the model.
func (m *Model) CheckTelemetry(component string, body []byte) []Problem {
	c := m.Component(component)
	if c == nil {
		return []Problem{{"$.sub", fmt.Sprintf("model %s has no component %q", m.ID, component)}}
	}
	v, err := decode(body)
	if err != nil {
		return []Problem{{"$", "the body is not JSON: " + err.Error()}}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []Problem{{"$", "the body must be a JSON object of telemetry values, not " + jsonType(v)}}
	}
	var out []Problem
	for _, k := range sortedKeys(obj) {
		t := c.TelemetryNamed(k)
		if t == nil {
			out = append(out, Problem{"$." + k, fmt.Sprintf("%s has no telemetry %q", c.describe(), k)})
			continue
		}
		out = append(out, CheckValue(t.Schema, obj[k], "$."+k)...)
	}
	return out
}

func (c *Component) describe() string {
	if c.Name == "" {
		return "the default component (" + c.Interface + ")"
	}
	return "component " + c.Name + " (" + c.Interface + ")"
}

// CheckCommand checks a direct method's payload against the request
// schema of the command the method name invokes. A payload of null (or
// none) is always accepted, as callers send null when they have nothing to
// say. It returns nil for a method name the model does not declare;
// known reports whether it does.
func (m *Model) CheckCommand(method string, payload []byte) (known bool, problems []Problem) {
	_, cmd, ok := m.Command(method)
	if !ok {
		return false, nil
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || string(payload) == "null" {
		return true, nil
	}
	v, err := decode(payload)
	if err != nil {
		return true, []Problem{{"$", "the payload is not JSON: " + err.Error()}}
	}
	if cmd.Request == nil {
		return true, []Problem{{"$", fmt.Sprintf("command %s takes no request payload (send null)", method)}}
	}
	return true, CheckValue(cmd.Request.Schema, v, "$")
}

// maxCheckDepth bounds recursion through schemas (which may refer to each
// other through an interface's schemas).
const maxCheckDepth = 32

// CheckValue checks a decoded JSON value (numbers as json.Number) against a
// schema; path names the value in the problems.
func CheckValue(s *Schema, v any, path string) []Problem {
	var out []Problem
	checkValue(s, v, path, 0, &out)
	return out
}

var (
	dateRE     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	timeRE     = regexp.MustCompile(`^\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$`)
	durationRE = regexp.MustCompile(`^-?P(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?(?:T(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?$`)
	uuidRE     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

func intRange(kind string) (lo, hi *big.Int) {
	i := func(x int64) *big.Int { return big.NewInt(x) }
	switch kind {
	case "byte":
		return i(math.MinInt8), i(math.MaxInt8)
	case "short":
		return i(math.MinInt16), i(math.MaxInt16)
	case "integer":
		return i(math.MinInt32), i(math.MaxInt32)
	case "long":
		return i(math.MinInt64), i(math.MaxInt64)
	case "unsignedByte":
		return i(0), i(math.MaxUint8)
	case "unsignedShort":
		return i(0), i(math.MaxUint16)
	case "unsignedInteger":
		return i(0), i(math.MaxUint32)
	case "unsignedLong":
		return i(0), new(big.Int).SetUint64(math.MaxUint64)
	}
	return nil, nil
}

func checkValue(s *Schema, v any, path string, depth int, out *[]Problem) {
	bad := func(format string, args ...any) {
		if len(*out) < 50 {
			*out = append(*out, Problem{path, fmt.Sprintf(format, args...)})
		}
	}
	if s == nil || depth > maxCheckDepth {
		return
	}
	if v == nil {
		bad("null is not a %s", s.Kind)
		return
	}
	switch s.Kind {
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want a boolean, got %s", jsonType(v))
		}
	case "double", "float", "decimal":
		n, ok := v.(json.Number)
		if !ok {
			bad("want a number (%s), got %s", s.Kind, jsonType(v))
			return
		}
		if f, err := n.Float64(); err != nil || math.IsInf(f, 0) {
			bad("%s is out of range for %s", n, s.Kind)
		}
	case "byte", "short", "integer", "long", "unsignedByte", "unsignedShort", "unsignedInteger", "unsignedLong":
		n, ok := v.(json.Number)
		if !ok {
			bad("want an integer (%s), got %s", s.Kind, jsonType(v))
			return
		}
		b, ok := new(big.Int).SetString(n.String(), 10)
		if !ok {
			bad("want an integer (%s), got %s", s.Kind, n)
			return
		}
		if lo, hi := intRange(s.Kind); b.Cmp(lo) < 0 || b.Cmp(hi) > 0 {
			bad("%s is out of range for %s", n, s.Kind)
		}
	case "string", "bytes", "uuid", "date", "dateTime", "time", "duration":
		str, ok := v.(string)
		if !ok {
			bad("want a string (%s), got %s", s.Kind, jsonType(v))
			return
		}
		checkString(s.Kind, str, bad)
	case SchemaObject:
		obj, ok := v.(map[string]any)
		if !ok {
			bad("want an object, got %s", jsonType(v))
			return
		}
		for _, k := range sortedKeys(obj) {
			var f *Field
			for _, x := range s.Fields {
				if x.Name == k {
					f = x
					break
				}
			}
			if f == nil {
				if len(*out) < 50 {
					*out = append(*out, Problem{path + "." + k, "the object has no field " + strconv.Quote(k)})
				}
				continue
			}
			if obj[k] != nil { // fields are optional; null leaves one out
				checkValue(f.Schema, obj[k], path+"."+k, depth+1, out)
			}
		}
	case SchemaEnum:
		for _, ev := range s.EnumValues {
			switch x := ev.Value.(type) {
			case string:
				if v == x {
					return
				}
			case int64:
				if n, ok := v.(json.Number); ok && n.String() == strconv.FormatInt(x, 10) {
					return
				}
			}
		}
		names := ""
		for i, ev := range s.EnumValues {
			if i > 0 {
				names += ", "
			}
			names += formatEnum(ev.Value)
		}
		bad("%s is not one of the enum's values (%s)", compact(v), names)
	case SchemaMap:
		obj, ok := v.(map[string]any)
		if !ok {
			bad("want an object (a map), got %s", jsonType(v))
			return
		}
		if s.MapValue == nil {
			return
		}
		for _, k := range sortedKeys(obj) {
			checkValue(s.MapValue.Schema, obj[k], path+"."+k, depth+1, out)
		}
	case SchemaArray:
		arr, ok := v.([]any)
		if !ok {
			bad("want an array, got %s", jsonType(v))
			return
		}
		for i, e := range arr {
			checkValue(s.ElementSchema, e, fmt.Sprintf("%s[%d]", path, i), depth+1, out)
		}
	}
}

func checkString(kind, s string, bad func(string, ...any)) {
	ok := true
	switch kind {
	case "date":
		_, err := time.Parse(time.DateOnly, s)
		ok = err == nil && dateRE.MatchString(s)
	case "dateTime":
		_, err := time.Parse(time.RFC3339Nano, s)
		ok = err == nil
	case "time":
		ok = timeRE.MatchString(s)
	case "duration":
		ok = len(s) > 1 && s != "PT" && durationRE.MatchString(s)
	case "uuid":
		ok = uuidRE.MatchString(s)
	}
	if !ok {
		bad("%q is not a %s", s, kind)
	}
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 64 {
		return string(b[:61]) + "..."
	}
	return string(b)
}
