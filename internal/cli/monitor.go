package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
)

// Monitor tuning.
const (
	pollWait      = 30 * time.Second // how long one read may wait on the hub for a message
	minPollWait   = 100 * time.Millisecond
	maxPageSize   = 1000 // the hub's largest page
	commitTimeout = 10 * time.Second
	maxBackoff    = 10 * time.Second
)

// monitorOptions are monitor's flags.
type monitorOptions struct {
	device, stream, group string
	consumerGroup         string
	from                  string
	asJSON                bool
	timeout               time.Duration
	max                   int
}

func monitorNoun() *noun {
	return &noun{name: "monitor", summary: "print device-to-cloud messages as they arrive", cmd: &command{
		path: "monitor", nargs: 0,
		summary: "print device-to-cloud messages as they arrive",
		help: `Each message is printed as {"event": {"origin": <device>, "module", "stream",
"group", "enqueuedTime", "properties": {"system", "application"}, "payload"}},
like 'az iot hub monitor-events'. The payload is the body's JSON when it is
JSON (inflated first when its content encoding is gzip), else its text when
it is UTF-8, else {"hex": "..."}. Without --json the
events are indented for reading; with --json each is one line, for scripts.

Without --consumer-group, monitor shows what arrives from now on (or from
--from). With --consumer-group NAME, it reads from the hub-kept position of
that consumer group and commits each page after printing it, so stopping
(ctrl-c) and starting again continues exactly where it stopped: nothing is
missed and nothing is printed twice. A new consumer group starts at --from
(default: the beginning of the stream).

--timeout and --max end the monitor with exit code 0, for scripts and tests.

Example:
  ferry monitor
  ferry monitor --device thermostat-1 --from 10m
  ferry monitor --consumer-group archiver --json >> events.jsonl
  ferry monitor --from beginning --max 100 --json | jq .event.payload`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var (
				hf hubFlags
				o  monitorOptions
			)
			hf.register(fs)
			fs.StringVar(&o.device, "device", "", "only messages from device `ID`")
			fs.StringVar(&o.stream, "stream", "*", "the `STREAM` to read; * reads all streams")
			fs.StringVar(&o.group, "group", "", "only streams of stream `GROUP`")
			fs.StringVar(&o.consumerGroup, "consumer-group", "", "read and commit through the durable position of consumer group `NAME`")
			fs.StringVar(&o.from, "from", "", "where to start: `TIME` (RFC 3339), a duration ago such as 10m, beginning or now (default now; for a new consumer group beginning)")
			fs.BoolVar(&o.asJSON, "json", false, "print one compact JSON event per line")
			fs.DurationVar(&o.timeout, "timeout", 0, "stop after `DURATION` (default: run until ctrl-c)")
			fs.IntVar(&o.max, "max", 0, "stop after `N` events (default: no limit)")
			return func(ctx context.Context, e *env, _ []string) error {
				if o.timeout < 0 || o.max < 0 {
					return usagef("--timeout and --max must not be negative")
				}
				from, err := parseFrom(o.from, e.now())
				if err != nil {
					return err
				}
				o.from = from
				c, err := e.client(&hf)
				if err != nil {
					return err
				}
				return e.monitor(ctx, c, o)
			}
		},
	}}
}

// parseFrom turns --from into the hub's from parameter: "beginning", "now",
// an RFC 3339 time, or a duration ago (computed here, since the hub takes
// times).
func parseFrom(s string, now time.Time) (string, error) {
	switch s {
	case "", "beginning", "now":
		return s, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	return "", usagef("--from must be beginning, now, an RFC 3339 time such as 2026-11-23T05:00:00Z, or a duration such as 10m, not %q", s)
}

// monitor long-polls the hub and prints events until ctx is cancelled,
// --timeout passes or --max events are printed; each of those ends it
// without error.
func (e *env) monitor(ctx context.Context, c *api.Client, o monitorOptions) error {
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	r := &monitorReader{c: c, o: o, q: api.ReadQuery{Group: o.group, Device: o.device, From: o.from}}
	if o.consumerGroup == "" && r.q.From == "" {
		r.q.From = "now" // a live view by default; a consumer group resumes instead
	}
	if !o.asJSON {
		fmt.Fprintln(e.stderr, "Starting event monitor, use ctrl-c to stop...")
	}
	out := newEventWriter(e.stdout, !o.asJSON)
	out.decode = protobufBodies(ctx, c) // see schema.go
	printed, failures := 0, 0
	for ctx.Err() == nil {
		r.q.Limit = maxPageSize
		if o.max > 0 {
			r.q.Limit = min(o.max-printed, maxPageSize)
		}
		r.q.Wait = waitWithin(ctx, pollWait)
		page, err := r.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // ctrl-c or --timeout during the poll: nothing in hand
			}
			// Once the hub has answered, a restart or a blip should not end
			// a long-running monitor; a hub that was never reached should.
			if !r.answered || !retryable(err) {
				return err
			}
			failures++
			fmt.Fprintf(e.stderr, "ferry: %v; retrying\n", err)
			sleep(ctx, backoff(failures))
			continue
		}
		failures = 0
		limit := len(page.Messages)
		if o.max > 0 {
			limit = o.max - printed
		}
		n, err := r.handle(ctx, out, page, limit)
		if err != nil {
			return err
		}
		if printed += n; o.max > 0 && printed >= o.max {
			return nil
		}
	}
	return nil
}

// handle prints up to limit events of page and moves past them. The page
// in hand is printed and committed even if ctx is cancelled meanwhile, so a
// stop never loses or repeats events.
func (r *monitorReader) handle(ctx context.Context, out *eventWriter, page *api.MessagePage, limit int) (int, error) {
	n := min(len(page.Messages), limit)
	for i := range page.Messages[:n] {
		if err := out.write(&page.Messages[i]); err != nil {
			return i, err
		}
	}
	pos := page.Next
	if 0 < n && n < len(page.Messages) {
		pos = page.Messages[n-1].Cursor // stopped inside the page: resume after the last one printed
	}
	return n, r.advance(ctx, pos)
}

// monitorReader reads pages either by cursor (a live view) or through a
// consumer group's committed position.
type monitorReader struct {
	c        *api.Client
	o        monitorOptions
	q        api.ReadQuery
	answered bool   // the hub has answered a read
	commit   string // the consumer group's position as last committed here
}

func (r *monitorReader) read(ctx context.Context) (*api.MessagePage, error) {
	var (
		page *api.MessagePage
		err  error
	)
	if r.o.consumerGroup != "" {
		page, err = r.c.ReadConsumerGroup(ctx, r.o.consumerGroup, r.o.stream, r.q)
	} else {
		page, err = r.c.ReadStream(ctx, r.o.stream, r.q)
	}
	if err == nil {
		r.answered = true
	}
	return page, err
}

// advance moves past what was printed: the next read of a live view starts
// after pos, and a consumer group commits pos. Committing even an empty
// page's position matters for a new group: it pins where --from put it.
func (r *monitorReader) advance(ctx context.Context, pos string) error {
	if pos == "" {
		return nil
	}
	if r.o.consumerGroup == "" {
		r.q.After, r.q.From = pos, ""
		return nil
	}
	if pos == r.commit {
		return nil
	}
	// The commit must happen even when ctx was just cancelled (ctrl-c): the
	// events are printed already.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := r.c.Commit(cctx, r.o.consumerGroup, r.o.stream, pos); err != nil {
		return fmt.Errorf("committing the position of consumer group %s: %w", r.o.consumerGroup, err)
	}
	r.commit = pos
	return nil
}

// waitWithin returns how long a poll may wait: d, or less when ctx ends
// sooner, so a --timeout ends on a hub answer rather than a cut connection.
func waitWithin(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return max(d, minPollWait).Truncate(time.Millisecond)
}

// retryable reports whether a failed read is worth trying again.
func retryable(err error) bool {
	switch fault.KindOf(err) {
	case fault.Unavailable, fault.Throttled, fault.Timeout:
		return true
	}
	return false
}

// backoff is the pause before retry number n (from 1): 0.5 s doubling to
// maxBackoff.
func backoff(n int) time.Duration {
	d := 500 * time.Millisecond << min(n-1, 5)
	return min(d, maxBackoff)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
