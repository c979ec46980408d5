package protocol

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// unreserved marks the bytes that encodeURIComponent and Node's
// querystring.escape leave as they are: A-Z a-z 0-9 - _ . ! ~ * ' ( ).
var unreserved = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-_.!~*'()" {
		t[c] = true
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

// appendEscaped appends s percent-encoded as encodeURIComponent does it
// (UTF-8 bytes, upper-case hex). Bytes that are not valid UTF-8 are encoded
// one by one, so every string round-trips through unescape.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
	}
	return dst
}

// escape returns s percent-encoded as encodeURIComponent does it. It returns
// s itself when nothing needs encoding.
func escape(s string) string {
	for i := 0; i < len(s); i++ {
		if !unreserved[s[i]] {
			return string(appendEscaped(make([]byte, 0, len(s)+16), s))
		}
	}
	return s
}

// isCanonical reports whether s is already encodeURIComponent's encoding
// of its own decoding: unreserved bytes as they are, every other byte as
// '%' and two upper-case hex digits.
func isCanonical(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] {
			continue
		}
		if c != '%' || i+2 >= len(s) {
			return false
		}
		hi, lo := s[i+1], s[i+2]
		if strings.IndexByte(upperHex, hi) < 0 || strings.IndexByte(upperHex, lo) < 0 {
			return false
		}
		h, _ := unhex(hi)
		l, _ := unhex(lo)
		if unreserved[h<<4|l] {
			return false // encodeURIComponent would leave this byte as it is
		}
		i += 2
	}
	return true
}

// unhex returns the value of one hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescapeTo percent-decodes s; '+' stays '+'. When s contains no '%' it
// returns s itself. Otherwise it appends the decoded bytes to b and returns
// them as a substring of b's contents, so that many decodes share one
// allocation when b was grown beforehand. This is safe because a
// strings.Builder never changes bytes it has already handed out. ok is false
// when s has a '%' not followed by two hex digits.
func unescapeTo(s string, b *strings.Builder) (out string, ok bool) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, true
	}
	start := b.Len()
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 3
	}
	return b.String()[start:], true
}

// unescape percent-decodes s on its own; see unescapeTo.
func unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	return unescapeTo(s, &b)
}

// quoteShort quotes s for an error message, cutting it at 64 bytes so that a
// hostile input cannot blow up logs. The cut respects UTF-8.
func quoteShort(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
