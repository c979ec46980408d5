package query

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// scalarRoots maps the lower-cased names of the scalar roots.
var scalarRoots = map[string]Root{"deviceid": DeviceID, "moduleid": ModuleID, "status": Status,
	"connectionstate": ConnectionState, "lastactivitytime": LastActivityTime, "modelid": ModelID}

// funcs maps the upper-cased function names.
var funcs = map[string]Func{}

func init() {
	for i, n := range funcNames {
		funcs[n] = Func(i)
	}
}

// parseField parses a field; the current token is an identifier.
func (p *parser) parseField() (Field, error) {
	if p.cond {
		return p.parseCondField()
	}
	f := Field{Pos: p.tok.pos}
	name := p.tok.text
	if r, ok := scalarRoots[strings.ToLower(name)]; ok {
		f.Root = r
		if err := p.next(); err != nil {
			return f, err
		}
		if p.isPunct(".") || p.isPunct("[") {
			return f, errorAt(p.tok.pos, "%s has no fields below it", r)
		}
		return f, nil
	}
	switch strings.ToLower(name) {
	case "tags":
		f.Root = Tags
	case "properties":
		if err := p.next(); err != nil {
			return f, err
		}
		if err := p.eatPunct(".", "'.desired' or '.reported' after properties"); err != nil {
			return f, err
		}
		switch {
		case p.tok.kind == tKey && strings.EqualFold(p.tok.text, "desired"):
			f.Root = Desired
		case p.tok.kind == tKey && strings.EqualFold(p.tok.text, "reported"):
			f.Root = Reported
		default:
			return f, p.expected("desired or reported after 'properties.'")
		}
	default:
		return f, errorAt(p.tok.pos, "unknown field '%s'; fields are deviceId, moduleId, status, "+
			"connectionState, lastActivityTime, modelId, tags..., properties.desired... and properties.reported...", name)
	}
	if err := p.next(); err != nil {
		return f, err
	}
	return f, p.parsePath(&f)
}

// parsePath parses the .key and ['key'] segments after a document root.
func (p *parser) parsePath(f *Field) error {
	for {
		pos := p.tok.pos
		var key string
		dotted := p.isPunct(".")
		switch {
		case dotted:
			if err := p.next(); err != nil {
				return err
			}
			if p.tok.kind != tKey {
				return p.expected("a key after '.'")
			}
			key, pos = p.tok.text, p.tok.pos
		case p.isPunct("["):
			if err := p.next(); err != nil {
				return err
			}
			if p.tok.kind != tString {
				return p.expected("a quoted key after '['")
			}
			key = p.tok.val
			if err := checkKey(key, p.tok.pos); err != nil {
				return err
			}
			if err := p.next(); err != nil {
				return err
			}
			if !p.isPunct("]") {
				return p.expected("']'")
			}
		default:
			return nil
		}
		if strings.HasPrefix(key, "$") {
			if !dotted || key != "$version" || len(f.Path) > 0 || f.Root == Tags || f.Root > ReportedVersion {
				return errorAt(pos, "'%s': the only $ key is properties.desired.$version or properties.reported.$version", key)
			}
			f.Root += DesiredVersion - Desired
			if err := p.next(); err != nil {
				return err
			}
			if p.isPunct(".") || p.isPunct("[") {
				return errorAt(p.tok.pos, "%s has no fields below it", f.Root)
			}
			return nil
		}
		f.Path = append(f.Path, key)
		if err := p.next(); err != nil {
			return err
		}
	}
}

// checkKey validates a bracket-quoted key: it must be non-empty and free of
// control characters, '"' and '\', which JSON paths cannot carry safely.
func checkKey(k string, pos Pos) error {
	if k == "" {
		return errorAt(pos, "empty key")
	}
	for _, r := range k {
		if unicode.IsControl(r) || r == '"' || r == '\\' {
			return errorAt(pos, "key %s contains %q, which keys may not contain", strconv.Quote(k), r)
		}
	}
	return nil
}

func (p *parser) parseOr() (Expr, error) {
	l, err := p.parseAnd()
	for err == nil && p.isWord("OR") {
		var r Expr
		if err = p.next(); err == nil {
			r, err = p.parseAnd()
			l = &Logic{Op: Or, L: l, R: r}
		}
	}
	return l, err
}

func (p *parser) parseAnd() (Expr, error) {
	l, err := p.parseNot()
	for err == nil && p.isWord("AND") {
		var r Expr
		if err = p.next(); err == nil {
			r, err = p.parseNot()
			l = &Logic{Op: And, L: l, R: r}
		}
	}
	return l, err
}

func (p *parser) parseNot() (Expr, error) {
	if p.depth >= maxDepth {
		return nil, errorAt(p.tok.pos, "condition nests deeper than %d levels", maxDepth)
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.isWord("NOT") {
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.parseNot()
		return &Not{X: x}, err
	}
	if p.isPunct("(") {
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		return x, p.eatPunct(")", "')' or an operator")
	}
	if p.tok.kind != tIdent {
		return nil, p.expected("a condition")
	}
	if fn, ok := p.function(p.tok.text); ok {
		return p.parseCall(fn)
	}
	return p.parseComparison()
}

func (p *parser) parseCall(fn Func) (Expr, error) {
	if err := p.next(); err != nil {
		return nil, err
	}
	if err := p.eatPunct("(", "'(' after "+fn.String()); err != nil {
		return nil, err
	}
	if p.tok.kind != tIdent {
		return nil, p.expected("a field as the argument of " + fn.String())
	}
	f, err := p.parseField()
	if err != nil {
		return nil, err
	}
	c := &Call{Func: fn, Field: f}
	if fn.takesString() {
		if err := p.eatPunct(",", "',' and a string after the field of "+fn.String()); err != nil {
			return nil, err
		}
		if p.tok.kind != tString {
			return nil, p.expected("a string as the second argument of " + fn.String())
		}
		c.Arg = p.tok.val
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	return c, p.eatPunct(")", "')' after the arguments of "+fn.String())
}

var opsByText = map[string]CompareOp{"=": Eq, "!=": Ne, "<>": Ne, "<": Lt, "<=": Le, ">": Gt, ">=": Ge}

func (p *parser) parseComparison() (Expr, error) {
	f, err := p.parseField()
	if err != nil {
		return nil, err
	}
	if p.isWord("IN") || p.isWord("NIN") {
		in := &In{Field: f, Not: p.isWord("NIN")}
		op := p.tok.text
		if err := p.next(); err != nil {
			return nil, err
		}
		if err := p.eatPunct("[", "'[' after "+op); err != nil {
			return nil, err
		}
		for !p.isPunct("]") {
			if len(in.Values) > 0 {
				if err := p.eatPunct(",", "',' or ']'"); err != nil {
					return nil, err
				}
			}
			v, err := p.parseValue("a value in the list")
			if err != nil {
				return nil, err
			}
			in.Values = append(in.Values, v)
		}
		return in, p.next()
	}
	op, ok := opsByText[p.tok.text]
	if p.tok.kind != tPunct || !ok {
		return nil, p.expected("a comparison operator, IN or NIN after " + f.String())
	}
	text := p.tok.text
	if err := p.next(); err != nil {
		return nil, err
	}
	v, err := p.parseValue("a value after '" + text + "'")
	return &Compare{Field: f, Op: op, Value: v}, err
}

// parseValue parses a literal.
func (p *parser) parseValue(what string) (Value, error) {
	var v Value
	switch {
	case p.tok.kind == tString:
		v = Value{Kind: String, Str: p.tok.val}
	case p.tok.kind == tNumber:
		var err error
		if v, err = parseNumber(p.tok); err != nil {
			return v, err
		}
	case p.isWord("true"), p.isWord("false"):
		v = Value{Kind: Bool, Bool: p.isWord("true")}
	case p.isWord("null"):
		v = Value{Kind: Null}
	default:
		return v, p.expected(what)
	}
	return v, p.next()
}

// parseNumber converts a number token. An integral value that fits int64
// is an integer however it is written (2.0 and 2e0 are 2).
func parseNumber(t token) (Value, error) {
	if i, err := strconv.ParseInt(t.text, 10, 64); err == nil {
		return Value{Kind: Number, Int: i, IsInt: true}, nil
	}
	f, err := strconv.ParseFloat(t.text, 64)
	if err != nil || math.IsInf(f, 0) {
		return Value{}, errorAt(t.pos, "number %s is out of range", t.text)
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return Value{Kind: Number, Int: int64(f), IsInt: true}, nil
	}
	return Value{Kind: Number, Float: f}, nil
}
