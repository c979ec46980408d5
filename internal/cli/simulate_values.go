package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/model"
)

// valueGen makes plausible values for one simulated device: numbers drift
// in a random walk between 0 and 100, booleans flip now and then, enums
// and strings are picked, times are now. It remembers each path's last
// value so telemetry changes smoothly. Not safe for concurrent use.
type valueGen struct {
	rnd  *rand.Rand
	now  func() time.Time
	last map[string]float64 // by path: the last number
	flag map[string]bool    // by path: the last boolean
	seq  int64
	id   string // the device id, for strings and templates
}

func newValueGen(id string, seed uint64, now func() time.Time) *valueGen {
	return &valueGen{rnd: rand.New(rand.NewPCG(seed, 0x5eed)), now: now,
		last: map[string]float64{}, flag: map[string]bool{}, id: id}
}

// drift moves the number at path by a small random step within [lo, hi].
func (g *valueGen) drift(path string, lo, hi float64) float64 {
	v, ok := g.last[path]
	if !ok {
		v = lo + g.rnd.Float64()*(hi-lo)
	}
	v += (g.rnd.Float64() - 0.5) * (hi - lo) / 20
	v = math.Max(lo, math.Min(hi, v))
	g.last[path] = v
	return v
}

// value returns a value fitting schema s (nil: null).
func (g *valueGen) value(s *model.Schema, path string) any {
	if s == nil {
		return nil
	}
	now := g.now().UTC()
	switch s.Kind {
	case "double", "float", "decimal":
		return math.Round(g.drift(path, 0, 100)*100) / 100
	case "byte", "short", "integer", "long", "unsignedByte", "unsignedShort", "unsignedInteger", "unsignedLong":
		return int64(math.Round(g.drift(path, 0, 100)))
	case "boolean":
		b := g.flag[path]
		if g.rnd.IntN(10) == 0 {
			b = !b
		}
		g.flag[path] = b
		return b
	case "string":
		return fmt.Sprintf("%s-%d", g.id, g.rnd.IntN(1000))
	case "dateTime":
		return now.Format(time.RFC3339Nano)
	case "date":
		return now.Format(time.DateOnly)
	case "time":
		return now.Format("15:04:05")
	case "duration":
		return fmt.Sprintf("PT%dS", 1+g.rnd.IntN(3600))
	case "uuid":
		b := make([]byte, 16)
		for i := range b {
			b[i] = byte(g.rnd.UintN(256))
		}
		return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	case "bytes":
		return base64.StdEncoding.EncodeToString([]byte(g.id))
	case model.SchemaEnum:
		if len(s.EnumValues) == 0 {
			return nil
		}
		return s.EnumValues[g.rnd.IntN(len(s.EnumValues))].Value
	case model.SchemaObject:
		obj := map[string]any{}
		for _, f := range s.Fields {
			obj[f.Name] = g.value(f.Schema, path+"."+f.Name)
		}
		return obj
	case model.SchemaMap:
		obj := map[string]any{}
		if s.MapValue != nil {
			for _, k := range []string{"a", "b"} {
				obj[k] = g.value(s.MapValue.Schema, path+"."+k)
			}
		}
		return obj
	case model.SchemaArray:
		arr := []any{}
		for i := range 2 {
			arr = append(arr, g.value(s.ElementSchema, fmt.Sprintf("%s[%d]", path, i)))
		}
		return arr
	}
	return nil
}

// telemetry returns one message body per component with telemetry: every
// telemetry element of the component with a value.
func (g *valueGen) telemetry(m *model.Model) map[string][]byte {
	out := map[string][]byte{}
	for _, c := range append([]*model.Component{m.Default}, m.Components...) {
		if c == nil || len(c.Telemetry) == 0 {
			continue
		}
		body := map[string]any{}
		for _, t := range c.Telemetry {
			body[t.Name] = g.value(t.Schema, c.Name+"/"+t.Name)
		}
		out[c.Name], _ = json.Marshal(body)
	}
	return out
}

// template fills a JSON template: a string that is a whole placeholder
// becomes a typed value, placeholders inside a longer string become text.
//
//	{{drift LO HI}}  a number drifting between LO and HI
//	{{int LO HI}}    an integer drifting between LO and HI
//	{{bool}}         a boolean that flips now and then
//	{{choice A B}}   one of the words
//	{{device}}       the device id
//	{{seq}}          1, 2, 3, ... per device
//	{{now}}          the time, RFC 3339
func (g *valueGen) template(v any, path string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := g.template(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := g.template(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case string:
		return g.fillString(x, path)
	}
	return v, nil
}

func (g *valueGen) fillString(s, path string) (any, error) {
	if strings.HasPrefix(s, "{{") && strings.HasSuffix(s, "}}") && strings.Count(s, "{{") == 1 {
		return g.placeholder(strings.Fields(s[2:len(s)-2]), path)
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("template %s: unclosed {{", path)
		}
		v, err := g.placeholder(strings.Fields(s[i+2:i+j]), path)
		if err != nil {
			return nil, err
		}
		b.WriteString(s[:i])
		fmt.Fprint(&b, v)
		s = s[i+j+2:]
	}
}

func (g *valueGen) placeholder(f []string, path string) (any, error) {
	if len(f) == 0 {
		return nil, fmt.Errorf("template %s: empty placeholder", path)
	}
	bounds := func() (float64, float64, error) {
		if len(f) != 3 {
			return 0, 0, fmt.Errorf("template %s: {{%s LO HI}}", path, f[0])
		}
		lo, err1 := strconv.ParseFloat(f[1], 64)
		hi, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil || lo > hi {
			return 0, 0, fmt.Errorf("template %s: {{%s}} needs two numbers LO <= HI", path, strings.Join(f, " "))
		}
		return lo, hi, nil
	}
	switch f[0] {
	case "drift":
		lo, hi, err := bounds()
		return math.Round(g.drift(path, lo, hi)*100) / 100, err
	case "int":
		lo, hi, err := bounds()
		return int64(math.Round(g.drift(path, lo, hi))), err
	case "bool":
		return g.value(&model.Schema{Kind: "boolean"}, path), nil
	case "choice":
		if len(f) < 2 {
			return nil, fmt.Errorf("template %s: {{choice A B ...}} needs words", path)
		}
		return f[1+g.rnd.IntN(len(f)-1)], nil
	case "device":
		return g.id, nil
	case "seq":
		g.seq++
		return g.seq, nil
	case "now":
		return g.now().UTC().Format(time.RFC3339Nano), nil
	}
	return nil, fmt.Errorf("template %s: unknown placeholder {{%s}}", path, f[0])
}
