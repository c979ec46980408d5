package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one verb: its help and its flags, declared in one place so that
// parsing and help cannot disagree.
type command struct {
	path    string // "device create": what follows "ferry" on the command line
	args    string // positional arguments in the usage line, e.g. "ID"
	nargs   int    // the number of positional arguments required
	summary string // one line, shown in the noun's list
	help    string // paragraphs after the summary: details and examples
	// setup declares the verb's flags on fs and returns the function that
	// runs it with the positional arguments, once fs is parsed.
	setup func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

// noun groups verbs (device), or is a command itself (monitor, version).
type noun struct {
	name     string
	summary  string
	verbs    []*command
	cmd      *command // set when the noun has no verbs
	subs     []*noun  // nouns nested under this one ("provision token"), named "<noun> <sub>"
	examples string
}

// nouns returns the nouns this package implements (serve and bench are
// dispatched apart, see env.main).
func nouns() []*noun {
	return []*noun{deviceNoun(), moduleNoun(), twinNoun(), queryNoun(), invokeNoun(), commandNoun(), c2dNoun(), provisionNoun(), caNoun(), routeNoun(), schemaNoun(), modelNoun(), pnpNoun(), simulateNoun(), monitorNoun(), versionNoun()}
}

// findNoun returns the noun called name, or nil.
func findNoun(name string) *noun {
	for _, n := range nouns() {
		if n.name == name {
			return n
		}
	}
	return nil
}

// verb returns the noun's verb called name, or nil.
func (n *noun) verb(name string) *command {
	for _, c := range n.verbs {
		if strings.TrimPrefix(c.path, n.name+" ") == name {
			return c
		}
	}
	return nil
}

// sub returns the nested noun called name ("token" in "provision token"), or nil.
func (n *noun) sub(name string) *noun {
	for _, s := range n.subs {
		if strings.TrimPrefix(s.name, n.name+" ") == name {
			return s
		}
	}
	return nil
}

// runCommand parses args for c, runs it and reports its error.
func (e *env) runCommand(ctx context.Context, c *command, args []string) int {
	fs := newFlagSet(c)
	run := c.setup(fs)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.printHelp(e.stdout)
		return exitOK
	}
	if err == nil && len(pos) != c.nargs {
		err = c.argsError(pos)
	}
	if err == nil {
		err = run(ctx, e, pos)
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "ferry: %v\n", err)
	code := exitCode(err)
	if code == exitUsageError {
		fmt.Fprintf(e.stderr, "Run 'ferry %s --help' for usage.\n", c.path)
	}
	return code
}

// argsError describes a wrong number of positional arguments.
func (c *command) argsError(pos []string) error {
	switch {
	case len(pos) < c.nargs:
		return usagef("%s: missing %s", c.path, strings.Fields(c.args)[len(pos)])
	default:
		return usagef("%s: unexpected argument %q", c.path, pos[c.nargs])
	}
}

// newFlagSet returns a quiet FlagSet: runCommand reports errors itself, with
// the "ferry:" prefix and exit code every verb shares.
func newFlagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("ferry "+c.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseInterspersed parses fs from args, letting flags come before and after
// positional arguments ("device create d1 --status disabled" as well as
// "device create --status disabled d1"), which the flag package alone does
// not. After "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				err = usagef("%v", err)
			}
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printHelp writes the verb's help: usage line, summary, details, flags.
func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: ferry %s", c.path)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fs := newFlagSet(c)
	c.setup(fs)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, " [flags]")
	}
	fmt.Fprintf(w, "\n\n%s.\n", upperFirst(c.summary))
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs)
	}
	fmt.Fprint(w, "\nExit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 unauthorized, 5 conflict.\n")
}

// printFlags lists fs's flags GNU style ("--top N"), which is how the help
// and the examples spell them (the flag package accepts one dash or two),
// with descriptions wrapped to fit 80 columns.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	const indent = 24
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		left := "  --" + f.Name
		if name != "" {
			left += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += " (default " + f.DefValue + ")"
		}
		if len(left) < indent-1 {
			fmt.Fprintf(w, "%-*s", indent, left)
		} else {
			fmt.Fprintf(w, "%s\n%*s", left, indent, "")
		}
		col := indent
		for i, word := range strings.Fields(usage) {
			if i > 0 && col+1+len(word) > 80 {
				fmt.Fprintf(w, "\n%*s", indent, "")
				col = indent
			} else if i > 0 {
				fmt.Fprint(w, " ")
				col++
			}
			fmt.Fprint(w, word)
			col += len(word)
		}
		fmt.Fprintln(w)
	})
}

// upperFirst capitalises the first letter of an ASCII sentence.
func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
