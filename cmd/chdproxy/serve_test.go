package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
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

// TestServeOnRealVaultAndRedis runs `chdproxy serve` as production would: a config file,
// a real Vault dev server (keys created by create_keys), a real redis-server, the
// default policy pointing at the sandbox over TLS with a CA bundle, and keys as
// digests. A card is tokenized, paid and checked; stopping the context stops serve.
func TestServeOnRealVaultAndRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	rs, vs := testenv.Redis(t), testenv.Vault(t)
	ca, err := testenv.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	sandbox := smartpay.NewSandbox(smartpay.Options{})
	defer sandbox.Close()
	up := httptest.NewUnstartedServer(sandbox.Handler())
	up.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	up.StartTLS()
	defer up.Close()

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pol, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	polText := strings.NewReplacer("https://chd-api.smartcore.pro", up.URL, "https://api-gateway.smartcore.pro", up.URL).Replace(string(pol))
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
		write("ca.pem", string(ca.PEM())), proxy.KeyDigest(pk), proxy.KeyDigest(sk)))

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
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}

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
