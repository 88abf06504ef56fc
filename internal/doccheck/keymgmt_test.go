package doccheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
)

const keyMgmtDoc = "docs/pci/key-management.md"

// shBlock is a fenced ```sh block of a document and the name of its
// `<!-- keymgmt: NAME -->` marker.
type shBlock struct {
	name, script string
	line         int
}

var (
	blockMarker = regexp.MustCompile(`^<!-- keymgmt: ([a-z0-9-]+) -->$`)
	// a chdproxy command line: `chdproxy WORD` in a backticked span or at the
	// start of a command in a sh block.
	chdproxyCmd = regexp.MustCompile("(?:^|[`|;&(]\\s*)chdproxy ([a-z][a-z-]*)")
)

// shBlocks returns the sh blocks of doc in order; every one must carry a marker
// on the line before its fence, and no two the same name.
func shBlocks(doc string) ([]shBlock, error) {
	var blocks []shBlock
	var cur *shBlock
	marker, seen := "", map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.script += line + "\n"
		case line == "```sh":
			if marker == "" || seen[marker] {
				return nil, fmt.Errorf("line %d: a sh block needs its own <!-- keymgmt: NAME --> marker on the line before", n)
			}
			seen[marker] = true
			cur, marker = &shBlock{name: marker, line: n}, ""
		default:
			marker = ""
			if m := blockMarker.FindStringSubmatch(line); m != nil {
				marker = m[1]
			}
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: sh block %s is not closed", cur.line, cur.name)
	}
	return blocks, nil
}

// chdproxySubcommands lists the subcommands doc names, in backticks or in its sh blocks.
func chdproxySubcommands(doc string) []string {
	var cmds []string
	inSh := false
	for line := range strings.SplitSeq(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			inSh = line == "```sh"
			continue
		}
		var spans []string
		if inSh {
			spans = []string{strings.TrimSpace(line)}
		} else {
			for _, m := range backticked.FindAllStringSubmatch(line, -1) {
				spans = append(spans, "`"+m[1])
			}
		}
		for _, s := range spans {
			for _, m := range chdproxyCmd.FindAllStringSubmatch(s, -1) {
				if !slices.Contains(cmds, m[1]) {
					cmds = append(cmds, m[1])
				}
			}
		}
	}
	return cmds
}

// missingSubcommands returns the names the binary does not know (`help NAME`
// exits non-zero for those).
func missingSubcommands(bin string, names []string) []string {
	var missing []string
	for _, n := range names {
		if err := exec.Command(bin, "help", n).Run(); err != nil {
			missing = append(missing, n)
		}
	}
	return missing
}

func TestShBlocksNeedAMarkerAndAreReadInOrder(t *testing.T) {
	doc := "<!-- keymgmt: one -->\n```sh\na\nb\n```\ntext `chdproxy rewrap --config F`\n<!-- keymgmt: two -->\n```sh\nchdproxy purge --yes | chdproxy keys\n```\n"
	blocks, err := shBlocks(doc)
	if err != nil || len(blocks) != 2 || blocks[0].name != "one" || blocks[0].script != "a\nb\n" || blocks[1].name != "two" {
		t.Fatalf("got %+v, %v; want blocks one (a, b) and two", blocks, err)
	}
	if got, want := chdproxySubcommands(doc), []string{"rewrap", "purge", "keys"}; !slices.Equal(got, want) {
		t.Errorf("subcommands: got %q, want %q", got, want)
	}
	for name, bad := range map[string]string{
		"no marker":               "text\n```sh\na\n```\n",
		"marker not right before": "<!-- keymgmt: x -->\n\n```sh\na\n```\n",
		"same marker twice":       "<!-- keymgmt: x -->\n```sh\na\n```\n<!-- keymgmt: x -->\n```sh\nb\n```\n",
		"unclosed":                "<!-- keymgmt: x -->\n```sh\na\n",
	} {
		if _, err := shBlocks(bad); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}

// keyMgmtEnv is the deployment the document's commands run against: real Vault
// and redis-server, a built chdproxy, and `serve` once the set-up block ran.
type keyMgmtEnv struct {
	t                       *testing.T
	vs                      *testenv.VaultServer
	rs                      *testenv.RedisServer
	bin, dir, secrets       string
	env                     map[string]string
	collect, forward, admin string
	pk, sk, ak, skNew       string
	serve                   *testenv.Proc
}

// TestKeyManagementCommandsRunAsWritten runs every sh block of
// docs/pci/key-management.md in order, each with bash -euo pipefail, against a
// real Vault dev server, a real redis-server and a running `chdproxy serve`
// (AppRole login from the bootstrap the first block runs). Hooks around the
// blocks check that each did what the page says (the new key works and the old
// one gets 401, old versions are retired, the old secret_id no longer logs in,
// the old Redis password no longer authenticates, the purge deleted the keys).
func TestKeyManagementCommandsRunAsWritten(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, keyMgmtDoc))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := shBlocks(string(raw))
	if err != nil {
		t.Fatalf("%s: %v", keyMgmtDoc, err)
	}
	e := newKeyMgmtEnv(t)
	names := chdproxySubcommands(string(raw))
	if missing := missingSubcommands(e.bin, append(slices.Clone(names), "frobnicate")); !slices.Equal(missing, []string{"frobnicate"}) {
		t.Fatalf("%s names chdproxy subcommands %q that the binary does not know (frobnicate is the control)", keyMgmtDoc, missing)
	}
	before, after := e.hooks()
	ran := map[string]bool{}
	for _, b := range blocks {
		if h := before[b.name]; h != nil {
			h()
		}
		out := e.run(b)
		if h := after[b.name]; h != nil {
			h(out)
		}
		ran[b.name] = true
	}
	for name := range joinKeys(before, after) {
		if !ran[name] {
			t.Errorf("the check for block %q never ran: no such block in %s", name, keyMgmtDoc)
		}
	}
}

// keyMgmtTools are the programs the page's commands run besides chdproxy and vault.
var keyMgmtTools = []string{"bash", "go", "jq", "curl", "openssl", "redis-cli"}

func newKeyMgmtEnv(t *testing.T) *keyMgmtEnv {
	for _, tool := range keyMgmtTools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed; the commands of %s need it (CI=true: not skipped)", tool, keyMgmtDoc)
			}
			t.Skipf("%s is not installed; skipping the commands of %s", tool, keyMgmtDoc)
		}
	}
	rs, vs := testenv.Redis(t), testenv.Vault(t)
	e := &keyMgmtEnv{t: t, vs: vs, rs: rs, dir: t.TempDir()}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(e.dir, "bin")
	e.bin = filepath.Join(binDir, "chdproxy")
	build := exec.Command("go", "build", "-o", e.bin, "./cmd/chdproxy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Symlink(testenv.VaultBin(), filepath.Join(binDir, "vault")); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(e.dir, "work") // the commands' checkout: deploy/ is the repository's
	e.secrets = filepath.Join(work, "secrets")
	if err := os.MkdirAll(e.secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "deploy"), filepath.Join(work, "deploy")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*string{&e.collect, &e.forward, &e.admin} {
		p, err := testenv.FreePort(false)
		if err != nil {
			t.Fatal(err)
		}
		*a = fmt.Sprintf("http://127.0.0.1:%d", p)
	}
	e.pk, _, _ = proxy.NewKey(proxy.RolePublishable)
	e.sk, _, _ = proxy.NewKey(proxy.RoleSecret)
	e.ak, _, _ = proxy.NewKey(proxy.RoleAdmin)
	e.env = map[string]string{
		"PATH": binDir + ":" + os.Getenv("PATH"), "HOME": e.dir, "USER": "key-custodian",
		"VAULT_ADDR": vs.Addr, "VAULT_TOKEN": vs.Token,
		"SECRETS": e.secrets, "CHDPROXY_CONFIG": filepath.Join(e.dir, "chdproxy.yaml"),
		"ADMIN_URL": e.admin, "ADMIN_KEY": e.ak, "MERCHANT": "m_gone",
		"REDIS_ADMIN_URL": "redis://" + rs.Addr, "TLS_HOST": "forward.chdproxy.test",
	}
	return e
}

// run runs one block in the work folder with the deployment's variables and
// returns its output; a failing command fails the test.
func (e *keyMgmtEnv) run(b shBlock) string {
	e.t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", b.script)
	cmd.Dir = filepath.Join(e.dir, "work")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ours := e.env[k]; !ours && !strings.HasPrefix(k, "VAULT_") && !strings.HasPrefix(k, "REDIS") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range e.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s:%d block %q failed: %v\n%s", keyMgmtDoc, b.line, b.name, err, out)
	}
	return string(out)
}

// writeConfig writes serve's configuration: AppRole files and the idempotency
// secret from $SECRETS, merchant m1 with the keys whose secrets are given.
func (e *keyMgmtEnv) writeConfig(skeys ...string) {
	root, _ := filepath.Abs(repoRoot)
	keys := fmt.Sprintf("      - {role: publishable, digest: %q}\n      - {role: admin, digest: %q}\n", proxy.KeyDigest(e.pk), proxy.KeyDigest(e.ak))
	for _, k := range skeys {
		keys += fmt.Sprintf("      - {role: secret, digest: %q}\n", proxy.KeyDigest(k))
	}
	cfg := fmt.Sprintf(`policy: %s
audit: %s
listen: {collect: {addr: "%s"}, forward: {addr: "%s"}, admin: {addr: "%s"}}
vault:
  address: "%s"
  auth: {method: approle, approle: {role_id_file: %s, secret_id_file: %s}}
  timeout: 5s
redis: {addrs: ["%s"]}
idempotency: {secret_file: %s}
merchants:
  - id: m1
    keys:
%s`, filepath.Join(root, "deploy", "policy.yaml"), filepath.Join(e.dir, "audit.jsonl"),
		strings.TrimPrefix(e.collect, "http://"), strings.TrimPrefix(e.forward, "http://"), strings.TrimPrefix(e.admin, "http://"),
		e.vs.Addr, filepath.Join(e.secrets, "role_id"), filepath.Join(e.secrets, "secret_id"), e.rs.Addr,
		filepath.Join(e.secrets, "idempotency-secret"), keys)
	if err := os.WriteFile(e.env["CHDPROXY_CONFIG"], []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// startServe starts the built binary's `serve` and waits until /readyz is 200.
func (e *keyMgmtEnv) startServe() {
	p, err := testenv.StartProc("chdproxy serve", e.bin, []string{"serve", "--config", e.env["CHDPROXY_CONFIG"]}, testenv.ChildEnv(e.dir), filepath.Join(e.dir, "serve.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.serve = p
	e.t.Cleanup(func() {
		p.Shutdown(10 * time.Second)
		if e.t.Failed() {
			e.t.Logf("serve output:\n%s", p.Output())
		}
	})
	if err := p.WaitFor(20*time.Second, func() error { return e.status(http.MethodGet, e.admin+"/readyz", "", "", 200) }); err != nil {
		e.t.Fatal(err)
	}
	e.env["CHDPROXY_PID"] = fmt.Sprint(p.Pid())
}

// call makes a request and returns the status and body.
func (e *keyMgmtEnv) call(method, url, key, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		h := "Authorization"
		if strings.HasPrefix(key, "sk_") {
			h = "Proxy-Authorization"
		}
		req.Header.Set(h, "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes(), err
}

// status is nil when the request answers want.
func (e *keyMgmtEnv) status(method, url, key, body string, want int) error {
	code, b, err := e.call(method, url, key, body)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("%s %s: got %d %s, want %d", method, url, code, b, want)
	}
	return nil
}

// eventually polls check for up to d (a reload or a re-login takes a moment).
func (e *keyMgmtEnv) eventually(what string, d time.Duration, check func() error) {
	e.t.Helper()
	var err error
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	e.t.Fatalf("%s: %v", what, err)
}

// tokenize makes a card token of m1 and returns its id.
func (e *keyMgmtEnv) tokenize() string {
	body := fmt.Sprintf(`{"card_number":%q,"card_exp_month":"12","card_exp_year":"2031","card_cvv":%q}`, testcards.Success, testcards.CVV)
	code, b, err := e.call(http.MethodPost, e.collect+"/v1/tokens", e.pk, body)
	var tok struct{ Token string }
	if err != nil || code != http.StatusCreated || json.Unmarshal(b, &tok) != nil || tok.Token == "" {
		e.t.Fatalf("tokenize: got %d %s, %v; want 201 with a token", code, b, err)
	}
	return tok.Token
}

// keyInfo reads a transit key's versions as the root token sees them.
func (e *keyMgmtEnv) keyInfo(name string) (latest, minDecrypt int, versions []string) {
	var out struct {
		Data struct {
			Latest     int            `json:"latest_version"`
			MinDecrypt int            `json:"min_decryption_version"`
			Keys       map[string]any `json:"keys"`
		} `json:"data"`
	}
	if err := e.vs.Do(http.MethodGet, "/v1/transit/keys/"+name, nil, &out); err != nil {
		e.t.Fatal(err)
	}
	for v := range out.Data.Keys {
		versions = append(versions, v)
	}
	return out.Data.Latest, out.Data.MinDecrypt, versions
}

// redisCLI runs redis-cli against the test's redis-server.
func (e *keyMgmtEnv) redisCLI(args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-u", "redis://" + e.rs.Addr}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (e *keyMgmtEnv) readSecret(name string) string {
	b, err := os.ReadFile(filepath.Join(e.secrets, name))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// joinKeys is the set of the hooks' block names.
func joinKeys(before map[string]func(), after map[string]func(string)) map[string]bool {
	names := map[string]bool{}
	for n := range before {
		names[n] = true
	}
	for n := range after {
		names[n] = true
	}
	return names
}
