package route

import (
	"strconv"
	"strings"

	"github.com/ferry-iot/ferry/internal/query"
)

// tri is a three-valued truth: conditions are true, false or undefined,
// as in the query language (query's package doc has the rules).
type tri uint8

const (
	fls tri = iota
	tru
	undef
)

func (t tri) String() string { return [...]string{"false", "true", "undefined"}[t] }

// val is a field's or a literal's value. Strings alias the message or the
// body; nothing is copied.
type val struct {
	ok    bool // the field exists
	prop  bool // read from a property: text that compares as a number or bool when the literal is one
	kind  query.Kind
	s     string
	f     float64
	i     int64
	isInt bool
	b     bool
}

// node is a compiled expression.
type node interface {
	eval(in *input) tri
}

type logicNode struct {
	or   bool
	l, r node
}

func (n *logicNode) eval(in *input) tri {
	l := n.l.eval(in)
	if n.or {
		if l == tru {
			return tru
		}
		r := n.r.eval(in)
		switch {
		case r == tru:
			return tru
		case l == fls && r == fls:
			return fls
		}
		return undef
	}
	if l == fls {
		return fls
	}
	r := n.r.eval(in)
	switch {
	case r == fls:
		return fls
	case l == tru && r == tru:
		return tru
	}
	return undef
}

type notNode struct{ x node }

func (n *notNode) eval(in *input) tri {
	switch n.x.eval(in) {
	case tru:
		return fls
	case fls:
		return tru
	}
	return undef
}

type cmpNode struct {
	f   accessor
	op  query.CompareOp
	lit val
	src *query.Compare
}

func (n *cmpNode) eval(in *input) tri { return compare(n.f.get(in), n.op, n.lit) }

type inNode struct {
	f    accessor
	not  bool
	lits []val
	src  *query.In
}

func (n *inNode) eval(in *input) tri {
	v := n.f.get(in)
	if !v.ok {
		return undef
	}
	hit := false
	for _, l := range n.lits {
		if compare(v, query.Eq, l) == tru {
			hit = true
			break
		}
	}
	if hit != n.not {
		return tru
	}
	return fls
}

type callNode struct {
	f   accessor
	fn  query.Func
	arg string
	src *query.Call
}

func (n *callNode) eval(in *input) tri {
	v := n.f.get(in)
	switch n.fn {
	case query.IsDefined:
		return truth(v.ok)
	case query.IsNull:
		return truth(v.ok && v.kind == query.Null)
	case query.IsString:
		return truth(v.ok && v.kind == query.String)
	case query.IsNumber:
		return truth(v.ok && (v.kind == query.Number || v.prop && isNumeric(v.s)))
	case query.IsBool:
		return truth(v.ok && v.kind == query.Bool)
	case query.IsObject:
		return truth(v.ok && v.kind == query.Object)
	case query.IsArray:
		return truth(v.ok && v.kind == query.Array)
	}
	if !v.ok || v.kind != query.String {
		return undef
	}
	switch n.fn {
	case query.StartsWith:
		return truth(strings.HasPrefix(v.s, n.arg))
	case query.EndsWith:
		return truth(strings.HasSuffix(v.s, n.arg))
	case query.Contains:
		return truth(strings.Contains(v.s, n.arg))
	}
	return undef
}

func truth(b bool) tri {
	if b {
		return tru
	}
	return fls
}

func isNumeric(s string) bool {
	_, _, _, ok := parseNumber(s)
	return ok
}

// compare applies op to a field's value and a literal.
func compare(v val, op query.CompareOp, lit val) tri {
	if !v.ok {
		return undef
	}
	if lit.kind == query.Null {
		switch {
		case v.kind != query.Null:
			return undef
		case op == query.Eq:
			return tru
		case op == query.Ne:
			return fls
		}
		return undef
	}
	if v.prop && v.kind == query.String && lit.kind != query.String {
		v = coerce(v, lit.kind)
	}
	if v.kind != lit.kind {
		return undef
	}
	var c int
	switch v.kind {
	case query.String:
		c = strings.Compare(v.s, lit.s)
	case query.Number:
		c = compareNumbers(v, lit)
	case query.Bool:
		if op != query.Eq && op != query.Ne {
			return undef
		}
		c = 1
		if v.b == lit.b {
			c = 0
		}
	default:
		return undef
	}
	switch op {
	case query.Eq:
		return truth(c == 0)
	case query.Ne:
		return truth(c != 0)
	case query.Lt:
		return truth(c < 0)
	case query.Le:
		return truth(c <= 0)
	case query.Gt:
		return truth(c > 0)
	case query.Ge:
		return truth(c >= 0)
	}
	return undef
}

func compareNumbers(a, b val) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	return 0
}

// coerce reads a property's text as a number or a bool, for conditions
// such as level > 3 on an application property (properties are text).
func coerce(v val, k query.Kind) val {
	switch k {
	case query.Number:
		f, i, isInt, ok := parseNumber(v.s)
		if ok {
			return val{ok: true, kind: query.Number, f: f, i: i, isInt: isInt}
		}
	case query.Bool:
		switch {
		case strings.EqualFold(v.s, "true"):
			return val{ok: true, kind: query.Bool, b: true}
		case strings.EqualFold(v.s, "false"):
			return val{ok: true, kind: query.Bool}
		}
	}
	return v
}

// jsonVal converts a raw JSON value.
func jsonVal(raw []byte) val {
	if len(raw) == 0 {
		return val{}
	}
	switch raw[0] {
	case '"':
		s, ok := unquote(raw)
		return val{ok: ok, kind: query.String, s: s}
	case 't', 'f':
		return val{ok: true, kind: query.Bool, b: raw[0] == 't'}
	case 'n':
		return val{ok: true, kind: query.Null}
	case '{':
		return val{ok: true, kind: query.Object}
	case '[':
		return val{ok: true, kind: query.Array}
	}
	f, i, isInt, ok := parseNumber(bytesString(raw))
	return val{ok: ok, kind: query.Number, f: f, i: i, isInt: isInt}
}

// describe formats a value for route test's explanations.
func (v val) describe() string {
	if !v.ok {
		return "undefined"
	}
	switch v.kind {
	case query.String:
		return strconv.Quote(v.s)
	case query.Number:
		if v.isInt {
			return strconv.FormatInt(v.i, 10)
		}
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case query.Bool:
		return strconv.FormatBool(v.b)
	case query.Null:
		return "null"
	case query.Object:
		return "an object"
	}
	return "an array"
}
