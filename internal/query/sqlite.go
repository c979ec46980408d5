package query

import (
	"strconv"
	"strings"
)

// SQLite is the Dialect of SQLite 3.38 or later (for the -> operator), as
// bundled by modernc.org/sqlite. Placeholders are numbered (?1, ?2...), so
// an argument used twice is bound once. Paths are bound arguments of the
// form $."key1"."key2"; keys are object keys even when they are digits.
type SQLite struct{}

var _ Dialect = SQLite{}

// Placeholder implements Dialect.
func (SQLite) Placeholder(n int) string { return "?" + strconv.Itoa(n) }

// JSONPath implements Dialect. The keys must not contain '"', which SQLite
// path syntax cannot escape; the compiler checks this.
func (SQLite) JSONPath(keys []string) any {
	var b strings.Builder
	b.WriteByte('$')
	for _, k := range keys {
		b.WriteString(`."`)
		b.WriteString(k)
		b.WriteByte('"')
	}
	return b.String()
}

// JSONDefined implements Dialect.
func (SQLite) JSONDefined(doc, path string) string {
	return "(json_type(" + doc + ", " + path + ") IS NOT NULL)"
}

// sqliteTypes are the json_type names of each Kind.
var sqliteTypes = [...]string{
	String: "'text'",
	Number: "'integer', 'real'",
	Bool:   "'true', 'false'",
	Null:   "'null'",
	Object: "'object'",
	Array:  "'array'",
}

// JSONIs implements Dialect.
func (SQLite) JSONIs(doc, path string, k Kind) string {
	return "(coalesce(json_type(" + doc + ", " + path + "), '') IN (" + sqliteTypes[k] + "))"
}

// JSONValue implements Dialect: json_extract yields text for strings,
// integer or real for numbers and 1 or 0 for booleans.
func (SQLite) JSONValue(doc, path string, k Kind) string {
	return "json_extract(" + doc + ", " + path + ")"
}

// JSONText implements Dialect.
func (SQLite) JSONText(doc, path string) string { return "(" + doc + " -> " + path + ")" }

// TextJSON implements Dialect.
func (SQLite) TextJSON(expr string) string {
	return "(CASE WHEN " + expr + " IS NULL THEN NULL ELSE json_quote(" + expr + ") END)"
}

// IntJSON implements Dialect.
func (SQLite) IntJSON(expr string) string { return "CAST(" + expr + " AS TEXT)" }

// BoolArg implements Dialect: JSON booleans extract as 1 and 0.
func (SQLite) BoolArg(b bool) any {
	if b {
		return int64(1)
	}
	return int64(0)
}

// StartsWith implements Dialect.
func (SQLite) StartsWith(s, prefix string) string {
	return "(substr(" + s + ", 1, length(" + prefix + ")) = " + prefix + ")"
}

// EndsWith implements Dialect.
func (SQLite) EndsWith(s, suffix string) string {
	return "(length(" + s + ") >= length(" + suffix + ") AND substr(" + s + ", length(" + s +
		") - length(" + suffix + ") + 1) = " + suffix + ")"
}

// JSONOrder implements Dialect. json_extract yields 1 and 0 for booleans,
// NULL for null and missing values, and minified JSON text for arrays and
// objects.
func (SQLite) JSONOrder(doc, path string) (rank, value string) {
	rank = "(CASE json_type(" + doc + ", " + path + ") WHEN 'null' THEN 1 WHEN 'false' THEN 2 WHEN 'true' THEN 2 " +
		"WHEN 'integer' THEN 3 WHEN 'real' THEN 3 WHEN 'text' THEN 4 WHEN 'array' THEN 5 WHEN 'object' THEN 6 ELSE 0 END)"
	return rank, "COALESCE(json_extract(" + doc + ", " + path + "), 0)"
}
