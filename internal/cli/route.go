package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/route"
)

// routeNoun is "ferry route": message routes.
func routeNoun() *noun {
	return &noun{
		name:    "route",
		summary: "route device messages and events to streams, webhooks, NATS subjects and other devices",
		verbs: []*command{routeAdd(), routeList(), routeShow(), routeTest(), routeEnable(true), routeEnable(false),
			routeDelete(), routeFallback()},
		examples: `  ferry schema add pb_AlarmStatus --descriptor-set alarm.pb
  ferry route add parcels --condition "proto-type = 'pb_AlarmStatus'" \
      --endpoint method:ProcessMessage --target-from to --allow-target alarm-monitor
  ferry route add hot --condition '$body.temperature > 30' \
      --endpoint webhook:https://ops.example.com/hook --secret "$HOOK_SECRET" --enrich 'site=$twin.tags.site'
  ferry route add site-a --condition "\$twin.tags.site = 'A'" --endpoint stream:site-a --endpoint nats:plant.a
  ferry route add offline --source deviceLifecycleEvents --condition "opType = 'deviceDisconnected'" --endpoint stream:presence
  ferry route test --device alarm-agent --property proto-type=pb_AlarmStatus \
      --content-type application/x-protobuf --body-file status.bin
  ferry route list
  ferry monitor --stream deadletter

Routing runs after a message is stored, so it never delays a device's
acknowledgement, and delivers at least once. Conditions use the query
language's WHERE grammar over $body.x, $twin.tags.x, system properties
($connectionDeviceId, $contentType, $to, ...) and application properties
(bare names). Failed deliveries end in the deadletter stream.
`,
	}
}

// routeFlags are the flags that describe a route.
type routeFlags struct {
	source, condition, target, targetFrom, secret string
	endpoints, enrich, allowSource, allowTarget   stringList
	allowTags                                     propList
	timeout                                       int
	disabled                                      bool
}

func (f *routeFlags) register(fs *flag.FlagSet) {
	f.allowTags = propList{}
	fs.StringVar(&f.source, "source", "telemetry", "what the route reads: telemetry, twinChangeEvents or deviceLifecycleEvents")
	fs.StringVar(&f.condition, "condition", "", "which messages the route takes (default: all); see 'ferry help route'")
	fs.Var(&f.endpoints, "endpoint", "where matches go: stream:NAME, webhook:URL, nats:SUBJECT, method:NAME or c2d (repeatable)")
	fs.StringVar(&f.target, "target", "", "the `DEVICE` (or DEVICE/MODULE) method and c2d endpoints deliver to")
	fs.StringVar(&f.targetFrom, "target-from", "", "take the target from each message instead: 'to' ($.to) or property:NAME")
	fs.StringVar(&f.secret, "secret", "", "webhook HMAC-SHA256 key: the X-Ferry-Signature header signs the body with it")
	fs.IntVar(&f.timeout, "timeout", 0, "seconds a webhook attempt or a method answer may take (default 10 and 30)")
	fs.Var(&f.enrich, "enrich", "add an application property `KEY=VALUE`; VALUE may be $twin.tags.x or $connectionDeviceId (repeatable)")
	fs.Var(&f.allowSource, "allow-source", "only these sending `DEVICES` (comma-separated; repeatable) may reach a device endpoint")
	fs.Var(&f.allowTarget, "allow-target", "device endpoints may reach only these `DEVICES` (comma-separated; repeatable)")
	fs.Var(f.allowTags, "allow-target-tag", "device endpoints may reach only devices whose twin has tag `KEY=VALUE` (repeatable)")
	fs.BoolVar(&f.disabled, "disabled", false, "save the route disabled")
}

// build makes the route the flags describe.
func (f *routeFlags) build(name string) (route.Route, error) {
	r := route.Route{Name: name, Source: route.Source(f.source), Condition: f.condition, Enabled: !f.disabled}
	if len(f.endpoints) == 0 {
		return r, usagef("give at least one --endpoint")
	}
	device := false
	for _, s := range f.endpoints {
		e, err := route.ParseEndpoint(s)
		if err != nil {
			return r, usagef("--endpoint: %v", err)
		}
		switch e.Kind {
		case route.KindMethod, route.KindC2D:
			e.Target, e.TargetFrom = f.target, f.targetFrom
			device = true
		case route.KindWebhook:
			e.Secret = f.secret
		}
		if e.Kind == route.KindWebhook || e.Kind == route.KindMethod {
			e.TimeoutSeconds = f.timeout
		}
		r.Endpoints = append(r.Endpoints, e)
	}
	if !device && (f.target != "" || f.targetFrom != "") {
		return r, usagef("--target and --target-from apply to method: and c2d endpoints only")
	}
	for _, kv := range f.enrich {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return r, usagef("--enrich: want KEY=VALUE, got %q", kv)
		}
		r.Enrichments = append(r.Enrichments, route.Enrichment{Key: k, Value: v})
	}
	r.Allow.Sources = splitList(f.allowSource)
	r.Allow.Targets = splitList(f.allowTarget)
	if len(f.allowTags) > 0 {
		r.Allow.TargetTags = f.allowTags
	}
	return r, nil
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func routeAdd() *command {
	return &command{
		path: "route add", args: "NAME", nargs: 1,
		summary: "add a route; it takes effect at once",
		help: `A condition that does not parse is refused with its line and column and
nothing is saved (exit code 2 for flags, 1 for a refused route). Method and
c2d endpoints need --target or --target-from; without --allow-* flags a
route that takes its target from the message may reach any registered
device, so say which it may reach.

Examples:
  ferry route add parcels --condition "proto-type = 'pb_AlarmStatus'" \
      --endpoint method:ProcessMessage --target-from to --allow-target-tag role=monitor
  ferry route add alerts --condition '$body.level >= 3' --endpoint c2d --target siren-1
  ferry route add audit --endpoint webhook:https://audit.example.com/in --secret s3cret`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			var rf routeFlags
			rf.register(fs)
			asJSON := fs.Bool("json", false, "print the route as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				r, err := rf.build(args[0])
				if err != nil {
					return err
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				out, err := c.CreateRoute(ctx, r)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, out)
				}
				fmt.Fprintf(e.stderr, "Added route %s.\n", out.Name)
				if rf.targetFrom != "" && out.Allow.IsZero() {
					fmt.Fprintln(e.stderr, "Note: the route takes its target from each message and has no allow-list:\n"+
						"any sender may reach any registered device through it (see --allow-target, --allow-target-tag).")
				}
				return nil
			}
		},
	}
}

func routeList() *command {
	return listCommand(command{
		path: "route list", summary: "list the routes",
		help: `Example:
  ferry route list --json | jq -r '.[].name'`,
	}, "NAME\tSOURCE\tENABLED\tENDPOINTS\tCONDITION", (*api.Client).Routes, func(w io.Writer, r *route.Route) {
		var eps []string
		for _, ep := range r.Endpoints {
			eps = append(eps, ep.String())
		}
		fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\n", r.Name, r.Source, r.Enabled, strings.Join(eps, ", "), orDash(r.Condition))
	})
}

func routeShow() *command {
	return &command{
		path: "route show", args: "NAME", nargs: 1, summary: "show a route",
		help: `Webhook secrets are shown as (redacted). An unknown route exits with code 3.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the route as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				r, err := c.Route(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, r)
				}
				printRoute(e.stdout, r)
				return nil
			}
		},
	}
}

func printRoute(w io.Writer, r *route.Route) {
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\nSource:\t%s\nEnabled:\t%v\nCondition:\t%s\n", r.Name, r.Source, r.Enabled, orDash(r.Condition))
	for i, ep := range r.Endpoints {
		fmt.Fprintf(tw, "Endpoint %d:\t%s\n", i+1, ep.String())
	}
	for _, en := range r.Enrichments {
		fmt.Fprintf(tw, "Enrichment:\t%s=%s\n", en.Key, en.Value)
	}
	if len(r.Allow.Sources) > 0 {
		fmt.Fprintf(tw, "Allowed sources:\t%s\n", strings.Join(r.Allow.Sources, ", "))
	}
	if len(r.Allow.Targets) > 0 {
		fmt.Fprintf(tw, "Allowed targets:\t%s\n", strings.Join(r.Allow.Targets, ", "))
	}
	for k, v := range r.Allow.TargetTags {
		fmt.Fprintf(tw, "Target tag:\t%s=%s\n", k, v)
	}
	fmt.Fprintf(tw, "Updated:\t%s\n", timeOrDash(r.Updated))
	tw.Flush()
}

func routeTest() *command {
	return &command{
		path: "route test", summary: "evaluate a sample message against the routes and say which match and why",
		help: `Nothing is delivered. Each comparison is printed with the value it read,
so a condition that does not match shows where. With --condition, that
condition is tested instead of the saved routes.

Examples:
  ferry route test --device pump-7 --body '{"temperature": 35}'
  ferry route test --condition '$body.temperature > 30' --body '{"temperature": 20}'
  ferry route test --device alarm-agent --property proto-type=pb_AlarmStatus \
      --content-type application/x-protobuf --body-file status.bin --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			device := fs.String("device", "", "the sending `DEVICE` (its twin is read for $twin fields)")
			body := fs.String("body", "", "the message body as `TEXT`")
			bodyFile := fs.String("body-file", "", "read the body from `FILE` (binary is fine)")
			ct := fs.String("content-type", "", "the message's content type")
			ce := fs.String("content-encoding", "", "the message's content encoding (gzip)")
			to := fs.String("to", "", "the message's $.to system property")
			source := fs.String("source", "telemetry", "the sample's source: telemetry, twinChangeEvents or deviceLifecycleEvents")
			cond := fs.String("condition", "", "test this condition instead of the saved routes")
			props := propList{}
			fs.Var(props, "property", "application property `KEY=VALUE` (repeatable)")
			asJSON := fs.Bool("json", false, "print the result as JSON")
			return func(ctx context.Context, e *env, _ []string) error {
				s := route.Sample{Source: route.Source(*source), DeviceID: *device, Body: *body, Properties: props,
					System: map[string]string{"contentType": *ct, "contentEncoding": *ce, "to": *to}}
				if *bodyFile != "" {
					b, err := os.ReadFile(*bodyFile)
					if err != nil {
						return usagef("--body-file: %v", err)
					}
					s.BodyBytes = b
				}
				req := route.TestRequest{Message: s}
				if *cond != "" {
					req.Route = &route.Route{Name: "condition", Source: s.Source, Condition: *cond, Enabled: true,
						Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "test"}}}
				}
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				res, err := c.TestRoutes(ctx, req)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, res)
				}
				printTest(e.stdout, res)
				return nil
			}
		},
	}
}

func printTest(w io.Writer, res *route.TestResult) {
	fmt.Fprintf(w, "Body as conditions read it: %s\n", res.Body)
	for _, v := range res.Routes {
		state := "no match"
		if v.Matched {
			state = "MATCH"
		}
		if !v.Enabled {
			state += " (disabled)"
		}
		fmt.Fprintf(w, "\n%s: %s (condition is %s)\n", v.Route, state, v.Result)
		for _, r := range v.Reasons {
			fmt.Fprintf(w, "  %s\n", r)
		}
		for _, ep := range v.Endpoints {
			fmt.Fprintf(w, "  → %s\n", ep)
		}
	}
	if len(res.Routes) == 0 {
		fmt.Fprintln(w, "\nNo routes.")
	}
	if res.Fallback {
		fmt.Fprintln(w, "\nNo enabled route matches: the message stays only in its stream (fallback).")
	}
}

func routeEnable(on bool) *command {
	verb, summary := "disable", "stop a route without deleting it"
	if on {
		verb, summary = "enable", "start a disabled route again"
	}
	return &command{
		path: "route " + verb, args: "NAME", nargs: 1, summary: summary,
		help: `It takes effect for the next message the router reads. Example:
  ferry route ` + verb + ` parcels`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print the route as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				r, err := c.SetRouteEnabled(ctx, args[0], on)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, r)
				}
				fmt.Fprintf(e.stderr, "Route %s %sd.\n", r.Name, verb)
				return nil
			}
		},
	}
}

func routeDelete() *command {
	return &command{
		path: "route delete", args: "NAME", nargs: 1, summary: "delete a route",
		help: `An unknown route exits with code 3. Example:
  ferry route delete parcels`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				if err := c.DeleteRoute(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Deleted route %s.\n", args[0])
				return nil
			}
		},
	}
}

func routeFallback() *command {
	return &command{
		path: "route fallback", args: "on|off|show", nargs: 1,
		summary: "show or set whether unmatched messages count as delivered to their stream",
		help: `Every message is stored in its stream (default "default") before routing,
so a message that matches no route is already there: the fallback. Off, such
messages are counted as unrouted (ferry_route_unrouted_total) instead; they
are never dropped. Example:
  ferry route fallback off`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				switch args[0] {
				case "show":
					on, err := c.RoutingFallback(ctx)
					if err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, map[bool]string{true: "on", false: "off"}[on])
					return nil
				case "on", "off":
					return c.SetRoutingFallback(ctx, args[0] == "on")
				}
				return usagef("route fallback: want on, off or show, not %q", args[0])
			}
		},
	}
}
