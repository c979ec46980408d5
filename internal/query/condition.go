package query

import (
	"strings"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/fault"
)

// ParseCondition parses a message routing condition: the condition grammar
// of a WHERE clause (same operators, functions, literals and three-valued
// semantics), over the fields of a device message instead of a twin's, as
// Azure IoT Hub's routing queries write them:
//
//	field = "$" name                      a system property ($contentType, $connectionDeviceId, ...)
//	      | name | "$app" key              an application property (proto-type, $app['a b'])
//	      | "$body" {key}                  the message body, read as JSON
//	      | "$twin.tags" {key}             the sending device's twin
//	      | "$twin.properties.desired" {key} | "$twin.properties.reported" {key}
//
// Names may hold '-' after their first character. STARTSWITH and ENDSWITH
// are accepted for STARTS_WITH and ENDS_WITH, and CONTAINS(field, 'part')
// is available. Which system property names exist is the caller's
// business: Path[0] of a MsgSystem field holds the name without '$'.
// Errors are fault.Invalid and name the line and column, like Parse's but
// prefixed "condition:".
func ParseCondition(text string) (Expr, error) {
	e, err := parseCondition(text)
	if err != nil {
		if fe := fault.As(err); fe != nil && strings.HasPrefix(fe.Msg, "query: ") {
			return nil, fault.Invalidf("condition: %s", strings.TrimPrefix(fe.Msg, "query: "))
		}
		return nil, err
	}
	return e, nil
}

func parseCondition(text string) (Expr, error) {
	if len(text) > MaxLength {
		return nil, errorAt(Pos{1, 1}, "condition is longer than %d bytes", MaxLength)
	}
	if !utf8.ValidString(text) {
		return nil, errorAt(Pos{1, 1}, "condition is not valid UTF-8")
	}
	lx := newLexer(text)
	lx.cond = true
	p := &parser{lx: lx, cond: true}
	if err := p.next(); err != nil {
		return nil, err
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.expected("AND, OR or the end of the condition")
	}
	return e, nil
}

// ConditionString returns a condition in canonical form; ParseCondition
// reads it back to the same condition.
func ConditionString(e Expr) string {
	var b strings.Builder
	e.write(&b)
	return b.String()
}

// function returns the function a name calls. Conditions also know
// CONTAINS and Azure routing's STARTSWITH and ENDSWITH spellings.
func (p *parser) function(name string) (Func, bool) {
	up := strings.ToUpper(name)
	if p.cond {
		switch up {
		case "STARTSWITH":
			return StartsWith, true
		case "ENDSWITH":
			return EndsWith, true
		}
	}
	fn, ok := funcs[up]
	if fn == Contains && !p.cond {
		return 0, false
	}
	return fn, ok
}

// parseCondField parses a field of a routing condition; the current token
// is an identifier.
func (p *parser) parseCondField() (Field, error) {
	f := Field{Pos: p.tok.pos}
	name := p.tok.text
	if reserved[strings.ToUpper(name)] {
		return f, p.expected("a property, $body or $twin")
	}
	if !strings.HasPrefix(name, "$") {
		f.Root, f.Path = MsgApp, []string{name}
		if err := p.next(); err != nil {
			return f, err
		}
		return f, p.endOfField(name)
	}
	switch strings.ToLower(name) {
	case "$body":
		f.Root = MsgBody
	case "$twin":
		if err := p.parseTwinRoot(&f); err != nil {
			return f, err
		}
	case "$app":
		if err := p.next(); err != nil {
			return f, err
		}
		g := Field{Root: MsgBody}
		if err := p.parseOneKey(&g); err != nil {
			return f, err
		}
		f.Root, f.Path = MsgApp, g.Path
		return f, p.endOfField("$app")
	default:
		f.Root, f.Path = MsgSystem, []string{name[1:]}
		if err := p.next(); err != nil {
			return f, err
		}
		return f, p.endOfField(name)
	}
	if err := p.next(); err != nil {
		return f, err
	}
	return f, p.parsePath(&f)
}

// parseTwinRoot reads "$twin.tags" or "$twin.properties.desired|reported";
// the current token is $twin.
func (p *parser) parseTwinRoot(f *Field) error {
	if err := p.next(); err != nil {
		return err
	}
	if err := p.eatPunct(".", "'.tags' or '.properties' after $twin"); err != nil {
		return err
	}
	switch {
	case p.tok.kind == tKey && strings.EqualFold(p.tok.text, "tags"):
		f.Root = TwinTags
		return nil
	case p.tok.kind == tKey && strings.EqualFold(p.tok.text, "properties"):
	default:
		return p.expected("tags or properties after '$twin.'")
	}
	if err := p.next(); err != nil {
		return err
	}
	if err := p.eatPunct(".", "'.desired' or '.reported' after $twin.properties"); err != nil {
		return err
	}
	switch {
	case p.tok.kind == tKey && strings.EqualFold(p.tok.text, "desired"):
		f.Root = TwinDesired
	case p.tok.kind == tKey && strings.EqualFold(p.tok.text, "reported"):
		f.Root = TwinReported
	default:
		return p.expected("desired or reported after '$twin.properties.'")
	}
	return nil
}

// parseOneKey parses exactly one .key or ['key'] segment into f.Path.
func (p *parser) parseOneKey(f *Field) error {
	if !p.isPunct(".") && !p.isPunct("[") {
		return p.expected("'.name' or ['name'] after $app")
	}
	if err := p.parsePath(f); err != nil {
		return err
	}
	if len(f.Path) != 1 {
		return errorAt(f.Pos, "$app takes one property name")
	}
	return nil
}

// endOfField refuses a path below a property; the current token follows
// the property's name.
func (p *parser) endOfField(name string) error {
	if p.isPunct(".") || p.isPunct("[") {
		return errorAt(p.tok.pos, "%s is a property and has no fields below it (the body is $body.x)", name)
	}
	return nil
}

// writeProperty writes a system or application property field.
func (f Field) writeProperty(b *strings.Builder) {
	name := ""
	if len(f.Path) > 0 {
		name = f.Path[0]
	}
	if f.Root == MsgSystem {
		b.WriteByte('$')
		b.WriteString(name)
		return
	}
	if isCondName(name) {
		b.WriteString(name)
		return
	}
	b.WriteString("$app[")
	writeString(b, name)
	b.WriteByte(']')
}

// isCondName reports whether an application property name can be written
// bare in a condition: a name that lexes back as itself and is not a
// keyword, a function or a literal.
func isCondName(s string) bool {
	if s == "" || reserved[strings.ToUpper(s)] {
		return false
	}
	if _, ok := funcs[strings.ToUpper(s)]; ok {
		return false
	}
	switch strings.ToUpper(s) {
	case "STARTSWITH", "ENDSWITH":
		return false
	}
	for i, r := range s {
		if i == 0 && !isIdentStart(r) || i > 0 && !isIdentPart(r) && r != '-' {
			return false
		}
	}
	return true
}
