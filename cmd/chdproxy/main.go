// Command chdproxy is the card-data tokenization proxy for the SmartPayments API.
// main only dispatches; each subcommand lives in its own file.
package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
)

const usage = `usage: chdproxy <command> [flags]

commands:
` + testOnlyUsage + `  serve --config FILE          production: real Vault transit, real Redis, TLS
  serve --check-config --config FILE
                               check the configuration and its policy, connect to nothing
  policy lint FILE             exit 0 when the policy is valid and safe, else list every problem
  policy explain FILE          Markdown report of the policy for auditors
  redact                       scrub stdin to stdout with the log redaction rules
  rewrap --config FILE --token-file FILE
                               re-encrypt every record under the newest transit key versions
  keys generate --role ROLE    a new publishable, secret or admin key and its digest
  purge --merchant ID --config FILE [--yes]
                               delete every token, CVV and idempotency record of a merchant
  healthcheck [--url URL]      exit 0 when the admin listener's /readyz answers 200
  version                      version, commit, Go version and build tags (also --version)
  help [COMMAND]               this text, or a command's own flags (also COMMAND --help)
`

// errUsage makes main print the usage and exit 2.
var errUsage = errors.New("usage")

// command runs one subcommand with its arguments. Commands that predate the
// streams write to os.Stdout and os.Stderr themselves.
type command func(args []string, stdout, stderr io.Writer) error

// withOSStreams adapts a command that writes to os.Stdout and os.Stderr itself.
func withOSStreams(run func([]string) error) command {
	return func(args []string, _, _ io.Writer) error { return run(args) }
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit status: 0 done, 1 failed,
// 2 a usage error (the usage then goes to stderr; asked-for help goes to stdout).
func run(args []string, stdout, stderr io.Writer) int {
	cmds := map[string]command{
		"serve":       runServeCommand,
		"policy":      withOSStreams(runPolicy),
		"redact":      withOSStreams(runRedact),
		"keys":        runKeys,
		"purge":       runPurge,
		"healthcheck": runHealthcheck,
		"rewrap":      runRewrap,
		"version":     runVersion,
	}
	maps.Copy(cmds, testOnlyCommands()) // none in a production build
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if args[0] == "help" && len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version":
		args = []string{"version"}
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "chdproxy: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return exitStatus(cmd(args[1:], stdout, stderr), stdout, stderr)
}

// exitStatus reports err and turns it into the exit status.
func exitStatus(err error, stdout, stderr io.Writer) int {
	var ue *usageError
	var ec exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue) && ue.help:
		ue.fs.printUsage(stdout)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "chdproxy %s: %v\n\n", ue.fs.Name(), ue.err)
		ue.fs.printUsage(stderr)
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprint(stderr, usage)
		return 2
	case errors.As(err, &ec):
		return int(ec)
	default:
		fmt.Fprintln(stderr, "chdproxy:", err)
		return 1
	}
}

// exitCode ends the program with that status after the command printed its own output.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
