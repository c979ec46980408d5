package query

import (
	"strconv"
	"strings"
)

// Expr is a WHERE condition: *Logic, *Not, *Compare, *In or *Call.
type Expr interface {
	write(b *strings.Builder)
}

// LogicOp is AND or OR.
type LogicOp int

// The logical operators.
const (
	And LogicOp = iota
	Or
)

// Logic is L AND R or L OR R.
type Logic struct {
	Op   LogicOp
	L, R Expr
}

// Not is NOT X.
type Not struct {
	X Expr
}

// CompareOp is a comparison operator.
type CompareOp int

// The comparison operators. <> is read as Ne.
const (
	Eq CompareOp = iota // =
	Ne                  // != (also written <>)
	Lt                  // <
	Le                  // <=
	Gt                  // >
	Ge                  // >=
)

var compareOps = [...]string{"=", "!=", "<", "<=", ">", ">="}

// String returns the operator as written in a canonical query.
func (o CompareOp) String() string {
	if o < 0 || int(o) >= len(compareOps) {
		return "?"
	}
	return compareOps[o]
}

// Compare is Field Op Value.
type Compare struct {
	Field Field
	Op    CompareOp
	Value Value
}

// In is Field IN [values] or, when Not, Field NIN [values].
type In struct {
	Field  Field
	Not    bool
	Values []Value
}

// Func is a function usable in a condition.
type Func int

// The functions.
const (
	IsDefined  Func = iota // IS_DEFINED(field)
	IsNull                 // IS_NULL(field)
	IsString               // IS_STRING(field)
	IsNumber               // IS_NUMBER(field)
	IsBool                 // IS_BOOL(field)
	IsObject               // IS_OBJECT(field)
	IsArray                // IS_ARRAY(field)
	StartsWith             // STARTS_WITH(field, 'prefix')
	EndsWith               // ENDS_WITH(field, 'suffix')
	Contains               // CONTAINS(field, 'part'): routing conditions only
)

var funcNames = [...]string{"IS_DEFINED", "IS_NULL", "IS_STRING", "IS_NUMBER", "IS_BOOL",
	"IS_OBJECT", "IS_ARRAY", "STARTS_WITH", "ENDS_WITH", "CONTAINS"}

// String returns the function's name.
func (f Func) String() string {
	if f < 0 || int(f) >= len(funcNames) {
		return "?"
	}
	return funcNames[f]
}

// takesString reports whether the function takes a string second argument.
func (f Func) takesString() bool { return f == StartsWith || f == EndsWith || f == Contains }

// Call is a function applied to a field and, for STARTS_WITH and
// ENDS_WITH, a string.
type Call struct {
	Func  Func
	Field Field
	Arg   string // the string argument of STARTS_WITH and ENDS_WITH
}

// Kind is the JSON type of a value.
type Kind int

// The kinds of JSON values. Literals are String, Number, Bool or Null;
// Object and Array appear only as field types.
const (
	String Kind = iota
	Number
	Bool
	Null
	Object
	Array
)

// Value is a literal.
type Value struct {
	Kind  Kind
	Str   string  // the text of a String
	Int   int64   // the value of a Number when IsInt
	Float float64 // the value of a Number when !IsInt
	IsInt bool    // the Number is an integer that fits int64
	Bool  bool    // the value of a Bool
}

// String returns the value in canonical form.
func (v Value) String() string {
	var b strings.Builder
	v.write(&b)
	return b.String()
}

func (v Value) write(b *strings.Builder) {
	switch v.Kind {
	case String:
		writeString(b, v.Str)
	case Number:
		if v.IsInt {
			b.WriteString(strconv.FormatInt(v.Int, 10))
		} else {
			b.WriteString(strconv.FormatFloat(v.Float, 'g', -1, 64))
		}
	case Bool:
		b.WriteString(strconv.FormatBool(v.Bool))
	default:
		b.WriteString("null")
	}
}

func (e *Logic) write(b *strings.Builder) {
	writeOperand(b, e.L, e.Op, false)
	if e.Op == And {
		b.WriteString(" AND ")
	} else {
		b.WriteString(" OR ")
	}
	writeOperand(b, e.R, e.Op, true)
}

// writeOperand writes an operand of a logical operator, in parentheses when
// needed to keep the tree: an OR under an AND, or a right operand with the
// same operator (both operators associate to the left).
func writeOperand(b *strings.Builder, x Expr, op LogicOp, right bool) {
	l, ok := x.(*Logic)
	if ok && (l.Op == Or && op == And || right && l.Op == op) {
		b.WriteByte('(')
		x.write(b)
		b.WriteByte(')')
		return
	}
	x.write(b)
}

func (e *Not) write(b *strings.Builder) {
	b.WriteString("NOT ")
	if _, ok := e.X.(*Call); ok {
		e.X.write(b)
		return
	}
	b.WriteByte('(')
	e.X.write(b)
	b.WriteByte(')')
}

func (e *Compare) write(b *strings.Builder) {
	e.Field.write(b)
	b.WriteByte(' ')
	b.WriteString(e.Op.String())
	b.WriteByte(' ')
	e.Value.write(b)
}

func (e *In) write(b *strings.Builder) {
	e.Field.write(b)
	if e.Not {
		b.WriteString(" NIN [")
	} else {
		b.WriteString(" IN [")
	}
	for i, v := range e.Values {
		if i > 0 {
			b.WriteString(", ")
		}
		v.write(b)
	}
	b.WriteByte(']')
}

func (e *Call) write(b *strings.Builder) {
	b.WriteString(e.Func.String())
	b.WriteByte('(')
	e.Field.write(b)
	if e.Func.takesString() {
		b.WriteString(", ")
		writeString(b, e.Arg)
	}
	b.WriteByte(')')
}
