package main

import (
	"fmt"
	"os"

	"github.com/chdproxy/chdproxy/policy"
)

// runPolicy runs `policy lint FILE` and `policy explain FILE`.
func runPolicy(args []string) error {
	fs := newFlagSet("policy", "policy lint|explain [--dev] FILE")
	dev := fs.Bool("dev", false, "lint with the dev rules (plain http upstreams on loopback)")
	verb, err := fs.parseVerb(args, 1, "lint", "explain")
	if err != nil {
		return err
	}
	file := fs.Arg(0)
	p, problems, err := policy.LintFile(file, policy.LintOptions{Dev: *dev})
	if err != nil {
		return err
	}
	switch verb {
	case "lint":
		for _, pr := range problems {
			fmt.Fprintf(os.Stderr, "%s: %s\n", file, pr)
		}
		if len(problems) > 0 {
			fmt.Fprintf(os.Stderr, "%s: %d problem(s)\n", file, len(problems))
			return exitCode(1)
		}
		fmt.Printf("%s: ok (sha256 %s)\n", file, p.Hash)
		return nil
	case "explain":
		if len(problems) > 0 {
			for _, pr := range problems {
				fmt.Fprintf(os.Stderr, "%s: %s\n", file, pr)
			}
			return exitCode(1) // an auditor's report of an unsafe policy would mislead
		}
		_, err := os.Stdout.Write(policy.Explain(p))
		return err
	}
	return errUsage
}
