package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/method"
)

func invokeNoun() *noun {
	c := invokeCommand()
	return &noun{name: "invoke", summary: c.summary, cmd: c}
}

func invokeCommand() *command {
	return &command{
		path: "invoke", args: "DEVICE METHOD", nargs: 2,
		summary: "call a direct method on a device and print its status and answer",
		help: `The hub publishes the call to the device and waits for its answer, as
Azure IoT Hub's direct methods do. The exit code is 0 when the device answered
(whatever its status), 3 when the device is not online, 1 when it did not
answer in time.

Examples:
  ferry invoke alarm-monitor ProcessMessage --payload '{"parcel":"..."}'
  ferry invoke thermostat-1 reboot --payload @delay.json --timeout 10s
  ferry invoke sensor-9 ping --connect-timeout 1m     # wait for it to come online
  ferry invoke sensor-9 reset --queue-ttl 6h          # or keep the call until it does`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			payload := fs.String("payload", "", "the method's JSON `PAYLOAD`, or @FILE to read it from a file (default null)")
			timeout := fs.Duration("timeout", 30*time.Second, "how long the device has to answer (5s to 300s)")
			connect := fs.Duration("connect-timeout", 0, "how long to wait for the device to come online (0: it must be online)")
			module := fs.String("module", "", "call the method on this `MODULE` of the device")
			queueTTL := fs.Duration("queue-ttl", 0, "when the device is offline, keep the call this long and invoke it when it connects (follow it with ferry command show ID)")
			contentType := fs.String("content-type", "", "send the payload as these bytes of `TYPE` (e.g. application/x-protobuf) instead of JSON; the answer's bytes go to stdout")
			asJSON := fs.Bool("json", false, `print {"status": ..., "payload": ...}`)
			return func(ctx context.Context, e *env, args []string) error {
				if *contentType != "" && !method.IsJSON(*contentType) {
					return invokeRaw(ctx, e, &hf, args, *payload, *contentType, *module, *timeout, *connect)
				}
				body, err := readPayload(*payload)
				if err != nil {
					return err
				}
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				start := time.Now()
				resp, queued, err := client.InvokeOrQueue(ctx, args[0], *module, api.MethodRequest{
					MethodName:               args[1],
					Payload:                  body,
					ResponseTimeoutInSeconds: int(timeout.Seconds()),
					ConnectTimeoutInSeconds:  int(connect.Seconds()),
					QueueTTLInSeconds:        int(queueTTL.Seconds()),
				})
				if err != nil {
					return err
				}
				if queued != nil {
					if *asJSON {
						return writeJSON(e.stdout, queued)
					}
					_, err := fmt.Fprintf(e.stdout, "%s is offline: queued as command %s until %s (ferry command show %s)\n",
						args[0], queued.ID, queued.Expires.Local().Format(time.RFC3339), queued.ID)
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, resp)
				}
				fmt.Fprintf(e.stderr, "status %d in %s\n", resp.Status, time.Since(start).Round(time.Millisecond))
				var v any
				if json.Unmarshal(resp.Payload, &v) == nil {
					return writeJSON(e.stdout, v)
				}
				_, err = fmt.Fprintln(e.stdout, string(resp.Payload))
				return err
			}
		},
	}
}

// readPayload returns the JSON given inline or in @FILE; nil when empty.
func readPayload(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	b := []byte(s)
	if name, ok := strings.CutPrefix(s, "@"); ok {
		var err error
		if b, err = os.ReadFile(name); err != nil {
			return nil, usagef("--payload: %v", err)
		}
	}
	if !json.Valid(b) {
		return nil, usagef("--payload is not valid JSON (quote a string: '\"text\"')")
	}
	return b, nil
}

// invokeRaw calls a method with a non-JSON payload and writes the device's
// answer to stdout as bytes.
func invokeRaw(ctx context.Context, e *env, hf *hubFlags, args []string, payload, contentType, module string, timeout, connect time.Duration) error {
	body := []byte(payload)
	if name, ok := strings.CutPrefix(payload, "@"); ok {
		var err error
		if body, err = os.ReadFile(name); err != nil {
			return usagef("--payload: %v", err)
		}
	}
	client, err := e.client(hf)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := client.InvokeRaw(ctx, args[0], module, args[1], body, contentType, timeout, connect)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "status %d in %s (%s, %d bytes)\n", resp.Status, time.Since(start).Round(time.Millisecond), resp.ContentType, len(resp.Payload))
	_, err = e.stdout.Write(resp.Payload)
	return err
}

func commandNoun() *noun {
	c := &command{
		path: "command", args: "ID", nargs: 1,
		summary: "show a queued method call's state: queued, delivered, completed, expired or failed",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			_ = fs.Bool("json", true, "print JSON (always)")
			return func(ctx context.Context, e *env, args []string) error {
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				cmd, err := client.Command(ctx, args[0])
				if err != nil {
					return err
				}
				return writeJSON(e.stdout, cmd)
			}
		},
	}
	return &noun{name: "command", summary: c.summary, cmd: c}
}
