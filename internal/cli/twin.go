package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"
)

func twinNoun() *noun {
	return &noun{
		name:    "twin",
		summary: "read and change device twins: show, update, history",
		verbs:   []*command{twinShow(), twinUpdate(), twinHistory()},
		examples: `  ferry twin show thermostat-1
  ferry twin update thermostat-1 --desired '{"targetTemperature":21}' --tags '{"site":"A"}'
  ferry twin update thermostat-1 --desired '{"targetTemperature":null}'   # null removes a property
  ferry twin history thermostat-1 --json`,
	}
}

func twinShow() *command {
	return &command{
		path: "twin show", args: "DEVICE", nargs: 1,
		summary: "print a device's twin (tags, desired and reported properties, versions)",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			_ = fs.Bool("json", true, "print JSON (the twin is always printed as JSON)")
			return func(ctx context.Context, e *env, args []string) error {
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				b, err := client.GetTwin(ctx, args[0])
				if err != nil {
					return err
				}
				return writeJSON(e.stdout, json.RawMessage(b))
			}
		},
	}
}

func twinUpdate() *command {
	return &command{
		path: "twin update", args: "DEVICE", nargs: 1,
		summary: "merge changes into a twin's desired properties and tags",
		help: `Each of --desired and --tags is a JSON merge patch: keys set to null are
removed, objects merge, other values replace. The device receives the desired
change at once when it is connected. With --etag the change applies only if
the twin has not changed since (exit code 5 otherwise).`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			desired := fs.String("desired", "", "merge patch `JSON` for the desired properties")
			tags := fs.String("tags", "", "merge patch `JSON` for the tags")
			etag := fs.String("etag", "", "apply only if the twin's etag is still `ETAG`")
			return func(ctx context.Context, e *env, args []string) error {
				patch := map[string]any{}
				if *desired != "" {
					var v json.RawMessage
					if err := json.Unmarshal([]byte(*desired), &v); err != nil {
						return usagef("--desired is not valid JSON: %v", err)
					}
					patch["properties"] = map[string]any{"desired": v}
				}
				if *tags != "" {
					var v json.RawMessage
					if err := json.Unmarshal([]byte(*tags), &v); err != nil {
						return usagef("--tags is not valid JSON: %v", err)
					}
					patch["tags"] = v
				}
				if len(patch) == 0 {
					return usagef("give --desired, --tags or both")
				}
				body, _ := json.Marshal(patch)
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				b, err := client.PatchTwin(ctx, args[0], body, *etag)
				if err != nil {
					return err
				}
				return writeJSON(e.stdout, json.RawMessage(b))
			}
		},
	}
}

func twinHistory() *command {
	return &command{
		path: "twin history", args: "DEVICE", nargs: 1,
		summary: "print every accepted change of a twin: side, version, time, source, patch",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, e *env, args []string) error {
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				changes, err := client.TwinHistory(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, changes)
				}
				tw := newTable(e.stdout)
				fmt.Fprintln(tw, "TIME\tSIDE\tVERSION\tSOURCE\tPATCH")
				for _, c := range changes {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", c.Time.Local().Format(time.RFC3339), c.Side, c.Version, c.Source, c.Patch)
				}
				return tw.Flush()
			}
		},
	}
}
