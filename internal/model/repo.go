package model

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Stored is one interface as the store keeps it.
type Stored struct {
	ID      string
	Doc     json.RawMessage // the interface's DTDL
	Created time.Time
}

// Store keeps interfaces; internal/store/sqlite implements it.
type Store interface {
	PutModel(ctx context.Context, m Stored) error // ExistsError when the id is taken
	ListModels(ctx context.Context) ([]Stored, error)
	DeleteModel(ctx context.Context, id string) error // NotFoundError when unknown
}

// ExistsError is the error for an interface id that is taken.
func ExistsError(id string) error {
	return fault.New(fault.Conflict, "ModelAlreadyExists", 409001,
		"model %s exists with other contents; DTDL interfaces are immutable: give the new one a new version (;N) or delete the old one first", id)
}

// NotFoundError is the error for an unknown interface.
func NotFoundError(id string) error {
	return fault.New(fault.NotFound, "ModelNotFound", 404001, "model %s is not in the repository", id)
}

// Summary describes a stored interface.
type Summary struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"displayName,omitempty"`
	Description string    `json:"description,omitempty"`
	DTDLVersion int       `json:"dtdlVersion"`
	Telemetry   int       `json:"telemetry"`
	Properties  int       `json:"properties"`
	Commands    int       `json:"commands"`
	Components  []string  `json:"components,omitempty"` // "name=dtmi"
	Extends     []string  `json:"extends,omitempty"`
	Created     time.Time `json:"created"`
}

// Details is one interface with its DTDL and, when it compiles with the
// repository's interfaces, its compiled model.
type Details struct {
	Summary
	Interface    *Interface      `json:"interface"`
	Model        *Model          `json:"model,omitempty"`
	CompileError string          `json:"compileError,omitempty"` // why Model is missing
	DTDL         json.RawMessage `json:"dtdl"`
}

type entry struct {
	it      *Interface
	created time.Time
}

// Repository is the hub's model repository: the interfaces in the store,
// parsed once, and compiled models cached by root DTMI. It is safe for
// concurrent use.
type Repository struct {
	store Store
	now   func() time.Time

	mu       sync.RWMutex
	byID     map[string]*entry
	compiled map[string]compiled // root DTMI -> model or error; cleared on every change
	changes  []func()
}

type compiled struct {
	m   *Model
	err error
}

// NewRepository loads the stored interfaces.
func NewRepository(ctx context.Context, store Store, now func() time.Time) (*Repository, error) {
	if now == nil {
		now = time.Now
	}
	r := &Repository{store: store, now: now, byID: map[string]*entry{}, compiled: map[string]compiled{}}
	list, err := store.ListModels(ctx)
	if err != nil {
		return nil, fmt.Errorf("model: load: %w", err)
	}
	for _, s := range list {
		its, err := Parse(s.Doc)
		if err != nil || len(its) != 1 {
			return nil, fmt.Errorf("model: stored interface %s does not parse: %v", s.ID, err)
		}
		r.byID[s.ID] = &entry{its[0], s.Created}
	}
	return r, nil
}

// Len returns the number of interfaces in the repository.
func (r *Repository) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

// OnChange registers fn to run after every add or delete (after the
// compiled models were forgotten).
func (r *Repository) OnChange(fn func()) {
	r.mu.Lock()
	r.changes = append(r.changes, fn)
	r.mu.Unlock()
}

func (r *Repository) changed() {
	r.mu.Lock()
	clear(r.compiled)
	fns := slices.Clone(r.changes)
	r.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Add parses a DTDL document (one interface or an array of them) and keeps
// its interfaces. An interface already stored with the same DTDL is
// accepted again (adding is idempotent); one with other contents is
// refused, as DTDL versions are immutable. Invalid DTDL is fault.Invalid
// with every problem's JSON path.
func (r *Repository) Add(ctx context.Context, doc []byte) ([]Summary, error) {
	its, err := Parse(doc)
	if err != nil {
		var inv *InvalidError
		if errors.As(err, &inv) {
			return nil, fault.New(fault.Invalid, "InvalidModel", 400001, "%s", err.Error())
		}
		return nil, err
	}
	var out []Summary
	added := false
	for _, it := range its {
		r.mu.RLock()
		old := r.byID[it.ID]
		r.mu.RUnlock()
		if old != nil {
			if !bytes.Equal(old.it.Source, it.Source) {
				return out, ExistsError(it.ID)
			}
			out = append(out, summary(old.it, old.created))
			continue
		}
		now := r.now().UTC()
		if err := r.store.PutModel(ctx, Stored{ID: it.ID, Doc: it.Source, Created: now}); err != nil {
			return out, err
		}
		r.mu.Lock()
		r.byID[it.ID] = &entry{it, now}
		r.mu.Unlock()
		added = true
		out = append(out, summary(it, now))
	}
	if added {
		r.changed()
	}
	return out, nil
}

// Delete removes an interface. Models that use it stop compiling until it
// is added again.
func (r *Repository) Delete(ctx context.Context, id string) error {
	if err := r.store.DeleteModel(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.byID, id)
	r.mu.Unlock()
	r.changed()
	return nil
}

// List summarizes every interface, ordered by id.
func (r *Repository) List() []Summary {
	r.mu.RLock()
	out := make([]Summary, 0, len(r.byID))
	for _, e := range r.byID {
		out = append(out, summary(e.it, e.created))
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Summary) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Get returns one interface with its DTDL and its compiled model.
func (r *Repository) Get(id string) (*Details, error) {
	r.mu.RLock()
	e := r.byID[id]
	r.mu.RUnlock()
	if e == nil {
		return nil, NotFoundError(id)
	}
	d := &Details{Summary: summary(e.it, e.created), Interface: e.it, DTDL: e.it.Source}
	m, err := r.Model(id)
	if err != nil {
		d.CompileError = err.Error()
	} else {
		d.Model = m
	}
	return d, nil
}

// Model returns the compiled model of a root DTMI (cached until the
// repository changes). An unknown DTMI is fault.NotFound.
func (r *Repository) Model(id string) (*Model, error) {
	r.mu.RLock()
	c, ok := r.compiled[id]
	r.mu.RUnlock()
	if ok {
		return c.m, c.err
	}
	r.mu.RLock()
	if r.byID[id] == nil {
		r.mu.RUnlock()
		return nil, NotFoundError(id)
	}
	m, err := Compile(id, func(x string) *Interface {
		if e := r.byID[x]; e != nil {
			return e.it
		}
		return nil
	})
	r.mu.RUnlock()
	if err != nil {
		err = fault.New(fault.Conflict, "ModelIncomplete", 409002, "%s", err.Error())
	}
	r.mu.Lock()
	r.compiled[id] = compiled{m, err}
	r.mu.Unlock()
	return m, err
}

func summary(it *Interface, created time.Time) Summary {
	s := Summary{ID: it.ID, DisplayName: it.DisplayName, Description: it.Description, DTDLVersion: it.Version,
		Extends: it.Extends, Created: created}
	for _, c := range it.Contents {
		switch c.Kind {
		case KindTelemetry:
			s.Telemetry++
		case KindProperty:
			s.Properties++
		case KindCommand:
			s.Commands++
		case KindComponent:
			s.Components = append(s.Components, c.Name+"="+c.Interface)
		}
	}
	return s
}
