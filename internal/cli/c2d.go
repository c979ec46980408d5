package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
)

func c2dNoun() *noun {
	return &noun{
		name:    "c2d",
		summary: "send cloud-to-device messages and manage device queues",
		verbs:   []*command{c2dSend(), c2dPending(), c2dPurge(), c2dFeedback()},
		examples: `  ferry c2d send thermostat-1 --body '{"setpoint":21}' --content-type application/json --ack full
  ferry c2d send pump-7 --body-file firmware-hint.bin --prop kind=hint --ttl 6h
  ferry c2d pending pump-7
  ferry c2d feedback --json
  ferry c2d purge pump-7`,
	}
}

// propList is a repeatable KEY=VALUE flag.
type propList map[string]string

func (p propList) String() string { return "" }
func (p propList) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	p[k] = val
	return nil
}

func c2dSend() *command {
	return &command{
		path: "c2d send", args: "DEVICE", nargs: 1,
		summary: "queue a message for a device; it is delivered when the device is connected",
		help: `The message waits in the device's durable queue (at most 50 messages) until
the device is connected and subscribed to devices/{id}/messages/devicebound/#;
its PUBACK completes it. Unacknowledged messages are delivered again on the
next connection. With --ack, the outcome is recorded as feedback
(ferry c2d feedback).`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			props := propList{}
			body0 := fs.String("body", "", "the message body `TEXT`")
			bodyFile := fs.String("body-file", "", "read the message body from `FILE`")
			fs.Var(props, "prop", "application property `KEY=VALUE` (repeatable)")
			var o api.C2DOptions
			fs.StringVar(&o.MessageID, "message-id", "", "message id (default: generated)")
			fs.StringVar(&o.CorrelationID, "correlation-id", "", "correlation id")
			fs.StringVar(&o.ContentType, "content-type", "", "content type, e.g. application/json")
			fs.StringVar(&o.ContentEncoding, "content-encoding", "", "content encoding, e.g. utf-8")
			fs.StringVar(&o.Ack, "ack", "none", "feedback to record: none, positive, negative or full")
			fs.DurationVar(&o.TTL, "ttl", 0, "time to live (default 1h, at most 48h)")
			asJSON := fs.Bool("json", false, "print the accepted message as JSON")
			return func(ctx context.Context, e *env, args []string) error {
				body := []byte(*body0)
				if *bodyFile != "" {
					if *body0 != "" {
						return usagef("give --body or --body-file, not both")
					}
					var err error
					if body, err = os.ReadFile(*bodyFile); err != nil {
						return usagef("--body-file: %v", err)
					}
				}
				o.Properties = props
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				acc, err := client.SendC2D(ctx, args[0], body, o)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, acc)
				}
				_, err = fmt.Fprintf(e.stdout, "queued message %s for %s (expires %s)\n", acc.MessageID, args[0], acc.Expiry.Local().Format(time.RFC3339))
				return err
			}
		},
	}
}

func c2dPending() *command {
	return &command{
		path: "c2d pending", args: "DEVICE", nargs: 1,
		summary: "list the messages waiting in a device's queue",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, e *env, args []string) error {
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				msgs, err := client.PendingC2D(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, msgs)
				}
				tw := newTable(e.stdout)
				fmt.Fprintln(tw, "MESSAGE ID\tENQUEUED\tEXPIRES\tDELIVERIES\tBYTES")
				for _, m := range msgs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", m.MessageID, m.EnqueuedTime.Local().Format(time.RFC3339),
						m.Expiry.Local().Format(time.RFC3339), m.DeliveryCount, len(m.Body))
				}
				return tw.Flush()
			}
		},
	}
}

func c2dPurge() *command {
	return &command{
		path: "c2d purge", args: "DEVICE", nargs: 1,
		summary: "remove every message waiting in a device's queue",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, e *env, args []string) error {
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				res, err := client.PurgeC2D(ctx, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, res)
				}
				_, err = fmt.Fprintf(e.stdout, "purged %d messages for %s\n", res.TotalMessagesPurged, res.DeviceID)
				return err
			}
		},
	}
}

func c2dFeedback() *command {
	return &command{
		path: "c2d feedback", nargs: 0,
		summary: "print the outcomes of messages sent with --ack",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			after := fs.Uint64("after", 0, "print records after this sequence number")
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, e *env, _ []string) error {
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				page, err := client.C2DFeedback(ctx, *after, 1000)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, page)
				}
				tw := newTable(e.stdout)
				fmt.Fprintln(tw, "SEQ\tTIME\tDEVICE\tMESSAGE ID\tSTATUS\tDESCRIPTION")
				for _, f := range page.Feedback {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", f.Sequence, f.EnqueuedTimeUTC.Local().Format(time.RFC3339),
						f.DeviceID, f.OriginalMessageID, f.StatusCode, f.Description)
				}
				return tw.Flush()
			}
		},
	}
}
