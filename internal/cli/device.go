package cli

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// deviceNoun is "ferry device".
func deviceNoun() *noun {
	return &noun{
		name:    "device",
		summary: "manage the hub's device identities",
		verbs: []*command{deviceCreate(), deviceList(), deviceShow(), deviceUpdate(), deviceDelete(),
			deviceConnectionString(), deviceSASToken()},
		examples: `  ferry device create thermostat-1
  ferry device create pump-7 --status disabled --json
  ferry device list --all
  ferry device show thermostat-1 --json | jq -r .authentication.symmetricKey.primaryKey
  ferry device update pump-7 --status enabled
  ferry device connection-string thermostat-1
  ferry device sas-token thermostat-1 --ttl 24h
  ferry device delete pump-7
`,
	}
}

func deviceCreate() *command {
	return &command{
		path: "device create", args: "ID", nargs: 1,
		summary: "register a new device",
		help: `The hub generates the device's symmetric keys unless both are given. Creating
an id that exists fails with exit code 5.

--auth chooses how the device authenticates: sas (symmetric keys, the
default), x509-thumbprint (a client certificate, often self-signed, whose
SHA-1 or SHA-256 thumbprint is given with --thumbprint and optionally
--secondary-thumbprint), or x509-ca (a client certificate whose subject CN
is the device id, signed by a CA verified with 'ferry ca'). Certificate
devices connect over MQTT/TLS without a password.

Example:
  ferry device create thermostat-1
  ferry device create gateway --primary-key "$(head -c32 /dev/urandom | base64)" \
      --secondary-key "$(head -c32 /dev/urandom | base64)"
  ferry device create cam-1 --auth x509-thumbprint \
      --thumbprint "$(openssl x509 -in cam-1.pem -noout -fingerprint -sha256 | cut -d= -f2 | tr -d :)"
  ferry device create pump-7 --auth x509-ca`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			primary := fs.String("primary-key", "", "base64 primary symmetric `KEY` (default: generated)")
			secondary := fs.String("secondary-key", "", "base64 secondary symmetric `KEY` (default: generated)")
			status := fs.String("status", "enabled", "`STATUS`: enabled or disabled")
			auth := fs.String("auth", "sas", "how the device authenticates, `TYPE`: sas, x509-thumbprint or x509-ca")
			thumb := fs.String("thumbprint", "", "primary certificate thumbprint, SHA-1 or SHA-256 `HEX` (x509-thumbprint)")
			thumb2 := fs.String("secondary-thumbprint", "", "secondary certificate thumbprint `HEX` (x509-thumbprint)")
			asJSON := fs.Bool("json", false, "print the device as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				st, err := parseStatus(*status)
				if err != nil {
					return err
				}
				a, err := authFlags(*auth, *primary, *secondary, *thumb, *thumb2)
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				d, err := c.CreateDevice(ctx, registry.Device{
					DeviceID:       args[0],
					Status:         st,
					Authentication: a,
				})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, d)
				}
				fmt.Fprintf(e.stderr, "Created device %s.\n", d.DeviceID)
				return printDevice(e.stdout, d)
			}
		},
	}
}

func deviceShow() *command {
	return &command{
		path: "device show", args: "ID", nargs: 1,
		summary: "print one device, with its keys and connection state",
		help: `Example:
  ferry device show thermostat-1
  ferry device show thermostat-1 --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the device JSON (Azure's shape)")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				d, err := c.GetDevice(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, d)
				}
				return printDevice(e.stdout, d)
			}
		},
	}
}

func deviceDelete() *command {
	return &command{
		path: "device delete", args: "ID", nargs: 1,
		summary: "remove a device",
		help: `With --etag the delete happens only if the device has not changed since that
etag was read (exit code 5 otherwise).

Example:
  ferry device delete pump-7
  ferry device delete pump-7 --etag "$(ferry device show pump-7 --json | jq -r .etag)"`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			etag := fs.String("etag", "", "delete only if the device's etag is still `ETAG` (default: any)")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				if err := c.DeleteDevice(ctx, args[0], *etag); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Deleted device %s.\n", args[0])
				return nil
			}
		},
	}
}

func deviceList() *command {
	return &command{
		path: "device list", nargs: 0,
		summary: "list devices, ordered by id",
		help: `Prints one page of --top devices; --all follows the hub's continuation
tokens to the end.

--model lists the devices that announced a Plug and Play model (the
twin's modelId), through the query language.

Example:
  ferry device list
  ferry device list --model 'dtmi:ferry:example:TemperatureController;1'
  ferry device list --all --json | jq -r '.[] | select(.connectionState=="Connected") | .deviceId'`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			top := fs.Int("top", 100, "devices per page, `N` from 1 to 1000")
			all := fs.Bool("all", false, "list every device, page after page")
			asJSON := fs.Bool("json", false, "print a JSON array of devices")
			modelID := fs.String("model", "", "only the devices whose model id (Plug and Play) is `DTMI`")
			return func(ctx context.Context, e *env, _ []string) error {
				if *top < 1 || *top > 1000 {
					return usagef("--top must be from 1 to 1000")
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				list := []registry.Device{}
				next := ""
				for {
					page, cont, err := listDevicesPage(ctx, c, *modelID, *top, next)
					if err != nil {
						return err
					}
					list = append(list, page...)
					if next = cont; next == "" || !*all {
						break
					}
				}
				if next != "" {
					fmt.Fprintf(e.stderr, "More devices exist: pass --all to list them all.\n")
				}
				if *asJSON {
					return writeJSON(e.stdout, list)
				}
				return printDeviceTable(e.stdout, list)
			}
		},
	}
}

// parseStatus checks a --status value.
func parseStatus(s string) (registry.Status, error) {
	switch st := registry.Status(s); st {
	case registry.StatusEnabled, registry.StatusDisabled:
		return st, nil
	}
	return "", usagef("--status must be enabled or disabled, not %q", s)
}

// authFlags turns --auth and its credential flags into the device's
// authentication, refusing flags that do not belong to the chosen type.
func authFlags(auth, primary, secondary, thumb, thumb2 string) (registry.Authentication, error) {
	var a registry.Authentication
	x509 := auth == "x509-thumbprint" || auth == "x509-ca"
	if x509 && (primary != "" || secondary != "") {
		return a, usagef("--primary-key and --secondary-key are for --auth sas, not %s", auth)
	}
	if auth != "x509-thumbprint" && (thumb != "" || thumb2 != "") {
		return a, usagef("--thumbprint and --secondary-thumbprint need --auth x509-thumbprint")
	}
	switch auth {
	case "sas":
		if err := checkKeys(primary, secondary); err != nil {
			return a, err
		}
		a.Type = registry.AuthSAS
		a.SymmetricKey = &registry.SymmetricKey{PrimaryKey: primary, SecondaryKey: secondary}
	case "x509-thumbprint":
		if thumb == "" {
			return a, usagef("--auth x509-thumbprint needs --thumbprint HEX")
		}
		for _, t := range [...]struct{ flag, val string }{{"thumbprint", thumb}, {"secondary-thumbprint", thumb2}} {
			if t.val != "" && !isThumbprint(t.val) {
				return a, usagef("--%s must be 40 (SHA-1) or 64 (SHA-256) hex digits", t.flag)
			}
		}
		a.Type = registry.AuthSelfSigned
		a.X509Thumbprint.PrimaryThumbprint = &thumb
		if thumb2 != "" {
			a.X509Thumbprint.SecondaryThumbprint = &thumb2
		}
	case "x509-ca":
		a.Type = registry.AuthCA
	default:
		return a, usagef("--auth must be sas, x509-thumbprint or x509-ca, not %q", auth)
	}
	return a, nil
}

// isThumbprint reports a hex SHA-1 or SHA-256 thumbprint.
func isThumbprint(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkKeys checks --primary-key and --secondary-key locally, so a typo is a
// usage error that names the flag rather than a refusal from the hub.
func checkKeys(primary, secondary string) error {
	for _, k := range [...]struct{ flag, val string }{{"primary-key", primary}, {"secondary-key", secondary}} {
		if k.val == "" {
			continue
		}
		if _, err := protocol.DecodeKey(k.val); err != nil {
			return usagef("--%s is not a base64 key", k.flag)
		}
	}
	return nil
}
