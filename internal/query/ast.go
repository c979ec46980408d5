package query

import (
	"slices"
	"strconv"
	"strings"
)

// Query is a parsed query.
type Query struct {
	Star    bool         // SELECT *
	Select  []SelectItem // the items of the SELECT list unless Star
	From    Source       // devices or devices.modules
	Where   Expr         // nil when there is no WHERE clause
	GroupBy []Field      // the GROUP BY fields, if any
	OrderBy []OrderItem  // the ORDER BY items, if any
}

// OrderItem is one item of an ORDER BY list.
type OrderItem struct {
	Field Field
	Desc  bool // DESC; ASC (the default) otherwise
}

// Aggregate reports whether the query returns counts (it selects COUNT()).
func (q *Query) Aggregate() bool {
	for _, it := range q.Select {
		if it.Count {
			return true
		}
	}
	return false
}

// Source is the collection a query reads.
type Source int

// The sources.
const (
	Devices Source = iota // FROM devices: device twins
	Modules               // FROM devices.modules: module twins
)

// String returns the source as written in a query.
func (s Source) String() string {
	if s == Modules {
		return "devices.modules"
	}
	return "devices"
}

// SelectItem is one item of a SELECT list: COUNT() or a field, optionally
// named with AS.
type SelectItem struct {
	Count bool   // COUNT()
	Field Field  // the field unless Count
	Alias string // the AS name, or ""
	Pos   Pos    // where the item starts
}

// Root is the top-level part of a field.
type Root int

// The roots. Tags, Desired and Reported are JSON documents addressed by a
// path; the others are scalar columns.
const (
	DeviceID         Root = iota // deviceId
	ModuleID                     // moduleId
	Status                       // status
	ConnectionState              // connectionState
	LastActivityTime             // lastActivityTime
	ModelID                      // modelId
	Tags                         // tags[.path]
	Desired                      // properties.desired[.path]
	Reported                     // properties.reported[.path]
	DesiredVersion               // properties.desired.$version
	ReportedVersion              // properties.reported.$version

	// The roots of routing conditions (ParseCondition); queries never
	// have them.
	MsgSystem    // $name: a system property, named by Path[0]
	MsgApp       // name or $app.name: an application property, named by Path[0]
	MsgBody      // $body[.path]: the message body as JSON
	TwinTags     // $twin.tags[.path]: the sender's twin tags
	TwinDesired  // $twin.properties.desired[.path]
	TwinReported // $twin.properties.reported[.path]
)

var rootNames = [...]string{"deviceId", "moduleId", "status", "connectionState", "lastActivityTime",
	"modelId", "tags", "properties.desired", "properties.reported",
	"properties.desired.$version", "properties.reported.$version",
	"$", "$app", "$body", "$twin.tags", "$twin.properties.desired", "$twin.properties.reported"}

// String returns the root as written in a query.
func (r Root) String() string {
	if int(r) >= 0 && int(r) < len(rootNames) {
		return rootNames[r]
	}
	return "root(" + strconv.Itoa(int(r)) + ")"
}

// IsDocument reports whether the root is a JSON document that takes a path.
func (r Root) IsDocument() bool { return r == Tags || r == Desired || r == Reported }

// Field is a reference to a part of a twin: a root and, for a document
// root, a path of object keys below it.
type Field struct {
	Root Root
	Path []string // object keys below a document root; empty for the whole document
	Pos  Pos      // where the field starts
}

// String returns the field in canonical form.
func (f Field) String() string {
	var b strings.Builder
	f.write(&b)
	return b.String()
}

func (f Field) write(b *strings.Builder) {
	if f.Root == MsgSystem || f.Root == MsgApp {
		f.writeProperty(b)
		return
	}
	b.WriteString(f.Root.String())
	for _, k := range f.Path {
		if isPlainKey(k) {
			b.WriteByte('.')
			b.WriteString(k)
		} else {
			b.WriteByte('[')
			writeString(b, k)
			b.WriteByte(']')
		}
	}
}

// sameField reports whether a and b name the same field.
func sameField(a, b Field) bool {
	return a.Root == b.Root && slices.Equal(a.Path, b.Path)
}

// isPlainKey reports whether k can be written after a '.': letters, digits
// and '_' only.
func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !isIdentPart(r) {
			return false
		}
	}
	return true
}

// String returns the query in canonical form: keywords in upper case,
// strings single-quoted, minimal parentheses. Parsing the canonical form
// yields the same query.
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.Star {
		b.WriteString("*")
	}
	for i, it := range q.Select {
		if i > 0 {
			b.WriteString(", ")
		}
		if it.Count {
			b.WriteString("COUNT()")
		} else {
			it.Field.write(&b)
		}
		if it.Alias != "" {
			b.WriteString(" AS ")
			b.WriteString(it.Alias)
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(q.From.String())
	if q.Where != nil {
		b.WriteString(" WHERE ")
		q.Where.write(&b)
	}
	for i, f := range q.GroupBy {
		if i == 0 {
			b.WriteString(" GROUP BY ")
		} else {
			b.WriteString(", ")
		}
		f.write(&b)
	}
	for i, it := range q.OrderBy {
		if i == 0 {
			b.WriteString(" ORDER BY ")
		} else {
			b.WriteString(", ")
		}
		it.Field.write(&b)
		if it.Desc {
			b.WriteString(" DESC")
		}
	}
	return b.String()
}

// writeString writes s as a single-quoted literal.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				b.WriteString(`\u00`)
				b.WriteByte("0123456789abcdef"[r>>4])
				b.WriteByte("0123456789abcdef"[r&15])
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('\'')
}
