package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testenv"
)

// docBlock is a ```sh block of docs/operations.md and the marker before it.
type docBlock struct {
	line   int    // of the opening fence
	marker string // "first-payment", "skip (…)", or "" when unmarked
	text   string
}

var markerRE = regexp.MustCompile(`^<!-- test: (.+) -->$`)

// shBlocks returns every ```sh block of the Markdown file, with the marker
// comment on the last non-blank line before its fence.
func shBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	prev := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks, cur = append(blocks, *cur), nil
		case cur != nil:
			cur.text += line + "\n"
		case strings.TrimSpace(line) == "```sh":
			cur = &docBlock{line: n}
			if m := markerRE.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
				cur.marker = m[1]
			}
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: the sh block at line %d is not closed", file, cur.line)
	}
	return blocks
}

// The blocks the walk-through test does not run, and why: exactly these.
var wantSkipped = []string{
	"skip (needs docker and the chdproxy:latest image)",
	"skip (needs docker and the chdproxy:latest image)",
	"skip (needs kubectl and a cluster)",
}

// TestOperationsGuideReachesAFirstPayment follows docs/operations.md, "On one host,
// with the binaries", as a new platform engineer would: its marked blocks run in
// order in one shell on a copy of deploy/, with free ports. They start a real Vault
// server (not -dev: init, unseal, bootstrap.sh), redis-server with TLS and the ACL
// user, the sandbox over TLS and `chdproxy serve` logging in with the AppRole; the
// last blocks tokenize a card and pay with it, and fail unless the payment succeeds.
func TestOperationsGuideReachesAFirstPayment(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts Vault, Redis, the sandbox and serve")
	}
	if testenv.VaultBin() == "" {
		testenv.Vault(t) // skips, or fails under CI=true, naming what is missing
	}
	testenv.Commands(t, "bash", "redis-server", "openssl", "jq", "curl", "sed", "go")

	var run []string
	var skipped []string
	for _, b := range shBlocks(t, "../docs/operations.md") {
		switch {
		case b.marker == "first-payment":
			run = append(run, fmt.Sprintf("echo '--- docs/operations.md:%d' >&2\n%s", b.line, b.text))
		case strings.HasPrefix(b.marker, "skip ("):
			skipped = append(skipped, b.marker)
			t.Logf("not run: docs/operations.md:%d, %s", b.line, b.marker)
		default:
			t.Errorf("docs/operations.md:%d: a sh block without <!-- test: first-payment --> or <!-- test: skip (REASON) -->", b.line)
		}
	}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("got skipped blocks %q, want %q", skipped, wantSkipped)
	}
	if len(run) < 8 {
		t.Fatalf("got %d first-payment blocks, want the whole walk-through", len(run))
	}

	work := t.TempDir()
	copyDeploy(t, filepath.Join(work, "deploy"))
	state := filepath.Join(work, ".chdproxy-host")
	t.Cleanup(func() { stopStarted(t, state) })
	env := append(testenv.ChildEnv(work), "PATH="+binDir(t)+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, name := range []string{"VAULT_PORT", "REDIS_PORT", "SANDBOX_PORT", "COLLECT_PORT", "FORWARD_PORT", "ADMIN_PORT"} {
		port, err := testenv.FreePort(name == "VAULT_PORT") // Vault's cluster listener takes port+1
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, name+"="+strconv.Itoa(port))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+strings.Join(run, "\n"))
	cmd.Dir, cmd.Env, cmd.WaitDelay = work, env, 5*time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the walk-through failed: %v\n%s\n%s", err, out, logs(state))
	}
	lines := strings.Split(string(out), "\n")
	if got := len(lines) - len(slices.DeleteFunc(lines, func(l string) bool { return l == "true" })); got != 2 {
		t.Errorf("got %d successful jq -e checks, want 2 (payment and check)\n%s", got, out)
	}
	audit, err := os.ReadFile(filepath.Join(state, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"event":"tokenize"`, `"event":"inject"`, `"event":"stop"`} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("the audit trail lacks %s", want)
		}
	}
	serveLog, _ := os.ReadFile(filepath.Join(state, "chdproxy.log"))
	if !strings.Contains(string(serveLog), "vault: logged in") {
		t.Errorf("serve's log does not show the AppRole login:\n%s", serveLog)
	}
	for name, b := range map[string][]byte{"output": out, "audit trail": audit, "serve log": serveLog} {
		if strings.Contains(string(b), "4012000000003010") {
			t.Errorf("the %s holds the test PAN", name)
		}
	}
}

// copyDeploy copies deploy/ (modes kept; no secrets, no test state) to dst.
func copyDeploy(t *testing.T, dst string) {
	t.Helper()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (p == "compose/secrets" || p == ".chdproxy-host" || p == "k8s/check") {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, p), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, p), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// binDir holds the programs the guide calls by name: chdproxy, built now, and
// vault, the pinned server binary (also the CLI).
func binDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "chdproxy"), "./cmd/chdproxy")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Symlink(testenv.VaultBin(), filepath.Join(dir, "vault")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stopStarted kills what the guide started and left running (a failed step
// stops the shell before the guide's own stop step), by the pids it recorded.
func stopStarted(t *testing.T, state string) {
	for _, name := range []string{"chdproxy", "sandbox", "redis", "vault"} {
		b, err := os.ReadFile(filepath.Join(state, name+".pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			t.Logf("killed %s (pid %d), left running by the walk-through", name, pid)
		}
	}
}

// logs returns the tail of each log the guide's programs wrote, for a failure.
func logs(state string) string {
	var sb strings.Builder
	for _, name := range []string{"vault", "redis", "sandbox", "chdproxy"} {
		b, _ := os.ReadFile(filepath.Join(state, name+".log"))
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		fmt.Fprintf(&sb, "--- %s.log:\n%s\n", name, b)
	}
	return sb.String()
}
