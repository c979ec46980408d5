package query

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Pos is a position in the query text: a 1-based line and a 1-based column
// counted in characters (runes), not bytes.
type Pos struct {
	Line, Col int
}

// tokKind classifies a token.
type tokKind int

const (
	tEOF    tokKind = iota
	tIdent          // a bare word: keyword, root field, function or alias
	tKey            // a path segment lexed right after '.'
	tString         // a quoted string; val holds the decoded text
	tNumber         // a number; text holds it
	tPunct          // one of ( ) [ ] , . * = != <> < <= > >=
)

// token is one lexeme. text is the source text (used in error messages and
// to match punctuation); val is the decoded value of a string.
type token struct {
	kind tokKind
	text string
	val  string
	pos  Pos
}

// describe names the token for an error message.
func (t token) describe() string {
	if t.kind == tEOF {
		return "end of query"
	}
	s := t.text
	if utf8.RuneCountInString(s) > 24 {
		r := []rune(s)
		s = string(r[:24]) + "..."
	}
	return "'" + s + "'"
}

// lexer splits query text into tokens. It is pulled one token at a time by
// the parser. After a '.' it lexes a path key (which may start with a digit
// or '$') instead of an ordinary token, so that tags.1.b is three segments
// rather than a number.
type lexer struct {
	src     string
	off     int // byte offset of the next unread rune
	line    int
	col     int
	lastDot bool // the previous token was '.'
	cond    bool // condition mode (ParseCondition): $names, '-' inside names
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1, col: 1} }

// errorAt returns the fault.Invalid error for a problem at pos.
func errorAt(pos Pos, format string, args ...any) error {
	return fault.Invalidf("query: line %d, column %d: %s", pos.Line, pos.Col, fmt.Sprintf(format, args...))
}

func (lx *lexer) peekRune(ahead int) rune {
	off := lx.off
	for ; ahead > 0 && off < len(lx.src); ahead-- {
		_, n := utf8.DecodeRuneInString(lx.src[off:])
		off += n
	}
	if off >= len(lx.src) {
		return -1
	}
	r, _ := utf8.DecodeRuneInString(lx.src[off:])
	return r
}

func (lx *lexer) advance() rune {
	r, n := utf8.DecodeRuneInString(lx.src[lx.off:])
	lx.off += n
	if r == '\n' {
		lx.line++
		lx.col = 1
	} else {
		lx.col++
	}
	return r
}

func (lx *lexer) pos() Pos { return Pos{lx.line, lx.col} }

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }
func isIdentPart(r rune) bool  { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// next returns the next token.
func (lx *lexer) next() (token, error) {
	afterDot := lx.lastDot
	lx.lastDot = false
	for lx.off < len(lx.src) && unicode.IsSpace(lx.peekRune(0)) {
		lx.advance()
	}
	start, pos := lx.off, lx.pos()
	if lx.off >= len(lx.src) {
		return token{kind: tEOF, pos: pos}, nil
	}
	r := lx.peekRune(0)
	switch {
	case afterDot && (isIdentPart(r) || r == '$'):
		lx.advance()
		lx.identRest()
		return token{kind: tKey, text: lx.src[start:lx.off], pos: pos}, nil
	case isIdentStart(r), lx.cond && r == '$' && isIdentStart(lx.peekRune(1)):
		lx.advance()
		lx.identRest()
		return token{kind: tIdent, text: lx.src[start:lx.off], pos: pos}, nil
	case r == '\'' || r == '"':
		return lx.lexString(pos)
	case isDigit(r) || r == '-' && isDigit(lx.peekRune(1)):
		return lx.lexNumber(pos)
	}
	lx.advance()
	switch r {
	case '(', ')', '[', ']', ',', '.', '*', '=':
	case '!':
		if lx.peekRune(0) != '=' {
			return token{}, errorAt(pos, "unexpected character '!'; did you mean '!='?")
		}
		lx.advance()
	case '<':
		if c := lx.peekRune(0); c == '=' || c == '>' {
			lx.advance()
		}
	case '>':
		if lx.peekRune(0) == '=' {
			lx.advance()
		}
	default:
		return token{}, errorAt(pos, "unexpected character %q", r)
	}
	lx.lastDot = r == '.'
	return token{kind: tPunct, text: lx.src[start:lx.off], pos: pos}, nil
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// identRest consumes the rest of a name. In condition mode a name may hold
// '-' after its first character (application properties such as
// proto-type); conditions have no arithmetic, so this is unambiguous.
func (lx *lexer) identRest() {
	for {
		r := lx.peekRune(0)
		if !isIdentPart(r) && !(lx.cond && r == '-') {
			return
		}
		lx.advance()
	}
}

// lexNumber lexes -?digits(.digits)?([eE][+-]?digits)?.
func (lx *lexer) lexNumber(pos Pos) (token, error) {
	start := lx.off
	if lx.peekRune(0) == '-' {
		lx.advance()
	}
	digits := func() {
		for isDigit(lx.peekRune(0)) {
			lx.advance()
		}
	}
	digits()
	if lx.peekRune(0) == '.' && isDigit(lx.peekRune(1)) {
		lx.advance()
		digits()
	}
	if c := lx.peekRune(0); c == 'e' || c == 'E' {
		n := 1
		if s := lx.peekRune(1); s == '+' || s == '-' {
			n = 2
		}
		if isDigit(lx.peekRune(n)) {
			for ; n > 0; n-- {
				lx.advance()
			}
			digits()
		}
	}
	if isIdentPart(lx.peekRune(0)) {
		return token{}, errorAt(pos, "malformed number %q", lx.src[start:lx.off]+string(lx.peekRune(0)))
	}
	return token{kind: tNumber, text: lx.src[start:lx.off], pos: pos}, nil
}

// lexString lexes a quoted string with JSON-style escapes; either quote
// character may be escaped, as may '\'.
func (lx *lexer) lexString(pos Pos) (token, error) {
	start := lx.off
	quote := lx.advance()
	var b strings.Builder
	for {
		if lx.off >= len(lx.src) {
			return token{}, errorAt(pos, "unterminated string")
		}
		epos := lx.pos()
		r := lx.advance()
		switch {
		case r == quote:
			return token{kind: tString, text: lx.src[start:lx.off], val: b.String(), pos: pos}, nil
		case r != '\\':
			b.WriteRune(r)
			continue
		}
		if lx.off >= len(lx.src) {
			return token{}, errorAt(pos, "unterminated string")
		}
		switch e := lx.advance(); e {
		case '\\', '\'', '"', '/':
			b.WriteRune(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, err := lx.lexUnicode(epos)
			if err != nil {
				return token{}, err
			}
			b.WriteRune(r)
		default:
			return token{}, errorAt(epos, "invalid escape '\\%c' in string", e)
		}
	}
}

// lexUnicode reads the XXXX of \uXXXX (the '\u' is consumed), combining a
// UTF-16 surrogate pair when a second \uXXXX follows a high surrogate.
func (lx *lexer) lexUnicode(epos Pos) (rune, error) {
	hex4 := func() (rune, bool) {
		var v rune
		for range 4 {
			c := lx.peekRune(0)
			var d rune
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				d = c - 'A' + 10
			default:
				return 0, false
			}
			lx.advance()
			v = v<<4 | d
		}
		return v, true
	}
	r, ok := hex4()
	if !ok {
		return 0, errorAt(epos, "invalid \\u escape in string: expected four hex digits")
	}
	if r < 0xD800 || r > 0xDFFF {
		return r, nil
	}
	if r <= 0xDBFF && lx.peekRune(0) == '\\' && lx.peekRune(1) == 'u' {
		lx.advance()
		lx.advance()
		lo, ok := hex4()
		if ok && lo >= 0xDC00 && lo <= 0xDFFF {
			return (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000, nil
		}
	}
	return 0, errorAt(epos, "invalid \\u escape in string: unpaired surrogate")
}
