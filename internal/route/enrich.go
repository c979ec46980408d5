package route

import (
	"strconv"
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/stream"
)

// enricher computes one enrichment's value for a message.
type enricher struct {
	key    string
	static string
	field  *accessor // nil for a static value
}

// compileEnrichment reads an enrichment: a value starting with '$' is a
// field ($twin.tags.site, $connectionDeviceId), anything else is static.
func compileEnrichment(e Enrichment) (enricher, error) {
	en := enricher{key: e.Key, static: e.Value}
	if !strings.HasPrefix(e.Value, "$") {
		return en, nil
	}
	x, err := query.ParseCondition("IS_DEFINED(" + e.Value + ")")
	if err != nil {
		return en, fault.Invalidf("value %q is neither static text nor a field such as $twin.tags.site", e.Value)
	}
	call, ok := x.(*query.Call)
	if !ok {
		return en, fault.Invalidf("value %q is not a field", e.Value)
	}
	var c Condition
	a, err := c.field(call.Field)
	if err != nil {
		return en, err
	}
	if a.root == query.MsgBody {
		return en, fault.Invalidf("value %q: enrichments take static text, $twin fields or system properties, not the body", e.Value)
	}
	en.field = &a
	return en, nil
}

// value returns the enrichment's value for in; ok is false when the field
// is absent (nothing is added then).
func (en *enricher) value(in *input) (string, bool) {
	if en.field == nil {
		return en.static, true
	}
	if en.field.root == query.MsgSystem || en.field.root == query.MsgApp {
		v := en.field.get(in)
		return v.s, v.ok
	}
	tags, desired, reported := in.twinDocs()
	doc := reported
	switch en.field.root {
	case query.TwinTags:
		doc = tags
	case query.TwinDesired:
		doc = desired
	}
	if doc == nil {
		return "", false
	}
	raw, ok := lookupJSON(doc, en.field.path)
	if !ok {
		return "", false
	}
	if len(raw) > 0 && raw[0] == '"' {
		s, ok := unquote(raw)
		return strings.Clone(s), ok
	}
	return string(raw), true
}

// enrich returns m's application properties with the enrichments added
// (replacing properties of the same name) and the route and hop count set.
func enrich(in *input, ens []enricher, routeName string, hops int) []stream.Property {
	props := make([]stream.Property, 0, len(in.m.Properties)+len(ens)+2)
	for _, p := range in.m.Properties {
		if p.Key == HopsProperty || p.Key == RouteProperty {
			continue
		}
		props = append(props, p)
	}
	set := func(k, v string) {
		for i := range props {
			if props[i].Key == k {
				props[i].Value = v
				return
			}
		}
		props = append(props, stream.Property{Key: k, Value: v})
	}
	for i := range ens {
		if v, ok := ens[i].value(in); ok {
			set(ens[i].key, v)
		}
	}
	set(RouteProperty, routeName)
	set(HopsProperty, strconv.Itoa(hops))
	return props
}
