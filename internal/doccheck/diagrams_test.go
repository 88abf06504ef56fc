package doccheck

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// diagramsDir holds the Mermaid sources of docs/pci/scope.md and their SVGs.
const diagramsDir = "docs/pci/diagrams"

// svgSource is the comment `make diagrams` puts into each SVG: the SHA-256 of
// the .mmd file it was rendered from.
var svgSource = regexp.MustCompile(`<!-- source-sha256: ([0-9a-f]{64}) -->`)

// staleDiagrams returns a problem for every .mmd in dir without an .svg, or whose
// .svg was rendered from other source bytes (its source-sha256 comment differs),
// and for every .svg without its .mmd.
func staleDiagrams(dir string) ([]string, int, error) {
	srcs, err := filepath.Glob(filepath.Join(dir, "*.mmd"))
	if err != nil {
		return nil, 0, err
	}
	var problems []string
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, 0, err
		}
		want := sha256.Sum256(b)
		svgPath := strings.TrimSuffix(src, ".mmd") + ".svg"
		svg, err := os.ReadFile(svgPath)
		if err != nil {
			problems = append(problems, filepath.Base(src)+": no "+filepath.Base(svgPath)+" (run make diagrams)")
			continue
		}
		m := svgSource.FindSubmatch(svg)
		switch {
		case m == nil:
			problems = append(problems, filepath.Base(svgPath)+": no source-sha256 comment (render it with make diagrams)")
		case string(m[1]) != hex.EncodeToString(want[:]):
			problems = append(problems, filepath.Base(svgPath)+": stale, rendered from another version of "+filepath.Base(src)+" (run make diagrams)")
		case !strings.Contains(string(svg), "<svg"):
			problems = append(problems, filepath.Base(svgPath)+": not an SVG")
		}
	}
	svgs, err := filepath.Glob(filepath.Join(dir, "*.svg"))
	if err != nil {
		return nil, 0, err
	}
	for _, svg := range svgs {
		if _, err := os.Stat(strings.TrimSuffix(svg, ".svg") + ".mmd"); err != nil {
			problems = append(problems, filepath.Base(svg)+": no .mmd source beside it")
		}
	}
	return problems, len(srcs), nil
}

// TestDiagramsAreRenderedFromTheirCurrentSource fails when a diagram's Mermaid
// source changed and its SVG was not rendered again, so scope.md never shows
// a stale picture.
func TestDiagramsAreRenderedFromTheirCurrentSource(t *testing.T) {
	problems, n, err := staleDiagrams(filepath.Join(repoRoot, diagramsDir))
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("found %d .mmd files in %s, want the data-flow and network diagrams", n, diagramsDir)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestStaleDiagramCheckFindsEachProblem shows the check above can fail: an SVG
// of other source bytes, one without the comment, a missing SVG, an orphan SVG.
func TestStaleDiagramCheckFindsEachProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	write("fresh.mmd", "flowchart LR\n  a --> b\n")
	write("fresh.svg", "<!-- source-sha256: "+sum("flowchart LR\n  a --> b\n")+" -->\n<svg></svg>")
	write("stale.mmd", "flowchart LR\n  a --> c\n")
	write("stale.svg", "<!-- source-sha256: "+sum("flowchart LR\n  a --> b\n")+" -->\n<svg></svg>")
	write("bare.mmd", "flowchart LR\n  x --> y\n")
	write("bare.svg", "<svg></svg>")
	write("unrendered.mmd", "flowchart LR\n  u --> v\n")
	write("orphan.svg", "<svg></svg>")

	problems, n, err := staleDiagrams(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(problems, "\n")
	for _, want := range []string{"stale.svg: stale", "bare.svg: no source-sha256", "unrendered.mmd: no unrendered.svg", "orphan.svg: no .mmd"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q: want one containing %q", got, want)
		}
	}
	if strings.Contains(got, "fresh") || len(problems) != 4 || n != 4 {
		t.Errorf("got %d sources and problems %q; want 4 sources and exactly the 4 problems above", n, got)
	}
}
