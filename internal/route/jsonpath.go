package route

import (
	"encoding/json"
	"strconv"
	"unsafe"
)

// lookupJSON returns the raw JSON value at path below doc, a JSON object,
// without decoding the rest of the document and without allocating (keys
// with escapes aside). ok is false when a key is missing, a value on the
// way is not an object, or doc is malformed where it was read. An empty
// path returns doc itself.
func lookupJSON(doc []byte, path []string) (raw []byte, ok bool) {
	i := skipWS(doc, 0)
	if i >= len(doc) {
		return nil, false
	}
	for _, key := range path {
		if doc[i] != '{' {
			return nil, false
		}
		i, ok = findMember(doc, i+1, key)
		if !ok {
			return nil, false
		}
	}
	end, ok := skipValue(doc, i)
	if !ok {
		return nil, false
	}
	return doc[i:end], true
}

// findMember scans the members of an object whose '{' precedes i and
// returns the start of key's value.
func findMember(doc []byte, i int, key string) (int, bool) {
	i = skipWS(doc, i)
	if i < len(doc) && doc[i] == '}' {
		return 0, false
	}
	for i < len(doc) {
		if doc[i] != '"' {
			return 0, false
		}
		end, ok := skipString(doc, i)
		if !ok {
			return 0, false
		}
		match := keyEquals(doc[i:end], key)
		i = skipWS(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return 0, false
		}
		i = skipWS(doc, i+1)
		if match {
			return i, i < len(doc)
		}
		if i, ok = skipValue(doc, i); !ok {
			return 0, false
		}
		i = skipWS(doc, i)
		if i >= len(doc) || doc[i] != ',' {
			return 0, false
		}
		i = skipWS(doc, i+1)
	}
	return 0, false
}

// keyEquals compares a quoted JSON string with key.
func keyEquals(quoted []byte, key string) bool {
	inner := quoted[1 : len(quoted)-1]
	for _, c := range inner {
		if c == '\\' {
			s, ok := unquote(quoted)
			return ok && s == key
		}
	}
	return string(inner) == key
}

// unquote decodes a quoted JSON string. Without escapes the result aliases
// quoted (read-only).
func unquote(quoted []byte) (string, bool) {
	if len(quoted) < 2 {
		return "", false
	}
	inner := quoted[1 : len(quoted)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(quoted, &s); err != nil {
				return "", false
			}
			return s, true
		}
	}
	return bytesString(inner), true
}

// bytesString views b as a string without copying; b must not change.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func skipWS(doc []byte, i int) int {
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at doc[i] == '"'.
func skipString(doc []byte, i int) (int, bool) {
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the value starting at doc[i].
func skipValue(doc []byte, i int) (int, bool) {
	if i >= len(doc) {
		return 0, false
	}
	switch doc[i] {
	case '"':
		return skipString(doc, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '"':
				end, ok := skipString(doc, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(doc) {
		switch doc[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j, j > i
		}
		j++
	}
	return j, j > i
}

// parseNumber reads a raw JSON number.
func parseNumber(s string) (f float64, i int64, isInt, ok bool) {
	integral := len(s) > 0
	for k := 0; k < len(s); k++ {
		if c := s[k]; (c < '0' || c > '9') && !(k == 0 && c == '-') {
			integral = false
			break
		}
	}
	if integral {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return float64(n), n, true, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, 0, false, err == nil
}
