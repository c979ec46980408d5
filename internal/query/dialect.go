package query

// Dialect renders the database-specific parts of a compiled query. The
// compiler writes portable SQL (CASE, COALESCE, AND/OR/NOT, comparison
// operators, GROUP BY, ORDER BY, LIMIT) and asks the dialect for
// placeholders and JSON access. SQLite is the only implementation so far;
// a PostgreSQL dialect would use $n placeholders, text[] paths and jsonb
// operators.
//
// doc is a qualified JSON column (t.tags); path is the placeholder of a
// bound argument made by JSONPath; s, prefix and suffix are SQL
// expressions. Expressions returned must be parenthesized as needed to be
// used as an operand.
type Dialect interface {
	// Placeholder returns the marker of the n-th bound argument (from 1).
	// A marker may appear more than once in a statement.
	Placeholder(n int) string
	// JSONPath returns the bound argument that addresses the object keys
	// below the root of a document; no keys address the document itself.
	JSONPath(keys []string) any
	// JSONDefined is true when doc has a value (perhaps null) at path and
	// false otherwise, also when doc is SQL NULL. It is never NULL.
	JSONDefined(doc, path string) string
	// JSONIs is true when the value at path has JSON type k and false
	// otherwise. It is never NULL.
	JSONIs(doc, path string, k Kind) string
	// JSONValue is the value at path as an SQL scalar comparable with a
	// bound literal of kind k (String, Number or Bool). It is used only
	// where JSONIs(doc, path, k) holds.
	JSONValue(doc, path string, k Kind) string
	// JSONText is the JSON text of the value at path, or NULL when there is
	// none.
	JSONText(doc, path string) string
	// TextJSON is the JSON text (a JSON string) of a text expression, or
	// NULL when it is NULL.
	TextJSON(expr string) string
	// IntJSON is the JSON text (a JSON number) of an integer expression, or
	// NULL when it is NULL.
	IntJSON(expr string) string
	// BoolArg returns the bound argument for a boolean literal, comparable
	// with JSONValue(..., Bool).
	BoolArg(b bool) any
	// StartsWith is true when the text s starts with prefix (byte-wise,
	// case-sensitive; no wildcards).
	StartsWith(s, prefix string) string
	// EndsWith is true when the text s ends with suffix.
	EndsWith(s, suffix string) string
	// JSONOrder returns two expressions, never NULL, that order the values
	// at path as ORDER BY does: rank is the value's type, 0 for a missing
	// value (also when doc is SQL NULL), then 1 null, 2 boolean, 3 number,
	// 4 string, 5 array, 6 object (Cosmos DB's order of types); value
	// orders values of one rank: 0 for missing and null, 0 and 1 for
	// false and true, numbers numerically, strings by bytes, arrays and
	// objects by their JSON text.
	JSONOrder(doc, path string) (rank, value string)
}
