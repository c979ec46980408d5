// Package model is Ferry's IoT Plug and Play model repository: it parses and
// validates DTDL v2 and v3 interfaces, keeps them (Store), compiles a
// device's model with its components ([Model]) and checks what devices and
// operators send against it: telemetry ([Model.CheckTelemetry]), command
// requests ([Model.CheckCommand]) and the acknowledgement state of writable
// properties ([WritableStates]).
//
// A [Model] is also what a user interface renders a device from: its
// components, each with its telemetry (schema, semantic type, unit), its
// properties (writable or not) and its commands (request and response
// schemas), all in declaration order.
//
// # What is validated
//
// An interface is a JSON object with "@context" dtmi:dtdl:context;2 or ;3
// (v3 may list extension contexts after it), "@type" "Interface" and an
// "@id" that is a DTMI with a version. Its contents are Telemetry,
// Property, Command, Component and Relationship elements with unique
// names; schemas are the DTDL primitives (boolean, date, dateTime, double,
// duration, float, integer, long, string, time, and v3's byte, bytes,
// decimal, short, unsigned*, uuid), Object, Enum, Map and Array, or the
// @id of a schema defined in the interface's "schemas". "extends" names
// other interfaces whose contents are inherited. Unknown properties are
// refused. Every problem names the JSON path of the element, as
// $.contents[2].schema.fields[0].name.
package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Content kinds.
const (
	KindTelemetry    = "Telemetry"
	KindProperty     = "Property"
	KindCommand      = "Command"
	KindComponent    = "Component"
	KindRelationship = "Relationship"
)

// Complex schema kinds; a primitive schema's Kind is its name ("double").
const (
	SchemaObject = "Object"
	SchemaEnum   = "Enum"
	SchemaMap    = "Map"
	SchemaArray  = "Array"
)

// Interface is one DTDL interface.
type Interface struct {
	ID          string   `json:"id"`
	Version     int      `json:"dtdlVersion"` // 2 or 3
	DisplayName string   `json:"displayName,omitempty"`
	Description string   `json:"description,omitempty"`
	Extends     []string `json:"extends,omitempty"`
	// Contents are the interface's own elements in declaration order
	// (inherited ones are added by Compile).
	Contents []*Content `json:"contents"`
	// Source is the interface's DTDL as it was parsed.
	Source json.RawMessage `json:"-"`
}

// Content is one element of an interface.
type Content struct {
	Kind        string `json:"kind"` // KindTelemetry, KindProperty, ...
	Name        string `json:"name"`
	ID          string `json:"id,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Description string `json:"description,omitempty"`
	// SemanticTypes are the co-types beside the kind, e.g. "Temperature".
	SemanticTypes []string `json:"semanticTypes,omitempty"`
	Unit          string   `json:"unit,omitempty"` // e.g. "degreeCelsius"
	// Schema is the value's schema (Telemetry, Property).
	Schema   *Schema `json:"schema,omitempty"`
	Writable bool    `json:"writable,omitempty"` // Property
	// Request and Response are a command's payloads; nil when it has none.
	Request  *Payload `json:"request,omitempty"`
	Response *Payload `json:"response,omitempty"`
	// Interface is a component's interface DTMI.
	Interface string `json:"interface,omitempty"`
}

// Payload is a command's request or response.
type Payload struct {
	Name        string  `json:"name"`
	DisplayName string  `json:"displayName,omitempty"`
	Description string  `json:"description,omitempty"`
	Schema      *Schema `json:"schema"`
	Nullable    bool    `json:"nullable,omitempty"`
}

// Schema is a DTDL schema.
type Schema struct {
	Kind string `json:"kind"` // a primitive name, or SchemaObject, SchemaEnum, SchemaMap, SchemaArray
	ID   string `json:"id,omitempty"`
	// Fields of an Object.
	Fields []*Field `json:"fields,omitempty"`
	// ValueSchema ("integer" or "string") and EnumValues of an Enum.
	ValueSchema string       `json:"valueSchema,omitempty"`
	EnumValues  []*EnumValue `json:"enumValues,omitempty"`
	// MapKey (always string) and MapValue of a Map.
	MapKey   *Field `json:"mapKey,omitempty"`
	MapValue *Field `json:"mapValue,omitempty"`
	// ElementSchema of an Array.
	ElementSchema *Schema `json:"elementSchema,omitempty"`
}

// Field is an Object's field, or a Map's key or value.
type Field struct {
	Name        string  `json:"name"`
	DisplayName string  `json:"displayName,omitempty"`
	Schema      *Schema `json:"schema"`
}

// EnumValue is one value of an Enum.
type EnumValue struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	Value       any    `json:"enumValue"` // string or int64
}

// Problem is one thing wrong with a document: the JSON path of the element
// and what is wrong.
type Problem struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

func (p Problem) String() string { return p.Path + ": " + p.Msg }

// InvalidError lists the problems of a document that is not valid DTDL.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("invalid DTDL: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 8 {
			fmt.Fprintf(&b, "and %d more", len(e.Problems)-i)
			break
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Limits on a document.
const (
	MaxDocumentBytes = 1 << 20
	maxDepth         = 8 // complex schemas nested deeper are refused (DTDL v2 allows 5)
	maxContents      = 1000
)

var (
	// dtmiRE is DTDL's DTMI syntax: segments of letters, digits and
	// underscores (not ending in _), a version after ';'.
	dtmiRE    = regexp.MustCompile(`^dtmi:(?:_+[A-Za-z0-9]|[A-Za-z])(?:[A-Za-z0-9_]*[A-Za-z0-9])?(?::(?:_+[A-Za-z0-9]|[A-Za-z])(?:[A-Za-z0-9_]*[A-Za-z0-9])?)*(?:;[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,5})?)?$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?$`)
	primitive = map[string]int{ // the DTDL version that introduced each
		"boolean": 2, "date": 2, "dateTime": 2, "double": 2, "duration": 2, "float": 2,
		"integer": 2, "long": 2, "string": 2, "time": 2,
		"byte": 3, "bytes": 3, "decimal": 3, "short": 3, "unsignedByte": 3, "unsignedInteger": 3,
		"unsignedLong": 3, "unsignedShort": 3, "uuid": 3,
	}
)

// ValidDTMI reports whether s is a DTMI; withVersion also requires the
// ";N" version that interface ids must carry.
func ValidDTMI(s string, withVersion bool) bool {
	if len(s) > 2048 || !dtmiRE.MatchString(s) {
		return false
	}
	return !withVersion || strings.Contains(s, ";")
}

// Parse reads a DTDL document: one interface, or an array of interfaces
// (the expanded form of a model repository). It returns the interfaces, or
// an *InvalidError that lists every problem with its JSON path.
func Parse(data []byte) ([]*Interface, error) {
	if len(data) > MaxDocumentBytes {
		return nil, &InvalidError{[]Problem{{"$", fmt.Sprintf("the document is %d bytes; the limit is %d", len(data), MaxDocumentBytes)}}}
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, &InvalidError{[]Problem{{"$", "not JSON: " + err.Error()}}}
	}
	if dec.More() {
		return nil, &InvalidError{[]Problem{{"$", "not JSON: more than one value"}}}
	}
	p := &parser{}
	var out []*Interface
	switch v := doc.(type) {
	case []any:
		if len(v) == 0 {
			p.add("$", "an empty array holds no interface")
		}
		var raws []json.RawMessage
		_ = json.Unmarshal(data, &raws)
		for i, e := range v {
			if it := p.iface(fmt.Sprintf("$[%d]", i), e, 0); it != nil {
				if i < len(raws) {
					it.Source = compactJSON(raws[i])
				}
				out = append(out, it)
			}
		}
	default:
		if it := p.iface("$", v, 0); it != nil {
			it.Source = compactJSON(data)
			out = append(out, it)
		}
	}
	seen := map[string]bool{}
	for i, it := range out {
		if seen[it.ID] {
			p.add(fmt.Sprintf("$[%d].@id", i), "interface %s appears twice", it.ID)
		}
		seen[it.ID] = true
	}
	if len(p.problems) > 0 {
		return nil, &InvalidError{p.problems}
	}
	return out, nil
}

func compactJSON(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return append(json.RawMessage(nil), b...)
	}
	return buf.Bytes()
}

type parser struct {
	problems []Problem
	version  int
	schemas  map[string]*Schema // the current interface's "schemas", by @id
	pending  []pendingRef       // references to them, resolved at the end of the interface
}

type pendingRef struct {
	path string
	dst  **Schema
	id   string
}

func (p *parser) add(path, format string, args ...any) {
	if len(p.problems) < 100 {
		p.problems = append(p.problems, Problem{path, fmt.Sprintf(format, args...)})
	}
}

// object returns v as an object whose keys are all in allowed.
func (p *parser) object(path string, v any, what string, allowed ...string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		p.add(path, "%s must be a JSON object, not %s", what, jsonType(v))
		return nil
	}
	for _, k := range sortedKeys(m) {
		if !slices.Contains(allowed, k) {
			p.add(path+"."+k, "%s has no property %q", what, k)
		}
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// str reads an optional string property.
func (p *parser) str(path string, m map[string]any, key string) (string, bool) {
	v, ok := m[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		p.add(path+"."+key, "must be a string, not %s", jsonType(v))
		return "", false
	}
	return s, true
}

// text reads displayName or description: a string or a map from language
// code to string; the English (or first) text is kept.
func (p *parser) text(path string, m map[string]any, key string, limit int) string {
	v, ok := m[key]
	if !ok {
		return ""
	}
	switch t := v.(type) {
	case string:
		if len(t) > limit {
			p.add(path+"."+key, "is %d characters long; the limit is %d", len(t), limit)
		}
		return t
	case map[string]any:
		var first string
		for _, lang := range sortedKeys(t) {
			s, ok := t[lang].(string)
			if !ok {
				p.add(path+"."+key+"."+lang, "must be a string, not %s", jsonType(t[lang]))
				continue
			}
			if len(s) > limit {
				p.add(path+"."+key+"."+lang, "is %d characters long; the limit is %d", len(s), limit)
			}
			if first == "" || lang == "en" {
				first = s
			}
		}
		return first
	}
	p.add(path+"."+key, "must be a string or a map of language codes to strings, not %s", jsonType(v))
	return ""
}

// name reads a required element name.
func (p *parser) name(path string, m map[string]any) string {
	s, ok := p.str(path, m, "name")
	if !ok {
		if _, present := m["name"]; !present {
			p.add(path, "name is required")
		}
		return ""
	}
	limit := 64
	if p.version >= 3 {
		limit = 512
	}
	switch {
	case len(s) > limit:
		p.add(path+".name", "%q is longer than %d characters", s, limit)
	case !nameRE.MatchString(s):
		p.add(path+".name", "%q is not a DTDL name (a letter, then letters, digits and underscores, not ending in _)", s)
	}
	return s
}

// id reads an optional @id (a DTMI).
func (p *parser) id(path string, m map[string]any) string {
	s, ok := p.str(path, m, "@id")
	if ok && !ValidDTMI(s, false) {
		p.add(path+".@id", "%q is not a DTMI (dtmi:segment:segment;version)", s)
	}
	return s
}

// types returns the @type values of an element: a string or an array of
// strings.
func (p *parser) types(path string, m map[string]any) []string {
	v, ok := m["@type"]
	if !ok {
		return nil
	}
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				p.add(fmt.Sprintf("%s.@type[%d]", path, i), "must be a string, not %s", jsonType(e))
				continue
			}
			out = append(out, s)
		}
		return out
	}
	p.add(path+".@type", "must be a string or an array of strings, not %s", jsonType(v))
	return nil
}

var commonKeys = []string{"@id", "@type", "comment", "description", "displayName"}

func keys(extra ...string) []string { return append(slices.Clone(commonKeys), extra...) }

func (p *parser) context(path string, m map[string]any) int {
	v, ok := m["@context"]
	if !ok {
		p.add(path, "@context is required (dtmi:dtdl:context;2 or dtmi:dtdl:context;3)")
		return 0
	}
	var list []any
	switch t := v.(type) {
	case string:
		list = []any{t}
	case []any:
		list = t
	default:
		p.add(path+".@context", "must be a string or an array of strings, not %s", jsonType(v))
		return 0
	}
	version := 0
	for i, e := range list {
		s, ok := e.(string)
		switch {
		case !ok:
			p.add(fmt.Sprintf("%s.@context[%d]", path, i), "must be a string, not %s", jsonType(e))
		case s == "dtmi:dtdl:context;2":
			version = 2
		case s == "dtmi:dtdl:context;3":
			version = 3
		case strings.HasPrefix(s, "dtmi:dtdl:extension:") || strings.HasPrefix(s, "dtmi:iotcentral:context;"):
			// extension contexts: their co-types are kept as semantic types
		default:
			p.add(fmt.Sprintf("%s.@context[%d]", path, i), "%q is not a DTDL context (dtmi:dtdl:context;2 or ;3)", s)
		}
	}
	if version == 0 && len(p.problems) == 0 {
		p.add(path+".@context", "names no DTDL version (dtmi:dtdl:context;2 or dtmi:dtdl:context;3)")
	}
	return version
}

func (p *parser) iface(path string, v any, depth int) *Interface {
	m := p.object(path, v, "an interface", keys("@context", "contents", "extends", "schemas")...)
	if m == nil {
		return nil
	}
	before := len(p.problems)
	p.version = p.context(path, m)
	if p.version == 0 {
		p.version = 2
	}
	it := &Interface{Version: p.version}
	if t := p.types(path, m); len(t) != 1 || t[0] != "Interface" {
		p.add(path+".@type", "must be \"Interface\"")
	}
	id, ok := p.str(path, m, "@id")
	switch {
	case !ok:
		if _, present := m["@id"]; !present {
			p.add(path, "@id is required: the interface's DTMI, such as dtmi:com:example:Thermostat;1")
		}
	case !ValidDTMI(id, true):
		p.add(path+".@id", "%q is not a DTMI with a version (dtmi:com:example:Thermostat;1)", id)
	}
	it.ID = id
	it.DisplayName = p.text(path, m, "displayName", 512)
	it.Description = p.text(path, m, "description", 512)
	if e, ok := m["extends"]; ok {
		var list []any
		switch t := e.(type) {
		case string:
			list = []any{t}
		case []any:
			list = t
		default:
			p.add(path+".extends", "must be a DTMI or an array of DTMIs, not %s", jsonType(e))
		}
		for i, x := range list {
			s, ok := x.(string)
			if !ok || !ValidDTMI(s, true) {
				p.add(fmt.Sprintf("%s.extends[%d]", path, i), "must be an interface's DTMI (inline interfaces are not supported)")
				continue
			}
			it.Extends = append(it.Extends, s)
		}
	}
	p.schemas, p.pending = map[string]*Schema{}, nil
	if s, ok := m["schemas"]; ok {
		list, ok := s.([]any)
		if !ok {
			p.add(path+".schemas", "must be an array of schema definitions, not %s", jsonType(s))
		}
		for i, e := range list {
			sp := fmt.Sprintf("%s.schemas[%d]", path, i)
			sm, ok := e.(map[string]any)
			if !ok {
				p.add(sp, "must be a schema object with an @id, not %s", jsonType(e))
				continue
			}
			sid, ok := p.str(sp, sm, "@id")
			if !ok || sid == "" {
				p.add(sp, "a schema definition needs an @id")
				continue
			}
			if sch := p.schema(sp, e, 0); sch != nil {
				if p.schemas[sid] != nil {
					p.add(sp+".@id", "schema %s is defined twice", sid)
				}
				p.schemas[sid] = sch
			}
		}
	}
	if c, ok := m["contents"]; ok {
		list, ok := c.([]any)
		if !ok {
			p.add(path+".contents", "must be an array, not %s", jsonType(c))
		}
		if len(list) > maxContents {
			p.add(path+".contents", "has %d elements; the limit is %d", len(list), maxContents)
			list = list[:maxContents]
		}
		names := map[string]int{}
		for i, e := range list {
			cp := fmt.Sprintf("%s.contents[%d]", path, i)
			ct := p.content(cp, e, depth)
			if ct == nil {
				continue
			}
			if j, dup := names[ct.Name]; dup && ct.Name != "" {
				p.add(cp+".name", "%q is already the name of contents[%d]", ct.Name, j)
				continue
			}
			names[ct.Name] = i
			it.Contents = append(it.Contents, ct)
		}
	}
	for _, r := range p.pending {
		if s := p.schemas[r.id]; s != nil {
			*r.dst = s
		} else {
			p.add(r.path, "schema %q is neither a DTDL primitive nor defined in this interface's schemas", r.id)
		}
	}
	if len(p.problems) > before {
		return nil
	}
	return it
}

func (p *parser) content(path string, v any, depth int) *Content {
	m, ok := v.(map[string]any)
	if !ok {
		p.add(path, "a content element must be a JSON object, not %s", jsonType(v))
		return nil
	}
	types := p.types(path, m)
	c := &Content{}
	for _, t := range types {
		switch t {
		case KindTelemetry, KindProperty, KindCommand, KindComponent, KindRelationship:
			if c.Kind != "" {
				p.add(path+".@type", "names both %s and %s", c.Kind, t)
			}
			c.Kind = t
		default:
			c.SemanticTypes = append(c.SemanticTypes, t)
		}
	}
	if c.Kind == "" {
		p.add(path+".@type", "must name one of Telemetry, Property, Command, Component, Relationship")
		return nil
	}
	var allowed []string
	switch c.Kind {
	case KindTelemetry:
		allowed = keys("name", "schema", "unit")
	case KindProperty:
		allowed = keys("name", "schema", "unit", "writable")
	case KindCommand:
		allowed = keys("name", "request", "response", "commandType")
	case KindComponent:
		allowed = keys("name", "schema")
	case KindRelationship:
		allowed = keys("name", "maxMultiplicity", "minMultiplicity", "properties", "target", "writable")
	}
	if len(c.SemanticTypes) > 0 {
		allowed = append(allowed, "unit")
	}
	p.object(path, m, "a "+c.Kind, allowed...)
	c.Name = p.name(path, m)
	c.ID = p.id(path, m)
	c.DisplayName = p.text(path, m, "displayName", 512)
	c.Description = p.text(path, m, "description", 512)
	if u, ok := p.str(path, m, "unit"); ok {
		c.Unit = u
		if len(c.SemanticTypes) == 0 {
			p.add(path+".unit", "a unit needs a semantic type in @type, such as [\"%s\", \"Temperature\"]", c.Kind)
		}
	}
	switch c.Kind {
	case KindTelemetry, KindProperty:
		if s, ok := m["schema"]; ok {
			c.Schema = p.schemaRef(path+".schema", s, &c.Schema, 0)
		} else {
			p.add(path, "schema is required")
		}
		if c.Kind == KindProperty {
			if w, ok := m["writable"]; ok {
				b, ok := w.(bool)
				if !ok {
					p.add(path+".writable", "must be true or false, not %s", jsonType(w))
				}
				c.Writable = b
			}
		}
	case KindCommand:
		if ct, ok := m["commandType"]; ok && ct != "synchronous" && ct != "asynchronous" {
			p.add(path+".commandType", "must be \"synchronous\" or \"asynchronous\"")
		}
		if r, ok := m["request"]; ok {
			c.Request = p.payload(path+".request", r)
		}
		if r, ok := m["response"]; ok {
			c.Response = p.payload(path+".response", r)
		}
	case KindComponent:
		s, ok := m["schema"]
		if !ok {
			p.add(path, "schema is required: the component's interface DTMI")
			break
		}
		id, ok := s.(string)
		if !ok || !ValidDTMI(id, true) {
			p.add(path+".schema", "must be an interface's DTMI (inline interfaces are not supported)")
			break
		}
		c.Interface = id
	case KindRelationship:
		if t, ok := p.str(path, m, "target"); ok && !ValidDTMI(t, true) {
			p.add(path+".target", "%q is not an interface DTMI", t)
		}
	}
	return c
}

func (p *parser) payload(path string, v any) *Payload {
	m := p.object(path, v, "a command payload", keys("name", "schema", "nullable")...)
	if m == nil {
		return nil
	}
	if t := p.types(path, m); len(t) > 0 && (len(t) != 1 || (t[0] != "CommandPayload" && t[0] != "CommandRequest" && t[0] != "CommandResponse")) {
		p.add(path+".@type", "must be CommandPayload")
	}
	pl := &Payload{Name: p.name(path, m)}
	p.id(path, m)
	pl.DisplayName = p.text(path, m, "displayName", 512)
	pl.Description = p.text(path, m, "description", 512)
	if s, ok := m["schema"]; ok {
		pl.Schema = p.schemaRef(path+".schema", s, &pl.Schema, 0)
	} else {
		p.add(path, "schema is required")
	}
	if n, ok := m["nullable"]; ok {
		b, ok := n.(bool)
		if !ok {
			p.add(path+".nullable", "must be true or false")
		}
		if p.version < 3 {
			p.add(path+".nullable", "needs DTDL v3")
		}
		pl.Nullable = b
	}
	return pl
}

// schemaRef reads a schema that may be a primitive name, the @id of one of
// the interface's schemas (resolved later into *dst) or a complex schema.
func (p *parser) schemaRef(path string, v any, dst **Schema, depth int) *Schema {
	if s, ok := v.(string); ok {
		if ver, ok := primitive[s]; ok {
			if ver > p.version {
				p.add(path, "%q needs DTDL v%d", s, ver)
			}
			return &Schema{Kind: s}
		}
		if strings.HasPrefix(s, "dtmi:") {
			p.pending = append(p.pending, pendingRef{path, dst, s})
			return nil
		}
		p.add(path, "%q is not a DTDL schema (boolean, date, dateTime, double, duration, float, integer, long, string, time, or an Object, Enum, Map or Array)", s)
		return nil
	}
	return p.schema(path, v, depth)
}

func (p *parser) schema(path string, v any, depth int) *Schema {
	if depth >= maxDepth {
		p.add(path, "schemas nest more than %d levels deep", maxDepth)
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.add(path, "a schema must be a primitive name or a JSON object, not %s", jsonType(v))
		return nil
	}
	t := p.types(path, m)
	if len(t) != 1 {
		p.add(path+".@type", "must be one of Object, Enum, Map, Array")
		return nil
	}
	s := &Schema{Kind: t[0]}
	switch s.Kind {
	case SchemaObject:
		p.object(path, m, "an Object", keys("fields")...)
		list, ok := m["fields"].([]any)
		if !ok {
			p.add(path, "fields is required: an array of {name, schema}")
		}
		names := map[string]bool{}
		for i, f := range list {
			fp := fmt.Sprintf("%s.fields[%d]", path, i)
			fd := p.field(fp, f, depth)
			if fd == nil {
				continue
			}
			if names[fd.Name] {
				p.add(fp+".name", "%q is already a field of this object", fd.Name)
			}
			names[fd.Name] = true
			s.Fields = append(s.Fields, fd)
		}
	case SchemaEnum:
		p.object(path, m, "an Enum", keys("valueSchema", "enumValues")...)
		vs, _ := p.str(path, m, "valueSchema")
		if vs != "integer" && vs != "string" {
			p.add(path+".valueSchema", "must be \"integer\" or \"string\"")
		}
		s.ValueSchema = vs
		list, ok := m["enumValues"].([]any)
		if !ok || len(list) == 0 {
			p.add(path, "enumValues is required: an array of {name, enumValue}")
		}
		names := map[string]bool{}
		for i, e := range list {
			ep := fmt.Sprintf("%s.enumValues[%d]", path, i)
			em := p.object(ep, e, "an enum value", keys("name", "enumValue")...)
			if em == nil {
				continue
			}
			ev := &EnumValue{Name: p.name(ep, em), DisplayName: p.text(ep, em, "displayName", 512)}
			if names[ev.Name] {
				p.add(ep+".name", "%q is already an enum value's name", ev.Name)
			}
			names[ev.Name] = true
			switch x := em["enumValue"].(type) {
			case string:
				if vs == "integer" {
					p.add(ep+".enumValue", "must be an integer (valueSchema is integer)")
				}
				ev.Value = x
			case json.Number:
				n, err := x.Int64()
				if err != nil || vs == "string" {
					p.add(ep+".enumValue", "must be a %s (valueSchema is %s)", orString(vs), orString(vs))
				}
				ev.Value = n
			default:
				p.add(ep+".enumValue", "is required: a string or an integer")
			}
			s.EnumValues = append(s.EnumValues, ev)
		}
	case SchemaMap:
		p.object(path, m, "a Map", keys("mapKey", "mapValue")...)
		s.MapKey = p.field(path+".mapKey", m["mapKey"], depth)
		if s.MapKey != nil && (s.MapKey.Schema == nil || s.MapKey.Schema.Kind != "string") {
			p.add(path+".mapKey.schema", "must be \"string\"")
		}
		s.MapValue = p.field(path+".mapValue", m["mapValue"], depth)
	case SchemaArray:
		p.object(path, m, "an Array", keys("elementSchema")...)
		e, ok := m["elementSchema"]
		if !ok {
			p.add(path, "elementSchema is required")
			break
		}
		s.ElementSchema = p.schemaRef(path+".elementSchema", e, &s.ElementSchema, depth+1)
	default:
		p.add(path+".@type", "%q is not a complex schema (Object, Enum, Map, Array)", s.Kind)
		return nil
	}
	if id, ok := p.str(path, m, "@id"); ok && !ValidDTMI(id, false) {
		p.add(path+".@id", "%q is not a DTMI", id)
	} else {
		s.ID = id
	}
	return s
}

func orString(s string) string {
	if s == "" {
		return "value"
	}
	return s
}

func (p *parser) field(path string, v any, depth int) *Field {
	if v == nil {
		p.add(path, "is required: {name, schema}")
		return nil
	}
	m := p.object(path, v, "a field", keys("name", "schema")...)
	if m == nil {
		return nil
	}
	f := &Field{Name: p.name(path, m), DisplayName: p.text(path, m, "displayName", 512)}
	p.id(path, m)
	s, ok := m["schema"]
	if !ok {
		p.add(path, "schema is required")
		return f
	}
	f.Schema = p.schemaRef(path+".schema", s, &f.Schema, depth+1)
	return f
}

// formatEnum renders an enum value for messages.
func formatEnum(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return fmt.Sprint(v)
}
