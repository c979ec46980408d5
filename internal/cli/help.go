package cli

import (
	"context"
	"fmt"
	"strings"
)

// mainUsage is "ferry --help".
const mainUsage = `Ferry is a self-hosted IoT hub: Azure IoT Hub's device protocol and service
API in one binary.

Usage: ferry <command> [arguments] [flags]

Commands:
  serve      run the hub (MQTT for devices, the REST API, metrics)
  device     manage device identities: create, list, show, update, delete,
             connection-string, sas-token
  module     manage module identities under a device: create, list, show, delete, connection-string
  twin       read and change device twins: show, update, history
  query      query device twins: ferry query "SELECT * FROM devices WHERE ..."
  invoke     call a direct method on a device and print its answer
  command    show a queued method call (ferry invoke --queue-ttl)
  c2d        send cloud-to-device messages: send, pending, purge, feedback
  provision  let devices join: provisioning tokens with an operator's approval
             (token, list, show, approve, reject) and DPS enrollments
             (enrollment-group, enrollment, derive-key)
  ca         X.509 certificate authorities devices may be signed by: add, verify
             (proof of possession), list, show, delete
  route      route messages and events to streams, webhooks, NATS and devices:
             add, list, show, test, enable, disable, delete, fallback
  schema     protobuf schemas that decode message bodies: add, list, delete
  model      Plug and Play (DTDL) models: add, list, show, delete
  pnp        a device's Plug and Play state: show, set a writable property
  simulate   run a fleet of simulated Plug and Play devices
  monitor    print device-to-cloud messages as they arrive
  bench      measure the hub under load: telemetry ingest, connection storms
  version    print ferry's version
  help       explain a command: ferry help device, ferry help device create

Examples:
  ferry serve                                  # start a hub in ./ferry-data
  ferry device create thermostat-1             # in another terminal, same directory
  ferry device connection-string thermostat-1  # what the device connects with
  ferry monitor --device thermostat-1          # watch its telemetry
  ferry device list --json | jq -r '.[].deviceId'

` + credentialsHelp + "\n" + outputHelp + "\n" + exitCodesHelp

// credentialsHelp says where the verbs that talk to a hub find it.
const credentialsHelp = `Hub connection (every command that talks to a running hub):
  The hub and its owner key come from the first of
    --hub CONNSTR      a service connection string:
                       HostName=..;SharedAccessKeyName=..;SharedAccessKey=..
    FERRY_HUB          the same, from the environment
    <data>/owner-connection-string
                       written by 'ferry serve' on first start; <data> is
                       --data, else FERRY_DATA, else ./ferry-data
  The hub's TLS certificate is trusted through --ca FILE, else FERRY_CA, else
  <data>/pki/ca.pem when it exists, else the system's root certificates.
  So in the directory where 'ferry serve' runs, no flags are needed.
`

// outputHelp says which stream gets what.
const outputHelp = `Output:
  Results go to stdout; with --json they are JSON for scripts. Progress,
  messages and errors ("ferry: ...") go to stderr.
`

// exitCodesHelp lists the exit codes.
const exitCodesHelp = `Exit codes:
  0  success
  1  failure (the hub is unreachable, refused the input, ...)
  2  usage error: unknown command or flag, missing or bad argument
  3  not found: the device does not exist
  4  unauthorized or forbidden: bad credentials, or a policy lacking the right
  5  conflict: the device exists already, or its etag changed (--etag)
`

// help runs "ferry help [NOUN [VERB]]".
func (e *env) help(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stdout, mainUsage)
		return exitOK
	}
	switch args[0] {
	case "serve":
		return serveMain(ctx, []string{"--help"}, e.stdout, e.stdout)
	case "bench":
		return benchMain(ctx, []string{"--help"}, e.stdout, e.stdout)
	}
	n := findNoun(args[0])
	if n == nil {
		fmt.Fprintf(e.stderr, "ferry: unknown command %q\nRun 'ferry help' for usage.\n", args[0])
		return exitUsageError
	}
	for len(args) > 1 && n.sub(args[1]) != nil { // "ferry help provision token create"
		n, args = n.sub(args[1]), args[1:]
	}
	switch {
	case n.cmd != nil:
		n.cmd.printHelp(e.stdout)
	case len(args) > 1:
		c := n.verb(args[1])
		if c == nil {
			fmt.Fprintf(e.stderr, "ferry: unknown command \"%s %s\"\nRun 'ferry help %s' for usage.\n",
				n.name, args[1], n.name)
			return exitUsageError
		}
		c.printHelp(e.stdout)
	default:
		fmt.Fprint(e.stdout, n.usage())
	}
	return exitOK
}

// usage is the help of a noun with verbs: each verb's summary, examples,
// credentials and exit codes.
func (n *noun) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: ferry %s <command> [arguments] [flags]\n\n%s.\n\nCommands:\n",
		n.name, upperFirst(n.summary))
	for _, c := range n.verbs {
		name := strings.TrimPrefix(c.path, n.name+" ")
		fmt.Fprintf(&b, "  %-19s %s\n", name, c.summary)
	}
	for _, s := range n.subs {
		name := strings.TrimPrefix(s.name, n.name+" ")
		fmt.Fprintf(&b, "  %-19s %s\n", name+" ...", s.summary)
	}
	if n.examples != "" {
		fmt.Fprintf(&b, "\nExamples:\n%s", n.examples)
	}
	fmt.Fprintf(&b, "\nRun 'ferry %s <command> --help' for a command's flags.\n\n", n.name)
	b.WriteString(credentialsHelp + "\n" + exitCodesHelp)
	return b.String()
}
