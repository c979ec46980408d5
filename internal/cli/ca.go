package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/registry"
)

// caNoun is "ferry ca": the certificate authorities X.509 devices chain to.
func caNoun() *noun {
	return &noun{
		name:    "ca",
		summary: "manage the certificate authorities that sign X.509 device certificates",
		verbs:   []*command{caAdd(), caVerify(), caList(), caShow(), caDelete()},
		examples: `  ferry ca add fleet --cert fleet-ca.pem
  openssl req -new -key fleet-ca.key -subj "/CN=$(ferry ca show fleet --json | jq -r .verificationCode)" \
      | openssl x509 -req -CA fleet-ca.pem -CAkey fleet-ca.key -days 1 -out proof.pem
  ferry ca verify fleet --cert proof.pem
  ferry device create pump-7 --auth x509-ca
  ferry ca list
  ferry ca delete fleet

How it works: a CA is added unverified, with a verification code. Its owner
proves possession of its private key with a certificate whose subject CN is
the code, signed by the CA (ferry ca verify). From then on, devices created
with --auth x509-ca connect with a certificate chain that ends in the CA and
whose subject CN is their device id, without a password. Deleting the CA
refuses those devices at their next connect.
`,
	}
}

// readPEMFile reads the file named by a --cert flag.
func readPEMFile(flagName, path string) (string, error) {
	if path == "" {
		return "", usagef("--%s FILE is required", flagName)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("--%s: %v", flagName, err)
	}
	return string(b), nil
}

func caAdd() *command {
	return &command{
		path: "ca add", args: "NAME", nargs: 1,
		summary: "register a CA certificate (unverified) and print its verification code",
		help: `The certificate must be a CA certificate (basic constraints CA:TRUE) in PEM.
The verification code goes to stdout alone, so a script can capture it;
sign it as the subject CN of a certificate and pass that to 'ferry ca
verify'. A name or a certificate that is registered already fails with
exit code 5.

Example:
  CODE=$(ferry ca add fleet --cert fleet-ca.pem)
  ferry ca add fleet --cert fleet-ca.pem --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			cert := fs.String("cert", "", "the CA certificate, a PEM `FILE`")
			asJSON := fs.Bool("json", false, "print the CA as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				pem, err := readPEMFile("cert", *cert)
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				ca, err := c.AddCA(ctx, args[0], pem)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, ca)
				}
				fmt.Fprintf(e.stderr, "Added CA %s (%s), unverified. Prove possession of its key with a certificate\n"+
					"whose subject CN is the verification code below, signed by the CA: ferry ca verify %s --cert FILE\n",
					ca.Name, ca.Subject, ca.Name)
				fmt.Fprintln(e.stdout, ca.VerificationCode)
				return nil
			}
		},
	}
}

func caVerify() *command {
	return &command{
		path: "ca verify", args: "NAME", nargs: 1,
		summary: "prove possession of a CA's key with a certificate signed by it",
		help: `--cert is a certificate whose subject CN is the CA's verification code
(ferry ca show NAME), signed by the CA's private key and valid now. A wrong
code, signature or validity fails with exit code 1 and says which.

Example:
  ferry ca verify fleet --cert proof.pem`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			cert := fs.String("cert", "", "the verification certificate, a PEM `FILE`")
			asJSON := fs.Bool("json", false, "print the CA as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				pem, err := readPEMFile("cert", *cert)
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				ca, err := c.VerifyCA(ctx, args[0], pem)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, ca)
				}
				fmt.Fprintf(e.stderr, "CA %s is verified: devices with --auth x509-ca may chain to it.\n", ca.Name)
				return nil
			}
		},
	}
}

func caList() *command {
	return listCommand(command{
		path: "ca list", nargs: 0,
		summary: "list the registered CAs",
		help: `Example:
  ferry ca list
  ferry ca list --json | jq -r '.[] | select(.isVerified | not) | .name'`,
	}, "NAME\tVERIFIED\tEXPIRES\tSUBJECT", (*api.Client).CAs, func(w io.Writer, ca *registry.CA) {
		fmt.Fprintf(w, "%s\t%v\t%s\t%s\n", ca.Name, ca.Verified, ca.NotAfter.UTC().Format(time.RFC3339), ca.Subject)
	})
}

func caShow() *command {
	return &command{
		path: "ca show", args: "NAME", nargs: 1,
		summary: "print one CA, with its verification code while unverified",
		help: `Example:
  ferry ca show fleet
  ferry ca show fleet --json | jq -r .certificate > fleet-ca.pem`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the CA as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				ca, err := c.CA(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, ca)
				}
				return printCA(e.stdout, ca)
			}
		},
	}
}

func caDelete() *command {
	return &command{
		path: "ca delete", args: "NAME", nargs: 1,
		summary: "remove a CA: devices whose certificates chain to it are refused from their next connect",
		help: `Example:
  ferry ca delete fleet`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				if err := c.DeleteCA(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Deleted CA %s.\n", args[0])
				return nil
			}
		},
	}
}

// printCA writes a CA for people: one "field: value" line each.
func printCA(w io.Writer, ca *registry.CA) error {
	t := newTable(w)
	row := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, v) }
	row("Name", ca.Name)
	row("Subject", ca.Subject)
	row("Verified", fmt.Sprint(ca.Verified))
	if !ca.Verified {
		row("Verification code", ca.VerificationCode)
	}
	row("Valid from", ca.NotBefore.UTC().Format(time.RFC3339))
	row("Valid until", ca.NotAfter.UTC().Format(time.RFC3339))
	row("Thumbprint (SHA-256)", ca.Thumbprint)
	row("Thumbprint (SHA-1)", ca.SHA1Thumbprint)
	row("Added", timeOrDash(ca.Created))
	row("Updated", timeOrDash(ca.Updated))
	return t.Flush()
}
