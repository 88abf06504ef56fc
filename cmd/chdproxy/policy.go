package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/chdproxy/chdproxy/policy"
)

// runPolicy runs `policy lint FILE` and `policy explain FILE`.
func runPolicy(args []string) error {
	if len(args) < 1 {
		return errUsage
	}
	fs := flag.NewFlagSet("policy "+args[0], flag.ContinueOnError)
	dev := fs.Bool("dev", false, "lint with the dev rules (plain http upstreams on loopback)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
		return errUsage
	}
	file := fs.Arg(0)
	p, problems, err := policy.LintFile(file, policy.LintOptions{Dev: *dev})
	if err != nil {
		return err
	}
	switch args[0] {
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
