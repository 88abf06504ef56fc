package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// sbomTool is pinned: the SBOM of the same binary is the same list every run.
const sbomTool = "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0"

// artifact is one file of the bundle and what it is evidence of.
type artifact struct {
	File   string // relative to the bundle
	Proves string
	PCI    string
	SHA256 string
	Note   string // why it is missing, or what to know about it
}

// bundle is one run: its folder, what it collected, and the facts index.md states.
type bundle struct {
	dir, policy, image string
	started            time.Time
	commit, goVersion  string
	dirty              bool
	binSHA256          string
	policyHash         string // of the policy file: what logs and audit records carry
	suites             []*suite
	artifacts          []artifact
	commands           []string // every command run, in order, for the index
}

// build collects everything into b.dir: facts first, then the binary and what is
// read from it, then the suites (the longest part), then the hashes and the index.
func (b *bundle) build() error {
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	b.facts()
	bin := filepath.Join(b.dir, "chdproxy")
	if _, err := b.run(nil, "go", "build", "-trimpath", "-buildvcs=auto", "-tags", "production", "-o", bin, "./cmd/chdproxy"); err != nil {
		return fmt.Errorf("building the production binary: %w", err)
	}
	b.binSHA256 = fileSHA256(bin)
	b.fromBinary(bin)
	if err := os.Remove(bin); err != nil { // its hash is in the index; 20 MB adds nothing
		return err
	}
	b.vaultPolicies()
	b.imageListing()
	for _, s := range suites() {
		b.runSuite(s)
		b.suites = append(b.suites, s)
	}
	return b.finish()
}

// facts are the commit, whether the tree had changes, and the Go toolchain.
func (b *bundle) facts() {
	out, _ := b.run(nil, "git", "rev-parse", "HEAD")
	b.commit = strings.TrimSpace(string(out))
	if b.commit == "" {
		b.commit = "unknown (not a git checkout)"
	}
	status, _ := b.run(nil, "git", "status", "--porcelain", "--untracked-files=no")
	b.dirty = len(bytes.TrimSpace(status)) > 0
	gv, _ := b.run(nil, "go", "version")
	b.goVersion = strings.TrimSpace(string(gv))
	text := fmt.Sprintf("commit %s\nworking tree: %s\n%s\ndate %s\n", b.commit, map[bool]string{true: "modified (uncommitted changes to tracked files)", false: "clean"}[b.dirty], b.goVersion, b.started.Format(time.RFC3339))
	b.write("commit.txt", []byte(text), "the source the bundle was made from, and whether it had uncommitted changes", "6.5.1")
}

// fromBinary records the production binary's build information, version, SBOM and
// the policy report it makes.
func (b *bundle) fromBinary(bin string) {
	if out, err := b.run(nil, "go", "version", "-m", bin); err == nil {
		b.write("buildinfo.txt", out, "the production binary's build: Go version, every module and version linked, -tags=production (no dev, sandbox, miniredis or dev cipher), CGO_ENABLED=0, -trimpath", "6.3.2, 6.5.6")
	} else {
		b.missing("buildinfo.txt", "go version -m failed: "+err.Error(), "6.3.2, 6.5.6")
	}
	if out, err := b.run(nil, bin, "version"); err == nil {
		b.write("version.txt", out, "what `chdproxy version` of that binary says (its build tags included)", "6.5.6")
	}
	sbom := filepath.Join(b.dir, "sbom.cdx.json")
	if _, err := b.run(nil, "go", "run", sbomTool, "bin", "-json", "-output", sbom, bin); err == nil {
		b.add("sbom.cdx.json", "CycloneDX 1.6 software bill of materials of the production binary (cyclonedx-gomod bin mode: the modules actually linked)", "6.3.2", "")
	} else {
		b.missing("sbom.cdx.json", "cyclonedx-gomod failed: "+err.Error(), "6.3.2")
	}
	report, err := b.run(nil, bin, "policy", "explain", b.policy)
	if err != nil {
		b.missing("policy-report.md", "chdproxy policy explain failed: "+err.Error(), "7.2.1, 12.5.2")
		return
	}
	b.policyHash = fileSHA256(b.policy)
	b.write("policy-report.md", report, fmt.Sprintf("the policy report of %s: which routes may receive which card data, the upstream hosts, lifetimes and redaction rules (the policy file's SHA-256, `%s`, is the policy_hash on every log line and audit record of a proxy that runs it)", b.policy, b.policyHash), "7.2.1, 12.5.2")
	lint, err := b.run(nil, bin, "policy", "lint", b.policy)
	note := ""
	if err != nil {
		note = "lint found problems"
	}
	b.write("policy-lint.txt", lint, "`chdproxy policy lint` of the same policy: valid and safe (exit 0) or every problem", "6.2.4")
	b.artifacts[len(b.artifacts)-1].Note = note
}

// vaultPolicies copies deploy/vault-policy*.hcl, the least-privilege Vault policies.
func (b *bundle) vaultPolicies() {
	files, _ := filepath.Glob("deploy/vault-policy*.hcl")
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.missing("vault/"+filepath.Base(f), err.Error(), "3.6.1, 7.2.2")
			continue
		}
		b.write("vault/"+filepath.Base(f), data, "a Vault policy of the repository ("+f+"; its header says whose token holds it): the transit paths that token may use, nothing else", "3.6.1, 7.2.1, 7.2.2")
	}
}

// imageListing lists the image's configuration and files when it exists; a bundle
// without an image says so and is not a failure (the image needs buildah and root).
func (b *bundle) imageListing() {
	const proves = "the container image: its configuration (user, entrypoint, ports, labels), every file in it with mode, owner and hash (no shell, no package manager), and its binary's build info (-tags=production)"
	if _, err := exec.LookPath("buildah"); err != nil {
		b.missing("image.txt", "image not built: buildah is not installed", "2.2.4, 2.2.5")
		return
	}
	inspect, err := b.run(nil, "buildah", "inspect", "--type", "image", b.image)
	if err != nil {
		b.missing("image.txt", "image not built: no image "+b.image+" (make image)", "2.2.4, 2.2.5")
		return
	}
	files, err := b.imageFiles()
	if err != nil {
		files = []byte("the file list could not be read: " + err.Error() + "\n")
	}
	var text bytes.Buffer
	fmt.Fprintf(&text, "# %s\n\n## files (path, mode, owner, bytes, sha256)\n\n%s\n## buildah inspect\n\n%s", b.image, files, inspect)
	b.write("image.txt", text.Bytes(), proves, "2.2.4, 2.2.5, 6.5.6")
}

// imageFiles mounts a working container of the image and lists its files.
func (b *bundle) imageFiles() ([]byte, error) {
	ctr, err := b.run(nil, "buildah", "from", "--pull-never", b.image)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(string(ctr))
	defer exec.Command("buildah", "rm", name).Run()
	root, err := b.run(nil, "buildah", "mount", name)
	if err != nil {
		return nil, err
	}
	defer exec.Command("buildah", "umount", name).Run()
	var list bytes.Buffer
	dir := strings.TrimSpace(string(root))
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&list, "/%s %v %s %d %s\n", rel, fi.Mode(), owner(fi), fi.Size(), fileSHA256(p))
		return nil
	})
	// Whether the image's binary is the production build (-tags=production) is in its build info.
	if info, verr := b.run(nil, "go", "version", "-m", filepath.Join(dir, "chdproxy")); verr == nil {
		fmt.Fprintf(&list, "\n## go version -m /chdproxy\n\n%s", strings.ReplaceAll(string(info), dir, ""))
	}
	return list.Bytes(), err
}

// runSuite runs one suite with go test -json and keeps the raw stream and its summary.
func (b *bundle) runSuite(s *suite) {
	args := []string{"test", "-json", "-count=1"}
	if s.Run != "" {
		args = append(args, "-run", s.Run)
	}
	args = append(args, s.Packages...)
	out, err := b.run(append([]string{"CI=true"}, s.Env...), "go", args...)
	s.Result = parseTestJSON(bytes.NewReader(out))
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		s.Result.ExitCode = ee.ExitCode()
	case err != nil:
		s.Result.ExitCode = -1
	}
	b.write("tests-"+s.Name+".jsonl", out, "the raw `go test -json` stream of the "+s.Title+" (every event, every test's output)", s.PCI)
	summary, _ := json.MarshalIndent(s.Result, "", "  ")
	b.write("tests-"+s.Name+".json", append(summary, '\n'), "the "+s.Title+": every test and subtest with pass/fail/skip, the counts and go test's exit status", s.PCI)
}

// finish writes SHA256SUMS and index.md.
func (b *bundle) finish() error {
	var sums bytes.Buffer
	for _, a := range b.artifacts {
		if a.SHA256 != "" {
			fmt.Fprintf(&sums, "%s  %s\n", a.SHA256, a.File)
		}
	}
	if err := os.WriteFile(filepath.Join(b.dir, "SHA256SUMS"), sums.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.dir, "index.md"), renderIndex(b), 0o644)
}

// run runs a command with the environment plus env and returns its stdout (stderr
// goes to ours, so make evidence shows progress); the command line goes to the index.
func (b *bundle) run(env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	line := append(slices.Clone(env), name)
	for _, a := range args {
		if strings.ContainsAny(a, " |*?$'\"") {
			a = "'" + a + "'"
		}
		line = append(line, a)
	}
	b.commands = append(b.commands, strings.Join(line, " "))
	return cmd.Output()
}

// write writes a file of the bundle and records it.
func (b *bundle) write(file string, data []byte, proves, pci string) {
	p := filepath.Join(b.dir, file)
	err := os.MkdirAll(filepath.Dir(p), 0o755)
	if err == nil {
		err = os.WriteFile(p, data, 0o644)
	}
	if err != nil {
		b.missing(file, err.Error(), pci)
		return
	}
	b.add(file, proves, pci, "")
}

func (b *bundle) add(file, proves, pci, note string) {
	b.artifacts = append(b.artifacts, artifact{File: file, Proves: proves, PCI: pci, SHA256: fileSHA256(filepath.Join(b.dir, file)), Note: note})
}

func (b *bundle) missing(file, why, pci string) {
	b.artifacts = append(b.artifacts, artifact{File: file, PCI: pci, Note: why})
}

// verdict is PASS when every suite passed.
func (b *bundle) verdict() string {
	for _, s := range b.suites {
		if !s.Result.ok() {
			return "FAIL"
		}
	}
	return "PASS"
}

func fileSHA256(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
