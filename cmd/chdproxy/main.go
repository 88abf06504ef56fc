// Command chdproxy is the card-data tokenization proxy for the SmartPayments API.
// main only dispatches; each subcommand lives in its own file.
package main

import (
	"errors"
	"fmt"
	"os"
)

const usage = `usage: chdproxy <command> [flags]

commands:
  dev [--state-dir DIR]        everything on loopback: miniredis, dev cipher, sandbox upstream
  serve --config FILE          production: real Vault transit, real Redis, TLS
  policy lint FILE             exit 0 when the policy is valid and safe, else list every problem
  policy explain FILE          Markdown report of the policy for auditors
  redact                       scrub stdin to stdout with the log redaction rules
  sandbox [--addr ADDR]        the SmartPayments sandbox upstream alone
`

// errUsage makes main print the usage and exit 2.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"dev":     runDev,
		"serve":   runServe,
		"policy":  runPolicy,
		"redact":  runRedact,
		"sandbox": runSandbox,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	err := run(os.Args[2:])
	var ec exitCode
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	case errors.As(err, &ec):
		os.Exit(int(ec))
	default:
		fmt.Fprintln(os.Stderr, "chdproxy:", err)
		os.Exit(1)
	}
}

// exitCode ends the program with that status after the command printed its own output.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
