package model

import (
	"fmt"
	"strings"
)

// Model is a device's compiled model: its root interface with inherited
// contents, and its components resolved to their interfaces. It is
// immutable and safe for concurrent use.
type Model struct {
	ID string `json:"id"`
	// Default is the root interface's own component: its telemetry,
	// properties and commands (Name "").
	Default *Component `json:"default"`
	// Components are the root interface's components, in declaration order.
	Components []*Component `json:"components"`
}

// Component is one component of a model (or the default component): the
// contents of its interface by kind, in declaration order.
type Component struct {
	Name        string     `json:"name"` // "" for the default component
	Interface   string     `json:"interface"`
	DisplayName string     `json:"displayName,omitempty"`
	Description string     `json:"description,omitempty"`
	Telemetry   []*Content `json:"telemetry"`
	Properties  []*Content `json:"properties"`
	Commands    []*Content `json:"commands"`
}

// Resolver returns the interface with a DTMI, or nil.
type Resolver func(id string) *Interface

// Compile builds the model of root from the interfaces resolve knows. Every
// component's interface and every extended interface must be known.
func Compile(root string, resolve Resolver) (*Model, error) {
	it := resolve(root)
	if it == nil {
		return nil, fmt.Errorf("model %s is not in the repository", root)
	}
	m := &Model{ID: root}
	def, comps, err := flatten(it, resolve, 0)
	if err != nil {
		return nil, err
	}
	m.Default = component("", it, def)
	for _, c := range comps {
		sub := resolve(c.Interface)
		if sub == nil {
			return nil, fmt.Errorf("model %s: component %s's interface %s is not in the repository", root, c.Name, c.Interface)
		}
		contents, nested, err := flatten(sub, resolve, 0)
		if err != nil {
			return nil, err
		}
		if len(nested) > 0 {
			return nil, fmt.Errorf("model %s: component %s's interface %s has components of its own (Plug and Play allows one level)", root, c.Name, c.Interface)
		}
		cc := component(c.Name, sub, contents)
		if c.DisplayName != "" {
			cc.DisplayName = c.DisplayName
		}
		m.Components = append(m.Components, cc)
	}
	return m, nil
}

// flatten returns an interface's contents with the ones it inherits
// (extends, depth-first, before its own), components apart.
func flatten(it *Interface, resolve Resolver, depth int) (contents, comps []*Content, err error) {
	if depth > 10 {
		return nil, nil, fmt.Errorf("interface %s: extends nests more than 10 levels (a cycle?)", it.ID)
	}
	seen := map[string]string{}
	addAll := func(from string, list []*Content) error {
		for _, c := range list {
			if prev, dup := seen[c.Name]; dup {
				return fmt.Errorf("interface %s: %q is declared by both %s and %s", it.ID, c.Name, prev, from)
			}
			seen[c.Name] = from
			if c.Kind == KindComponent {
				comps = append(comps, c)
			} else {
				contents = append(contents, c)
			}
		}
		return nil
	}
	for _, base := range it.Extends {
		b := resolve(base)
		if b == nil {
			return nil, nil, fmt.Errorf("interface %s extends %s, which is not in the repository", it.ID, base)
		}
		bc, bcomps, err := flatten(b, resolve, depth+1)
		if err != nil {
			return nil, nil, err
		}
		if err := addAll(base, append(bc, bcomps...)); err != nil {
			return nil, nil, err
		}
	}
	if err := addAll(it.ID, it.Contents); err != nil {
		return nil, nil, err
	}
	return contents, comps, nil
}

func component(name string, it *Interface, contents []*Content) *Component {
	c := &Component{Name: name, Interface: it.ID, DisplayName: it.DisplayName, Description: it.Description,
		Telemetry: []*Content{}, Properties: []*Content{}, Commands: []*Content{}}
	for _, x := range contents {
		switch x.Kind {
		case KindTelemetry:
			c.Telemetry = append(c.Telemetry, x)
		case KindProperty:
			c.Properties = append(c.Properties, x)
		case KindCommand:
			c.Commands = append(c.Commands, x)
		}
	}
	return c
}

// Component returns the component called name ("" for the default
// component), or nil.
func (m *Model) Component(name string) *Component {
	if name == "" {
		return m.Default
	}
	for _, c := range m.Components {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func find(list []*Content, name string) *Content {
	for _, c := range list {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Telemetry returns a component's telemetry element, or nil.
func (c *Component) TelemetryNamed(name string) *Content { return find(c.Telemetry, name) }

// Property returns a component's property, or nil.
func (c *Component) Property(name string) *Content { return find(c.Properties, name) }

// Command returns a component's command, or nil.
func (c *Component) Command(name string) *Content { return find(c.Commands, name) }

// CommandSeparator joins a component and a command in a method name, as
// Plug and Play devices receive it: "thermostat1*getMaxMinReport".
const CommandSeparator = "*"

// Command returns the command a direct method name invokes: "name" on the
// default component, "component*name" on a component. ok is false when the
// model has no such command.
func (m *Model) Command(method string) (component string, cmd *Content, ok bool) {
	comp, name, found := strings.Cut(method, CommandSeparator)
	if !found {
		comp, name = "", method
	}
	c := m.Component(comp)
	if c == nil {
		return comp, nil, false
	}
	cmd = c.Command(name)
	return comp, cmd, cmd != nil
}

// Writable is a writable property with its component.
type Writable struct {
	Component string
	*Content
}

// Writables lists the model's writable properties: the default component's
// first, then each component's, in declaration order.
func (m *Model) Writables() []Writable {
	var out []Writable
	for _, c := range append([]*Component{m.Default}, m.Components...) {
		for _, p := range c.Properties {
			if p.Writable {
				out = append(out, Writable{c.Name, p})
			}
		}
	}
	return out
}

// Interfaces lists the DTMIs a model uses (root, components, without
// extended ones).
func (m *Model) Interfaces() []string {
	out := []string{m.ID}
	for _, c := range m.Components {
		out = append(out, c.Interface)
	}
	return out
}
