package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
)

// enrollmentFlags are the flags enrollment-group create and enrollment
// create share.
type enrollmentFlags struct {
	primary, secondary, status, tags, desired *string
}

func (f *enrollmentFlags) register(fs *flag.FlagSet) {
	f.primary = fs.String("primary-key", "", "base64 primary symmetric `KEY` (default: generated)")
	f.secondary = fs.String("secondary-key", "", "base64 secondary symmetric `KEY` (default: generated)")
	f.status = fs.String("status", "enabled", "`STATUS`: enabled, or disabled to refuse registrations")
	f.tags = fs.String("tags", "", "`JSON` object: the tags of the devices it creates")
	f.desired = fs.String("desired", "", "`JSON` object: the initial desired properties of the devices it creates")
}

// parts checks the flags and returns the enrollment's parts.
func (f *enrollmentFlags) parts() (provision.Attestation, string, *provision.InitialTwin, error) {
	var a provision.Attestation
	if _, err := parseStatus(*f.status); err != nil {
		return a, "", nil, err
	}
	if err := checkKeys(*f.primary, *f.secondary); err != nil {
		return a, "", nil, err
	}
	a = provision.Attestation{Type: provision.AttestationSymmetricKey,
		SymmetricKey: &registry.SymmetricKey{PrimaryKey: *f.primary, SecondaryKey: *f.secondary}}
	tags, err := jsonObjectFlag("tags", *f.tags)
	if err != nil {
		return a, "", nil, err
	}
	desired, err := jsonObjectFlag("desired", *f.desired)
	if err != nil {
		return a, "", nil, err
	}
	var it *provision.InitialTwin
	if tags != nil || desired != nil {
		it = &provision.InitialTwin{Tags: tags}
		it.Properties.Desired = desired
	}
	return a, *f.status, it, nil
}

func enrollmentGroupNoun() *noun {
	return &noun{
		name:    "provision enrollment-group",
		summary: "manage DPS enrollment groups (symmetric keys or X.509 CAs): create, list, show, delete",
		verbs: []*command{enrollmentGroupCreate(), enrollmentGroupList(), enrollmentGroupShow(),
			enrollmentDelete("provision enrollment-group delete", "GROUP", "enrollment group")},
		examples: `  ferry provision enrollment-group create line-3 --tags '{"line":3}'
  ferry provision derive-key line-3 sensor-17     # the key device sensor-17 registers with
  ferry provision enrollment-group create cameras --x509-ca fleet-root   # X.509: certificates of a verified CA
  ferry provision enrollment-group list
`,
	}
}

func enrollmentGroupCreate() *command {
	return &command{
		path: "provision enrollment-group create", args: "GROUP", nargs: 1,
		summary: "create a symmetric-key or X.509 CA enrollment group",
		help: `A device of the group registers over DPS (MQTT, $dps/registrations/...) with
the hub's ID scope, a registration id of its choice and a SAS token signed
with its derived key: base64(HMAC-SHA256(group key, registration id)), which
'ferry provision derive-key' prints. The hub then creates the device (id =
registration id) with the derived keys and the group's initial twin.

With --x509-ca, the group attests with X.509 instead: a device registers with a
client certificate whose chain verifies against that CA (registered and
verified with 'ferry ca add' and 'ferry ca verify') and whose subject CN is
its registration id, and no password. The hub creates the device with
certificateAuthority authentication, so it connects with the same
certificate.

Example:
  ferry provision enrollment-group create line-3
  ferry provision enrollment-group create lab --status disabled --json
  ferry provision enrollment-group create cameras --x509-ca fleet-root`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			var ef enrollmentFlags
			ef.register(fs)
			ca := fs.String("x509-ca", "", "X.509 attestation: the `NAME` of a registered, verified CA (ferry ca list); --ca is the hub connection's CA file")
			asJSON := fs.Bool("json", false, "print the group, with its keys, as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				a, status, it, err := ef.parts()
				if err != nil {
					return err
				}
				if *ca != "" {
					if *ef.primary != "" || *ef.secondary != "" {
						return usagef("--x509-ca and --primary-key/--secondary-key exclude each other: a group attests with X.509 or with symmetric keys")
					}
					a = provision.Attestation{Type: provision.AttestationX509,
						X509: &provision.X509Attestation{CAReferences: &provision.CAReferences{Primary: *ca}}}
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				g, err := c.PutEnrollmentGroup(ctx, provision.EnrollmentGroup{EnrollmentGroupID: args[0], Attestation: a,
					ProvisioningStatus: status, InitialTwin: it}, false)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, g)
				}
				fmt.Fprintf(e.stderr, "Created enrollment group %s.\n", g.EnrollmentGroupID)
				return printEnrollment(e.stdout, "Enrollment group", g.EnrollmentGroupID, "", g.ProvisioningStatus, g.Attestation)
			}
		},
	}
}

func printEnrollment(w io.Writer, kind, id, deviceID, status string, a provision.Attestation) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row(kind, id)
	if deviceID != "" {
		row("Device ID", deviceID)
	}
	row("Status", status)
	if sk := a.SymmetricKey; sk != nil {
		row("Primary key", sk.PrimaryKey)
		row("Secondary key", sk.SecondaryKey)
	}
	if x := a.X509; x != nil && x.CAReferences != nil {
		row("Attestation", "X.509, certificates of CA "+x.CAReferences.Primary)
		if x.CAReferences.Secondary != "" {
			row("Secondary CA", x.CAReferences.Secondary)
		}
	}
	return tw.Flush()
}

func enrollmentGroupList() *command {
	return &command{
		path: "provision enrollment-group list", nargs: 0,
		summary: "list enrollment groups",
		help: `Example:
  ferry provision enrollment-group list --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print a JSON array of groups (with keys)")
			return func(ctx context.Context, e *env, _ []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				gs, err := c.EnrollmentGroups(ctx)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, gs)
				}
				tw := newTable(e.stdout)
				fmt.Fprintln(tw, "GROUP\tSTATUS\tATTESTATION\tCREATED")
				for _, g := range gs {
					att := "symmetric key"
					if x := g.Attestation.X509; x != nil && x.CAReferences != nil {
						att = "x509 CA " + x.CAReferences.Primary
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.EnrollmentGroupID, g.ProvisioningStatus, att, timeOrDash(g.CreatedAt))
				}
				return tw.Flush()
			}
		},
	}
}

func enrollmentGroupShow() *command {
	return &command{
		path: "provision enrollment-group show", args: "GROUP", nargs: 1,
		summary: "print an enrollment group with its keys and the hub's ID scope",
		help: `Example:
  ferry provision enrollment-group show line-3`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the group as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				g, err := c.EnrollmentGroup(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, g)
				}
				if err := printEnrollment(e.stdout, "Enrollment group", g.EnrollmentGroupID, "", g.ProvisioningStatus, g.Attestation); err != nil {
					return err
				}
				if info, err := c.DPSInfo(ctx); err == nil {
					fmt.Fprintf(e.stdout, "ID scope:         %s\n", info.IDScope)
				}
				return nil
			}
		},
	}
}

// enrollmentDelete is "provision enrollment-group delete" and "provision
// enrollment delete".
func enrollmentDelete(path, arg, kind string) *command {
	return &command{
		path: path, args: arg, nargs: 1,
		summary: "delete an " + kind + " (the devices it created stay)",
		help:    "Example:\n  ferry " + path + " line-3",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				if kind == "enrollment group" {
					err = c.DeleteEnrollmentGroup(ctx, args[0])
				} else {
					err = c.DeleteEnrollment(ctx, args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Deleted %s %s.\n", kind, args[0])
				return nil
			}
		},
	}
}

func enrollmentNoun() *noun {
	return &noun{
		name:    "provision enrollment",
		summary: "manage DPS individual enrollments (symmetric keys): create, list, show, delete",
		verbs: []*command{enrollmentCreate(), enrollmentList(), enrollmentShow(),
			enrollmentDelete("provision enrollment delete", "REGISTRATION_ID", "enrollment")},
		examples: `  ferry provision enrollment create boiler-9 --device-id boiler-9
  ferry provision enrollment show boiler-9 --json | jq -r .attestation.symmetricKey.primaryKey
`,
	}
}

func enrollmentCreate() *command {
	return &command{
		path: "provision enrollment create", args: "REGISTRATION_ID", nargs: 1,
		summary: "create an individual symmetric-key enrollment",
		help: `The device registers over DPS with this registration id and a SAS token
signed with the enrollment's key; the hub creates the device (--device-id,
default the registration id) with the same keys.

Example:
  ferry provision enrollment create boiler-9
  ferry provision enrollment create reg-42 --device-id boiler-42 --desired '{"interval":60}'`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			var ef enrollmentFlags
			ef.register(fs)
			deviceID := fs.String("device-id", "", "the `ID` of the device it creates (default: the registration id)")
			asJSON := fs.Bool("json", false, "print the enrollment, with its keys, as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				a, status, it, err := ef.parts()
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				en, err := c.PutEnrollment(ctx, provision.IndividualEnrollment{RegistrationID: args[0], DeviceID: *deviceID,
					Attestation: a, ProvisioningStatus: status, InitialTwin: it}, false)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, en)
				}
				fmt.Fprintf(e.stderr, "Created enrollment %s.\n", en.RegistrationID)
				return printEnrollment(e.stdout, "Registration ID", en.RegistrationID, en.DeviceID, en.ProvisioningStatus, en.Attestation)
			}
		},
	}
}

func enrollmentList() *command {
	return &command{
		path: "provision enrollment list", nargs: 0,
		summary: "list individual enrollments",
		help: `Example:
  ferry provision enrollment list`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print a JSON array of enrollments (with keys)")
			return func(ctx context.Context, e *env, _ []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				list, err := c.Enrollments(ctx)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, list)
				}
				tw := newTable(e.stdout)
				fmt.Fprintln(tw, "REGISTRATION ID\tDEVICE ID\tSTATUS\tCREATED")
				for _, en := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", en.RegistrationID, orDash(en.DeviceID), en.ProvisioningStatus, timeOrDash(en.CreatedAt))
				}
				return tw.Flush()
			}
		},
	}
}

func enrollmentShow() *command {
	return &command{
		path: "provision enrollment show", args: "REGISTRATION_ID", nargs: 1,
		summary: "print an individual enrollment with its keys",
		help: `Example:
  ferry provision enrollment show boiler-9 --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the enrollment as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				en, err := c.Enrollment(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, en)
				}
				return printEnrollment(e.stdout, "Registration ID", en.RegistrationID, en.DeviceID, en.ProvisioningStatus, en.Attestation)
			}
		},
	}
}

func provisionDeriveKey() *command {
	return &command{
		path: "provision derive-key", args: "GROUP REGISTRATION_ID", nargs: 2,
		summary: "print the device key an enrollment group derives for a registration id",
		help: `The key is base64(HMAC-SHA256(group primary key, registration id)), as Azure
DPS derives it; the device signs its DPS token with it and, once assigned,
connects to the hub with it. With --json the hub's ID scope and both derived
keys are printed too.

Example:
  ferry provision derive-key line-3 sensor-17`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the ID scope and both derived keys as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				if err := registry.ValidateDeviceID(args[1]); err != nil {
					return usagef("REGISTRATION_ID: %v", err)
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				g, err := c.EnrollmentGroup(ctx, args[0])
				if err != nil {
					return err
				}
				sk := g.Attestation.SymmetricKey
				if sk == nil {
					return fmt.Errorf("enrollment group %s has no symmetric key", g.EnrollmentGroupID)
				}
				derive := func(k string) (string, error) {
					raw, err := protocol.DecodeKey(k)
					if err != nil {
						return "", fmt.Errorf("enrollment group %s: %w", g.EnrollmentGroupID, err)
					}
					return protocol.DeriveDeviceKey(raw, args[1]), nil
				}
				primary, err := derive(sk.PrimaryKey)
				if err != nil {
					return err
				}
				if !*asJSON {
					fmt.Fprintln(e.stdout, primary)
					return nil
				}
				secondary, err := derive(sk.SecondaryKey)
				if err != nil {
					return err
				}
				info, err := c.DPSInfo(ctx)
				if err != nil {
					return err
				}
				return writeJSON(e.stdout, map[string]string{"idScope": info.IDScope, "registrationId": args[1],
					"primaryKey": primary, "secondaryKey": secondary})
			}
		},
	}
}
