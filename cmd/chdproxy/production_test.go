package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testOnlyParts are what a production binary must not hold (PCI DSS 6.5.6): the
// in-memory Redis, the SmartPayments sandbox, the dev-only cipher and the CPU
// profile listener (runtime/pprof, pprof.go). The packages
// are checked in `go list -deps`; the cipher lives in package vault beside the
// transit client, so it is checked among the linked symbols.
var (
	testOnlyPackages = regexp.MustCompile(`(?m)^(github\.com/alicebob/miniredis\b.*|github\.com/chdproxy/chdproxy/smartpay|runtime/pprof)$`)
	testOnlySymbols  = regexp.MustCompile(`(?m) (github\.com/alicebob/miniredis|github\.com/chdproxy/chdproxy/smartpay\.|github\.com/chdproxy/chdproxy/vault\.\(\*?LocalCipher\)|github\.com/chdproxy/chdproxy/vault\.NewLocalCipher|runtime/pprof\.)`)
)

// `go build -tags production` (the image's build) leaves out dev, sandbox and what
// only they use: its dependencies and symbols hold none of the test-only parts (the
// default build holds them all: the patterns do match),
// it answers dev and sandbox as unknown commands, and its version names the tag.
func TestProductionBuildHoldsNoTestOnlyCode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goCmd := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if got := testOnlyPackages.FindAllString(goCmd("list", "-deps", "."), -1); len(got) < 3 {
		t.Fatalf("the default build depends on %q: want miniredis, smartpay and runtime/pprof (else this test checks nothing)", got)
	}
	if got := testOnlyPackages.FindAllString(goCmd("list", "-deps", "-tags", "production", "."), -1); len(got) > 0 {
		t.Errorf("go list -deps -tags production: got %q, want no test-only package", got)
	}
	dir := t.TempDir()
	dev, bin := filepath.Join(dir, "chdproxy-default"), filepath.Join(dir, "chdproxy")
	goCmd("build", "-o", dev, ".")
	if got := strings.Join(testOnlySymbols.FindAllString(goCmd("tool", "nm", dev), -1), ""); !strings.Contains(got, "LocalCipher") || !strings.Contains(got, "runtime/pprof.") {
		t.Fatal("the default build's symbols lack the dev cipher or runtime/pprof: the symbol pattern is stale")
	}
	goCmd("build", "-tags", "production", "-o", bin, ".")
	if got := testOnlySymbols.FindAllString(goCmd("tool", "nm", bin), 5); len(got) > 0 {
		t.Errorf("the production binary links %q, want no test-only code", got)
	}
	if info := goCmd("version", "-m", bin); !strings.Contains(info, "\tbuild\t-tags=production\n") {
		t.Errorf("go version -m: want a build line -tags=production, got\n%s", info)
	}
	for _, cmd := range []string{"dev", "sandbox"} {
		var stderr bytes.Buffer
		c := exec.Command(bin, cmd)
		c.Stderr = &stderr
		var ee *exec.ExitError
		if err := c.Run(); !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), `unknown command "`+cmd+`"`) {
			t.Errorf("chdproxy %s: got %v, stderr %q; want exit 2, unknown command", cmd, err, firstLine(stderr.String()))
		}
		if strings.Contains(stderr.String(), "  "+cmd+" [") {
			t.Errorf("the production usage still lists %s", cmd)
		}
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(out), "\nbuild tags production\n") {
		t.Errorf("chdproxy version: got %q (%v), want a line \"build tags production\"", out, err)
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
