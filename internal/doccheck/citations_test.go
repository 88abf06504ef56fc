package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fileThenTests is a citation "`dir/x_test.go` (… `TestA`, `TestB` …)": the tests in
// the parentheses are claimed to be in that file.
var fileThenTests = regexp.MustCompile("`([A-Za-z0-9_./-]+_test\\.go)` \\(([^)]*)\\)")

// misplacedCitations returns a problem for every test a line of doc cites after a
// file that does not define it.
func misplacedCitations(doc string, defines func(file, test string) bool) []string {
	var problems []string
	for n, line := range strings.Split(doc, "\n") {
		for _, m := range fileThenTests.FindAllStringSubmatch(line, -1) {
			for _, test := range testName.FindAllString(m[2], -1) {
				if !defines(m[1], test) {
					problems = append(problems, fmt.Sprintf("line %d: %s is not in %s", n+1, test, m[1]))
				}
			}
		}
	}
	return problems
}

// definesIn reports whether the repository file defines func test(.
func definesIn(file, test string) bool {
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(file)))
	return err == nil && regexp.MustCompile(`(?m)^func `+regexp.QuoteMeta(test)+`\(`).Match(b)
}

// TestPCIDocsCiteEachTestInItsOwnFile fails when a document cites a test next to a
// file that does not define it ("`cmd/chdproxy/main_test.go` (`TestX`)" with TestX
// elsewhere): the test exists, but the reader looks in the wrong place.
func TestPCIDocsCiteEachTestInItsOwnFile(t *testing.T) {
	cited := 0
	for _, d := range docs {
		b, err := os.ReadFile(filepath.Join(repoRoot, d))
		if err != nil {
			t.Fatal(err)
		}
		cited += len(fileThenTests.FindAllString(string(b), -1))
		for _, p := range misplacedCitations(string(b), definesIn) {
			t.Errorf("%s: %s", d, p)
		}
	}
	if cited == 0 {
		t.Fatal("no file (test) citations found: the documents' format changed?")
	}
}

func TestMisplacedCitationsAreFound(t *testing.T) {
	doc := "| a | `x/a_test.go` (`TestHere`, `TestElsewhere`) |\n| b | `x/b_test.go` (`TestMissing`) |\n"
	defines := func(file, test string) bool { return file == "x/a_test.go" && test == "TestHere" }
	got := misplacedCitations(doc, defines)
	if len(got) != 2 || got[0] != "line 1: TestElsewhere is not in x/a_test.go" || got[1] != "line 2: TestMissing is not in x/b_test.go" {
		t.Errorf("got %q, want TestElsewhere on line 1 and TestMissing on line 2", got)
	}
}
