package query

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
)

// A continuation token is unpadded base64url of the JSON object
//
//	{"q": fingerprint, "k": [sort key values of the page's last row]}
//
// The fingerprint is a hash of the query's canonical text, so a token
// given to another query (another condition, order or selection) is
// refused instead of starting that query's listing at an unrelated place.
// The key values are those of Compile's sort keys: strings, integers, and
// for a JSON field its rank and value. A token is not secret and not
// signed: its values are bound arguments, checked against the kinds the
// query's keys have, and a forged one can only skip rows of the reader's
// own query.

// contToken is a decoded continuation token.
type contToken struct {
	Query string `json:"q"`
	Keys  []any  `json:"k"`
}

// Continuation returns a token in the older form, ["deviceId","moduleId"],
// that continues a query without ORDER BY after the row of deviceID and
// moduleID (moduleID is "" for a device twin). It is bound to no query,
// which is harmless for the default order: any query's rows after a device
// id are a correct continuation. Queries with ORDER BY refuse it; Run
// issues tokens bound to their query.
func Continuation(deviceID, moduleID string) string {
	b, _ := json.Marshal([2]string{deviceID, moduleID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// fingerprint identifies q's canonical text.
func fingerprint(q *Query) string {
	sum := sha256.Sum256([]byte(q.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// encodeToken returns the token that continues q after a row whose sort
// key values are vals.
func encodeToken(q *Query, vals []any) (string, error) {
	t := contToken{Query: fingerprint(q), Keys: make([]any, len(vals))}
	for i, v := range vals {
		switch v := v.(type) {
		case []byte:
			t.Keys[i] = string(v)
		case string, int64, float64:
			t.Keys[i] = v
		default:
			return "", fmt.Errorf("query: sort key %d of the last row is %T", i, v)
		}
	}
	b, err := json.Marshal(t)
	if err != nil {
		// An infinite number (a JSON value SQLite read as 1e999) has no
		// JSON form.
		return "", fault.Invalidf("query: the last row's sort key cannot be carried in a continuation token: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeToken returns the key values a token carries for keys, the sort
// keys of q.
func decodeToken(q *Query, keys []sortKey, s string) ([]any, error) {
	malformed := fault.Invalidf("query: malformed continuation token")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, malformed
	}
	if b[0] == '[' {
		var key []string
		if err := json.Unmarshal(b, &key); err != nil || len(key) != 2 {
			return nil, malformed
		}
		if len(q.OrderBy) > 0 {
			return nil, errForeignToken()
		}
		vals := []any{key[0], key[1]}
		return vals[:len(keys)], nil
	}
	var t contToken
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil || d.More() || t.Query == "" {
		return nil, malformed
	}
	if t.Query != fingerprint(q) {
		return nil, errForeignToken()
	}
	for i, v := range t.Keys {
		n, ok := v.(json.Number)
		if !ok {
			continue
		}
		if !strings.ContainsAny(string(n), ".eE") {
			if x, err := strconv.ParseInt(string(n), 10, 64); err == nil {
				t.Keys[i] = x
				continue
			}
		}
		x, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return nil, malformed
		}
		t.Keys[i] = x
	}
	if err := checkKeyValues(keys, t.Keys); err != nil {
		return nil, err
	}
	return t.Keys, nil
}
