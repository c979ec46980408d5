package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{usagef("bad flag"), 2},
		{fmt.Errorf("wrapped: %w", usagef("bad flag")), 2},
		{fault.New(fault.NotFound, "DeviceNotFound", 404001, "gone"), 3},
		{fmt.Errorf("device x: %w", fault.New(fault.NotFound, "", 0, "gone")), 3},
		{fault.New(fault.Unauthorized, "", 0, "no"), 4},
		{fault.New(fault.Forbidden, "", 0, "no"), 4},
		{fault.New(fault.Conflict, "", 0, "exists"), 5},
		{fault.New(fault.PreconditionFailed, "", 0, "etag"), 5},
		{fault.Invalidf("bad id"), 1},
		{fault.New(fault.Unavailable, "", 0, "down"), 1},
		{context.Canceled, 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if exitUsage(flag.ErrHelp) != 0 || exitUsage(errors.New("bad")) != 2 {
		t.Error("exitUsage")
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		pos     []string
		status  string
		verbose bool
	}{
		{[]string{"d1"}, []string{"d1"}, "", false},
		{[]string{"d1", "--status", "x", "-v"}, []string{"d1"}, "x", true},
		{[]string{"--status=x", "d1", "d2", "-v"}, []string{"d1", "d2"}, "x", true},
		{[]string{"-v", "--", "--status", "d1"}, []string{"--status", "d1"}, "", true},
		{[]string{"d1", "--", "-v"}, []string{"d1", "-v"}, "", false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		status := fs.String("status", "", "")
		verbose := fs.Bool("v", false, "")
		pos, err := parseInterspersed(fs, tt.args)
		if err != nil || !slices.Equal(pos, tt.pos) || *status != tt.status || *verbose != tt.verbose {
			t.Errorf("%q: pos %q status %q v %v err %v", tt.args, pos, *status, *verbose, err)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(nopWriter{})
	if _, err := parseInterspersed(fs, []string{"d1", "--nope"}); exitCode(err) != exitUsageError {
		t.Errorf("unknown flag: %v", err)
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// Every verb's help must render, and every flag must have a usage text.
func TestEveryVerbHasHelp(t *testing.T) {
	for _, n := range nouns() {
		cmds := n.verbs
		if n.cmd != nil {
			cmds = append(cmds, n.cmd)
		}
		for _, c := range cmds {
			fs := newFlagSet(c)
			c.setup(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if f.Usage == "" {
					t.Errorf("ferry %s --%s has no usage text", c.path, f.Name)
				}
			})
			if c.summary == "" {
				t.Errorf("ferry %s has no summary", c.path)
			}
		}
	}
}
