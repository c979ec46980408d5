package query

import (
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
)

// SQL boolean constants that work in SQLite and PostgreSQL alike.
const (
	sqlTrue    = "(1 = 1)"
	sqlFalse   = "(1 = 0)"
	sqlUnknown = "(NULL = 1)"
)

// operand is a field resolved against the schema: either a JSON document
// and a path placeholder, or a scalar column of a known kind.
type operand struct {
	doc, path string
	col       string
	kind      Kind // String or Number, for a column
}

// operand resolves f.
func (c *compiler) operand(f Field) (operand, error) {
	s, mods := c.s, c.q.From == Modules
	registry := func(col string) (operand, error) {
		if mods {
			return operand{}, fault.Invalidf("query: %s is not available FROM devices.modules", f.Root)
		}
		return operand{col: "d." + col, kind: String}, nil
	}
	if len(f.Path) > 0 && !f.Root.IsDocument() {
		return operand{}, fault.Invalidf("query: %s has no fields below it", f.Root)
	}
	switch f.Root {
	case DeviceID:
		dev, _ := c.key()
		return operand{col: dev, kind: String}, nil
	case ModuleID:
		if !mods {
			return operand{}, fault.Invalidf("query: moduleId is defined only FROM devices.modules")
		}
		return operand{col: "t." + s.TwinModuleID, kind: String}, nil
	case Status:
		return registry(s.Status)
	case ConnectionState:
		return registry(s.ConnectionState)
	case LastActivityTime:
		return registry(s.LastActivity)
	case ModelID:
		return registry(s.ModelID)
	case DesiredVersion:
		return operand{col: "t." + s.DesiredVersion, kind: Number}, nil
	case ReportedVersion:
		return operand{col: "t." + s.ReportedVersion, kind: Number}, nil
	}
	doc := map[Root]string{Tags: s.Tags, Desired: s.Desired, Reported: s.Reported}[f.Root]
	if doc == "" {
		return operand{}, fault.Invalidf("query: unknown field root %d", int(f.Root))
	}
	for _, k := range f.Path {
		if err := checkKey(k, f.Pos); err != nil {
			return operand{}, err
		}
		if strings.HasPrefix(k, "$") {
			return operand{}, fault.Invalidf("query: key %q: keys may not start with '$'", k)
		}
	}
	return operand{doc: "t." + doc, path: c.arg(c.d.JSONPath(f.Path))}, nil
}

// json is the JSON text of o, NULL when undefined.
func (c *compiler) json(o operand) string {
	switch {
	case o.col == "":
		return c.d.JSONText(o.doc, o.path)
	case o.kind == Number:
		return c.d.IntJSON(o.col)
	}
	return c.d.TextJSON(o.col)
}

// defined is true when o has a value.
func (c *compiler) defined(o operand) string {
	if o.col == "" {
		return c.d.JSONDefined(o.doc, o.path)
	}
	return "(" + o.col + " IS NOT NULL)"
}

// is is true when o has a value of kind k; never NULL.
func (c *compiler) is(o operand, k Kind) string {
	switch {
	case o.col == "":
		return c.d.JSONIs(o.doc, o.path, k)
	case o.kind == k:
		return "(" + o.col + " IS NOT NULL)"
	}
	return sqlFalse
}

// value is o as an SQL scalar of kind k, valid where is(o, k) holds.
func (c *compiler) value(o operand, k Kind) string {
	if o.col == "" {
		return c.d.JSONValue(o.doc, o.path, k)
	}
	return o.col
}

// compare is o op v: true or false when o's value has v's kind, else
// unknown (NULL). Ordering is defined only for strings and numbers; null
// equals null.
func (c *compiler) compare(o operand, op CompareOp, v Value) (string, error) {
	if op < Eq || op > Ge {
		return "", fault.Invalidf("query: unknown operator %d", int(op))
	}
	var p string
	switch v.Kind {
	case String:
		p = c.arg(v.Str)
	case Number:
		if v.IsInt {
			p = c.arg(v.Int)
		} else {
			p = c.arg(v.Float)
		}
	case Bool:
		if op != Eq && op != Ne {
			return sqlUnknown, nil
		}
		p = c.arg(c.d.BoolArg(v.Bool))
	case Null:
		switch op {
		case Eq:
			return "(CASE WHEN " + c.is(o, Null) + " THEN " + sqlTrue + " END)", nil
		case Ne:
			return "(CASE WHEN " + c.is(o, Null) + " THEN " + sqlFalse + " END)", nil
		}
		return sqlUnknown, nil
	default:
		return "", fault.Invalidf("query: unknown literal kind %d", int(v.Kind))
	}
	if o.col != "" && o.kind != v.Kind {
		return sqlUnknown, nil
	}
	sqlOp := [...]string{"=", "<>", "<", "<=", ">", ">="}[op]
	return "(CASE WHEN " + c.is(o, v.Kind) + " THEN " + c.value(o, v.Kind) + " " + sqlOp + " " + p + " END)", nil
}

// expr compiles a condition. depth guards against hand-built cycles.
func (c *compiler) expr(e Expr, depth int) (string, error) {
	if depth > 10000 {
		return "", fault.Invalidf("query: condition nests too deeply")
	}
	switch e := e.(type) {
	case *Logic:
		l, err := c.expr(e.L, depth+1)
		if err != nil {
			return "", err
		}
		r, err := c.expr(e.R, depth+1)
		if err != nil {
			return "", err
		}
		op := " AND "
		if e.Op == Or {
			op = " OR "
		}
		return "(" + l + op + r + ")", nil
	case *Not:
		x, err := c.expr(e.X, depth+1)
		if err != nil {
			return "", err
		}
		return "(NOT " + x + ")", nil
	case *Compare:
		o, err := c.operand(e.Field)
		if err != nil {
			return "", err
		}
		return c.compare(o, e.Op, e.Value)
	case *In:
		return c.in(e)
	case *Call:
		return c.call(e)
	}
	return "", fault.Invalidf("query: malformed condition")
}

// in is unknown when the field is undefined; otherwise whether (or, for
// NIN, whether not) any value equals it.
func (c *compiler) in(e *In) (string, error) {
	o, err := c.operand(e.Field)
	if err != nil {
		return "", err
	}
	match := sqlFalse
	if len(e.Values) > 0 {
		eqs := make([]string, len(e.Values))
		for i, v := range e.Values {
			if eqs[i], err = c.compare(o, Eq, v); err != nil {
				return "", err
			}
		}
		match = "coalesce(" + strings.Join(eqs, " OR ") + ", " + sqlFalse + ")"
	}
	if e.Not {
		match = "NOT " + match
	}
	return "(CASE WHEN " + c.defined(o) + " THEN " + match + " END)", nil
}

// call compiles a function. The type tests are true or false, never
// unknown; STARTS_WITH and ENDS_WITH are unknown unless the field is a
// string.
func (c *compiler) call(e *Call) (string, error) {
	o, err := c.operand(e.Field)
	if err != nil {
		return "", err
	}
	switch e.Func {
	case IsDefined:
		return c.defined(o), nil
	case IsNull, IsString, IsNumber, IsBool, IsObject, IsArray:
		k := map[Func]Kind{IsNull: Null, IsString: String, IsNumber: Number, IsBool: Bool,
			IsObject: Object, IsArray: Array}[e.Func]
		return c.is(o, k), nil
	case StartsWith, EndsWith:
		p, v := c.arg(e.Arg), c.value(o, String)
		test := c.d.StartsWith(v, p)
		if e.Func == EndsWith {
			test = c.d.EndsWith(v, p)
		}
		return "(CASE WHEN " + c.is(o, String) + " THEN " + test + " END)", nil
	}
	return "", fault.Invalidf("query: unknown function %d", int(e.Func))
}
