package main

import (
	"bufio"
	"os"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/redact"
)

// runRedact scrubs stdin to stdout with the rules of the logs (the default policy's,
// or those of --policy FILE).
func runRedact(args []string) error {
	fs := newFlagSet("redact", "redact [--policy FILE] < IN > OUT")
	file := fs.String("policy", "", "policy whose redaction rules apply (default: the embedded policy)")
	if err := fs.parse(args, 0); err != nil {
		return err
	}
	p, err := policy.LoadDefault()
	if *file != "" {
		p, err = policy.Load(*file, policy.LintOptions{Dev: true})
	}
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	if err := redact.New(p.RedactRules()).Stream(out, os.Stdin); err != nil {
		return err
	}
	return out.Flush()
}
