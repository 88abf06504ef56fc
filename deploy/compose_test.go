package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/vault"
)

// composeFile is the part of deploy/compose.yaml the tests check.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build struct {
			Args map[string]string `yaml:"args"`
		} `yaml:"build"`
		Command     []string          `yaml:"command"`
		User        string            `yaml:"user"`
		ReadOnly    bool              `yaml:"read_only"`
		CapDrop     []string          `yaml:"cap_drop"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
	Secrets map[string]map[string]string `yaml:"secrets"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func TestComposeRunsEachPartAsShippedWithSecretsAsFiles(t *testing.T) {
	c := readCompose(t)
	for name, image := range map[string]string{"vault": "hashicorp/vault:", "vault-agent": "hashicorp/vault:", "redis": "redis:", "sandbox": "chdproxy-sandbox:latest", "chdproxy": "chdproxy:latest"} {
		if s, ok := c.Services[name]; !ok || !strings.HasPrefix(s.Image, image) {
			t.Errorf("service %s: got image %q, want %s…", name, s.Image, image)
		}
	}
	if cmd := strings.Join(c.Services["vault"].Command, " "); strings.Contains(cmd, "-dev") || !strings.Contains(cmd, "vault.hcl") {
		t.Errorf("vault runs %q, want server mode with deploy/vault/vault.hcl", cmd)
	}
	if cmd := strings.Join(c.Services["chdproxy"].Command, " "); cmd != "serve --config /etc/chdproxy/chdproxy.yaml" {
		t.Errorf("chdproxy runs %q", cmd)
	}
	if tags, ok := c.Services["sandbox"].Build.Args["TAGS"]; !ok || tags != "" {
		t.Errorf("the sandbox image is built with TAGS=%q, want empty (the production image has no sandbox)", tags)
	}
	if _, ok := c.Services["chdproxy"].Build.Args["TAGS"]; ok {
		t.Error("chdproxy's image must be the production build (no TAGS override)")
	}
	if cmd := strings.Join(c.Services["sandbox"].Command, " "); !strings.Contains(cmd, "--tls-cert") {
		t.Errorf("the sandbox runs %q, want TLS (serve calls its upstreams over https only)", cmd)
	}
	for _, name := range []string{"chdproxy", "sandbox", "vault-agent"} {
		s := c.Services[name]
		if s.User != "65532:65532" || !s.ReadOnly || strings.Join(s.CapDrop, ",") != "ALL" {
			t.Errorf("%s: got user %q read_only %v cap_drop %v, want 65532:65532, true, [ALL]", name, s.User, s.ReadOnly, s.CapDrop)
		}
	}
	secretish := regexp.MustCompile(`(?i)pass|secret|token|key|role_id`)
	for name, s := range c.Services {
		for k := range s.Environment {
			if secretish.MatchString(k) {
				t.Errorf("%s: environment %s holds a secret inline; use a compose secret", name, k)
			}
		}
		for _, ref := range s.Secrets {
			if _, ok := c.Secrets[ref]; !ok {
				t.Errorf("%s: secret %s is not declared", name, ref)
			}
		}
	}
	for name, def := range c.Secrets {
		if len(def) != 1 || !strings.HasPrefix(def["file"], "./compose/secrets/") {
			t.Errorf("secret %s: got %v, want only file: ./compose/secrets/…", name, def)
		}
	}
}

// composeSecrets runs deploy/compose/init.sh into a folder, with role_id and
// secret_id as bootstrap.sh would add them.
func composeSecrets(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	if b, err := exec.Command("bash", "compose/init.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("init.sh: %v\n%s", err, b)
	}
	for _, f := range []string{"role_id", "secret_id"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Every secret compose names is a file init.sh (or bootstrap.sh) makes, and
// deploy/compose/chdproxy.yaml passes serve's own checks with those files
// where compose mounts them.
func TestComposeConfigPassesServeCheckConfig(t *testing.T) {
	c := readCompose(t)
	dir := composeSecrets(t)
	mounts := map[string]string{"/etc/chdproxy/policy.yaml": mustAbs(t, "policy.yaml"), "/run/vault-token/token": filepath.Join(dir, "role_id")}
	for name, def := range c.Secrets {
		p := filepath.Join(dir, filepath.Base(def["file"]))
		if _, err := os.Stat(p); err != nil {
			t.Errorf("secret %s: init.sh made no %s", name, filepath.Base(p))
		}
		mounts["/run/secrets/"+name] = p
	}
	cfg, err := os.ReadFile("compose/chdproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	for from, to := range mounts {
		text = strings.ReplaceAll(text, from, to)
	}
	if strings.Contains(text, ": /run/") {
		t.Fatalf("compose/chdproxy.yaml reads a file compose does not mount:\n%s", text)
	}
	file := filepath.Join(t.TempDir(), "chdproxy.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "run", "../cmd/chdproxy", "serve", "--config", file, "--check-config").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": ok") {
		t.Fatalf("serve --check-config: %v\n%s", err, out)
	}
}

// The users.acl init.sh writes, on a real redis-server: the default user is
// refused, and chdproxy's user (password from its file) can do what the store
// does — tokenize, look up, delete — but not reconfigure Redis.
func TestComposeRedisACLAllowsTheStoreAndNothingDangerous(t *testing.T) {
	dir := composeSecrets(t)
	rs := testenv.RedisWith(t, "--aclfile", filepath.Join(dir, "users.acl"))
	pw, err := os.ReadFile(filepath.Join(dir, "redis_password"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	anon := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{rs.Addr}})
	defer anon.Close()
	if err := anon.Set(ctx, "chd:x", "1", 0).Err(); err == nil {
		t.Error("the default user may write")
	}
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{rs.Addr}, Username: "chdproxy", Password: strings.TrimSpace(string(pw))})
	defer rdb.Close()
	lc, err := vault.NewLocalCipher()
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(vault.Config{Transit: lc, Store: vault.NewStore(rdb, vault.StoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	tokenizeDetokenize(t, v)
	if err := rdb.ConfigSet(ctx, "save", "60 1").Err(); err == nil {
		t.Error("chdproxy's Redis user may CONFIG SET")
	}
	if err := rdb.Set(ctx, "other:x", "1", 0).Err(); err == nil {
		t.Error("chdproxy's Redis user may write outside chd:*")
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
