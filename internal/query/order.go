package query

import (
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
)

// keyKind is the type of one sort key's values, which a continuation token
// must match.
type keyKind int

const (
	keyText  keyKind = iota // a text column
	keyInt                  // an integer column
	keyRank                 // a JSON value's type rank, 0 to 6 (see Dialect.JSONOrder)
	keyValue                // a JSON value within its rank
)

// sortKey is one SQL expression of a query's row order. Its expression is
// never NULL, so rows compare with plain < and >.
type sortKey struct {
	expr string
	desc bool
	kind keyKind
}

// orderKeys returns the expressions that order a non-aggregate query's
// rows: the ORDER BY items, then the row's unique key (device id, and
// module id FROM devices.modules) to break ties, in the direction of the
// last ORDER BY item (ascending without ORDER BY). Breaking ties in that
// direction lets one index on (column, device id) serve both directions.
func (c *compiler) orderKeys() ([]sortKey, error) {
	var keys []sortKey
	desc := false
	for _, it := range c.q.OrderBy {
		o, err := c.operand(it.Field)
		if err != nil {
			return nil, err
		}
		desc = it.Desc
		switch {
		case o.col == "":
			rank, val := c.d.JSONOrder(o.doc, o.path)
			keys = append(keys, sortKey{rank, desc, keyRank}, sortKey{val, desc, keyValue})
		case o.kind == Number:
			// A device without a twin row (never, in Ferry's store) has
			// no $version; it orders as version 0, before every twin.
			keys = append(keys, sortKey{"COALESCE(" + o.col + ", 0)", desc, keyInt})
		default:
			keys = append(keys, sortKey{o.col, desc, keyText})
		}
	}
	dev, mod := c.key()
	unique := []string{dev}
	if c.q.From == Modules {
		unique = append(unique, mod)
	}
	for _, u := range unique {
		if !hasKey(keys, u) {
			keys = append(keys, sortKey{u, desc, keyText})
		}
	}
	return keys, nil
}

func hasKey(keys []sortKey, expr string) bool {
	for _, k := range keys {
		if k.expr == expr {
			return true
		}
	}
	return false
}

// orderBy returns the ORDER BY clause's terms for keys.
func orderBy(keys []sortKey) string {
	terms := make([]string, len(keys))
	for i, k := range keys {
		terms[i] = k.expr
		if k.desc {
			terms[i] += " DESC"
		}
	}
	return strings.Join(terms, ", ")
}

// afterKeys returns the condition that holds for the rows that sort after
// the row whose key values are vals. Each run of keys in one direction
// compares as a row value, (a, b) > (?1, ?2), which SQLite (3.15 and
// later) and PostgreSQL turn into a seek on an index over those columns;
// runs in different directions nest: (run1 > v1 OR (run1 = v1 AND ...)).
func (c *compiler) afterKeys(keys []sortKey, vals []any) string {
	type run struct{ l, r string }
	var runs []run
	var desc []bool
	for i := 0; i < len(keys); {
		j := i
		for j < len(keys) && keys[j].desc == keys[i].desc {
			j++
		}
		var l, r []string
		for k := i; k < j; k++ {
			l = append(l, keys[k].expr)
			r = append(r, c.arg(vals[k]))
		}
		runs = append(runs, run{rowValue(l), rowValue(r)})
		desc = append(desc, keys[i].desc)
		i = j
	}
	cond := ""
	for i := len(runs) - 1; i >= 0; i-- {
		op := " > "
		if desc[i] {
			op = " < "
		}
		past := runs[i].l + op + runs[i].r
		if cond == "" {
			cond = past
			continue
		}
		cond = "(" + past + " OR (" + runs[i].l + " = " + runs[i].r + " AND " + cond + "))"
	}
	return cond
}

func rowValue(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return "(" + strings.Join(xs, ", ") + ")"
}

// checkKeyValues reports whether vals fit keys' kinds, as the values of a
// row of the query would.
func checkKeyValues(keys []sortKey, vals []any) error {
	if len(vals) != len(keys) {
		return errForeignToken()
	}
	rank := int64(-1)
	for i, k := range keys {
		ok := false
		switch v := vals[i].(type) {
		case string:
			ok = k.kind == keyText || k.kind == keyValue && rank >= rankString
		case int64:
			switch k.kind {
			case keyInt:
				ok = true
			case keyRank:
				ok, rank = v >= rankMissing && v <= rankObject, v
			case keyValue:
				ok = rank == rankNumber || rank == rankBool && (v == 0 || v == 1) || rank < rankBool && v == 0
			}
		case float64:
			ok = k.kind == keyValue && rank == rankNumber
		}
		if !ok {
			return errForeignToken()
		}
	}
	return nil
}

// The ranks of JSON values in ORDER BY, lowest first, as in Cosmos DB.
const (
	rankMissing = iota
	rankNull
	rankBool
	rankNumber
	rankString
	rankArray
	rankObject
)

// errForeignToken is the error for a token that another query issued.
func errForeignToken() error {
	return fault.Invalidf("query: the continuation token was issued for a different query; " +
		"run the query again without it")
}
