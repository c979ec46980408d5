package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/registry"
)

// listCommand builds a "NOUN list" verb: it fetches the items from the hub
// (fetch is an api.Client method expression, such as (*api.Client).Routes)
// and prints them as a JSON array with --json (never null, so scripts can
// index it), else as the table row prints under header.
func listCommand[T any](c command, header string, fetch func(*api.Client, context.Context) ([]T, error),
	row func(w io.Writer, item *T)) *command {
	c.setup = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var hf hubFlags
		hf.register(fs)
		asJSON := fs.Bool("json", false, "print a JSON array")
		return func(ctx context.Context, e *env, _ []string) error {
			client, err := e.client(&hf)
			if err != nil {
				return err
			}
			list, err := fetch(client, ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				if list == nil {
					list = []T{}
				}
				return writeJSON(e.stdout, list)
			}
			t := newTable(e.stdout)
			fmt.Fprintln(t, header)
			for i := range list {
				row(t, &list[i])
			}
			return t.Flush()
		}
	}
	return &c
}

// writeJSON writes v as indented JSON and a newline: the --json output of
// the verbs that print one result. HTML characters stay as they are, since
// the reader is a terminal or jq, not a browser.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tabwriter for aligned columns; Flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// printDevice writes a device for people: one "field: value" line each.
func printDevice(w io.Writer, d *registry.Device) error {
	t := newTable(w)
	row := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, v) }
	row("Device ID", d.DeviceID)
	row("Status", string(d.Status))
	if d.StatusReason != nil && *d.StatusReason != "" {
		row("Status reason", *d.StatusReason)
	}
	row("Connection", orDash(d.ConnectionState))
	row("Connection since", timeOrDash(d.ConnectionStateUpdatedTime))
	row("Last activity", timeOrDash(d.LastActivityTime))
	row("Authentication", string(d.Authentication.Type))
	if sk := d.Authentication.SymmetricKey; sk != nil && d.Authentication.Type == registry.AuthSAS {
		row("Primary key", sk.PrimaryKey)
		row("Secondary key", sk.SecondaryKey)
	}
	if p := d.Authentication.X509Thumbprint.PrimaryThumbprint; p != nil {
		row("Primary thumbprint", *p)
	}
	if s := d.Authentication.X509Thumbprint.SecondaryThumbprint; s != nil {
		row("Secondary thumbprint", *s)
	}
	if d.ModelID != "" {
		row("Model ID", d.ModelID)
	}
	row("C2D messages queued", fmt.Sprint(d.CloudToDeviceMessageCount))
	row("ETag", d.ETag)
	row("Generation ID", d.GenerationID)
	return t.Flush()
}

// printDeviceTable writes devices as a table with a header line.
func printDeviceTable(w io.Writer, list []registry.Device) error {
	t := newTable(w)
	fmt.Fprintln(t, "DEVICE ID\tSTATUS\tCONNECTION\tLAST ACTIVITY")
	for i := range list {
		d := &list[i]
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", d.DeviceID, d.Status, orDash(d.ConnectionState), timeOrDash(d.LastActivityTime))
	}
	return t.Flush()
}

// timeOrDash formats a hub timestamp in UTC, or "-" for the zero time the
// hub reports for "never".
func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
