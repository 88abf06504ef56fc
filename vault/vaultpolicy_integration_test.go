package vault

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/internal/testenv"
)

// TestShippedVaultPolicyAllowsChdproxyAndNothingElse loads deploy/vault-policy.hcl
// into a real Vault, gives chdproxy a token holding only that policy, and runs
// what chdproxy does through it: tokenize (card, CVV, fingerprints), detokenize
// with the CVV, readiness. Then the token tries what it must never do (delete,
// reconfigure, export, rotate or back up a key, mint data keys, edit its own
// policy) and gets 403 for each.
func TestShippedVaultPolicyAllowsChdproxyAndNothingElse(t *testing.T) {
	vs := testenv.Vault(t)
	newVaultTransit(t, vs) // the operator creates the keys with the root token
	token := policyToken(t, vs, string(deploy.VaultPolicyHCL))

	tr, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Token: token, Timeout: 5 * time.Second})
	noErr(t, err, "NewVaultTransit")
	rdb := NewRedisClient(RedisOptions{Addrs: []string{testenv.Redis(t).Addr}})
	defer rdb.Close()
	v, err := New(Config{Transit: tr, Store: NewStore(rdb, StoreOptions{})})
	noErr(t, err, "New")

	noErr(t, v.Ping(bg), "Ping (readiness)")
	m, err := v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
	noErr(t, err, "TokenizeCard")
	if !strings.HasPrefix(m.Fingerprint, "fp_") || !strings.HasPrefix(m.FingerprintExp, "fp_") {
		t.Errorf("got fingerprints %q %q, want both", m.Fingerprint, m.FingerprintExp)
	}
	s, err := detokenize(v, "m_alpha", m.Token, true)
	noErr(t, err, "Detokenize with CVV")
	if string(s.PAN.Reveal()) != visaPAN || string(s.CVV.Reveal()) != visaCVV || s.Holder.Reveal() != holderName {
		t.Error("detokenize did not return the card that was tokenized")
	}

	for _, c := range []struct{ method, path, body string }{
		{http.MethodDelete, "transit/keys/" + defaultCardKeyName, ""},
		{http.MethodPost, "transit/keys/" + defaultCardKeyName + "/config", `{"deletion_allowed":true}`},
		{http.MethodPost, "transit/keys/" + defaultCVVKeyName + "/config", `{"exportable":true}`},
		{http.MethodGet, "transit/export/encryption-key/" + defaultCardKeyName, ""},
		{http.MethodGet, "transit/export/hmac-key/" + defaultHMACKeyName, ""},
		{http.MethodPost, "transit/keys/" + defaultCardKeyName + "/rotate", "{}"},
		{http.MethodGet, "transit/keys/" + defaultCardKeyName, ""},
		{http.MethodPost, "transit/keys/chdproxy-new", `{"type":"aes256-gcm96"}`},
		{http.MethodGet, "transit/backup/" + defaultCardKeyName, ""},
		{http.MethodPost, "transit/datakey/plaintext/" + defaultCardKeyName, `{"context":"bV9hbHBoYQ=="}`},
		{http.MethodPost, "transit/decrypt/" + defaultHMACKeyName, `{"ciphertext":"vault:v1:AAAA"}`},
		{http.MethodPost, "transit/hmac/" + defaultHMACKeyName + "/sha2-512", `{"input":"aW4="}`},
		{http.MethodPost, "transit/hmac/" + defaultCardKeyName + "/sha2-256", `{"input":"aW4="}`},
		{http.MethodPut, "sys/policies/acl/chdproxy", `{"policy":"path \"*\" { capabilities = [\"sudo\"] }"}`},
		{http.MethodPost, "auth/token/create", `{}`},
	} {
		if got := vaultStatus(t, vs.Addr, token, c.method, c.path, c.body); got != http.StatusForbidden {
			t.Errorf("%s %s with chdproxy's token: got %d, want 403", c.method, c.path, got)
		}
	}
	noErr(t, v.Ping(bg), "Ping after the refused calls (nothing was changed)")
	if _, err := tr.LatestVersion(bg, KeyCard); err == nil {
		t.Error("chdproxy's serving token read the key's versions: it must not run rewrap")
	}
}

// TestShippedRewrapPolicyRewrapsAndNothingElse runs rewrap with a token holding
// only deploy/vault-policy-rewrap.hcl after a rotation, and checks that token
// cannot rotate, reconfigure, export or delete a key.
func TestShippedRewrapPolicyRewrapsAndNothingElse(t *testing.T) {
	vs := testenv.Vault(t)
	newVaultTransit(t, vs)
	token := policyToken(t, vs, string(deploy.VaultPolicyRewrapHCL))
	tr, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Token: token, Timeout: 5 * time.Second})
	noErr(t, err, "NewVaultTransit")
	rdb := NewRedisClient(RedisOptions{Addrs: []string{testenv.Redis(t).Addr}})
	defer rdb.Close()
	root := newVaultTransit(t, vs)
	serving, err := New(Config{Transit: root, Store: NewStore(rdb, StoreOptions{})})
	noErr(t, err, "New")
	m, err := serving.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
	noErr(t, err, "TokenizeCard")
	rotate(t, vs, defaultCardKeyName, defaultCVVKeyName)
	v, err := New(Config{Transit: tr, Store: NewStore(rdb, StoreOptions{})})
	noErr(t, err, "New")
	c, err := v.Rewrap(bg, tr, RewrapOptions{})
	noErr(t, err, "Rewrap with the rewrap policy")
	if c != (RewrapCount{Scanned: 1, Rewrapped: 1}) {
		t.Errorf("got %+v, want one record rewrapped", c)
	}
	if _, err := detokenize(serving, "m_alpha", m.Token, true); err != nil {
		t.Errorf("detokenize after rewrap: %v", err)
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "transit/keys/" + defaultCardKeyName + "/rotate", "{}"},
		{http.MethodPost, "transit/keys/" + defaultCardKeyName + "/config", `{"min_decryption_version":2}`},
		{http.MethodGet, "transit/export/encryption-key/" + defaultCardKeyName, ""},
		{http.MethodDelete, "transit/keys/" + defaultCVVKeyName, ""},
		{http.MethodPost, "transit/hmac/" + defaultHMACKeyName + "/sha2-256", `{"input":"aW4="}`},
		{http.MethodGet, "transit/keys/" + defaultHMACKeyName, ""},
	} {
		if got := vaultStatus(t, vs.Addr, token, c.method, c.path, c.body); got != http.StatusForbidden {
			t.Errorf("%s %s with the rewrap token: got %d, want 403", c.method, c.path, got)
		}
	}
}

// policyToken writes hcl as policy "chdproxy" with the root token and returns a
// token holding that policy only (not even Vault's default policy).
func policyToken(t *testing.T, vs *testenv.VaultServer, hcl string) string {
	t.Helper()
	if err := vs.Do(http.MethodPut, "/v1/sys/policies/acl/chdproxy", map[string]any{"policy": hcl}, nil); err != nil {
		t.Fatalf("write the policy: %v", err)
	}
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	in := map[string]any{"policies": []string{"chdproxy"}, "no_default_policy": true, "ttl": "10m"}
	if err := vs.Do(http.MethodPost, "/v1/auth/token/create", in, &out); err != nil || out.Auth.ClientToken == "" {
		t.Fatalf("create a token: %v", err)
	}
	return out.Auth.ClientToken
}

// vaultStatus sends one request to Vault with token and returns the status.
func vaultStatus(t *testing.T, addr, token, method, path, body string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, addr+"/v1/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
