// Package query parses the device query language of Azure IoT Hub (the
// subset Ferry supports) and compiles it to one parameterized SQL
// statement. It is pure: it neither opens nor reads a database.
//
// # Grammar
//
// Keywords, function names and field roots are case-insensitive; keys
// below a root are case-sensitive.
//
//	query     = SELECT select FROM source [WHERE cond] [GROUP BY field {"," field}]
//	            [ORDER BY order {"," order}]
//	order     = field [ASC | DESC]
//	select    = "*" | item {"," item}
//	item      = (field | COUNT "(" ")") [AS name]
//	source    = devices | devices.modules
//	cond      = and {OR and}
//	and       = unary {AND unary}
//	unary     = NOT unary | "(" cond ")" | func | field op value
//	          | field IN list | field NIN list
//	op        = "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//	list      = "[" [value {"," value}] "]"
//	func      = IS_DEFINED "(" field ")" | IS_NULL "(" field ")"
//	          | IS_STRING "(" field ")" | IS_NUMBER "(" field ")" | IS_BOOL "(" field ")"
//	          | IS_OBJECT "(" field ")" | IS_ARRAY "(" field ")"
//	          | STARTS_WITH "(" field "," string ")" | ENDS_WITH "(" field "," string ")"
//	value     = string | number | true | false | null
//	field     = deviceId | moduleId | status | connectionState | lastActivityTime | modelId
//	          | tags {key} | properties.desired {key} | properties.reported {key}
//	          | properties.desired.$version | properties.reported.$version
//	key       = "." plainkey | "[" string "]"
//
// A plainkey is a run of letters, digits and '_' (it may start with a
// digit: tags.0 is the object key "0", not an array index). A bracketed
// key, tags['floor-1'], may hold any characters except control
// characters, '"' and '\', and may not start with '$'. Strings are quoted
// with ' or " and take the escapes \\ \' \" \/ \b \f \n \r \t and \uXXXX
// (with surrogate pairs). Numbers are -?digits[.digits][e[+-]digits]; an
// integral number that fits int64 is an integer (2.0 is 2). A name after
// AS is an identifier that is not a keyword.
//
// GROUP BY requires COUNT() in the SELECT list, and a query that selects
// COUNT() may select only fields it groups by. moduleId exists only FROM
// devices.modules; status, connectionState, lastActivityTime and modelId
// exist only FROM devices (Compile refuses them for modules, whose
// registry Ferry's schema does not hold yet). ORDER BY names each field
// once and cannot be used with COUNT(). Parse refuses text longer
// than MaxLength and conditions nested more than 64 levels deep.
//
// # Semantics
//
// A condition is true, false or undefined, as in Azure IoT Hub (and
// Cosmos DB), and a row is returned only when its condition is true:
//
//   - A comparison is defined only when the field has a value of the
//     literal's JSON type: a string never equals a number, 3 = 3.0, and a
//     missing field, a type mismatch or an object make it undefined. So
//     both tags.x = 1 and tags.x != 1 are undefined for a missing tags.x.
//   - <, <=, > and >= order numbers numerically and strings by bytes; with
//     a boolean or null they are undefined. field = null is true only for
//     a JSON null;
//     field != null is false for a JSON null and undefined otherwise.
//   - NOT undefined is undefined, so NOT (tags.x = 1) does not return a
//     device without tags.x. AND and OR follow three-valued logic: false
//     AND undefined is false, true OR undefined is true.
//   - IN is undefined for a missing field and otherwise true when any
//     list value equals the field by the rules above; NIN is its negation
//     (so NIN does not return devices that lack the field).
//   - IS_DEFINED and the IS_type functions are never undefined: they are
//     false for a missing field. IS_NULL is true only for a JSON null.
//   - STARTS_WITH and ENDS_WITH compare bytes, case-sensitively, with no
//     wildcards, and are undefined unless the field is a string.
//   - deviceId, moduleId, status, connectionState, lastActivityTime and
//     modelId are strings (lastActivityTime compares as the stored text);
//     the $version fields are numbers, undefined for a device without a
//     twin row.
//
// Precedence, tightest first: comparisons and functions, NOT, AND, OR.
//
// # Order
//
// Azure IoT Hub's documented grammar stops at GROUP BY; ORDER BY follows
// the Cosmos DB SQL it derives from: ascending unless DESC, by the first
// item, then the next. Values of different JSON types order by type:
// missing, null, booleans (false, true), numbers, strings, arrays, objects
// (arrays and objects among themselves by their JSON text); DESC reverses
// this, so devices without the field come first ascending and last
// descending. Numbers compare numerically, strings and the scalar fields
// (deviceId, status, lastActivityTime...) by bytes. Rows that tie on every
// item are ordered by deviceId (then moduleId) in the direction of the last
// item, so the order is total and pages neither repeat nor skip a row.
// Without ORDER BY, rows come by deviceId, then moduleId.
//
// # Compilation
//
// Compile writes SQL for a Dialect (SQLite so far) over a Schema
// (DefaultSchema matches Ferry's store). Every literal and every JSON
// path is a bound argument; the SQL text holds only schema names, which
// must be plain identifiers, and fixed syntax. FROM devices reads every
// registered device left-joined to its device twin (module id ""); FROM
// devices.modules reads twins whose module id is not "". See Compile for
// the shape of the rows and Page for paging.
//
// # Paging
//
// Run returns a page and a continuation token that carries the sort key
// values of the page's last row and a fingerprint of the query; the next
// page reads the rows after those values (keyset paging, no OFFSET), so a
// page costs the same whichever page it is when an index serves the
// order. A token is refused by any other query. Rows written between pages
// appear in later pages only if they sort after the token.
package query
