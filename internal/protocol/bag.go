package protocol

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadPropertyBag is wrapped by every error of ParsePropertyBag.
var ErrBadPropertyBag = errors.New("protocol: bad property bag")

// ErrPropertyBagTooLarge is wrapped by the errors of ParsePropertyBagLimit
// for a bag over its byte or property limit. It wraps ErrBadPropertyBag.
var ErrPropertyBagTooLarge = fmt.Errorf("%w: too large", ErrBadPropertyBag)

// Property is one key and value of a property bag, percent-decoded. A key
// sent without '=' (Azure's null value) has the empty Value, like "key=".
type Property struct{ Key, Value string }

// Properties are a message's system and application properties, decoded
// from a property bag (PROTOCOL.md §1.4, §1.5).
type Properties struct {
	MessageID       string // $.mid
	CorrelationID   string // $.cid
	UserID          string // $.uid
	To              string // $.to
	ContentType     string // $.ct
	ContentEncoding string // $.ce
	Expiry          string // $.exp (an ISO 8601 time, as sent)
	OutputName      string // $.on (module output)
	InterfaceID     string // $.ifid
	Component       string // $.sub (PnP component)
	CreationTime    string // $.ctime

	// System holds the other "$."-prefixed keys (the C SDK's $.cdid,
	// $.cmid, $.diagid, ...) with their full key, "$." included, in arrival
	// order.
	System []Property
	// App holds the application properties in arrival order.
	App []Property
}

// systemField returns the field of p for a known "$." key and its bit in
// the set of fields seen, or nil for any other key.
func systemField(p *Properties, key string) (*string, uint16) {
	if len(key) < 3 || key[0] != '$' || key[1] != '.' {
		return nil, 0
	}
	switch key[2:] {
	case "mid":
		return &p.MessageID, 1 << 0
	case "cid":
		return &p.CorrelationID, 1 << 1
	case "uid":
		return &p.UserID, 1 << 2
	case "to":
		return &p.To, 1 << 3
	case "ct":
		return &p.ContentType, 1 << 4
	case "ce":
		return &p.ContentEncoding, 1 << 5
	case "exp":
		return &p.Expiry, 1 << 6
	case "on":
		return &p.OutputName, 1 << 7
	case "ifid":
		return &p.InterfaceID, 1 << 8
	case "sub":
		return &p.Component, 1 << 9
	case "ctime":
		return &p.CreationTime, 1 << 10
	}
	return nil, 0
}

// systemKeys lists the known system keys in the order AppendBag writes them.
func (p *Properties) systemKeys() [11]Property {
	return [...]Property{
		{"$.mid", p.MessageID}, {"$.cid", p.CorrelationID}, {"$.uid", p.UserID},
		{"$.to", p.To}, {"$.ct", p.ContentType}, {"$.ce", p.ContentEncoding},
		{"$.exp", p.Expiry}, {"$.on", p.OutputName}, {"$.ifid", p.InterfaceID},
		{"$.sub", p.Component}, {"$.ctime", p.CreationTime},
	}
}

// ParsePropertyBag decodes a property bag: "k=v" items separated by '&',
// each split at its first '='. Keys and values are percent-decoded ('+'
// stays '+'; see the package doc), so "%24.mid" and "$.mid" are the same
// key. "k" alone is Azure's null value and "k=" the empty string; both give
// an empty value. Empty items ("a=1&&b=2", a trailing '&') are skipped, as
// Node's querystring does.
//
// The empty bag gives the zero Properties. Errors wrap ErrBadPropertyBag:
// invalid percent-encoding, text that is not UTF-8, an empty key, or a key
// that appears twice (Python's SDK refuses duplicates too). ParsePropertyBag
// sets no size limits; see ParsePropertyBagLimit.
func ParsePropertyBag(bag string) (Properties, error) {
	return ParsePropertyBagLimit(bag, 0, 0)
}

// ParsePropertyBagLimit is ParsePropertyBag with limits: a bag longer than
// maxBytes (as sent, still encoded) or with more than maxProps items is
// refused with an error wrapping ErrPropertyBagTooLarge. A limit of zero or
// less means no limit.
//
// It allocates nothing for a bag without '%' and without application or
// other system properties; otherwise once for all decoded text, and once
// for each of App and System that is not empty. Its time is linear in the
// length of the bag.
func ParsePropertyBagLimit(bag string, maxBytes, maxProps int) (Properties, error) {
	if bag == "" {
		return Properties{}, nil
	}
	if maxBytes > 0 && len(bag) > maxBytes {
		return Properties{}, fmt.Errorf("%w: %d bytes exceed the limit of %d bytes",
			ErrPropertyBagTooLarge, len(bag), maxBytes)
	}
	if !utf8.ValidString(bag) {
		return Properties{}, fmt.Errorf("%w: not valid UTF-8", ErrBadPropertyBag)
	}
	var bp bagParser
	if strings.IndexByte(bag, '%') >= 0 {
		bp.buf.Grow(len(bag)) // decoded text is never longer than encoded text
	}
	n := 0 // items parsed
	for rest := bag; rest != ""; {
		var item string
		item, rest, _ = strings.Cut(rest, "&")
		if item == "" {
			continue
		}
		if n++; maxProps > 0 && n > maxProps {
			return Properties{}, fmt.Errorf("%w: more than the limit of %d properties",
				ErrPropertyBagTooLarge, maxProps)
		}
		if err := bp.item(item, rest); err != nil {
			return Properties{}, err
		}
	}
	return bp.p, nil
}

// bagParser holds the state of one ParsePropertyBagLimit call.
type bagParser struct {
	p        Properties
	buf      strings.Builder // decoded text of every item, one allocation
	seen     uint16          // known system keys seen, by systemField's bit
	seenKeys map[string]bool // System and App keys, once there are many
}

// item decodes one non-empty "k=v" item and stores it; rest is what
// follows it in the bag.
func (bp *bagParser) item(item, rest string) error {
	rawKey, rawVal, _ := strings.Cut(item, "=")
	key, ok := unescapeTo(rawKey, &bp.buf)
	if !ok {
		return fmt.Errorf("%w: key %s: invalid percent-encoding", ErrBadPropertyBag, quoteShort(rawKey))
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrBadPropertyBag)
	}
	val, ok := unescapeTo(rawVal, &bp.buf)
	if !ok {
		return fmt.Errorf("%w: value of %s: invalid percent-encoding", ErrBadPropertyBag, quoteShort(key))
	}
	// The bag is valid UTF-8 already; only decoded text needs a check.
	if len(key) != len(rawKey) && !utf8.ValidString(key) ||
		len(val) != len(rawVal) && !utf8.ValidString(val) {
		return fmt.Errorf("%w: %s: decodes to text that is not UTF-8", ErrBadPropertyBag, quoteShort(rawKey))
	}
	if f, bit := systemField(&bp.p, key); f != nil {
		if bp.seen&bit != 0 {
			return duplicate(key)
		}
		bp.seen |= bit
		*f = val
		return nil
	}
	list := &bp.p.App
	if strings.HasPrefix(key, "$.") {
		list = &bp.p.System
	}
	if bp.isDuplicate(*list, key) {
		return duplicate(key)
	}
	if *list == nil {
		*list = make([]Property, 0, 1+strings.Count(rest, "&"))
	}
	*list = append(*list, Property{key, val})
	return nil
}

// isDuplicate reports whether key was seen before, and records it. Small
// bags search list linearly; long ones switch to a map, so that a bag of
// thousands of keys cannot cost quadratic time.
func (bp *bagParser) isDuplicate(list []Property, key string) bool {
	if bp.seenKeys == nil && len(bp.p.App)+len(bp.p.System) < 16 {
		_, found := lookup(list, key)
		return found
	}
	if bp.seenKeys == nil {
		bp.seenKeys = make(map[string]bool, 64)
		for _, q := range bp.p.System {
			bp.seenKeys[q.Key] = true
		}
		for _, q := range bp.p.App {
			bp.seenKeys[q.Key] = true
		}
	}
	if bp.seenKeys[key] {
		return true
	}
	bp.seenKeys[key] = true
	return false
}

func duplicate(key string) error {
	return fmt.Errorf("%w: duplicate key %s", ErrBadPropertyBag, quoteShort(key))
}

// lookup finds key in props by linear search.
func lookup(props []Property, key string) (string, bool) {
	for i := range props {
		if props[i].Key == key {
			return props[i].Value, true
		}
	}
	return "", false
}

// Get returns the value of the application property key and whether it is
// present. System properties are fields of Properties and are not found here.
func (p *Properties) Get(key string) (string, bool) {
	return lookup(p.App, key)
}

// AppendBag appends p formatted as a property bag to dst: the known system
// properties that are not empty, in the order $.mid $.cid $.uid $.to $.ct
// $.ce $.exp $.on $.ifid $.sub $.ctime, then System, then App. Keys and
// values are percent-encoded as Node's querystring.escape does ("$.mid"
// becomes "%24.mid", a space "%20"), and every item is written "k=v", since
// Node reads a bare key as the string "undefined". Used for C2D and module
// input topics; ParsePropertyBag reads the result back unchanged.
func (p Properties) AppendBag(dst []byte) []byte {
	start := len(dst)
	item := func(dst []byte, k, v string) []byte {
		if len(dst) > start {
			dst = append(dst, '&')
		}
		dst = appendEscaped(dst, k)
		dst = append(dst, '=')
		return appendEscaped(dst, v)
	}
	for _, s := range p.systemKeys() {
		if s.Value != "" {
			dst = item(dst, s.Key, s.Value)
		}
	}
	for _, s := range p.System {
		dst = item(dst, s.Key, s.Value)
	}
	for _, a := range p.App {
		dst = item(dst, a.Key, a.Value)
	}
	return dst
}
