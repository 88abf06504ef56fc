package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/vault"
)

// TestRewrapCommandRewrapsAfterRotationAndThenFindsAllCurrent runs `chdproxy
// rewrap` as docs/operations.md does: serve's config, an operator token of
// deploy/vault-policy-rewrap.hcl, after rotating both keys. Off a terminal it
// prints the final count only; a second run finds every record current.
func TestRewrapCommandRewrapsAfterRotationAndThenFindsAllCurrent(t *testing.T) {
	rs, vs := testenv.Redis(t), testenv.Vault(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: vs.Addr, Token: vs.Token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.EnsureKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{rs.Addr}})
	defer rdb.Close()
	v, err := vault.New(vault.Config{Transit: tr, Store: vault.NewStore(rdb, vault.StoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	pan, _ := card.ParsePAN(testcards.Success)
	cvv, _ := card.ParseCVV(testcards.CVV, pan.Brand())
	for range 20 {
		if _, err := v.TokenizeCard(context.Background(), "m1", vault.CardInput{PAN: pan, CVV: cvv, Expiry: card.Expiry{Month: 3, Year: 2031}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"chdproxy-card", "chdproxy-cvv"} {
		if err := vs.Do(http.MethodPost, "/v1/transit/keys/"+k+"/rotate", map[string]any{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := vs.Do(http.MethodPut, "/v1/sys/policies/acl/chdproxy-rewrap", map[string]any{"policy": string(deploy.VaultPolicyRewrapHCL)}, nil); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := vs.Do(http.MethodPost, "/v1/auth/token/create", map[string]any{"policies": []string{"chdproxy-rewrap"}, "no_default_policy": true, "ttl": "1h"}, &tok); err != nil {
		t.Fatal(err)
	}
	cfg := write("chdproxy.yaml", fmt.Sprintf(`
policy: ../../deploy/policy.yaml
audit: %s
listen:
  collect: {addr: "127.0.0.1:0"}
  forward: {addr: "127.0.0.1:0"}
  admin:   {addr: "127.0.0.1:0"}
vault: {address: "%s", token_file: %s, timeout: 5s}
redis: {addrs: ["%s"]}
`, filepath.Join(dir, "audit.jsonl"), vs.Addr, write("serving-token", "unused-by-rewrap"), rs.Addr))
	opToken := write("operator-token", tok.Auth.ClientToken)

	for _, want := range []string{
		"rewrap: 20 scanned, 20 rewrapped, 0 already current, 0 skipped (changed meanwhile), 0 failed\n",
		"rewrap: 20 scanned, 0 rewrapped, 20 already current, 0 skipped (changed meanwhile), 0 failed\n",
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"rewrap", "--config", cfg, "--token-file", opToken}, &stdout, &stderr); code != 0 || stdout.String() != want {
			t.Errorf("rewrap: exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout.String(), stderr.String(), want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"rewrap", "--config", cfg}, &stdout, &stderr); code != 2 {
		t.Errorf("rewrap without --token-file: exit %d, want 2 (usage)", code)
	}
}
