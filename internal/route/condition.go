package route

import (
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
)

// Condition is a compiled route condition. It is immutable and safe for
// concurrent use; evaluating it does not allocate.
type Condition struct {
	text string
	root node // nil: every message matches
	body bool // reads the body
	twin bool // reads the sender's twin
}

// CompileCondition parses and compiles a condition. "" and "true" match
// every message. Errors are fault.Invalid with a line and column.
func CompileCondition(text string) (*Condition, error) {
	t := strings.TrimSpace(text)
	if t == "" || strings.EqualFold(t, "true") {
		return &Condition{text: text}, nil
	}
	e, err := query.ParseCondition(text)
	if err != nil {
		return nil, err
	}
	c := &Condition{text: text}
	if c.root, err = c.compile(e); err != nil {
		return nil, err
	}
	return c, nil
}

// String returns the condition's text as written.
func (c *Condition) String() string { return c.text }

// ReadsBody reports whether the condition looks at the message body.
func (c *Condition) ReadsBody() bool { return c.body }

func (c *Condition) compile(e query.Expr) (node, error) {
	switch e := e.(type) {
	case *query.Logic:
		l, err := c.compile(e.L)
		if err != nil {
			return nil, err
		}
		r, err := c.compile(e.R)
		if err != nil {
			return nil, err
		}
		return &logicNode{or: e.Op == query.Or, l: l, r: r}, nil
	case *query.Not:
		x, err := c.compile(e.X)
		if err != nil {
			return nil, err
		}
		return &notNode{x: x}, nil
	case *query.Compare:
		f, err := c.field(e.Field)
		return &cmpNode{f: f, op: e.Op, lit: literal(e.Value), src: e}, err
	case *query.In:
		f, err := c.field(e.Field)
		n := &inNode{f: f, not: e.Not, src: e}
		for _, v := range e.Values {
			n.lits = append(n.lits, literal(v))
		}
		return n, err
	case *query.Call:
		f, err := c.field(e.Field)
		return &callNode{f: f, fn: e.Func, arg: e.Arg, src: e}, err
	}
	return nil, fault.Invalidf("condition: unsupported expression %T", e)
}

// field resolves a field reference.
func (c *Condition) field(f query.Field) (accessor, error) {
	a := accessor{root: f.Root, path: f.Path, slot: -1}
	switch f.Root {
	case query.MsgSystem:
		p, ok := lookupSystem(f.Path[0])
		if !ok {
			return a, fault.Invalidf("condition: line %d, column %d: unknown system property $%s; known: %s",
				f.Pos.Line, f.Pos.Col, f.Path[0], systemNames())
		}
		a.sys = p
	case query.MsgApp:
		a.name = f.Path[0]
	case query.MsgBody:
		c.body = true
		a.slot = slotOf(f.Root, f.Path)
	case query.TwinTags, query.TwinDesired, query.TwinReported:
		c.twin = true
		a.slot = slotOf(f.Root, f.Path)
	default:
		return a, fault.Invalidf("condition: line %d, column %d: %s is not a message field", f.Pos.Line, f.Pos.Col, f)
	}
	return a, nil
}

// literal converts a parsed literal to a value.
func literal(v query.Value) val {
	out := val{ok: true, kind: v.Kind}
	switch v.Kind {
	case query.String:
		out.s = v.Str
	case query.Number:
		out.isInt, out.i, out.f = v.IsInt, v.Int, v.Float
		if v.IsInt {
			out.f = float64(v.Int)
		}
	case query.Bool:
		out.b = v.Bool
	}
	return out
}

// Match reports whether the condition is true for in.
func (c *Condition) match(in *input) bool {
	return c.root == nil || c.root.eval(in) == tru
}
