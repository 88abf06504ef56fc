// Package doccheck holds only tests that keep docs/pci true: its code and test
// references (and the README's Layout table) point at files and tests that exist,
// in the file they are cited with; each diagram's SVG is rendered from its current
// source; and every command of key-management.md runs (keymgmt_test.go).
package doccheck

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the module root, relative to this package's directory.
const repoRoot = "../.."

// docs are the documents whose tables map requirements and threats to code and tests.
var docs = []string{
	"docs/pci/requirements.md",
	"docs/pci/threat-model.md",
	"docs/pci/scope.md",
	"docs/pci/key-management.md",
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	testName   = regexp.MustCompile(`\bTest[A-Z][A-Za-z0-9_]*`)
	testFunc   = regexp.MustCompile(`(?m)^func (Test[A-Z][A-Za-z0-9_]*)\(`)
	fileExts   = []string{".go", ".md", ".yaml", ".hcl", ".json", ".sh"}
)

type ref struct {
	doc  string
	line int
	text string
}

// pathRef reports whether a backticked span names a repository file or folder:
// it has a '/', no spaces and no URL scheme, and ends in a known extension or in '/'.
func pathRef(s string) bool {
	if !strings.Contains(s, "/") || strings.ContainsAny(s, " {}") || strings.HasPrefix(s, "/") || strings.Contains(s, "://") {
		return false
	}
	if strings.HasSuffix(s, "/") {
		return true
	}
	for _, ext := range fileExts {
		if strings.HasSuffix(s, ext) {
			return true
		}
	}
	return false
}

// exists reports whether a path (possibly a glob such as proxy/hostile_*_test.go)
// names at least one file or folder of the repository.
func exists(p string) bool {
	full := filepath.Join(repoRoot, filepath.FromSlash(p))
	if strings.ContainsAny(p, "*?[") {
		m, err := filepath.Glob(full)
		return err == nil && len(m) > 0
	}
	st, err := os.Stat(full)
	if err != nil {
		return false
	}
	if strings.HasSuffix(p, "/") {
		return st.IsDir()
	}
	return true
}

// scan reads a document line by line and collects path references and test names.
// With layoutOnly set, only the rows of the "## Layout" table count, and every
// backticked first cell must be a folder.
func scan(t *testing.T, doc string, layoutOnly bool) (paths, dirs, tests []ref) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, filepath.FromSlash(doc)))
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	inLayout := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if layoutOnly {
			if strings.HasPrefix(line, "## ") {
				inLayout = strings.TrimSpace(line) == "## Layout"
				continue
			}
			if !inLayout || !strings.HasPrefix(line, "|") {
				continue
			}
			cells := strings.Split(line, "|")
			if len(cells) > 1 {
				for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
					dirs = append(dirs, ref{doc, n, m[1]})
				}
			}
		}
		for _, m := range backticked.FindAllStringSubmatch(line, -1) {
			if pathRef(m[1]) {
				paths = append(paths, ref{doc, n, m[1]})
			}
		}
		for _, m := range testName.FindAllString(line, -1) {
			tests = append(tests, ref{doc, n, m})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return paths, dirs, tests
}

// definedTests walks the repository and returns every TestX defined in a *_test.go file.
func definedTests(t *testing.T) map[string]bool {
	t.Helper()
	defined := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "vendor", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range testFunc.FindAllSubmatch(b, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking the repository: %v", err)
	}
	return defined
}

// TestPCIDocsReferenceExistingCodeAndTests fails for every file, folder or test
// named in docs/pci/requirements.md, threat-model.md, scope.md, key-management.md
// or the README's Layout table that does not exist in the repository.
func TestPCIDocsReferenceExistingCodeAndTests(t *testing.T) {
	defined := definedTests(t)
	if len(defined) == 0 {
		t.Fatal("found no Test functions in the repository: wrong root?")
	}
	type source struct {
		doc        string
		layoutOnly bool
	}
	sources := []source{{"README.md", true}}
	for _, d := range docs {
		sources = append(sources, source{d, false})
	}
	checked := 0
	for _, s := range sources {
		paths, dirs, tests := scan(t, s.doc, s.layoutOnly)
		for _, r := range paths {
			checked++
			if !exists(r.text) {
				t.Errorf("%s:%d: `%s` names no file or folder of the repository", r.doc, r.line, r.text)
			}
		}
		for _, r := range dirs {
			checked++
			if !exists(strings.TrimSuffix(r.text, "/") + "/") {
				t.Errorf("%s:%d: Layout folder `%s` does not exist", r.doc, r.line, r.text)
			}
		}
		for _, r := range tests {
			checked++
			if !defined[r.text] {
				t.Errorf("%s:%d: %s is not defined as func %s( in any *_test.go file", r.doc, r.line, r.text, r.text)
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no references at all: the documents' format changed?")
	}
}
