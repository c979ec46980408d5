package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"reflect"
)

// object is a decoded JSON object. Numbers are json.Number, so integers keep
// their exact text through a merge.
type object = map[string]any

// jsonNumber is how decode returns numbers.
type jsonNumber = json.Number

// decode parses one JSON value. It refuses trailing data after the value.
func decode(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// decodeObject parses a JSON object; anything else is an error.
func decodeObject(data []byte) (object, error) {
	v, err := decode(data)
	if err != nil {
		return nil, err
	}
	o, ok := v.(object)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return o, nil
}

// encode returns v as compact JSON with sorted keys and without HTML
// escaping, so that the stored text, the size Azure counts and what SQL
// compares are the plain characters.
func encode(v any) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		// Only decoded JSON values reach encode; they always encode.
		panic("twin: encode: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// MergePatch applies the JSON merge patch (RFC 7396) patch to the JSON
// document target and returns the result: null deletes a key, objects merge
// recursively and any other value replaces. An empty target counts as null.
func MergePatch(target, patch []byte) ([]byte, error) {
	var t any
	if len(bytes.TrimSpace(target)) > 0 {
		var err error
		if t, err = decode(target); err != nil {
			return nil, err
		}
	}
	p, err := decode(patch)
	if err != nil {
		return nil, err
	}
	return encode(merge(t, p)), nil
}

// merge applies patch to target as RFC 7396 says. It modifies target's
// objects in place and returns the result.
func merge(target, patch any) any {
	p, ok := patch.(object)
	if !ok {
		return patch
	}
	t, ok := target.(object)
	if !ok {
		t = object{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = merge(t[k], v)
	}
	return t
}

// diff returns the merge patch that turns object from into object to, or
// nil when they are equal. Neither may hold null values.
func diff(from, to object) object {
	var d object
	set := func(k string, v any) {
		if d == nil {
			d = object{}
		}
		d[k] = v
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			set(k, nil)
		}
	}
	for k, tv := range to {
		fv, had := from[k]
		fo, fok := fv.(object)
		to, tok := tv.(object)
		switch {
		case had && fok && tok:
			if sub := diff(fo, to); sub != nil {
				set(k, sub)
			}
		case !had || !reflect.DeepEqual(fv, tv):
			set(k, tv)
		}
	}
	return d
}

// dropNulls removes null members from o and its nested objects: a document
// (unlike a patch) holds no nulls, since a merge never stores one.
func dropNulls(o object) {
	for k, v := range o {
		switch v := v.(type) {
		case nil:
			delete(o, k)
		case object:
			dropNulls(v)
		}
	}
}

// clone returns a deep copy of o's objects; other values are immutable.
func clone(o object) object {
	c := maps.Clone(o)
	for k, v := range c {
		if vo, ok := v.(object); ok {
			c[k] = clone(vo)
		}
	}
	return c
}
