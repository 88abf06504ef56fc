package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// renderIndex is index.md: what the bundle is, the verdict per suite, every failure,
// each file with what it proves and the PCI DSS v4.0.1 requirement it supports, and
// how it was made. Everything in it comes from b, so the same run renders the same page.
func renderIndex(b *bundle) []byte {
	var w bytes.Buffer
	tree := "clean working tree"
	if b.dirty {
		tree = "working tree with uncommitted changes to tracked files"
	}
	fmt.Fprintf(&w, "# chdproxy evidence bundle, %s\n\n", b.started.Format(time.RFC3339))
	fmt.Fprintf(&w, "Made by `make evidence` (`go run ./tools/evidence`) on %s from commit `%s` (%s), %s.\n",
		b.started.Format("2 January 2006 15:04 UTC"), b.commit, tree, b.goVersion)
	fmt.Fprintf(&w, "Read this page first. Every file named here is in this folder; `sha256sum -c SHA256SUMS` checks them.\n")
	fmt.Fprintf(&w, "The production binary was built with `go build -trimpath -tags production ./cmd/chdproxy` (sha256 `%s`; not kept, rebuild it from the commit).\n\n", b.binSHA256)
	fmt.Fprintf(&w, "**Verdict: %s**\n\n", b.verdict())
	w.WriteString("## Test suites\n\n| suite | PCI DSS | tests | passed | failed | skipped | go test exit status | verdict |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range b.suites {
		r := s.Result
		fmt.Fprintf(&w, "| %s (`tests-%s.json`) | %s | %d | %d | %d | %d | %d | %s |\n", s.Title, s.Name, s.PCI,
			len(r.Tests), r.Passed, r.Failed, r.Skipped, r.ExitCode, map[bool]string{true: "pass", false: "**FAIL**"}[r.ok()])
	}
	w.WriteString("\n")
	for _, s := range b.suites {
		fmt.Fprintf(&w, "- **%s**: %s. Ran `go test -json -count=1%s %s` with `%s`.\n", s.Title, s.Proves,
			runFlag(s.Run), strings.Join(s.Packages, " "), strings.Join(append([]string{"CI=true"}, s.Env...), " "))
	}
	writeFailures(&w, b.suites)
	w.WriteString("\n## Files\n\n| file | what it shows | PCI DSS v4.0.1 | SHA-256 |\n|---|---|---|---|\n")
	for _, a := range b.artifacts {
		shows, sum := a.Proves, "`"+a.SHA256+"`"
		if a.SHA256 == "" {
			shows, sum = "**not in this bundle**: "+a.Note, "—"
		} else if a.Note != "" {
			shows += " (" + a.Note + ")"
		}
		fmt.Fprintf(&w, "| `%s` | %s | %s | %s |\n", a.File, escapeCell(shows), a.PCI, sum)
	}
	w.WriteString("\nThe requirement numbers say which requirement a file supports; `docs/pci/requirements.md` says how chdproxy meets each one.\n\n## Commands run\n\n```\n")
	for _, c := range b.commands {
		w.WriteString(c + "\n")
	}
	w.WriteString("```\n")
	return w.Bytes()
}

// writeFailures lists every failed test and package, or says there is none.
func writeFailures(w *bytes.Buffer, suites []*suite) {
	w.WriteString("\n## Failures\n\n")
	n := 0
	for _, s := range suites {
		for _, t := range s.Result.failures() {
			fmt.Fprintf(w, "- %s: `%s` in `%s`\n", s.Title, t.Name, t.Package)
			n++
		}
		for _, p := range s.Result.FailedPackages {
			fmt.Fprintf(w, "- %s: package `%s` failed outside any test (build error, panic or timeout: see `tests-%s.jsonl`)\n", s.Title, p, s.Name)
			n++
		}
		if s.Result.ExitCode != 0 && len(s.Result.failures()) == 0 && len(s.Result.FailedPackages) == 0 {
			fmt.Fprintf(w, "- %s: go test exited %d without a failed test (see `tests-%s.jsonl`)\n", s.Title, s.Result.ExitCode, s.Name)
			n++
		}
		if s.Result.Passed == 0 {
			fmt.Fprintf(w, "- %s: no test passed (none ran)\n", s.Title)
			n++
		}
	}
	if n == 0 {
		w.WriteString("None: every test of every suite passed or was skipped by its own condition (below).\n")
	}
	w.WriteString("\n## Skipped tests\n\n")
	skipped := 0
	for _, s := range suites {
		for _, t := range s.Result.Tests {
			if t.Result == "skip" {
				fmt.Fprintf(w, "- %s: `%s` in `%s` (its reason is in `tests-%s.jsonl`)\n", s.Title, t.Name, t.Package, s.Name)
				skipped++
			}
		}
	}
	if skipped == 0 {
		w.WriteString("None.\n")
	}
}

func runFlag(run string) string {
	if run == "" {
		return ""
	}
	return " -run '" + run + "'"
}

// escapeCell keeps a table cell one cell.
func escapeCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
