package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A go test -json stream as cmd/test2json writes it: two packages, a passing test
// with a failing subtest, a skip, output lines, a package that fails to build, and
// a line that is not an event.
const fakeStream = `{"Action":"start","Package":"example.com/a"}
{"Action":"run","Package":"example.com/a","Test":"TestOne"}
{"Action":"output","Package":"example.com/a","Test":"TestOne","Output":"=== RUN   TestOne\n"}
{"Action":"pass","Package":"example.com/a","Test":"TestOne","Elapsed":0.01}
{"Action":"run","Package":"example.com/a","Test":"TestTwo"}
{"Action":"run","Package":"example.com/a","Test":"TestTwo/case_b"}
{"Action":"fail","Package":"example.com/a","Test":"TestTwo/case_b","Elapsed":0}
{"Action":"run","Package":"example.com/a","Test":"TestTwo/case_a"}
{"Action":"pass","Package":"example.com/a","Test":"TestTwo/case_a","Elapsed":0}
{"Action":"fail","Package":"example.com/a","Test":"TestTwo","Elapsed":0.02}
{"Action":"skip","Package":"example.com/a","Test":"TestThree","Elapsed":0}
{"Action":"fail","Package":"example.com/a","Elapsed":0.5}
{"ImportPath":"example.com/b","Action":"build-output","Output":"b.go:1: syntax error\n"}
{"ImportPath":"example.com/b","Action":"build-fail"}
{"Action":"start","Package":"example.com/b"}
{"Action":"fail","Package":"example.com/b","Elapsed":0,"FailedBuild":"example.com/b"}
FAIL
`

func TestParseTestJSONCountsEveryTestAndListsTheFailures(t *testing.T) {
	r := parseTestJSON(strings.NewReader(fakeStream))
	if r.Passed != 2 || r.Failed != 2 || r.Skipped != 1 || len(r.Tests) != 5 {
		t.Errorf("got %d tests: %d passed, %d failed, %d skipped; want 5: 2, 2, 1", len(r.Tests), r.Passed, r.Failed, r.Skipped)
	}
	var failed []string
	for _, f := range r.failures() {
		failed = append(failed, f.Package+" "+f.Name)
	}
	if got, want := strings.Join(failed, ", "), "example.com/a TestTwo, example.com/a TestTwo/case_b"; got != want {
		t.Errorf("failures: got %q, want %q", got, want)
	}
	if got := strings.Join(r.FailedPackages, ","); got != "example.com/b" {
		t.Errorf("packages failed outside a test: got %q, want %q (a has its failed tests)", got, "example.com/b")
	}
	if r.Unparsed != 1 {
		t.Errorf("unparsed lines: got %d, want 1", r.Unparsed)
	}
	if r.ok() {
		t.Error("a stream with failures is ok, want not ok")
	}
}

func TestASuiteIsOkOnlyWhenTestsPassedAndGoTestExitedZero(t *testing.T) {
	pass := `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n"
	tests := []struct {
		name   string
		stream string
		exit   int
		want   bool
	}{
		{"a passing test and exit 0 is ok", pass, 0, true},
		{"exit 1 with no failed test is not ok (a panic, a timeout)", pass, 1, false},
		{"no test at all is not ok (a -run pattern that matches nothing)", "", 0, false},
		{"only skipped tests is not ok", `{"Action":"skip","Package":"p","Test":"TestA"}` + "\n", 0, false},
	}
	for _, tt := range tests {
		r := parseTestJSON(strings.NewReader(tt.stream))
		r.ExitCode = tt.exit
		if r.ok() != tt.want {
			t.Errorf("%s: got ok %v, want %v", tt.name, r.ok(), tt.want)
		}
	}
}

// The index names the date, the commit, the counts and the verdict of each suite,
// every failure, each file with its requirement and hash, and a missing image as such.
func TestIndexStatesVerdictFailuresAndFiles(t *testing.T) {
	dir := t.TempDir()
	b := &bundle{dir: dir, started: time.Date(2026, 12, 1, 23, 30, 0, 0, time.UTC), commit: "0123abc", goVersion: "go version go1.26.8 linux/amd64"}
	s := suites()[1]
	s.Result = parseTestJSON(strings.NewReader(fakeStream))
	s.Result.ExitCode = 1
	b.suites = []*suite{s}
	b.write("policy-report.md", []byte("# report\n"), "the policy report", "7.2.1")
	b.missing("image.txt", "image not built: no image chdproxy:latest (make image)", "2.2.4")
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"2026-12-01T23:30:00Z", "commit `0123abc`", "**Verdict: FAIL**",
		"| 5 | 2 | 2 | 1 | 1 | **FAIL** |",
		"`TestTwo/case_b` in `example.com/a`", "package `example.com/b` failed outside any test",
		"## Skipped tests\n\n- Hostile suite on a real Vault and redis-server: `TestThree` in `example.com/a`",
		"| `policy-report.md` | the policy report | 7.2.1 | `" + fileSHA256(filepath.Join(dir, "policy-report.md")) + "` |",
		"| `image.txt` | **not in this bundle**: image not built",
	} {
		if !strings.Contains(string(index), want) {
			t.Errorf("index.md lacks %q:\n%s", want, index)
		}
	}
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if got, want := string(sums), fileSHA256(filepath.Join(dir, "policy-report.md"))+"  policy-report.md\n"; got != want {
		t.Errorf("SHA256SUMS: got %q, want %q", got, want)
	}
}
