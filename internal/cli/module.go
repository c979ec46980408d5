package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// moduleNoun is "ferry module": module identities, each belonging to a device.
func moduleNoun() *noun {
	return &noun{
		name:    "module",
		summary: "manage module identities: separately authenticated clients of a device",
		verbs:   []*command{moduleCreate(), moduleList(), moduleShow(), moduleDelete(), moduleConnectionString()},
		examples: `  ferry module create edge-1 sensor
  ferry module list edge-1
  ferry module show edge-1 sensor --json | jq -r .authentication.symmetricKey.primaryKey
  ferry module connection-string edge-1 sensor
  ferry module delete edge-1 sensor
`,
	}
}

func moduleCreate() *command {
	return &command{
		path: "module create", args: "DEVICE MODULE", nargs: 2,
		summary: "register a new module of an existing device",
		help: `The hub generates the module's symmetric keys unless both are given. An
unknown device fails with exit code 3, a module id the device has already
with exit code 5.

Example:
  ferry module create edge-1 sensor
  ferry module create edge-1 filter --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			primary := fs.String("primary-key", "", "base64 primary symmetric `KEY` (default: generated)")
			secondary := fs.String("secondary-key", "", "base64 secondary symmetric `KEY` (default: generated)")
			asJSON := fs.Bool("json", false, "print the module as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				if err := checkKeys(*primary, *secondary); err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				m, err := c.CreateModule(ctx, registry.Module{
					DeviceID: args[0],
					ModuleID: args[1],
					Authentication: registry.Authentication{
						Type:         registry.AuthSAS,
						SymmetricKey: &registry.SymmetricKey{PrimaryKey: *primary, SecondaryKey: *secondary},
					},
				})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, m)
				}
				fmt.Fprintf(e.stderr, "Created module %s of device %s.\n", m.ModuleID, m.DeviceID)
				return printModule(e.stdout, m)
			}
		},
	}
}

func moduleShow() *command {
	return &command{
		path: "module show", args: "DEVICE MODULE", nargs: 2,
		summary: "print one module, with its keys and connection state",
		help: `Example:
  ferry module show edge-1 sensor
  ferry module show edge-1 sensor --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the module JSON (Azure's shape)")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				m, err := c.GetModule(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, m)
				}
				return printModule(e.stdout, m)
			}
		},
	}
}

func moduleList() *command {
	return &command{
		path: "module list", args: "DEVICE", nargs: 1,
		summary: "list a device's modules, ordered by id",
		help: `Example:
  ferry module list edge-1
  ferry module list edge-1 --json | jq -r '.[].moduleId'`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print a JSON array of modules")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				list, err := c.ListModules(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, list)
				}
				return printModuleTable(e.stdout, list)
			}
		},
	}
}

func moduleDelete() *command {
	return &command{
		path: "module delete", args: "DEVICE MODULE", nargs: 2,
		summary: "remove a module and its twin",
		help: `With --etag the delete happens only if the module has not changed since that
etag was read (exit code 5 otherwise). Deleting a device deletes its modules.

Example:
  ferry module delete edge-1 sensor
  ferry module delete edge-1 sensor --etag "$(ferry module show edge-1 sensor --json | jq -r .etag)"`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			etag := fs.String("etag", "", "delete only if the module's etag is still `ETAG` (default: any)")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				if err := c.DeleteModule(ctx, args[0], args[1], *etag); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Deleted module %s of device %s.\n", args[1], args[0])
				return nil
			}
		},
	}
}

func moduleConnectionString() *command {
	return &command{
		path: "module connection-string", args: "DEVICE MODULE", nargs: 2,
		summary: "print the connection string a module connects with",
		help: `The string is HostName=<host>;DeviceId=<DEVICE>;ModuleId=<MODULE>;SharedAccessKey=<key>,
with the host name the hub tells devices to use. Azure's device SDKs accept it
for module clients (ModuleClient.fromConnectionString,
IoTHubModuleClient.create_from_connection_string).

Example:
  ferry module connection-string edge-1 sensor
  export MODULE_CONNECTION_STRING="$(ferry module connection-string edge-1 sensor)"`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			which := fs.String("key", "primary", "which `KEY` to put in the string: primary or secondary")
			asJSON := fs.Bool("json", false, `print {"connectionString": ...}`)
			return func(ctx context.Context, e *env, args []string) error {
				if err := checkWhichKey(*which); err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				m, err := c.GetModule(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				info, err := c.Hub(ctx)
				if err != nil {
					return err
				}
				if info.DeviceHostName == "" {
					return fmt.Errorf("the hub did not say which host name devices use")
				}
				cs := protocol.ConnectionString{HostName: info.DeviceHostName, DeviceID: m.DeviceID, ModuleID: m.ModuleID}
				if m.Authentication.Type == registry.AuthSAS {
					if cs.SharedAccessKey, err = moduleKey(m, *which); err != nil {
						return err
					}
				} else {
					cs.X509 = true // the module brings its certificate
				}
				if *asJSON {
					return writeJSON(e.stdout, map[string]string{"connectionString": cs.String()})
				}
				_, err = fmt.Fprintln(e.stdout, cs.String())
				return err
			}
		},
	}
}

// moduleKey returns the module's primary or secondary key.
func moduleKey(m *registry.Module, which string) (string, error) {
	var k string
	if sk := m.Authentication.SymmetricKey; sk != nil {
		k = sk.PrimaryKey
		if which == "secondary" {
			k = sk.SecondaryKey
		}
	}
	if k == "" {
		return "", fault.Invalidf("module %s of device %s has no %s key", m.ModuleID, m.DeviceID, which)
	}
	return k, nil
}

// printModule writes a module for people: one "field: value" line each.
func printModule(w io.Writer, m *registry.Module) error {
	t := newTable(w)
	row := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, v) }
	row("Device ID", m.DeviceID)
	row("Module ID", m.ModuleID)
	if m.ManagedBy != "" {
		row("Managed by", m.ManagedBy)
	}
	row("Connection", orDash(m.ConnectionState))
	row("Connection since", timeOrDash(m.ConnectionStateUpdatedTime))
	row("Last activity", timeOrDash(m.LastActivityTime))
	row("Authentication", string(m.Authentication.Type))
	if sk := m.Authentication.SymmetricKey; sk != nil && m.Authentication.Type == registry.AuthSAS {
		row("Primary key", sk.PrimaryKey)
		row("Secondary key", sk.SecondaryKey)
	}
	if p := m.Authentication.X509Thumbprint.PrimaryThumbprint; p != nil {
		row("Primary thumbprint", *p)
	}
	if s := m.Authentication.X509Thumbprint.SecondaryThumbprint; s != nil {
		row("Secondary thumbprint", *s)
	}
	row("ETag", m.ETag)
	row("Generation ID", m.GenerationID)
	return t.Flush()
}

// printModuleTable writes modules as a table with a header line.
func printModuleTable(w io.Writer, list []registry.Module) error {
	t := newTable(w)
	fmt.Fprintln(t, "MODULE ID\tAUTH\tCONNECTION\tLAST ACTIVITY")
	for i := range list {
		m := &list[i]
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", m.ModuleID, m.Authentication.Type, orDash(m.ConnectionState), timeOrDash(m.LastActivityTime))
	}
	return t.Flush()
}
