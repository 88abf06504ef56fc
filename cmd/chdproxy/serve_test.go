package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/smartpay"
)

// tlsUpstream serves h over TLS with a leaf of a CA made for the test; caPEM is what
// upstream.ca_file names. wrap, when set, wraps the listener before it starts.
func tlsUpstream(t *testing.T, h http.Handler, wrap func(net.Listener) net.Listener) (_ *httptest.Server, caPEM []byte) {
	t.Helper()
	ca, err := testenv.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, ca.PEM()
}

// TestServeOnRealVaultAndRedis runs `chdproxy serve` as production would: a config file,
// a real Vault dev server (keys created by create_keys), a real redis-server, the
// default policy pointing at the sandbox over TLS with a CA bundle, and keys as
// digests. A card is tokenized, paid and checked; stopping the context stops serve.
func TestServeOnRealVaultAndRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	rs, vs := testenv.Redis(t), testenv.Vault(t)
	sandbox := smartpay.NewSandbox(smartpay.Options{})
	defer sandbox.Close()
	up, caPEM := tlsUpstream(t, sandbox.Handler(), nil)

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	polText := shippedPolicyFor(t, up.URL)
	pk, sk := "pk_"+strings.Repeat("a", 32), "sk_"+strings.Repeat("b", 32)
	addr := func() string {
		p, err := testenv.FreePort(false)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("127.0.0.1:%d", p)
	}
	collect, forward, admin := addr(), addr(), addr()
	cfg := write("chdproxy.yaml", fmt.Sprintf(`
policy: %s
audit: %s
listen:
  collect: {addr: "%s"}
  forward: {addr: "%s"}
  admin:   {addr: "%s"}
vault: {address: "%s", token_file: %s, create_keys: true, timeout: 5s}
redis: {addrs: ["%s"]}
idempotency: {secret_file: %s}
upstream: {ca_file: %s}
merchants:
  - id: m1
    keys:
      - {role: publishable, digest: "%s"}
      - {role: secret, digest: "%s"}
`, write("policy.yaml", polText), filepath.Join(dir, "audit.jsonl"), collect, forward, admin,
		vs.Addr, write("vault-token", vs.Token), rs.Addr, write("idem", strings.Repeat("k", 40)),
		write("ca.pem", string(caPEM)), proxy.KeyDigest(pk), proxy.KeyDigest(sk)))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", cfg}) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v, want nil after the context ended", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop within 15s of its context ending")
		}
	}()

	call := func(method, url, auth string, hdr map[string]string, body any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, url, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	waitReady(t, "http://"+admin+"/readyz", done)

	status, tok := call(http.MethodPost, "http://"+collect+"/v1/tokens", "Bearer "+pk, nil, map[string]string{
		"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear,
		"card_cvv": testcards.CVV, "card_holder": testcards.Holder,
	})
	if status != http.StatusCreated {
		t.Fatalf("tokenize: got %d %v, want 201", status, tok)
	}
	id, _ := tok["token"].(string)
	payment := map[string]any{
		"payment_method": "card", "account": "EUR-sandbox", "amount": 1000, "currency": "EUR", "order_id": "serve-1",
		"merchant_site": "https://merchant.site", "customer_first_name": "John", "customer_last_name": "Doe",
		"customer_address": "10 Downing Street", "customer_city": "London", "customer_zip_code": "121165",
		"customer_country": "GB", "customer_phone": "+442079460612", "customer_email": "john@example.com",
		"customer_ip_address": "127.0.0.1", "card_number": id, "card_cvv": id,
	}
	fwd := map[string]string{"Proxy-Authorization": "Bearer " + sk}
	if status, body := call(http.MethodPost, "http://"+forward+"/initPaymentHost2Host", testcards.BasicAuth, fwd, payment); status != http.StatusOK || body["status"] != 2.0 {
		t.Fatalf("pay: got %d %v, want 200 with status 2", status, body)
	}
	if status, body := call(http.MethodPost, "http://"+forward+"/check", testcards.BasicAuth, fwd, map[string]string{"order_id": "serve-1"}); status != http.StatusOK || body["status"] != 2.0 {
		t.Fatalf("check: got %d %v, want 200 with status 2", status, body)
	}
	// Outcome records are queued: they reach the file within a few milliseconds.
	var audit []byte
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if audit, err = os.ReadFile(filepath.Join(dir, "audit.jsonl")); err != nil {
			t.Fatal(err)
		}
		if bytes.Count(audit, []byte(`"event":"passthrough"`)) > 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, event := range []string{`"event":"tokenize"`, `"event":"detokenize"`, `"event":"inject"`} {
		if !bytes.Contains(audit, []byte(event)) {
			t.Errorf("the audit file lacks %s", event)
		}
	}
	if bytes.Contains(audit, []byte(testcards.Success)) {
		t.Error("the audit file holds the PAN")
	}
}

// TestServeRefusesUnsafeConfigs: each file is the valid base with one change;
// serve must refuse what would put card data or credentials at risk, naming
// where, and list every problem of a file at once.
func TestServeRefusesUnsafeConfigs(t *testing.T) {
	pk, sk := proxy.KeyDigest("pk_"+strings.Repeat("a", 32)), proxy.KeyDigest("sk_"+strings.Repeat("b", 32))
	base := fmt.Sprintf(`policy: policy.yaml
audit: stdout
listen: {collect: {addr: "127.0.0.1:1"}, forward: {addr: "127.0.0.1:2"}, admin: {addr: "127.0.0.1:3"}}
vault: {address: "https://vault.internal:8200", token_file: token}
redis: {addrs: ["redis.internal:6379"], tls: true}
merchants:
  - id: m1
    origins: ["https://shop.example", "http://localhost:3000", "https://shop.example:8443"]
    keys: [{role: publishable, digest: "%s"}, {role: secret, digest: "%s"}]
  - id: m2.shop-b_2
    keys: []
`, pk, sk)
	tests := []struct {
		name string
		repl []string // old, new, …: each must apply exactly once
		want []string // pieces of the error, in any order; none: accepted
	}{
		{name: "the base config is accepted"},
		{name: "plain http to Vault on loopback is accepted", repl: []string{"https://vault.internal:8200", "http://127.0.0.1:8200"}},
		{name: "plain http to Vault on localhost is accepted", repl: []string{"https://vault.internal:8200", "http://localhost:8200"}},
		{name: "plain http to Vault off loopback is refused", repl: []string{"https://vault.internal:8200", "http://vault.internal:8200"},
			want: []string{"vault.address: plain http is allowed on loopback only"}},
		{name: "plain http to Vault on a private address is refused", repl: []string{"https://vault.internal:8200", "http://10.0.0.5:8200"},
			want: []string{"vault.address: plain http"}},
		{name: "Redis without TLS on loopback is accepted", repl: []string{`["redis.internal:6379"], tls: true`, `["127.0.0.1:6379"]`}},
		{name: "Redis without TLS off loopback is refused", repl: []string{`["redis.internal:6379"], tls: true`, `["127.0.0.1:6379", "redis.internal:6379"]`},
			want: []string{"redis.addrs[1]: tls: true is required off loopback"}},
		{name: "a merchant id with a separator is refused", repl: []string{"id: m1", `id: "m1:x"`}, want: []string{"merchants[0].id: use 1-64 characters"}},
		{name: "a merchant id with a space is refused", repl: []string{"id: m1", `id: "m 1"`}, want: []string{"merchants[0].id"}},
		{name: "an empty merchant id is refused", repl: []string{"id: m1", `id: ""`}, want: []string{"merchants[0].id"}},
		{name: "a merchant id longer than 64 is refused", repl: []string{"id: m1", "id: " + strings.Repeat("m", 65)}, want: []string{"merchants[0].id"}},
		{name: "a merchant listed twice is refused", repl: []string{"id: m2.shop-b_2", "id: m1"}, want: []string{"merchants[1].id: the same merchant id as merchants[0]"}},
		{name: "the origin * is refused", repl: []string{`"https://shop.example",`, `"*",`}, want: []string{`merchants[0].origins[0]: "*" would let any site`}},
		{name: "the origin null is refused", repl: []string{`"https://shop.example",`, `"null",`}, want: []string{`merchants[0].origins[0]: "null" is sent by sandboxed frames`}},
		{name: "an origin with a trailing slash is refused", repl: []string{`"https://shop.example",`, `"https://shop.example/",`}, want: []string{"merchants[0].origins[0]: not an origin"}},
		{name: "an origin with a path is refused", repl: []string{`"https://shop.example",`, `"https://shop.example/checkout",`}, want: []string{"origins[0]: not an origin"}},
		{name: "an origin with credentials is refused", repl: []string{`"https://shop.example",`, `"https://u@shop.example",`}, want: []string{"origins[0]: not an origin"}},
		{name: "an origin in capitals is refused", repl: []string{`"https://shop.example",`, `"https://Shop.example",`}, want: []string{"origins[0]: not an origin"}},
		{name: "a wildcard origin is refused", repl: []string{`"https://shop.example",`, `"https://*.shop.example",`}, want: []string{"origins[0]: not an origin"}},
		{name: "an origin without a scheme is refused", repl: []string{`"https://shop.example",`, `"shop.example",`}, want: []string{"origins[0]: not an origin"}},
		{name: "an origin of another scheme is refused", repl: []string{`"https://shop.example",`, `"ftp://shop.example",`}, want: []string{"origins[0]: not an origin"}},
		{name: "a plain http origin off localhost is refused", repl: []string{`"https://shop.example",`, `"http://shop.example",`}, want: []string{"origins[0]: plain http is allowed for localhost only"}},
		{name: "one digest for two roles is refused", repl: []string{`{role: secret, digest: "` + sk, `{role: secret, digest: "` + pk},
			want: []string{"merchants[0].keys[1]: the same key digest is listed twice", "(also merchants[0].keys[0])"}},
		{name: "one digest for two merchants is refused", repl: []string{"keys: []", `keys: [{role: secret, digest: "sha256:` + strings.ToUpper(sk[7:]) + `"}]`}, // hex in capitals: the same digest
			want: []string{"merchants[1].keys[0]: the same key digest is listed twice", "(also merchants[0].keys[1])"}},
		{name: "every problem is listed at once", repl: []string{"https://vault.internal:8200", "http://vault.internal:8200", `, tls: true`, "", "id: m1", "id: m/1", `"http://localhost:3000"`, `"*"`},
			want: []string{"vault.address", "redis.addrs[0]", "merchants[0].id", "merchants[0].origins[1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := replaceOnce(t, base, tt.repl)
			file := filepath.Join(t.TempDir(), "chdproxy.yaml")
			if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			err := wantConfigProblems(t, file, tt.want)
			if err != nil && (strings.Contains(err.Error(), sk[7:]) || strings.Contains(err.Error(), pk[7:])) {
				t.Errorf("the error shows a key digest: %q", err)
			}
		})
	}
}

// CHDPROXY_KEYS cannot give a key of the file a second role or merchant either.
func TestEnvKeysCannotReuseADigestOfTheFile(t *testing.T) {
	pk := proxy.KeyDigest("pk_" + strings.Repeat("a", 32))
	for _, env := range []string{"m1:secret:" + pk, "m2:publishable:" + pk, "m1:admin:sha256:" + strings.ToUpper(pk[7:])} {
		keys := &proxy.Keys{}
		if err := keys.Add("m1", proxy.RolePublishable, pk); err != nil {
			t.Fatal(err)
		}
		if err := addEnvKeys(keys, env); !errors.Is(err, proxy.ErrDuplicateKey) {
			t.Errorf("CHDPROXY_KEYS=%s: got %v, want ErrDuplicateKey", env[:strings.Index(env, ":sha256")], err)
		}
	}
}

// shippedPolicyFor is deploy/policy.yaml with both SmartPayments hosts pointed at
// upstream; a policy file that names the sandbox must acknowledge it as the card-data host.
func shippedPolicyFor(t *testing.T, upstream string) string {
	t.Helper()
	pol, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("https://chd-api.smartcore.pro", upstream, "https://api-gateway.smartcore.pro", upstream,
		"    upstream: chd-api\n", "    upstream: chd-api\n    acknowledge: [nonstandard_host]\n").Replace(string(pol))
}

// replaceOnce applies the (old, new) pairs of repl to text, each old matching exactly once.
func replaceOnce(t *testing.T, text string, repl []string) string {
	t.Helper()
	for i := 0; i+1 < len(repl); i += 2 {
		if n := strings.Count(text, repl[i]); n != 1 {
			t.Fatalf("replacement %q matches %d times, want 1", repl[i], n)
		}
		text = strings.Replace(text, repl[i], repl[i+1], 1)
	}
	return text
}
