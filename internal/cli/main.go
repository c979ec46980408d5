// Package cli is the ferry command: it parses the command line, and the
// verbs that manage a running hub talk to it through its REST API
// (internal/api.Client), never to its storage.
//
// Main is the whole program. It takes its arguments and output streams as
// parameters and returns the exit code, so tests run it in-process.
//
// # Exit codes
//
// Scripts may rely on them: 0 success, 1 failure, 2 usage error, 3 not found,
// 4 unauthorized or forbidden, 5 conflict or etag mismatch. They are mapped
// from the error's fault.Kind in exactly one place, exitCode.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// The exit codes.
const (
	exitOK           = 0 // success
	exitFailure      = 1 // anything not listed below
	exitUsageError   = 2 // unknown command or flag, bad argument
	exitNotFound     = 3 // the device (or other resource) does not exist
	exitUnauthorized = 4 // bad credentials, or a policy that lacks the permission
	exitConflict     = 5 // the resource exists already, or its etag changed
)

// env is what a command runs with: its output streams and its view of the
// process environment. Main fills it from the process; tests fill it
// themselves, so nothing in this package reads global state.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string // environment lookup
	now            func() time.Time
}

// Main runs the ferry command with args (without the program name), writing
// results to stdout and messages to stderr, and returns the process exit
// code. Cancelling ctx (SIGINT, SIGTERM) stops long-running verbs cleanly.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now}
	return e.main(ctx, args)
}

// main dispatches on the noun.
func (e *env) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainUsage)
		return exitUsageError
	}
	switch noun, rest := args[0], args[1:]; noun {
	case "help", "-h", "-help", "--help":
		return e.help(ctx, rest)
	case "-version", "--version":
		return e.runCommand(ctx, versionCommand(), nil)
	case "serve":
		return serveMain(ctx, rest, e.stdout, e.stderr)
	case "bench":
		return benchMain(ctx, rest, e.stdout, e.stderr)
	default:
		if noun == "device" && len(rest) > 0 && rest[0] == "module" {
			// "ferry device module create D M", as the Azure CLI nests it, is
			// "ferry module create D M".
			return e.runNoun(ctx, findNoun("module"), rest[1:])
		}
		if n := findNoun(noun); n != nil {
			return e.runNoun(ctx, n, rest)
		}
		fmt.Fprintf(e.stderr, "ferry: unknown command %q\nRun 'ferry help' for usage.\n", noun)
		return exitUsageError
	}
}

// runNoun runs one of a noun's verbs, or the noun itself when it is a
// command of its own (monitor, version).
func (e *env) runNoun(ctx context.Context, n *noun, args []string) int {
	if n.cmd != nil {
		return e.runCommand(ctx, n.cmd, args)
	}
	if len(args) == 0 {
		fmt.Fprint(e.stderr, n.usage())
		return exitUsageError
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, n.usage())
		return exitOK
	}
	if s := n.sub(args[0]); s != nil {
		return e.runNoun(ctx, s, args[1:])
	}
	c := n.verb(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "ferry: unknown command \"%s %s\"\nRun 'ferry help %s' for usage.\n",
			n.name, args[0], n.name)
		return exitUsageError
	}
	return e.runCommand(ctx, c, args[1:])
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

// usagef returns a usage error.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitCode maps an error to the exit code scripts see.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var u *usageError
	if errors.As(err, &u) {
		return exitUsageError
	}
	switch fault.KindOf(err) {
	case fault.NotFound:
		return exitNotFound
	case fault.Unauthorized, fault.Forbidden:
		return exitUnauthorized
	case fault.Conflict, fault.PreconditionFailed:
		return exitConflict
	default:
		return exitFailure
	}
}

// exitUsage is the exit code for a flag.Parse error of a verb that lets the
// flag package print its own messages: 0 after --help, else a usage error.
func exitUsage(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsageError
}

// envOr returns the environment variable key, or def when it is unset or
// empty. It is for verbs that build their flag defaults from the process
// environment; the hub-talking verbs use env.getenv instead.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
