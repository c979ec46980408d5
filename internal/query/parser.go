package query

import (
	"strings"
	"unicode/utf8"
)

// MaxLength is the longest query text Parse accepts, in bytes.
const MaxLength = 64 << 10

// maxDepth bounds the nesting of parentheses and NOT.
const maxDepth = 64

// reserved words cannot be aliases.
var reserved = map[string]bool{"SELECT": true, "FROM": true, "WHERE": true, "GROUP": true, "ORDER": true, "BY": true,
	"AS": true, "AND": true, "OR": true, "NOT": true, "IN": true, "NIN": true, "COUNT": true,
	"TRUE": true, "FALSE": true, "NULL": true}

// Parse parses a query. Errors are fault.Invalid and name the line and
// column of the problem.
func Parse(text string) (*Query, error) {
	if len(text) > MaxLength {
		return nil, errorAt(Pos{1, 1}, "query is longer than %d bytes", MaxLength)
	}
	if !utf8.ValidString(text) {
		lx := newLexer(text)
		for utf8.FullRuneInString(text[lx.off:]) {
			if r, n := utf8.DecodeRuneInString(text[lx.off:]); r == utf8.RuneError && n == 1 {
				break
			}
			lx.advance()
		}
		return nil, errorAt(lx.pos(), "query is not valid UTF-8")
	}
	p := &parser{lx: newLexer(text)}
	if err := p.next(); err != nil {
		return nil, err
	}
	q, err := p.parseQuery()
	if err != nil {
		return nil, err
	}
	if err := check(q); err != nil {
		return nil, err
	}
	return q, nil
}

// parser is a recursive-descent parser with one token of lookahead.
type parser struct {
	lx    *lexer
	tok   token
	depth int
	cond  bool // parsing a routing condition (ParseCondition), not a query
}

func (p *parser) next() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// isWord reports whether the current token is the keyword or name w, in
// any case.
func (p *parser) isWord(w string) bool {
	return p.tok.kind == tIdent && strings.EqualFold(p.tok.text, w)
}

func (p *parser) isPunct(s string) bool { return p.tok.kind == tPunct && p.tok.text == s }

// expected returns the error for an unexpected current token.
func (p *parser) expected(what string) error {
	return errorAt(p.tok.pos, "expected %s, found %s", what, p.tok.describe())
}

// eatWord consumes the keyword w or fails.
func (p *parser) eatWord(w, what string) error {
	if !p.isWord(w) {
		return p.expected(what)
	}
	return p.next()
}

// eatPunct consumes the punctuation s or fails.
func (p *parser) eatPunct(s, what string) error {
	if !p.isPunct(s) {
		return p.expected(what)
	}
	return p.next()
}

func (p *parser) parseQuery() (*Query, error) {
	q := &Query{}
	if err := p.eatWord("SELECT", "SELECT"); err != nil {
		return nil, err
	}
	if err := p.parseSelect(q); err != nil {
		return nil, err
	}
	if err := p.eatWord("FROM", "',' or FROM"); err != nil {
		return nil, err
	}
	if err := p.eatWord("devices", "devices or devices.modules after FROM"); err != nil {
		return nil, err
	}
	if p.isPunct(".") {
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.tok.kind != tKey || !strings.EqualFold(p.tok.text, "modules") {
			return nil, p.expected("modules after 'devices.'")
		}
		q.From = Modules
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	if p.isWord("WHERE") {
		if err := p.next(); err != nil {
			return nil, err
		}
		w, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		q.Where = w
	}
	if p.isWord("GROUP") {
		if err := p.parseGroupBy(q); err != nil {
			return nil, err
		}
	}
	if p.isWord("ORDER") {
		if err := p.parseOrderBy(q); err != nil {
			return nil, err
		}
	}
	if p.tok.kind != tEOF {
		return nil, p.expected("end of query")
	}
	return q, nil
}

func (p *parser) parseSelect(q *Query) error {
	if p.isPunct("*") {
		q.Star = true
		return p.next()
	}
	for {
		it := SelectItem{Pos: p.tok.pos}
		if p.isWord("COUNT") {
			if err := p.next(); err != nil {
				return err
			}
			if err := p.eatPunct("(", "'(' after COUNT"); err != nil {
				return err
			}
			if err := p.eatPunct(")", "')' after 'COUNT('"); err != nil {
				return err
			}
			it.Count = true
		} else {
			if p.tok.kind != tIdent || reserved[strings.ToUpper(p.tok.text)] {
				return p.expected("'*', COUNT() or a field after SELECT")
			}
			f, err := p.parseField()
			if err != nil {
				return err
			}
			it.Field = f
		}
		if p.isWord("AS") {
			if err := p.next(); err != nil {
				return err
			}
			if p.tok.kind != tIdent || reserved[strings.ToUpper(p.tok.text)] {
				return p.expected("a name after AS")
			}
			it.Alias = p.tok.text
			if err := p.next(); err != nil {
				return err
			}
		}
		q.Select = append(q.Select, it)
		if !p.isPunct(",") {
			return nil
		}
		if err := p.next(); err != nil {
			return err
		}
	}
}

func (p *parser) parseGroupBy(q *Query) error {
	if err := p.next(); err != nil {
		return err
	}
	if err := p.eatWord("BY", "BY after GROUP"); err != nil {
		return err
	}
	for {
		if p.tok.kind != tIdent {
			return p.expected("a field after GROUP BY")
		}
		f, err := p.parseField()
		if err != nil {
			return err
		}
		q.GroupBy = append(q.GroupBy, f)
		if !p.isPunct(",") {
			return nil
		}
		if err := p.next(); err != nil {
			return err
		}
	}
}

func (p *parser) parseOrderBy(q *Query) error {
	if err := p.next(); err != nil {
		return err
	}
	if err := p.eatWord("BY", "BY after ORDER"); err != nil {
		return err
	}
	for {
		if p.tok.kind != tIdent || reserved[strings.ToUpper(p.tok.text)] {
			return p.expected("a field after ORDER BY")
		}
		f, err := p.parseField()
		if err != nil {
			return err
		}
		it := OrderItem{Field: f}
		switch {
		case p.isWord("ASC"):
			err = p.next()
		case p.isWord("DESC"):
			it.Desc = true
			err = p.next()
		}
		if err != nil {
			return err
		}
		q.OrderBy = append(q.OrderBy, it)
		if !p.isPunct(",") {
			return nil
		}
		if err := p.next(); err != nil {
			return err
		}
	}
}
