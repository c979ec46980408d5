package twin

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Limits are the twin rules a patch must keep. The zero value of a field
// means Azure's default, so Limits{} is Azure's limits.
type Limits struct {
	MaxTags        int // bytes of the tags document; default 8 KiB
	MaxDesired     int // bytes of the desired document; default 32 KiB
	MaxReported    int // bytes of the reported document; default 32 KiB
	MaxDepth       int // nesting of objects and arrays below the document; default 10
	MaxKeyBytes    int // UTF-8 bytes of a key; default 1 KiB
	MaxStringBytes int // UTF-8 bytes of a string value; default 4 KiB
}

// Azure's twin limits.
const (
	DefaultMaxTags        = 8 << 10
	DefaultMaxProperties  = 32 << 10
	DefaultMaxDepth       = 10
	DefaultMaxKeyBytes    = 1 << 10
	DefaultMaxStringBytes = 4 << 10

	// MinInt and MaxInt bound integer values: Azure keeps numbers as
	// doubles and refuses integers it could not represent exactly.
	MinInt = -4503599627370496
	MaxInt = 4503599627370495
)

func (l *Limits) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxTags, DefaultMaxTags)
	def(&l.MaxDesired, DefaultMaxProperties)
	def(&l.MaxReported, DefaultMaxProperties)
	def(&l.MaxDepth, DefaultMaxDepth)
	def(&l.MaxKeyBytes, DefaultMaxKeyBytes)
	def(&l.MaxStringBytes, DefaultMaxStringBytes)
}

// maxSize returns the size limit of one side.
func (l *Limits) maxSize(side Side) int {
	switch side {
	case Tags:
		return l.MaxTags
	case Desired:
		return l.MaxDesired
	}
	return l.MaxReported
}

// invalid returns the error for a rule violation at path.
func invalid(path, format string, args ...any) error {
	return fault.Invalidf("%s: %s", path, fmt.Sprintf(format, args...))
}

// ParsePatch parses and checks a merge patch for side: it must be a JSON
// object whose keys, values and nesting keep l. A "$version" member at the
// top (devices echo the version they saw) is dropped. Every error is a
// fault.Invalid naming the rule and the JSON path.
func (l Limits) ParsePatch(side Side, data []byte) (map[string]any, error) {
	l.setDefaults()
	v, err := decode(data)
	if err != nil {
		return nil, invalid(string(side), "invalid JSON: %v", err)
	}
	o, ok := v.(object)
	if !ok {
		return nil, invalid(string(side), "the patch must be a JSON object, not %s", kind(v))
	}
	if err := l.checkPatch(side, o); err != nil {
		return nil, err
	}
	return o, nil
}

// checkPatch is ParsePatch on a decoded object; l has its defaults set.
func (l *Limits) checkPatch(side Side, o object) error {
	delete(o, "$version")
	return l.check(side, string(side), o, 0)
}

// check walks v, found at path and nested depth levels below the document.
func (l *Limits) check(side Side, path string, v any, depth int) error {
	switch v := v.(type) {
	case object:
		if depth > l.MaxDepth {
			return invalid(path, "nesting deeper than %d levels", l.MaxDepth)
		}
		for k, m := range v {
			p := path + "." + k
			if err := l.checkKey(path, k); err != nil {
				return err
			}
			if err := l.check(side, p, m, depth+1); err != nil {
				return err
			}
		}
	case []any:
		if side == Tags {
			return invalid(path, "arrays are not allowed in tags")
		}
		if depth > l.MaxDepth {
			return invalid(path, "nesting deeper than %d levels", l.MaxDepth)
		}
		for i, m := range v {
			if err := l.check(side, path+"["+strconv.Itoa(i)+"]", m, depth+1); err != nil {
				return err
			}
		}
	case string:
		if len(v) > l.MaxStringBytes {
			return invalid(path, "string value longer than %d bytes", l.MaxStringBytes)
		}
	case jsonNumber:
		return checkNumber(path, v)
	}
	return nil
}

// checkKey checks one object key found in the object at path.
func (l *Limits) checkKey(path, k string) error {
	switch {
	case k == "":
		return invalid(path, "empty key")
	case len(k) > l.MaxKeyBytes:
		return invalid(path, "key longer than %d bytes", l.MaxKeyBytes)
	case !utf8.ValidString(k):
		return invalid(path, "key %q is not valid UTF-8", k)
	}
	for _, r := range k {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return invalid(path, "key %q contains a control character", k)
		case r == '.' || r == '$' || r == ' ':
			return invalid(path, "key %q contains %q", k, r)
		}
	}
	return nil
}

// checkNumber refuses integers outside [MinInt, MaxInt]. A number with a
// fraction or exponent is a double and passes.
func checkNumber(path string, n jsonNumber) error {
	s := string(n)
	if strings.ContainsAny(s, ".eE") {
		return nil
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || i < MinInt || i > MaxInt {
		return invalid(path, "integer %s outside [%d, %d]", s, int64(MinInt), int64(MaxInt))
	}
	return nil
}

// checkSize refuses a document larger than side's limit; doc is the encoded
// document without metadata or versions, which is what Azure counts.
func (l *Limits) checkSize(side Side, doc []byte) error {
	if max := l.maxSize(side); len(doc) > max {
		return invalid(string(side), "document of %d bytes exceeds the %d-byte limit", len(doc), max)
	}
	return nil
}

// kind names a JSON value's type for messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case object:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}
