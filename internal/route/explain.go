package route

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/stream"
)

// Sample is a message for Test.
type Sample struct {
	Source     Source            `json:"source,omitempty"` // default telemetry
	DeviceID   string            `json:"deviceId,omitempty"`
	ModuleID   string            `json:"moduleId,omitempty"`
	Body       string            `json:"body,omitempty"`       // the body as text
	BodyBytes  []byte            `json:"bodyBase64,omitempty"` // or as bytes (base64 in JSON)
	System     map[string]string `json:"system,omitempty"`     // contentType, contentEncoding, messageId, correlationId, to, userId
	Properties map[string]string `json:"properties,omitempty"` // application properties
}

// TestRequest asks which routes a sample message matches. With Route set,
// that route (saved or not) is tested instead of the saved ones.
type TestRequest struct {
	Message Sample `json:"message"`
	Route   *Route `json:"route,omitempty"`
}

// Verdict is what one route does with the sample, and why.
type Verdict struct {
	Route     string   `json:"route"`
	Enabled   bool     `json:"enabled"`
	Source    Source   `json:"source"`
	Matched   bool     `json:"matched"`
	Result    string   `json:"result"`            // the condition's value: true, false or undefined
	Reasons   []string `json:"reasons,omitempty"` // each comparison with the value it saw
	Endpoints []string `json:"endpoints,omitempty"`
}

// TestResult is Test's answer.
type TestResult struct {
	Body     string    `json:"body"` // how conditions read the body: its JSON, or why it has none
	Routes   []Verdict `json:"routes"`
	Fallback bool      `json:"fallback"` // no enabled route matched: the message stays in its stream only
}

// Test evaluates a sample message against the routes and explains each
// verdict. It delivers nothing.
func (s *Service) Test(ctx context.Context, req TestRequest) (*TestResult, error) {
	var list []*compiled
	if req.Route != nil {
		r := *req.Route
		if r.Name == "" {
			r.Name = "test"
		}
		c, err := s.compile(r)
		if err != nil {
			return nil, err
		}
		list = []*compiled{c}
	} else {
		list = s.table.Load().all
	}
	m := req.Message.message(s.cfg.Now())
	src := req.Message.Source
	if src == "" {
		src = Telemetry
	}
	in := &input{dec: s.cfg.Schemas, twins: s.cfg.Twins, ctx: ctx}
	in.reset(m, src)
	res := &TestResult{Fallback: true}
	for _, c := range list {
		v := Verdict{Route: c.Name, Enabled: c.Enabled, Source: c.Source, Result: "true"}
		if c.Source != src {
			v.Result = "false"
			v.Reasons = []string{"the route reads " + string(c.Source) + ", the sample is " + string(src)}
			res.Routes = append(res.Routes, v)
			continue
		}
		if c.cond.root != nil {
			v.Result = c.cond.root.eval(in).String()
			explain(c.cond.root, in, &v.Reasons)
		}
		v.Matched = v.Result == "true"
		if v.Matched {
			v.Endpoints = s.describeDeliveries(ctx, c, in)
			if c.Enabled {
				res.Fallback = false
			}
		}
		res.Routes = append(res.Routes, v)
	}
	if b := in.jsonBody(); b != nil {
		res.Body = string(b)
	} else {
		res.Body = "(no JSON form: " + in.bodyWhy + ")"
	}
	return res, nil
}

// message builds the stream message of a sample.
func (x *Sample) message(now time.Time) *stream.Message {
	m := &stream.Message{DeviceID: x.DeviceID, ModuleID: x.ModuleID, EnqueuedTime: now, Body: x.BodyBytes}
	if m.Body == nil {
		m.Body = []byte(x.Body)
	}
	for k, v := range x.System {
		switch strings.ToLower(strings.TrimPrefix(k, "$")) {
		case "contenttype":
			m.ContentType = v
		case "contentencoding":
			m.ContentEncoding = v
		case "messageid":
			m.MessageID = v
		case "correlationid":
			m.CorrelationID = v
		case "to":
			m.To = v
		case "userid":
			m.UserID = v
		case "connectiondeviceid":
			m.DeviceID = v
		case "connectionmoduleid":
			m.ModuleID = v
		}
	}
	keys := make([]string, 0, len(x.Properties))
	for k := range x.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m.Properties = append(m.Properties, stream.Property{Key: k, Value: x.Properties[k]})
	}
	return m
}

// explain adds a line per comparison or function with the value it read.
func explain(n node, in *input, out *[]string) {
	switch n := n.(type) {
	case *logicNode:
		explain(n.l, in, out)
		explain(n.r, in, out)
	case *notNode:
		explain(n.x, in, out)
	case *cmpNode:
		*out = append(*out, query.ConditionString(n.src)+": "+n.f.get(in).describe()+" → "+n.eval(in).String())
	case *inNode:
		*out = append(*out, query.ConditionString(n.src)+": "+n.f.get(in).describe()+" → "+n.eval(in).String())
	case *callNode:
		*out = append(*out, query.ConditionString(n.src)+": "+n.f.get(in).describe()+" → "+n.eval(in).String())
	}
}

// describeDeliveries says what each endpoint would receive.
func (s *Service) describeDeliveries(ctx context.Context, c *compiled, in *input) []string {
	var out []string
	for _, ep := range c.eps {
		line := ep.String()
		if ep.Kind == KindMethod || ep.Kind == KindC2D {
			d := &delivery{c: c, ep: ep, m: in.m}
			if reason, why := d.resolve(); reason != "" {
				line += ": refused (" + why + ")"
			} else if reason, why := s.targetRefusal(ctx, d); reason != "" {
				line += ": refused (" + why + ")"
			} else {
				line += ": to " + strings.TrimSuffix(d.device+"/"+d.module, "/")
			}
		}
		out = append(out, line)
	}
	if len(c.ens) > 0 {
		var kv []string
		for i := range c.ens {
			if v, ok := c.ens[i].value(in); ok {
				kv = append(kv, c.ens[i].key+"="+v)
			}
		}
		out = append(out, "enrichments: "+strings.Join(kv, ", "))
	}
	return out
}
