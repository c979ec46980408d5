package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/schema"
)

// schemaNoun is "ferry schema": protobuf schemas for binary messages.
func schemaNoun() *noun {
	return &noun{
		name:    "schema",
		summary: "register protobuf schemas so routes and monitor can read binary messages",
		verbs:   []*command{schemaAdd(), schemaList(), schemaDelete()},
		examples: `  protoc --include_imports --descriptor_set_out=alarm.pb pb_AlarmStatus.proto
  ferry schema add pb_AlarmStatus --descriptor-set alarm.pb
  ferry schema list

A message with content type application/x-protobuf and the application
property proto-type=pb_AlarmStatus is then decoded for route conditions
($body.alarm_active = true) and shown decoded by ferry monitor. The stored
bytes never change.
`,
	}
}

func schemaAdd() *command {
	return &command{
		path: "schema add", args: "NAME", nargs: 1,
		summary: "register (or replace) the schema of the messages whose proto-type is NAME",
		help: `--descriptor-set is a FileDescriptorSet as protoc writes it with
--descriptor_set_out (add --include_imports when the file imports others).
NAME is the message's name or full name in it; --message picks another.

Example:
  ferry schema add pb_AlarmStatus --descriptor-set alarm.pb`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			file := fs.String("descriptor-set", "", "the FileDescriptorSet `FILE`")
			msg := fs.String("message", "", "the message's full name in the set (default: NAME)")
			asJSON := fs.Bool("json", false, "print the schema as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				if *file == "" {
					return usagef("--descriptor-set FILE is required")
				}
				b, err := os.ReadFile(*file)
				if err != nil {
					return usagef("--descriptor-set: %v", err)
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				s, err := c.AddSchema(ctx, schema.Schema{Name: args[0], Message: *msg, Descriptor: b})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, s)
				}
				fmt.Fprintf(e.stderr, "Registered schema %s (message %s).\n", s.Name, s.Message)
				return nil
			}
		},
	}
}

func schemaList() *command {
	return listCommand(command{path: "schema list", summary: "list the registered schemas"},
		"NAME\tMESSAGE\tREGISTERED", (*api.Client).Schemas, func(w io.Writer, s *schema.Schema) {
			fmt.Fprintf(w, "%s\t%s\t%s\n", s.Name, s.Message, timeOrDash(s.Created))
		})
}

func schemaDelete() *command {
	return &command{
		path: "schema delete", args: "NAME", nargs: 1, summary: "delete a schema",
		help: `Messages of that proto-type are no longer decoded (conditions on their body
are false). An unknown schema exits with code 3.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				if err := c.DeleteSchema(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Deleted schema %s.\n", args[0])
				return nil
			}
		},
	}
}

// protobufBodies returns monitor's renderer for protobuf bodies: a message
// with content type application/x-protobuf and a proto-type property the
// hub has a schema for is shown decoded. It returns nil (no rendering) when
// the hub has no schemas or cannot list them.
func protobufBodies(ctx context.Context, c *api.Client) func(*api.Message) json.RawMessage {
	list, err := c.SchemaSet(ctx)
	if err != nil || len(list) == 0 {
		return nil
	}
	dec := schema.NewDecoder(list)
	return func(m *api.Message) json.RawMessage {
		ct := strings.ToLower(m.SystemProperties.ContentType)
		typ := m.Properties["proto-type"]
		if typ == "" || !strings.HasPrefix(ct, "application/x-protobuf") && !strings.HasPrefix(ct, "application/protobuf") {
			return nil
		}
		js, err := dec.DecodeJSON(typ, decoded(m))
		if err != nil {
			return nil
		}
		var v any
		if json.Unmarshal(js, &v) != nil {
			return nil
		}
		return marshalNoEscape(v) // protojson's spacing is deliberately unstable
	}
}
