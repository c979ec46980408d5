// Package schema keeps the protobuf schemas devices' binary messages are
// written in, so the hub can read them: a schema is a FileDescriptorSet
// (protoc --descriptor_set_out, with --include_imports) registered under the
// message type name devices put in their proto-type property. Decoding
// (dynamicpb, then protojson with the .proto field names) gives routing
// conditions and ferry monitor a JSON view of a body; the stored bytes are
// never changed.
package schema

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Schema is one registered message type.
type Schema struct {
	// Name is what messages carry in their proto-type property.
	Name string `json:"name"`
	// Message is the full name of the message in the descriptor set;
	// default: the one message whose full or short name is Name.
	Message string `json:"message"`
	// Descriptor is the serialized FileDescriptorSet.
	Descriptor []byte    `json:"descriptorSet"`
	Created    time.Time `json:"created,omitzero"`
}

// Store keeps schemas. internal/store/sqlite implements it.
type Store interface {
	PutSchema(ctx context.Context, s *Schema) error
	ListSchemas(ctx context.Context) ([]Schema, error)
	DeleteSchema(ctx context.Context, name string) error // unknown name: fault.NotFound
}

// MaxDescriptorBytes bounds a descriptor set.
const MaxDescriptorBytes = 4 << 20

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]{0,254}$`)

// Registry decodes messages by registered type name. It is safe for
// concurrent use; lookups do not lock.
type Registry struct {
	store Store
	now   func() time.Time
	mu    sync.Mutex                                // serialises writes
	types atomic.Pointer[map[string]compiledSchema] // by Name
}

type compiledSchema struct {
	Schema
	md protoreflect.MessageDescriptor
}

// New loads the registered schemas from store.
func New(ctx context.Context, store Store, now func() time.Time) (*Registry, error) {
	if now == nil {
		now = time.Now
	}
	r := &Registry{store: store, now: now}
	return r, r.reload(ctx)
}

func (r *Registry) reload(ctx context.Context) error {
	list, err := r.store.ListSchemas(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]compiledSchema, len(list))
	for _, s := range list {
		md, full, err := compile(s.Descriptor, s.Name, s.Message)
		if err != nil {
			continue // a set that no longer compiles is skipped, not fatal
		}
		s.Message = full
		m[s.Name] = compiledSchema{Schema: s, md: md}
	}
	r.types.Store(&m)
	return nil
}

// compile finds the message type in a descriptor set.
func compile(set []byte, name, message string) (protoreflect.MessageDescriptor, string, error) {
	var fds descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(set, &fds); err != nil {
		return nil, "", fault.Invalidf("schema %s: not a FileDescriptorSet: %v", name, err)
	}
	files, err := protodesc.NewFiles(&fds)
	if err != nil {
		return nil, "", fault.Invalidf("schema %s: descriptor set: %v (build it with protoc --include_imports)", name, err)
	}
	want := message
	if want == "" {
		want = name
	}
	var found []protoreflect.MessageDescriptor
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		walkMessages(fd.Messages(), func(md protoreflect.MessageDescriptor) {
			if string(md.FullName()) == want || (message == "" && string(md.Name()) == want) {
				found = append(found, md)
			}
		})
		return true
	})
	switch len(found) {
	case 0:
		return nil, "", fault.Invalidf("schema %s: the descriptor set has no message %s", name, want)
	case 1:
		return found[0], string(found[0].FullName()), nil
	}
	return nil, "", fault.Invalidf("schema %s: several messages are called %s; name one with its full name", name, want)
}

func walkMessages(ms protoreflect.MessageDescriptors, fn func(protoreflect.MessageDescriptor)) {
	for i := 0; i < ms.Len(); i++ {
		fn(ms.Get(i))
		walkMessages(ms.Get(i).Messages(), fn)
	}
}

// Add registers (or replaces) a schema after checking that it compiles.
func (r *Registry) Add(ctx context.Context, s Schema) (*Schema, error) {
	if !nameRE.MatchString(s.Name) {
		return nil, fault.Invalidf("schema name %q: use letters, digits, '_' and '.', starting with a letter or '_'", s.Name)
	}
	if len(s.Descriptor) == 0 || len(s.Descriptor) > MaxDescriptorBytes {
		return nil, fault.Invalidf("schema %s: give a descriptor set of 1 byte to %d bytes", s.Name, MaxDescriptorBytes)
	}
	_, full, err := compile(s.Descriptor, s.Name, s.Message)
	if err != nil {
		return nil, err
	}
	s.Message, s.Created = full, r.now().UTC()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.PutSchema(ctx, &s); err != nil {
		return nil, err
	}
	return &s, r.reload(ctx)
}

// List returns the registered schemas by name, without their descriptors.
func (r *Registry) List() []Schema {
	out := r.ListWithDescriptors()
	for i := range out {
		out[i].Descriptor = nil
	}
	return out
}

// ListWithDescriptors returns the registered schemas by name.
func (r *Registry) ListWithDescriptors() []Schema {
	m := *r.types.Load()
	out := make([]Schema, 0, len(m))
	for _, s := range m {
		out = append(out, s.Schema)
	}
	sortByName(out)
	return out
}

// NewDecoder returns a Registry that only decodes, holding list in memory
// (ferry monitor builds one from the hub's schemas).
func NewDecoder(list []Schema) *Registry {
	m := make(map[string]compiledSchema, len(list))
	for _, s := range list {
		if md, full, err := compile(s.Descriptor, s.Name, s.Message); err == nil {
			s.Message = full
			m[s.Name] = compiledSchema{Schema: s, md: md}
		}
	}
	r := &Registry{now: time.Now}
	r.types.Store(&m)
	return r
}

// Delete removes a schema.
func (r *Registry) Delete(ctx context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.DeleteSchema(ctx, name); err != nil {
		return err
	}
	return r.reload(ctx)
}

// Errors of DecodeJSON.
var (
	ErrUnknownType = fault.New(fault.NotFound, "SchemaNotFound", 404001, "schema: no schema is registered for this proto-type")
)

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// DecodeJSON decodes data as the registered type name and renders it as
// JSON with the .proto field names, unset fields included (so
// $body.alarm_active = false holds for a proto3 false). An unknown type is
// ErrUnknownType; bytes that are not a valid message of the type fail.
func (r *Registry) DecodeJSON(name string, data []byte) ([]byte, error) {
	s, ok := (*r.types.Load())[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownType, name)
	}
	msg := dynamicpb.NewMessage(s.md)
	if err := proto.Unmarshal(data, msg); err != nil {
		return nil, fmt.Errorf("schema: %s: undecodable: %w", name, err)
	}
	return jsonOpts.Marshal(msg)
}
