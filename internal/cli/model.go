package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/model"
)

// modelNoun is "ferry model": the hub's IoT Plug and Play model repository.
func modelNoun() *noun {
	return &noun{
		name:    "model",
		summary: "keep IoT Plug and Play models (DTDL v2/v3 interfaces) that devices announce",
		verbs:   []*command{modelAdd(), modelList(), modelShow(), modelDelete()},
		examples: `  ferry model add examples/thermostat/models
  ferry model list
  ferry model show 'dtmi:ferry:example:TemperatureController;1'
  ferry device list --model 'dtmi:ferry:example:TemperatureController;1'
  ferry pnp show thermostat-1

A device announces its model with model-id in its MQTT username (or in its
DPS registration); the twin shows it as modelId. With the model in the
repository the hub checks the device's telemetry against it (mismatches are
stored all the same, marked in ferry monitor and counted on /metrics),
refuses command payloads that do not fit a command's request schema, and
ferry pnp show lists each writable property's acknowledgement.
`,
	}
}

func modelAdd() *command {
	return &command{
		path: "model add", args: "FILE.json|DIR", nargs: 1,
		summary: "add the DTDL interfaces of a file, or of every .json file in a directory",
		help: `A file holds one interface or an array of interfaces. Invalid DTDL is
refused with the JSON path of every problem. Adding an interface that is
already stored with the same DTDL does nothing; DTDL interfaces are
immutable, so one with other contents must get a new version (;2).
Components and extended interfaces may be added in any order: a model is
compiled when it is used.

Examples:
  ferry model add examples/thermostat/models
  ferry model add TemperatureController.json --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the added interfaces as a JSON array")
			return func(ctx context.Context, e *env, args []string) error {
				files, err := dtdlFiles(args[0])
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				all := []model.Summary{}
				for _, f := range files {
					b, err := os.ReadFile(f)
					if err != nil {
						return usagef("%v", err)
					}
					list, err := c.AddModels(ctx, b)
					if err != nil {
						return fmt.Errorf("%s: %w", f, err)
					}
					all = append(all, list...)
					if !*asJSON {
						for _, s := range list {
							fmt.Fprintf(e.stderr, "Added %s (%s) from %s.\n", s.ID, describeSummary(s), f)
						}
					}
				}
				if *asJSON {
					return writeJSON(e.stdout, all)
				}
				return nil
			}
		},
	}
}

// dtdlFiles returns the file, or the .json files of the directory in name
// order.
func dtdlFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.json"))
	if err != nil {
		return nil, usagef("%v", err)
	}
	if len(files) == 0 {
		return nil, usagef("%s holds no .json files", path)
	}
	slices.Sort(files)
	return files, nil
}

func describeSummary(s model.Summary) string {
	parts := []string{fmt.Sprintf("DTDL v%d", s.DTDLVersion)}
	for _, c := range []struct {
		n    int
		what string
	}{{s.Telemetry, "telemetry"}, {s.Properties, "properties"}, {s.Commands, "commands"}, {len(s.Components), "components"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

func modelList() *command {
	return listCommand(command{path: "model list", summary: "list the interfaces in the repository"},
		"ID\tNAME\tDTDL\tTELEMETRY\tPROPERTIES\tCOMMANDS\tCOMPONENTS", (*api.Client).Models,
		func(w io.Writer, s *model.Summary) {
			fmt.Fprintf(w, "%s\t%s\tv%d\t%d\t%d\t%d\t%d\n", s.ID, orDash(s.DisplayName), s.DTDLVersion, s.Telemetry, s.Properties, s.Commands, len(s.Components))
		})
}

func modelShow() *command {
	return &command{
		path: "model show", args: "DTMI", nargs: 1,
		summary: "show an interface: its components, telemetry (with units), properties and commands",
		help: `Shows the model as the hub compiles it, with the interfaces of its
components; --json prints the parsed interface, the compiled model and the
DTDL as stored, --dtdl only the DTDL.

Example:
  ferry model show 'dtmi:ferry:example:TemperatureController;1'`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the interface, its compiled model and its DTDL as JSON")
			dtdl := fs.Bool("dtdl", false, "print the DTDL as stored")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				d, err := c.Model(ctx, args[0])
				if err != nil {
					return err
				}
				switch {
				case *dtdl:
					return writeJSON(e.stdout, d.DTDL)
				case *asJSON:
					return writeJSON(e.stdout, d)
				}
				fmt.Fprintf(e.stdout, "%s  %s (DTDL v%d)\n", d.ID, d.DisplayName, d.DTDLVersion)
				if d.Description != "" {
					fmt.Fprintf(e.stdout, "  %s\n", d.Description)
				}
				if d.Model == nil {
					fmt.Fprintf(e.stdout, "\nThe model does not compile yet: %s\n", d.CompileError)
					return nil
				}
				printModel(e.stdout, d.Model)
				return nil
			}
		},
	}
}

func printModel(w io.Writer, m *model.Model) {
	for _, c := range append([]*model.Component{m.Default}, m.Components...) {
		if c.Name == "" {
			fmt.Fprintf(w, "\ndefault component\n")
		} else {
			fmt.Fprintf(w, "\ncomponent %s: %s\n", c.Name, c.Interface)
		}
		t := newTable(w)
		for _, x := range c.Telemetry {
			fmt.Fprintf(t, "  telemetry\t%s\t%s\t%s\n", x.Name, schemaName(x.Schema), unitOf(x))
		}
		for _, x := range c.Properties {
			kind := "property"
			if x.Writable {
				kind = "writable property"
			}
			fmt.Fprintf(t, "  %s\t%s\t%s\t%s\n", kind, x.Name, schemaName(x.Schema), unitOf(x))
		}
		for _, x := range c.Commands {
			name := x.Name
			if c.Name != "" {
				name = c.Name + model.CommandSeparator + x.Name
			}
			req, resp := "-", "-"
			if x.Request != nil {
				req = x.Request.Name + " " + schemaName(x.Request.Schema)
			}
			if x.Response != nil {
				resp = x.Response.Name + " " + schemaName(x.Response.Schema)
			}
			fmt.Fprintf(t, "  command\t%s\t(%s) -> %s\t\n", name, req, resp)
		}
		_ = t.Flush()
	}
}

func unitOf(c *model.Content) string {
	parts := slices.Clone(c.SemanticTypes)
	if c.Unit != "" {
		parts = append(parts, c.Unit)
	}
	return strings.Join(parts, " ")
}

// schemaName renders a schema in one short line: double, Object{a,b},
// Enum(string), Map<string,double>, Array<integer>.
func schemaName(s *model.Schema) string {
	if s == nil {
		return "?"
	}
	switch s.Kind {
	case model.SchemaObject:
		names := make([]string, len(s.Fields))
		for i, f := range s.Fields {
			names[i] = f.Name
		}
		return "Object{" + strings.Join(names, ",") + "}"
	case model.SchemaEnum:
		return "Enum(" + s.ValueSchema + ")"
	case model.SchemaMap:
		if s.MapValue != nil {
			return "Map<string," + schemaName(s.MapValue.Schema) + ">"
		}
		return "Map"
	case model.SchemaArray:
		return "Array<" + schemaName(s.ElementSchema) + ">"
	}
	return s.Kind
}

func modelDelete() *command {
	return &command{
		path: "model delete", args: "DTMI", nargs: 1,
		summary: "remove an interface (models that use it stop compiling until it is added again)",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				if err := c.DeleteModel(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Deleted %s.\n", args[0])
				return nil
			}
		},
	}
}
