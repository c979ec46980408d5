package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

func deviceUpdate() *command {
	return &command{
		path: "device update", args: "ID", nargs: 1,
		summary: "change a device's status or keys",
		help: `Reads the device, changes the given fields and writes it back. The write names
the etag that was read (or --etag), so a concurrent change is not overwritten:
the command fails with exit code 5 instead, and can be run again.

Example:
  ferry device update pump-7 --status disabled --status-reason "leaking"
  ferry device update pump-7 --primary-key "$(head -c32 /dev/urandom | base64)"`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			fs.String("status", "", "new `STATUS`: enabled or disabled")
			fs.String("status-reason", "", "why the status is what it is, free `TEXT`")
			fs.String("primary-key", "", "new base64 primary symmetric `KEY`")
			fs.String("secondary-key", "", "new base64 secondary symmetric `KEY`")
			etag := fs.String("etag", "", "update only if the device's etag is still `ETAG` (default: the etag just read)")
			asJSON := fs.Bool("json", false, "print the updated device as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				// Only the flags given change the device, so an empty
				// --status-reason "" clears the reason.
				set := map[string]string{}
				fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
				change, err := deviceChange(set)
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				d, err := c.GetDevice(ctx, args[0])
				if err != nil {
					return err
				}
				if err := change(d); err != nil {
					return err
				}
				match := *etag
				if match == "" {
					match = d.ETag
				}
				d, err = c.UpdateDevice(ctx, *d, match)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, d)
				}
				fmt.Fprintf(e.stderr, "Updated device %s.\n", d.DeviceID)
				return printDevice(e.stdout, d)
			}
		},
	}
}

// deviceChange validates the fields "device update" was given and returns
// the function that applies them to the device read from the hub.
func deviceChange(set map[string]string) (func(*registry.Device) error, error) {
	var status registry.Status
	if s, ok := set["status"]; ok {
		var err error
		if status, err = parseStatus(s); err != nil {
			return nil, err
		}
	}
	reason, hasReason := set["status-reason"]
	primary, hasPrimary := set["primary-key"]
	secondary, hasSecondary := set["secondary-key"]
	if status == "" && !hasReason && !hasPrimary && !hasSecondary {
		return nil, usagef("nothing to update: pass --status, --status-reason, --primary-key or --secondary-key")
	}
	if err := checkKeys(primary, secondary); err != nil {
		return nil, err
	}
	if (hasPrimary && primary == "") || (hasSecondary && secondary == "") {
		return nil, usagef("a key must not be empty")
	}
	return func(d *registry.Device) error {
		if status != "" {
			d.Status = status
		}
		if hasReason {
			d.StatusReason = &reason
		}
		if hasPrimary || hasSecondary {
			sk := d.Authentication.SymmetricKey
			if d.Authentication.Type != registry.AuthSAS || sk == nil {
				return fault.Invalidf("device %s authenticates with %s, not with symmetric keys",
					d.DeviceID, d.Authentication.Type)
			}
			if hasPrimary {
				sk.PrimaryKey = primary
			}
			if hasSecondary {
				sk.SecondaryKey = secondary
			}
		}
		return nil
	}, nil
}
