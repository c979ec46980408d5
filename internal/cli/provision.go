package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/provision"
)

// provisionNoun is "ferry provision": operations with operator approval,
// and "ferry provision token" for the tokens devices start with.
func provisionNoun() *noun {
	return &noun{
		name:    "provision",
		summary: "let devices join with a provisioning token and an operator's approval",
		verbs:   []*command{provisionList(), provisionShow(), provisionApprove(), provisionReject(), provisionDeriveKey()},
		subs:    []*noun{provisionTokenNoun(), enrollmentGroupNoun(), enrollmentNoun()},
		examples: `  ferry provision token create --name line-3 --expires 30d --max-uses 50
  ferry provision list --pending
  ferry provision approve 3f9c0a6e1b2d4c5e6f708192 --device-id pump-7 \
      --tags '{"site":"plant-2"}' --desired '{"interval":30}'
  ferry provision reject 3f9c0a6e1b2d4c5e6f708192 --reason "unknown serial"
  ferry provision enrollment-group create line-3        # DPS: symmetric-key group
  ferry provision derive-key line-3 sensor-17

How it works: an operator creates a provisioning token and gives it to
devices (ferry provision token create). A device starts with it and opens a
provisioning operation, which shows a short verification code on the device
and in 'ferry provision list --pending'. The operator compares the codes and
approves the operation (optionally choosing the device id, tags and desired
properties) or rejects it. The device then collects its credentials and
connects.
`,
	}
}

func provisionTokenNoun() *noun {
	return &noun{
		name:    "provision token",
		summary: "manage provisioning tokens: create, list, show, revoke",
		verbs:   []*command{provisionTokenCreate(), provisionTokenList(), provisionTokenShow(), provisionTokenRevoke()},
		examples: `  TOKEN=$(ferry provision token create --name line-3 --expires 30d)
  ferry provision token create --name lab --expires 2026-12-31T00:00:00Z --max-uses 5 --json
  ferry provision token list
  ferry provision token revoke line-3
`,
	}
}

func provisionTokenCreate() *command {
	return &command{
		path: "provision token create", nargs: 0,
		summary: "create a provisioning token and print it (shown this once)",
		help: `The token string goes to stdout alone, so a script can capture it; the hub
stores only its hash and cannot show it again. Devices that start with it
open operations that an operator approves (ferry provision list --pending).
--expires bounds when devices may open new operations; --max-uses bounds how
many operations may be approved. Revoking the token (ferry provision token
revoke) also stops the devices that joined with it from registering again.

--auto-approve skips the operator: every operation is approved as it opens,
under the device id it asks for. Use it in a lab, with --max-uses and a short
--expires, never for devices in the field.

Example:
  ferry provision token create --name line-3 --expires 30d
  ferry provision token create --name lab --expires 12h --max-uses 1 --json
  ferry provision token create --name bench --expires 1h --max-uses 1000 --auto-approve`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			name := fs.String("name", "", "the token's `NAME` (letters, digits, - _ .), required")
			expires := fs.String("expires", "30d", "when the token expires: a `DURATION` from now (30d, 12h, 90m) or an RFC 3339 time")
			maxUses := fs.Int("max-uses", 0, "approvals allowed, `N` (0: unlimited)")
			auto := fs.Bool("auto-approve", false, "approve every operation at once, with the requested device id (labs and load tests only: anyone with the token gets a device)")
			asJSON := fs.Bool("json", false, "print the token, with its secret, as JSON")
			return func(ctx context.Context, e *env, _ []string) error {
				if *name == "" {
					return usagef("--name is required")
				}
				if *maxUses < 0 {
					return usagef("--max-uses must be 0 (unlimited) or more")
				}
				at, err := parseExpiry(*expires, e.now())
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				t, err := c.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: *name, ExpiresAt: at, MaxUses: *maxUses, AutoApprove: *auto})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, t)
				}
				fmt.Fprintf(e.stderr, "Created provisioning token %s, expiring %s, %s.\n"+
					"Keep the token below now: the hub cannot show it again.\n", t.Name, timeOrDash(t.ExpiresAt), usesText(&t.Token))
				fmt.Fprintln(e.stdout, t.Secret)
				return nil
			}
		},
	}
}

// parseExpiry reads --expires: a duration from now, with "d" for days
// allowed, or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDays(s)
	if err != nil || d <= 0 {
		return time.Time{}, usagef("--expires must be a positive duration such as 30d, 12h or 90m, or an RFC 3339 time, not %q", s)
	}
	return now.Add(d), nil
}

// parseDays is time.ParseDuration that also takes whole days ("30d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100*365 {
			return 0, fmt.Errorf("bad days %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// usesText says how much of a token is used: "2 of 5 uses" or "2 uses, unlimited".
func usesText(t *provision.Token) string {
	if t.MaxUses == 0 {
		return fmt.Sprintf("%d uses, unlimited", t.Uses)
	}
	return fmt.Sprintf("%d of %d uses", t.Uses, t.MaxUses)
}

// tokenStatus is a token's state for people.
func tokenStatus(t *provision.Token, now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	case t.Exhausted():
		return "used up"
	}
	return "active"
}

func provisionTokenList() *command {
	return &command{
		path: "provision token list", nargs: 0,
		summary: "list provisioning tokens (never their secrets)",
		help: `Example:
  ferry provision token list
  ferry provision token list --json | jq -r '.[] | select(.revoked|not) | .name'`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print a JSON array of tokens")
			return func(ctx context.Context, e *env, _ []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				ts, err := c.ProvisioningTokens(ctx)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, ts)
				}
				tw := newTable(e.stdout)
				fmt.Fprintln(tw, "NAME\tSTATUS\tUSES\tEXPIRES\tCREATED")
				for i := range ts {
					t := &ts[i]
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, tokenStatus(t, e.now()), usesColumn(t),
						timeOrDash(t.ExpiresAt), timeOrDash(t.CreatedAt))
				}
				return tw.Flush()
			}
		},
	}
}

func usesColumn(t *provision.Token) string {
	if t.MaxUses == 0 {
		return strconv.Itoa(t.Uses)
	}
	return fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
}

func printToken(w io.Writer, t *provision.Token, now time.Time) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", t.Name)
	row("Status", tokenStatus(t, now))
	row("Uses", usesText(t))
	if t.AutoApprove {
		row("Approval", "automatic (--auto-approve)")
	}
	row("Expires", timeOrDash(t.ExpiresAt))
	row("Created", timeOrDash(t.CreatedAt))
	if t.Revoked {
		row("Revoked", timeOrDash(t.RevokedAt))
	}
	row("ID", t.ID)
	return tw.Flush()
}

func provisionTokenShow() *command {
	return &command{
		path: "provision token show", args: "NAME", nargs: 1,
		summary: "print one provisioning token (never its secret)",
		help: `Example:
  ferry provision token show line-3 --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the token as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				t, err := c.ProvisioningToken(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, t)
				}
				return printToken(e.stdout, t, e.now())
			}
		},
	}
}

func provisionTokenRevoke() *command {
	return &command{
		path: "provision token revoke", args: "NAME", nargs: 1,
		summary: "revoke a provisioning token",
		help: `A revoked token opens no operations, its pending operations can no longer be
approved, and the devices that joined with it can no longer register or
refresh their registration tokens. Their credentials keep working until the
device is disabled or deleted. Revoking twice is not an error.

Example:
  ferry provision token revoke line-3`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the revoked token as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				t, err := c.RevokeProvisioningToken(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, t)
				}
				fmt.Fprintf(e.stderr, "Revoked provisioning token %s.\n", t.Name)
				return nil
			}
		},
	}
}

func provisionList() *command {
	return &command{
		path: "provision list", nargs: 0,
		summary: "list provisioning operations, newest first",
		help: `An operation is pending until an operator approves or rejects it, or until
it expires (15 minutes after the device opened it). Compare the CODE column
with the verification code the device shows before approving.

Example:
  ferry provision list --pending
  ferry provision list --state completed --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			pending := fs.Bool("pending", false, "only the operations waiting for a decision (--state pending)")
			state := fs.String("state", "", "only operations in `STATE`: pending, approved, rejected, expired or completed")
			limit := fs.Int("limit", 100, "at most `N` operations, from 1 to 1000")
			asJSON := fs.Bool("json", false, "print a JSON array of operations")
			return func(ctx context.Context, e *env, _ []string) error {
				st := provision.State(*state)
				if *pending {
					if st != "" && st != provision.StatePending {
						return usagef("--pending and --state %s contradict each other", st)
					}
					st = provision.StatePending
				}
				if st != "" && !provision.ValidState(st) {
					return usagef("--state must be pending, approved, rejected, expired or completed, not %q", st)
				}
				if *limit < 1 || *limit > provision.MaxListLimit {
					return usagef("--limit must be from 1 to %d", provision.MaxListLimit)
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				ops, err := c.ProvisioningOperations(ctx, st, *limit)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, ops)
				}
				tw := newTable(e.stdout)
				fmt.Fprintln(tw, "OPERATION ID\tCODE\tSTATE\tREQUESTED ID\tDEVICE ID\tTOKEN\tCREATED\tEXPIRES")
				for _, op := range ops {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", op.ID, op.VerificationCode, op.State,
						orDash(op.RequestedDeviceID), orDash(op.DeviceID), orDash(op.TokenName),
						timeOrDash(op.CreatedAt), timeOrDash(op.ExpiresAt))
				}
				return tw.Flush()
			}
		},
	}
}

func printOperation(w io.Writer, op *provision.Operation) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Operation ID", op.ID)
	row("Verification code", op.VerificationCode)
	row("State", string(op.State))
	row("Requested device ID", orDash(op.RequestedDeviceID))
	row("Device ID", orDash(op.DeviceID))
	row("Token", orDash(op.TokenName))
	if op.ModelID != "" {
		row("Model ID", op.ModelID)
	}
	if len(op.Data) > 0 {
		row("Data", string(op.Data))
	}
	row("Created", timeOrDash(op.CreatedAt))
	row("Expires", timeOrDash(op.ExpiresAt))
	row("Decided", timeOrDash(op.DecidedAt))
	if op.Reason != "" {
		row("Reason", op.Reason)
	}
	return tw.Flush()
}

func provisionShow() *command {
	return &command{
		path: "provision show", args: "OPERATION_ID", nargs: 1,
		summary: "print one provisioning operation, with the data the device sent",
		help: `Example:
  ferry provision show 3f9c0a6e1b2d4c5e6f708192`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the operation as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				op, err := c.ProvisioningOperation(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, op)
				}
				return printOperation(e.stdout, op)
			}
		},
	}
}

// jsonObjectFlag checks a --tags or --desired value.
func jsonObjectFlag(name, v string) (json.RawMessage, error) {
	if v == "" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &m); err != nil || m == nil {
		return nil, usagef("--%s must be a JSON object such as '{\"site\":\"A\"}'", name)
	}
	return json.RawMessage(v), nil
}

func provisionApprove() *command {
	return &command{
		path: "provision approve", args: "OPERATION_ID", nargs: 1,
		summary: "approve a pending operation: the device gets an identity and credentials",
		help: `Compare the operation's verification code with the one the device shows
first. The hub creates the device with fresh symmetric keys (or, if a device
with that id exists, enabled and with symmetric keys, binds the operation to
it), merges --tags and --desired into its twin, and counts one use of the
token. The device id is --device-id, else the id the device asked for.
An expired or already decided operation fails with exit code 5.

Example:
  ferry provision approve 3f9c0a6e1b2d4c5e6f708192
  ferry provision approve 3f9c0a6e1b2d4c5e6f708192 --device-id pump-7 \
      --tags '{"site":"plant-2"}' --desired '{"interval":30}'`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			deviceID := fs.String("device-id", "", "the device's `ID` (default: the id the device asked for)")
			tags := fs.String("tags", "", "`JSON` object merged into the device twin's tags")
			desired := fs.String("desired", "", "`JSON` object merged into the device twin's desired properties")
			asJSON := fs.Bool("json", false, "print the approved operation as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				t, err := jsonObjectFlag("tags", *tags)
				if err != nil {
					return err
				}
				d, err := jsonObjectFlag("desired", *desired)
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				op, err := c.ApproveProvisioning(ctx, args[0], provision.Approval{DeviceID: *deviceID, Tags: t, Desired: d})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, op)
				}
				fmt.Fprintf(e.stderr, "Approved operation %s: device %s.\n", op.ID, op.DeviceID)
				return nil
			}
		},
	}
}

func provisionReject() *command {
	return &command{
		path: "provision reject", args: "OPERATION_ID", nargs: 1,
		summary: "reject a pending operation",
		help: `The device's next poll fails with ProvisioningOperationRejected (and the
reason, when given). An expired or already decided operation fails with exit
code 5.

Example:
  ferry provision reject 3f9c0a6e1b2d4c5e6f708192 --reason "unknown serial"`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			reason := fs.String("reason", "", "the `TEXT` the device is told")
			asJSON := fs.Bool("json", false, "print the rejected operation as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				op, err := c.RejectProvisioning(ctx, args[0], provision.Rejection{Reason: *reason})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, op)
				}
				fmt.Fprintf(e.stderr, "Rejected operation %s.\n", op.ID)
				return nil
			}
		},
	}
}
