package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/vault"
	"github.com/hashicorp/vault/api"
)

// bootstrapCmd is deploy/vault/bootstrap.sh OUT against vs with the root token
// (the Vault binary is also the CLI).
func bootstrapCmd(t *testing.T, vs *testenv.VaultServer, out string) *exec.Cmd {
	cmd := exec.Command("bash", "vault/bootstrap.sh", out)
	cmd.Env = append(testenv.ChildEnv(t.TempDir()), "VAULT="+testenv.VaultBin(), "VAULT_ADDR="+vs.Addr, "VAULT_TOKEN="+vs.Token)
	return cmd
}

// runBootstrap runs bootstrap.sh and returns its output folder.
func runBootstrap(t *testing.T, vs *testenv.VaultServer) string {
	t.Helper()
	out := t.TempDir()
	if b, err := bootstrapCmd(t, vs, out).CombinedOutput(); err != nil {
		t.Fatalf("bootstrap.sh: %v\n%s", err, b)
	}
	return out
}

// appRoleLogin logs in as chdproxy would, with the files bootstrap wrote.
func appRoleLogin(t *testing.T, addr, dir string) *api.Secret {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			t.Fatalf("bootstrap wrote no %s: %v", name, err)
		}
		return string(bytes.TrimSpace(b))
	}
	c, err := api.NewClient(&api.Config{Address: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	sec, err := c.Logical().Write("auth/approle/login", map[string]any{"role_id": read("role_id"), "secret_id": read("secret_id")})
	if err != nil || sec == nil || sec.Auth == nil {
		t.Fatalf("AppRole login: %v", err)
	}
	return sec
}

// The compose and operations path: bootstrap.sh on a real Vault, twice (it is
// re-runnable), then chdproxy's AppRole login and a card through
// vault.NewVaultTransit with that token: tokenize, detokenize with the CVV.
func TestBootstrapThenAppRoleTokenizesAndDetokenizes(t *testing.T) {
	vs := testenv.Vault(t)
	runBootstrap(t, vs)
	dir := runBootstrap(t, vs)
	sec := appRoleLogin(t, vs.Addr, dir)
	if got := strings.Join(sec.Auth.Policies, ","); got != "chdproxy,default" {
		t.Errorf("got policies %q, want chdproxy,default", got)
	}
	if !sec.Auth.Renewable {
		t.Error("the AppRole token is not renewable")
	}

	tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: vs.Addr, Token: sec.Auth.ClientToken, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{testenv.Redis(t).Addr}})
	defer rdb.Close()
	v, err := vault.New(vault.Config{Transit: tr, Store: vault.NewStore(rdb, vault.StoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	tokenizeDetokenize(t, v)
	if err := tr.EnsureKeys(context.Background()); err == nil {
		t.Error("the AppRole token may read transit keys: the policy is not least privilege")
	}
}

// A card key that is not derived would not bind ciphertexts to the merchant:
// bootstrap refuses it instead of carrying on.
func TestBootstrapRefusesAnExistingKeyOfTheWrongType(t *testing.T) {
	vs := testenv.Vault(t)
	if err := vs.Do("POST", "/v1/transit/keys/chdproxy-card", map[string]any{"type": "aes256-gcm96"}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := bootstrapCmd(t, vs, t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "not derived") {
		t.Fatalf("got %v, %q; want a refusal naming the underived key", err, b)
	}
}

// tokenizeDetokenize tokenizes a card with its CVV through v and gets both back.
func tokenizeDetokenize(t *testing.T, v *vault.Vault) {
	t.Helper()
	ctx := context.Background()
	pan, err := card.ParsePAN(testcards.Success)
	if err != nil {
		t.Fatal(err)
	}
	cvv, err := card.ParseCVV(testcards.CVV, pan.Brand())
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.TokenizeCard(ctx, "m_alpha", vault.CardInput{PAN: pan, CVV: cvv, Expiry: card.Expiry{Month: 3, Year: 2031}})
	if err != nil {
		t.Fatalf("TokenizeCard: %v", err)
	}
	rec, err := v.Lookup(ctx, "m_alpha", m.Token)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	d, err := v.Decrypt(ctx, rec, true)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	s, err := d.Reveal()
	if err != nil {
		t.Fatalf("detokenize: %v", err)
	}
	if string(s.PAN.Reveal()) != testcards.Success || string(s.CVV.Reveal()) != testcards.CVV {
		t.Error("detokenize did not return the card that was tokenized")
	}
	if err := v.Delete(ctx, "m_alpha", m.Token); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}
