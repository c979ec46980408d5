package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/registry"
)

// pnpNoun is "ferry pnp": a device seen through its Plug and Play model.
func pnpNoun() *noun {
	return &noun{
		name:    "pnp",
		summary: "see and set a device through its IoT Plug and Play model: writable properties and their acknowledgements",
		verbs:   []*command{pnpShow(), pnpSet()},
		examples: `  ferry pnp show thermostat-1
  ferry pnp set thermostat-1 thermostat1.targetTemperature 22.5
  ferry invoke thermostat-1 'thermostat1*getMaxMinReport' --payload '"2026-11-23T05:00:00Z"'
`,
	}
}

func pnpShow() *command {
	return &command{
		path: "pnp show", args: "DEVICE", nargs: 1,
		summary: "show each writable property: desired value, the device's acknowledgement, in sync or not",
		help: `For every writable property of the device's model: the desired value
(and the desired $version), what the device acknowledged in its reported
properties as Plug and Play asks ({"value", "ac", "av", "ad"}) and the
state:

  in sync      the device accepted (ac 200) the desired value
  pending      desired, not acknowledged yet, or acknowledged for another value
  in progress  the device answered ac 202 for the desired value
  rejected     the device refused it (ac 400 or more)
  device set   no desired value; the device reports one (ac 203)
  unset        neither

Then how the device's telemetry fits the model since the hub started.

Example:
  ferry pnp show thermostat-1
  ferry pnp show thermostat-1 --json | jq '.writable[] | select(.state != "in sync")'`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the device's Plug and Play state as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				st, err := c.DevicePnP(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, st)
				}
				return printPnP(e.stdout, st)
			}
		},
	}
}

func printPnP(w io.Writer, st *model.DeviceState) error {
	if st.ModelID == "" {
		_, err := fmt.Fprintf(w, "%s announced no model (model-id in its MQTT username, or modelId in its DPS registration).\n", st.DeviceID)
		return err
	}
	fmt.Fprintf(w, "Device %s, model %s\n", st.DeviceID, st.ModelID)
	if st.Model == nil {
		_, err := fmt.Fprintf(w, "The model cannot be used: %s\n(ferry model add FILE adds it.)\n", st.ModelError)
		return err
	}
	fmt.Fprintln(w)
	t := newTable(w)
	fmt.Fprintln(t, "PROPERTY\tDESIRED\tREPORTED\tAC\tAV\tSTATE\tDESCRIPTION")
	for _, p := range st.Writable {
		name := p.Name
		if p.Component != "" {
			name = p.Component + "." + p.Name
		}
		desired := "-"
		if p.Desired != nil {
			desired = fmt.Sprintf("%s (v%d)", compactJSON(p.Desired), p.DesiredV)
		}
		reported, ac, av := "-", "-", "-"
		if p.Reported != nil {
			reported = compactJSON(p.Reported)
		}
		if p.AckCode != 0 {
			ac, av = fmt.Sprint(p.AckCode), fmt.Sprint(p.AckVer)
		}
		desc := p.AckDesc
		if len(p.Problems) > 0 {
			desc = strings.TrimSpace(desc + " (desired value does not fit the schema: " + p.Problems[0].Msg + ")")
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, desired, reported, ac, av, p.State, orDash(desc))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if len(st.Writable) == 0 {
		fmt.Fprintln(w, "(the model has no writable properties)")
	}
	tm := st.Telemetry
	fmt.Fprintf(w, "\nTelemetry since the hub started: %d checked, %d not fitting the model.\n", tm.Checked, tm.Mismatched)
	if tm.Mismatched > 0 {
		comp := tm.LastMismatchSub
		if comp == "" {
			comp = "default component"
		}
		fmt.Fprintf(w, "Last mismatch at %s (%s, cursor %s):\n", tm.LastMismatchAt.Local().Format(time.RFC3339), comp, tm.LastMismatchCursor)
		for _, p := range tm.LastProblems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	return nil
}

func compactJSON(b json.RawMessage) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.Marshal(v)
	if len(out) > 40 {
		return string(out[:37]) + "..."
	}
	return string(out)
}

func pnpSet() *command {
	return &command{
		path: "pnp set", args: "DEVICE [COMPONENT.]PROPERTY VALUE", nargs: 3,
		summary: "set a writable property by name (the value is checked against the model)",
		help: `Writes the desired property the Plug and Play way: inside a component
object marked "__t": "c" for a component's property, at the top for the
default component's. VALUE is JSON (quote strings: '"eco"'); it must fit
the property's schema. The device acknowledges with ac/av/ad, which
ferry pnp show displays.

Examples:
  ferry pnp set thermostat-1 thermostat1.targetTemperature 22.5
  ferry pnp set thermostat-1 thermostat2.targetTemperature 18 --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the twin after the change")
			return func(ctx context.Context, e *env, args []string) error {
				value := json.RawMessage(args[2])
				if !json.Valid(value) {
					return usagef("VALUE %q is not JSON (quote a string: '\"text\"')", args[2])
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				st, err := c.DevicePnP(ctx, args[0])
				if err != nil {
					return err
				}
				if st.Model == nil {
					if st.ModelID == "" {
						return usagef("%s announced no model; set the property with ferry twin update", args[0])
					}
					return usagef("%s's model %s cannot be used: %s", args[0], st.ModelID, st.ModelError)
				}
				patch, err := model.DesiredPatch(st.Model, args[1], value)
				if err != nil {
					return usagef("%v", err)
				}
				tw, err := c.PatchTwin(ctx, args[0], patch, "")
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, tw)
				}
				var doc struct {
					Properties struct {
						Desired struct {
							Version int64 `json:"$version"`
						} `json:"desired"`
					} `json:"properties"`
				}
				_ = json.Unmarshal(tw, &doc)
				fmt.Fprintf(e.stderr, "Set %s to %s (desired $version %d); the device acknowledges it in its reported properties (ferry pnp show %s).\n",
					args[1], compactJSON(value), doc.Properties.Desired.Version, args[0])
				return nil
			}
		},
	}
}

// listDevicesPage lists one page of devices, those with a model id only
// when modelID is set (through the query language, whose twins carry the
// fields the device table shows).
func listDevicesPage(ctx context.Context, c *api.Client, modelID string, top int, next string) ([]registry.Device, string, error) {
	if modelID == "" {
		return c.ListDevices(ctx, top, next)
	}
	q := "SELECT * FROM devices WHERE modelId = '" + strings.ReplaceAll(modelID, "'", "''") + "'"
	rows, cont, err := c.Query(ctx, q, top, next)
	if err != nil {
		return nil, "", err
	}
	out := make([]registry.Device, 0, len(rows))
	for _, r := range rows {
		var t struct {
			DeviceID         string    `json:"deviceId"`
			Status           string    `json:"status"`
			ConnectionState  string    `json:"connectionState"`
			LastActivityTime time.Time `json:"lastActivityTime"`
			ModelID          string    `json:"modelId"`
		}
		if err := json.Unmarshal(r, &t); err != nil {
			return nil, "", fmt.Errorf("query result: %w", err)
		}
		out = append(out, registry.Device{DeviceID: t.DeviceID, Status: registry.Status(t.Status),
			ConnectionState: t.ConnectionState, LastActivityTime: t.LastActivityTime, ModelID: t.ModelID})
	}
	return out, cont, nil
}
