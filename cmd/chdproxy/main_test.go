package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/proxy"
)

func TestTheExampleServeConfigLoads(t *testing.T) {
	cfg, err := loadServeConfig("../../deploy/chdproxy.example.yaml")
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if got, want := len(cfg.Merchants[0].Keys), 3; got != want {
		t.Fatalf("got %d keys, want %d", got, want)
	}
}

func TestServeConfigRejectsUnknownKeysAndListsMissingOnes(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key": "policy: p.yaml\nvault: {address: x, token_file: y, tokn: z}\n",
		"missing":     "policy: p.yaml\n",
	} {
		f := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadServeConfig(f); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}

func TestServeRefusesPlainTextListenersOffLoopback(t *testing.T) {
	if _, err := tlsListener("collect", listenConfig{Addr: ":8443"}); err == nil {
		t.Fatal("got no error for a plain-text listener on all interfaces")
	}
	if wrap, err := tlsListener("admin", listenConfig{Addr: "127.0.0.1:9090"}); err != nil || wrap != nil {
		t.Fatalf("loopback admin: got (%v, %v), want plain text allowed", wrap != nil, err)
	}
}

func TestPolicyLintExitsZeroOnTheShippedPolicyAndOneOnAnUnsafeOne(t *testing.T) {
	if err := runPolicy([]string{"lint", "../../deploy/policy.yaml"}); err != nil {
		t.Fatalf("shipped policy: got %v, want no error", err)
	}
	b, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	unsafe := strings.Replace(string(b), "https://chd-api.smartcore.pro", "http://chd-api.smartcore.pro", 1)
	unsafe = strings.Replace(unsafe, "cvv_ttl: 10m", "cvv_ttl: 2h", 1)
	f := filepath.Join(t.TempDir(), "unsafe.yaml")
	if err := os.WriteFile(f, []byte(unsafe), 0o600); err != nil {
		t.Fatal(err)
	}
	var ec exitCode
	if err := runPolicy([]string{"lint", f}); !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("unsafe policy: got %v, want exit status 1", err)
	}
}

func TestKeysFromTheEnvironmentAuthenticate(t *testing.T) {
	keys := &proxy.Keys{}
	env := "m1:secret:" + proxy.KeyDigest("sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") + ", m1:secret:" + proxy.KeyDigest("sk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	if err := addEnvKeys(keys, env); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"} {
		if got, err := keys.Authenticate(k, proxy.RoleSecret); err != nil || got.Merchant != "m1" {
			t.Errorf("got (%v, %v), want merchant m1", got, err)
		}
	}
	if err := addEnvKeys(keys, "m1:secret:"+proxy.KeyDigest("sk_third")); err == nil {
		t.Error("a third secret key for one merchant: got no error, want one (two per role for rotation)")
	}
	if err := addEnvKeys(keys, "m1:secret"); err == nil {
		t.Error("a malformed item: got no error, want one")
	}
}

// runCLI runs the command line as main does and returns the exit status and both streams.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = run(args, &out, &errw)
	return code, out.String(), errw.String()
}

func TestHelpAndVersionGoToStdoutAndExitZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "commands:"},
		{[]string{"-h"}, "commands:"},
		{[]string{"help"}, "commands:"},
		{[]string{"help", "keys"}, "usage: chdproxy keys generate"},
		{[]string{"version"}, "chdproxy "},
		{[]string{"--version"}, "chdproxy "},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != 0 || !strings.Contains(stdout, tc.want) || stderr != "" {
			t.Errorf("%q: got exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout only", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestAWrongCommandLinePrintsUsageToStderrAndExitsTwo(t *testing.T) {
	for _, args := range [][]string{
		{}, {"bogus"}, {"help", "bogus"}, {"serve"}, {"serve", "--config", "x.yaml", "--bogus"},
		{"keys"}, {"keys", "generate"}, {"keys", "generate", "--role", "root"}, {"policy"}, {"policy", "fix", "p.yaml"},
		{"healthcheck", "--url", "ftp://127.0.0.1/readyz"}, {"version", "extra"}, {"dev", "--bogus"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: chdproxy") {
			t.Errorf("%q: got exit %d, stdout %q, stderr %q; want exit 2 and the usage on stderr only", args, code, stdout, stderr)
		}
	}
}

func TestEachSubcommandsHelpShowsOnlyItsOwnUsageAndFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string // one of its flags, listed with its help
	}{
		{[]string{"dev", "--help"}, "-state-dir"},
		{[]string{"serve", "--help"}, "-check-config"},
		{[]string{"serve", "-h"}, "-config"},
		{[]string{"policy", "--help"}, "-dev"},
		{[]string{"policy", "lint", "--help"}, "-dev"},
		{[]string{"redact", "--help"}, "-policy"},
		{[]string{"sandbox", "--help"}, "-addr"},
		{[]string{"keys", "generate", "--help"}, "-role"},
		{[]string{"healthcheck", "--help"}, "-url"},
		{[]string{"version", "--help"}, ""},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: chdproxy "+tc.args[0]) ||
			strings.Contains(stdout, "commands:") || !strings.Contains(stdout, tc.flag) {
			t.Errorf("%q: got exit %d, stdout %q, stderr %q; want exit 0 and only its usage with %s on stdout", tc.args, code, stdout, stderr, tc.flag)
		}
	}
}

func TestVersionNamesTheStampedVersionTheCommitAndGo(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v9.9.9-test"
	_, stdout, _ := runCLI(t, "version")
	for _, want := range []string{"chdproxy v9.9.9-test\n", "\ncommit ", runtime.Version()} {
		if !strings.Contains(stdout, want) {
			t.Errorf("got %q, want it to hold %q", stdout, want)
		}
	}
}

func TestKeysGenerateMakesAKeyOfTheRoleAndTheDigestThatAuthenticatesIt(t *testing.T) {
	for role, prefix := range map[proxy.Role]string{proxy.RolePublishable: "pk_", proxy.RoleSecret: "sk_", proxy.RoleAdmin: "ak_"} {
		code, stdout, stderr := runCLI(t, "keys", "generate", "--role", string(role))
		key := strings.TrimSuffix(stdout, "\n")
		if code != 0 || !regexp.MustCompile(`^`+prefix+`[0-9A-Za-z]{32}$`).MatchString(key) {
			t.Fatalf("%s: got exit %d, stdout %q; want exit 0 and %s + 32 base62 characters alone", role, code, stdout, prefix)
		}
		digest := proxy.KeyDigest(key)
		if !strings.Contains(stderr, `{role: `+string(role)+`, digest: "`+digest+`"}`) || strings.Contains(stderr, key) {
			t.Errorf("%s: stderr %q, want the digest line and not the key", role, stderr)
		}
		keys := &proxy.Keys{}
		if err := keys.Add("m1", role, digest); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Authenticate(key, role); err != nil {
			t.Errorf("%s: the printed digest does not authenticate the printed key: %v", role, err)
		}
		if _, again, _ := runCLI(t, "keys", "generate", "--role", string(role)); again == stdout {
			t.Errorf("%s: two runs printed the same key", role)
		}
	}
}

// checkConfigFixture writes a serve configuration whose files all exist, with
// addresses nothing listens on: --check-config must connect to none of them.
func checkConfigFixture(t *testing.T) (dir string, write func(name, content string) string) {
	t.Helper()
	t.Setenv("CHDPROXY_KEYS", "")
	dir = t.TempDir()
	write = func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return dir, write
}

const checkConfigTemplate = `
policy: %s
audit: %s
listen:
  collect: {addr: "%s"}
  forward: {addr: "127.0.0.1:1"}
  admin:   {addr: "127.0.0.1:1"}
vault: {address: "https://vault.invalid:8200", token_file: %s, create_keys: true}
redis: {addrs: ["127.0.0.1:1"]}
idempotency: {secret_file: %s}
merchants:
  - id: m1
    origins: [https://shop.example.com]
    keys:
      - {role: secret, digest: "%s"}
`

func TestServeCheckConfigSaysOkWithoutConnectingOrWritingAnything(t *testing.T) {
	dir, write := checkConfigFixture(t)
	audit := filepath.Join(dir, "audit.jsonl")
	cfg := write("chdproxy.yaml", fmt.Sprintf(checkConfigTemplate, "../../deploy/policy.yaml", audit, "127.0.0.1:1",
		write("vault-token", "hvs.test"), write("idem", strings.Repeat("k", 40)), proxy.KeyDigest("sk_"+strings.Repeat("a", 32))))
	code, stdout, stderr := runCLI(t, "serve", "--check-config", "--config", cfg)
	if code != 0 || !strings.HasPrefix(stdout, cfg+": ok") || stderr != "" {
		t.Fatalf("got exit %d, stdout %q, stderr %q; want exit 0 and %q", code, stdout, stderr, cfg+": ok")
	}
	if _, err := os.Stat(audit); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the audit file: got %v, want it not created by a check", err)
	}
}

func TestServeCheckConfigListsEveryProblemAndExitsOne(t *testing.T) {
	dir, write := checkConfigFixture(t)
	b, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	unsafe := write("policy.yaml", strings.Replace(string(b), "https://chd-api.smartcore.pro", "http://chd-api.smartcore.pro", 1))
	cfg := write("chdproxy.yaml", fmt.Sprintf(checkConfigTemplate, unsafe, filepath.Join(dir, "missing", "audit.jsonl"), ":8443",
		filepath.Join(dir, "no-token"), write("idem", "short"), "sha256:00"))
	code, stdout, stderr := runCLI(t, "serve", "--check-config", "--config", cfg)
	if code != 1 || stdout != "" {
		t.Fatalf("got exit %d, stdout %q; want exit 1 and nothing on stdout", code, stdout)
	}
	for _, want := range []string{"policy " + unsafe + ": ", "vault token:", "idempotency.secret_file", "merchant m1:", "listen.collect:", "audit:"} {
		if !strings.Contains(stderr, cfg+": "+want) {
			t.Errorf("stderr %q lacks the problem %q", stderr, want)
		}
	}
}

func TestHealthcheckExitsZeroOnlyWhenReadyzAnswers200(t *testing.T) {
	answer := func(status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.Redirect(w, r, "/readyz", http.StatusFound)
				return
			}
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		})
	}
	ready := httptest.NewServer(answer(http.StatusOK, `{"status":"ready"}`))
	defer ready.Close()
	unready := httptest.NewServer(answer(http.StatusServiceUnavailable, "{\"status\":\"unavailable\",\n \"checks\":{}}"))
	defer unready.Close()
	tlsReady := httptest.NewUnstartedServer(answer(http.StatusOK, `{"status":"ready"}`))
	tlsReady.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsReady.StartTLS()
	defer tlsReady.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsReady.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(answer(http.StatusOK, ""))
	closed.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // on stdout for 0, on stderr otherwise
	}{
		{"a ready admin listener", []string{"--url", ready.URL + "/readyz"}, 0, "healthy: 200 OK {\"status\":\"ready\"}"},
		{"an unready one, its answer on one line", []string{"--url", unready.URL + "/readyz"}, 1, `unhealthy: 503 Service Unavailable {"status":"unavailable", "checks":{}}`},
		{"a redirect, not followed", []string{"--url", ready.URL + "/elsewhere"}, 1, "unhealthy: 302 Found"},
		{"nothing listening", []string{"--url", closed.URL + "/readyz"}, 1, "unhealthy: "},
		{"https with the listener's CA", []string{"--url", tlsReady.URL + "/readyz", "--ca", ca}, 0, "healthy: 200 OK"},
		{"https with the system roots only", []string{"--url", tlsReady.URL + "/readyz"}, 1, "certificate"},
	} {
		code, stdout, stderr := runCLI(t, append([]string{"healthcheck"}, tc.args...)...)
		got := stderr
		if tc.code == 0 {
			got = stdout
		}
		if code != tc.code || !strings.Contains(got, tc.want) || strings.Count(got, "\n") != 1 {
			t.Errorf("%s: got exit %d, stdout %q, stderr %q; want exit %d and one line with %q", tc.name, code, stdout, stderr, tc.code, tc.want)
		}
	}
}
