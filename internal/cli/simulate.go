package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/loadgen"
	"github.com/ferry-iot/ferry/internal/model"
)

func simulateNoun() *noun {
	return &noun{name: "simulate", summary: "run a fleet of simulated Plug and Play devices", cmd: simulateCommand(),
		examples: `  ferry simulate --devices 10 --rate 2 --model 'dtmi:ferry:example:TemperatureController;1'
  ferry simulate --devices 3 --template reading.json --duration 5m   # {"temp": "{{drift 18 24}}", "door": "{{choice open shut}}"}`}
}

// simCounts are the fleet's counters, updated by every device.
type simCounts struct {
	Connected int64 `json:"connected"`
	Sent      int64 `json:"sent"`     // telemetry messages enqueued
	Pending   int64 `json:"pending"`  // not yet acknowledged by the hub at the end
	Commands  int64 `json:"commands"` // direct methods answered
	Acks      int64 `json:"acks"`     // writable properties acknowledged
	Errors    int64 `json:"errors"`
}

type simCounters struct{ connected, sent, commands, acks, errs atomic.Int64 }

// simSummary is the --json result.
type simSummary struct {
	Devices    int     `json:"devices"`
	Model      string  `json:"model,omitempty"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"messagesPerSecond"`
	simCounts
}

type simOptions struct {
	hubFlags
	devices     int
	rate        float64
	modelID     string
	template    string
	prefix      string
	duration    time.Duration
	jsonOut     bool
	allowRemote bool
}

func simulateCommand() *command {
	return &command{
		path:    "simulate",
		summary: "simulated devices sending model-shaped telemetry, answering commands, acknowledging writable properties",
		help: `Creates (or reuses) --devices devices PREFIX0..PREFIXn-1 and connects each
with the device SDK. Each sends --rate telemetry messages a second, one per
component of the --model (a DTDL model in the hub's repository): numbers
drift, booleans flip now and then, enums pick a value, objects, maps and
arrays are filled field by field. With --template FILE instead, each message
is the JSON file with its placeholders filled: {{drift LO HI}}, {{int LO HI}},
{{bool}}, {{choice A B ...}}, {{device}}, {{seq}}, {{now}}.
With a model, the devices announce it (model-id), answer its commands 200
with a response fitting the command's response schema, and acknowledge
writable properties with {"value", "ac": 200, "av": <desired $version>}.
A status line shows connections, messages and rates; --json prints a
summary at the end. The run stops after --duration or on Ctrl-C, and only
targets a hub on this machine unless --allow-remote.`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var o simOptions
			o.hubFlags.register(fs)
			fs.IntVar(&o.devices, "devices", 3, "number of simulated devices (at most 10,000)")
			fs.Float64Var(&o.rate, "rate", 1, "telemetry messages per second per device and component (at most 100)")
			fs.StringVar(&o.modelID, "model", "", "the `DTMI` of a model in the hub's repository")
			fs.StringVar(&o.template, "template", "", "a JSON `FILE` with placeholders, instead of a model")
			fs.StringVar(&o.prefix, "prefix", "sim-", "device id `PREFIX`")
			fs.DurationVar(&o.duration, "duration", time.Minute, "how long to run")
			fs.BoolVar(&o.jsonOut, "json", false, "print a JSON summary at the end")
			fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a hub that is not on this machine")
			return func(ctx context.Context, e *env, _ []string) error { return runSimulate(ctx, e, o) }
		},
	}
}

func (o *simOptions) check() error {
	switch {
	case (o.modelID == "") == (o.template == ""):
		return usagef("give either --model or --template")
	case o.devices < 1 || o.devices > 10_000:
		return usagef("--devices must be between 1 and 10000")
	case o.rate <= 0 || o.rate > 100:
		return usagef("--rate must be above 0 and at most 100")
	case o.duration <= 0:
		return usagef("--duration must be positive")
	}
	return nil
}

// simSource makes one message set per tick for a device.
type simSource struct {
	m        *model.Model
	template any
}

func (s simSource) messages(g *valueGen) (map[string][]byte, error) {
	if s.m != nil {
		return g.telemetry(s.m), nil
	}
	v, err := g.template(s.template, "$")
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	return map[string][]byte{"": b}, err
}

func runSimulate(ctx context.Context, e *env, o simOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	client, err := e.client(&o.hubFlags)
	if err != nil {
		return err
	}
	t, _ := o.hubFlags.resolve(e.getenv)
	info, err := client.Hub(ctx)
	if err != nil {
		return err
	}
	addr := info.DeviceHostName
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "8883")
	}
	if err := loadgen.CheckAddr(addr, o.allowRemote); err != nil {
		return err
	}
	var src simSource
	if o.modelID != "" {
		d, err := client.Model(ctx, o.modelID)
		if err != nil {
			return err
		}
		if d.Model == nil {
			return fmt.Errorf("model %s does not compile: %s", o.modelID, d.CompileError)
		}
		src.m = d.Model
	} else {
		b, err := os.ReadFile(o.template)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &src.template); err != nil {
			return fmt.Errorf("--template %s: %w", o.template, err)
		}
		if _, err := src.messages(newValueGen("check", 1, e.now)); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "ferry-simulate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var cnt simCounters
	start := e.now()
	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	stopStatus := simStatus(e, o, &cnt, start)
	var (
		wg      sync.WaitGroup
		clients []*device.Client
		first   error
	)
	for i := range o.devices {
		id := fmt.Sprintf("%s%d", o.prefix, i)
		key, err := ensureDevice(runCtx, client, id)
		if err != nil {
			first = err
			break
		}
		sd := &simDevice{id: id, src: src, cnt: &cnt, gen: newValueGen(id, uint64(i)+1, e.now)}
		cfg := device.Config{
			ConnectionString: fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s", info.DeviceHostName, id, base64.StdEncoding.EncodeToString(key)),
			CAFile:           t.caFile, StorePath: fmt.Sprintf("%s/%s.db", dir, id),
			MaxPending: 10_000, Full: device.DropOldest, OnStatus: sd.onStatus,
		}
		if src.m != nil {
			cfg.ModelID = o.modelID
			cfg.OnDesired = sd.onDesired
			cfg.Methods = map[string]device.MethodHandler{"": sd.onMethod}
		}
		c, err := device.Start(runCtx, cfg)
		if err != nil {
			first = err
			break
		}
		sd.client = c
		clients = append(clients, c)
		wg.Add(1)
		go func() { defer wg.Done(); sd.run(runCtx, o.rate) }()
	}
	if first == nil {
		<-runCtx.Done()
	}
	cancel()
	wg.Wait()
	var pending int64
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	for _, c := range clients {
		_ = c.Flush(fctx)
		n, _ := c.Pending()
		pending += int64(n)
		_ = c.Close()
	}
	stopStatus()
	if first != nil {
		return first
	}
	elapsed := e.now().Sub(start).Seconds()
	sum := simSummary{Devices: o.devices, Model: o.modelID, Seconds: elapsed, simCounts: cnt.snapshot()}
	sum.Pending = pending
	if elapsed > 0 {
		sum.MsgsPerSec = float64(sum.Sent) / elapsed
	}
	if o.jsonOut {
		return writeJSON(e.stdout, sum)
	}
	fmt.Fprintf(e.stdout, "%d devices, %.1f s: %d messages (%.1f/s), %d not acknowledged, %d commands answered, %d writable properties acknowledged, %d errors\n",
		sum.Devices, sum.Seconds, sum.Sent, sum.MsgsPerSec, sum.Pending, sum.Commands, sum.Acks, sum.Errors)
	return nil
}

func (c *simCounters) snapshot() simCounts {
	return simCounts{Connected: c.connected.Load(), Sent: c.sent.Load(), Commands: c.commands.Load(), Acks: c.acks.Load(), Errors: c.errs.Load()}
}

// simStatus rewrites one status line on stderr every second: connected
// devices, messages sent and the rate over the last second.
func simStatus(e *env, o simOptions, cnt *simCounters, start time.Time) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	line := func(prev int64, dt float64) int64 {
		s := cnt.snapshot()
		rate := 0.0
		if dt > 0 {
			rate = float64(s.Sent-prev) / dt
		}
		fmt.Fprintf(e.stderr, "\r\x1b[Ksimulate: %d/%d connected, %d messages (%.1f/s), %d commands, %d acks, %d errors, %s/%s",
			s.Connected, o.devices, s.Sent, rate, s.Commands, s.Acks, s.Errors,
			e.now().Sub(start).Round(time.Second), o.duration)
		return s.Sent
	}
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev int64
		last := e.now()
		for {
			select {
			case <-quit:
				line(prev, 0)
				fmt.Fprintln(e.stderr)
				return
			case <-t.C:
				now := e.now()
				prev = line(prev, now.Sub(last).Seconds())
				last = now
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

// simDevice is one simulated device.
type simDevice struct {
	id     string
	src    simSource
	cnt    *simCounters
	client *device.Client
	up     bool // only touched by onStatus

	mu     sync.Mutex
	gen    *valueGen // guarded by mu
	ackedV int64     // guarded by mu: the desired $version last acknowledged
}

// onStatus counts the device as connected while it is (OnStatus calls
// come in order from one goroutine).
func (d *simDevice) onStatus(s device.Status, _ error) {
	if up := s == device.Connected; up != d.up {
		d.up = up
		if up {
			d.cnt.connected.Add(1)
		} else {
			d.cnt.connected.Add(-1)
		}
	}
}

func (d *simDevice) run(ctx context.Context, rate float64) {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	s := d.client.Stream("", "")
	for {
		d.mu.Lock()
		msgs, err := d.src.messages(d.gen)
		d.mu.Unlock()
		if err != nil {
			d.cnt.errs.Add(1)
			return
		}
		for comp, body := range msgs {
			m := device.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8", Component: comp}
			if _, err := s.Enqueue(ctx, m); err != nil {
				if ctx.Err() == nil {
					d.cnt.errs.Add(1)
				}
				continue
			}
			d.cnt.sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// onMethod answers a command of the model 200 with a value fitting its
// response schema, and anything else 404.
func (d *simDevice) onMethod(ctx context.Context, req device.MethodRequest) device.MethodResponse {
	_, cmd, ok := d.src.m.Command(req.Name)
	if !ok {
		return device.MethodResponse{Status: 404, Payload: []byte(`{"error":"the model has no command ` + jsonEscape(req.Name) + `"}`)}
	}
	var v any
	if cmd.Response != nil {
		d.mu.Lock()
		v = d.gen.value(cmd.Response.Schema, "$cmd/"+req.Name)
		d.mu.Unlock()
	}
	b, _ := json.Marshal(v)
	d.cnt.commands.Add(1)
	return device.MethodResponse{Status: 200, Payload: b}
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// onDesired acknowledges every writable property of the model present in
// the desired document: ac 200 when the value fits its schema, 400 if not.
func (d *simDevice) onDesired(tp device.TwinProperties) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(tp.JSON))
	dec.UseNumber()
	if dec.Decode(&doc) != nil {
		return
	}
	d.mu.Lock()
	if tp.Version == d.ackedV {
		d.mu.Unlock()
		return
	}
	d.ackedV = tp.Version
	d.mu.Unlock()
	patch := map[string]any{}
	n := 0
	for _, w := range d.src.m.Writables() {
		scope := doc
		if w.Component != "" {
			scope, _ = doc[w.Component].(map[string]any)
		}
		v, ok := scope[w.Name]
		if !ok {
			continue
		}
		a := map[string]any{"value": v, "ac": 200, "av": tp.Version, "ad": "accepted by the simulator"}
		if probs := model.CheckValue(w.Schema, v, w.Name); len(probs) > 0 {
			a["ac"], a["ad"] = 400, probs[0].Msg
		}
		if w.Component == "" {
			patch[w.Name] = a
		} else {
			c, _ := patch[w.Component].(map[string]any)
			if c == nil {
				c = map[string]any{"__t": "c"}
				patch[w.Component] = c
			}
			c[w.Name] = a
		}
		n++
	}
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.client.UpdateReported(ctx, patch); err != nil {
		if !errors.Is(err, device.ErrClosed) {
			d.cnt.errs.Add(1)
		}
		return
	}
	d.cnt.acks.Add(int64(n))
}
