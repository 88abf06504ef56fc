package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// flagSet is one subcommand's flags and the synopsis its --help prints. Parsing
// prints nothing: errors come back as a *usageError for main to report, so
// `chdproxy CMD --help` shows only CMD's usage, on stdout, and exits 0.
type flagSet struct {
	*flag.FlagSet
	synopsis string // after "usage: chdproxy ", e.g. "serve --config FILE [--check-config]"
}

// newFlagSet is the flag set of the subcommand name, whose usage line is synopsis.
func newFlagSet(name, synopsis string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, synopsis: synopsis}
}

// parse parses args; nargs >= 0 is how many positional arguments must follow.
func (fs *flagSet) parse(args []string, nargs int) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return &usageError{fs: fs, help: true}
	case err != nil:
		return &usageError{fs: fs, err: err}
	case nargs >= 0 && fs.NArg() != nargs:
		return fs.failf("want %d argument(s), got %d", nargs, fs.NArg())
	}
	return nil
}

// parseVerb parses "VERB [flags] ARGS..." where VERB is one of verbs, and returns VERB.
func (fs *flagSet) parseVerb(args []string, nargs int, verbs ...string) (string, error) {
	if len(args) > 0 && slices.Contains(verbs, args[0]) {
		return args[0], fs.parse(args[1:], nargs)
	}
	if err := fs.parse(args, -1); err != nil { // --help, or a flag before the verb
		return "", err
	}
	return "", fs.failf("want %s", strings.Join(verbs, " or "))
}

// failf is a usage error: main prints it, then the subcommand's usage, and exits 2.
func (fs *flagSet) failf(format string, args ...any) error {
	return &usageError{fs: fs, err: fmt.Errorf(format, args...)}
}

// printUsage writes the synopsis and the flags with their defaults.
func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: chdproxy %s\n", fs.synopsis)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(w, "\nflags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// usageError is a subcommand's help (asked for) or a wrong command line.
type usageError struct {
	fs   *flagSet
	help bool  // --help or -h: usage on stdout, exit 0
	err  error // what was wrong; nil with help
}

func (e *usageError) Error() string {
	if e.help {
		return "chdproxy " + e.fs.Name() + ": help requested"
	}
	return "chdproxy " + e.fs.Name() + ": " + e.err.Error()
}
