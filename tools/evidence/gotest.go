package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"io"
	"slices"
)

// testEvent is one line of `go test -json` (cmd/test2json).
type testEvent struct {
	Action     string
	Package    string
	ImportPath string // of build-output and build-fail events (Go 1.24+)
	Test       string
	Elapsed    float64
}

// testCase is one test's (or subtest's) outcome: pass, fail or skip.
type testCase struct {
	Package string  `json:"package"`
	Name    string  `json:"name"`
	Result  string  `json:"result"`
	Elapsed float64 `json:"elapsed_s"`
}

// suiteResult is what a go test run proved: every test with its result, the counts,
// the packages that failed without a failing test (a build error, a panic, a
// timeout) and the exit status of go test.
type suiteResult struct {
	Tests          []testCase `json:"tests"`
	Passed         int        `json:"passed"`
	Failed         int        `json:"failed"`
	Skipped        int        `json:"skipped"`
	FailedPackages []string   `json:"failed_packages,omitempty"`
	ExitCode       int        `json:"go_test_exit_status"`
	Unparsed       int        `json:"unparsed_lines,omitempty"` // lines that were not test2json events
}

// ok is the suite's verdict: go test exited 0, nothing failed and something ran.
func (r suiteResult) ok() bool {
	return r.ExitCode == 0 && r.Failed == 0 && len(r.FailedPackages) == 0 && r.Passed > 0
}

// failures are the failed tests, by package and name.
func (r suiteResult) failures() []testCase {
	return slices.DeleteFunc(slices.Clone(r.Tests), func(t testCase) bool { return t.Result != "fail" })
}

// parseTestJSON reads a `go test -json` stream. A package that fails (or fails to
// build) without a failed test of its own is listed in FailedPackages; tests are
// sorted by package and name so that two runs of the same code compare line by line.
func parseTestJSON(r io.Reader) suiteResult {
	var res suiteResult
	failedTest := map[string]bool{}
	var failedPkgs []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev testEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Action == "" {
			res.Unparsed++
			continue
		}
		switch {
		case ev.Test != "" && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip"):
			res.Tests = append(res.Tests, testCase{Package: ev.Package, Name: ev.Test, Result: ev.Action, Elapsed: ev.Elapsed})
			failedTest[ev.Package] = failedTest[ev.Package] || ev.Action == "fail"
		case ev.Test == "" && (ev.Action == "fail" || ev.Action == "build-fail"):
			failedPkgs = append(failedPkgs, cmp.Or(ev.Package, ev.ImportPath))
		}
	}
	for _, p := range failedPkgs {
		if !failedTest[p] && !slices.Contains(res.FailedPackages, p) {
			res.FailedPackages = append(res.FailedPackages, p)
		}
	}
	slices.SortFunc(res.Tests, func(a, b testCase) int { return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Name, b.Name)) })
	for _, t := range res.Tests {
		switch t.Result {
		case "pass":
			res.Passed++
		case "fail":
			res.Failed++
		default:
			res.Skipped++
		}
	}
	return res
}
