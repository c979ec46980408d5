package console

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/ferry-iot/ferry/internal/registry"
)

// Models finds DTDL interfaces by their dtmi: the hub's model repository
// (internal/model). With none configured the device page has no
// model-driven view.
type Models interface {
	Model(ctx context.Context, id string) (json.RawMessage, error)
}

// maxModelInterfaces bounds the interfaces one model view resolves (the
// device's interface and the interfaces of its components).
const maxModelInterfaces = 32

// modelView is the answer of /console/data/model?id=dtmi:...: the device's
// interface and every interface its components name, by dtmi.
type modelView struct {
	Root       string                     `json:"root"`
	Interfaces map[string]json.RawMessage `json:"interfaces"`
	Missing    []string                   `json:"missing,omitempty"` // component interfaces the repository lacks
}

// modelData serves a model and its components' interfaces for the device
// page's model-driven view.
func (c *Console) modelData(w http.ResponseWriter, r *http.Request) {
	if !sessionFrom(r.Context()).can(registry.RegistryRead) {
		writeProblem(w, http.StatusForbidden, "models need the RegistryRead permission")
		return
	}
	if c.cfg.Models == nil {
		writeProblem(w, http.StatusNotFound, "this hub has no model repository")
		return
	}
	root := r.URL.Query().Get("id")
	doc, err := c.cfg.Models.Model(r.Context(), root)
	if err != nil {
		writeProblem(w, http.StatusNotFound, "the model repository has no "+root)
		return
	}
	v := modelView{Root: root, Interfaces: map[string]json.RawMessage{root: doc}}
	queue := componentSchemas(doc)
	for len(queue) > 0 && len(v.Interfaces) < maxModelInterfaces {
		id := queue[0]
		queue = queue[1:]
		if _, ok := v.Interfaces[id]; ok {
			continue
		}
		d, err := c.cfg.Models.Model(r.Context(), id)
		if err != nil {
			v.Missing = append(v.Missing, id)
			continue
		}
		v.Interfaces[id] = d
		queue = append(queue, componentSchemas(d)...)
	}
	writeJSON(w, v)
}

// componentSchemas returns the interface ids that doc's components name.
func componentSchemas(doc json.RawMessage) []string {
	var iface struct {
		Contents []struct {
			Type   json.RawMessage `json:"@type"`
			Schema json.RawMessage `json:"schema"`
		} `json:"contents"`
	}
	if json.Unmarshal(doc, &iface) != nil {
		return nil
	}
	var out []string
	for _, c := range iface.Contents {
		var s string
		if hasType(c.Type, "Component") && json.Unmarshal(c.Schema, &s) == nil && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// hasType reports whether a DTDL @type (a string or an array of strings)
// includes t.
func hasType(raw json.RawMessage, t string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == t
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, s := range many {
			if s == t {
				return true
			}
		}
	}
	return false
}
