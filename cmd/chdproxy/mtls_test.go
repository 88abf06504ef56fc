package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/smartpay"
)

// mtlsPKI is a CA made for the test, a server certificate for the forward listener
// and client certificates: two of merchant m1's backends and one of m2's.
type mtlsPKI struct {
	ca                 *testenv.CA
	certFile, keyFile  string // the forward listener's
	caFile             string // client_ca
	a1, a2, b          tls.Certificate
	a1Dig, a2Dig, bDig string
}

func newMTLSPKI(t *testing.T, dir string) *mtlsPKI {
	t.Helper()
	ca, err := testenv.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &mtlsPKI{ca: ca, caFile: filepath.Join(dir, "client-ca.pem")}
	leaf, err := ca.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	p.certFile, p.keyFile = writeKeyPair(t, dir, "forward", leaf)
	for _, c := range []struct {
		name string
		cert *tls.Certificate
		dig  *string
	}{{"m1-backend-1", &p.a1, &p.a1Dig}, {"m1-backend-2", &p.a2, &p.a2Dig}, {"m2-backend", &p.b, &p.bDig}} {
		if *c.cert, *c.dig, err = ca.Client(c.name); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(p.caFile, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeKeyPair writes cert's chain and key as PEM files for tls_cert and tls_key.
func writeKeyPair(t *testing.T, dir, name string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	var chain bytes.Buffer
	for _, der := range cert.Certificate {
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, chain.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// With listen.forward.client_auth: require, a backend needs a certificate of the CA
// to connect at all, and a secret key works only with a certificate its merchant
// lists: m2's certificate with m1's sk_ is a 403 client_certificate_mismatch, audited,
// before the upstream is called or the CVV spent; m1's own certificate pays (the card
// injected). A SIGHUP that adds a certificate to m1's list lets that one in.
func TestForwardListenerChecksClientCertificatesPerMerchant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	rs, vs := testenv.Redis(t), testenv.Vault(t)
	sandbox := smartpay.NewSandbox(smartpay.Options{})
	defer sandbox.Close()
	upCA, err := testenv.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	upLeaf, err := upCA.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(sandbox.Handler())
	up.TLS = &tls.Config{Certificates: []tls.Certificate{upLeaf}, MinVersion: tls.VersionTLS12}
	up.StartTLS()
	defer up.Close()

	polText := shippedPolicyFor(t, up.URL)
	c := newTestConfig(t, rs.Addr, vs.Addr, vs.Token, "")
	pki := newMTLSPKI(t, c.dir)
	c.base = strings.Replace(c.base, "policy: ../../deploy/policy.yaml", "policy: "+c.file("policy.yaml", polText), 1)
	c.base = strings.Replace(c.base, fmt.Sprintf(`forward: {addr: "%s"}`, c.forward), fmt.Sprintf(
		`forward: {addr: "%s", tls_cert: %s, tls_key: %s, client_ca: %s, client_auth: require}`,
		c.forward, pki.certFile, pki.keyFile, pki.caFile), 1)
	upstream := fmt.Sprintf("upstream: {ca_file: %s}\n", c.file("upstream-ca.pem", string(upCA.PEM())))
	pk, skA, skB := "pk_"+strings.Repeat("a", 32), "sk_"+strings.Repeat("b", 32), "sk_"+strings.Repeat("c", 32)
	merchants := func(m1Certs ...string) string {
		return fmt.Sprintf("  - id: m1\n    client_certs: [%s]\n    keys: [{role: publishable, digest: %q}, {role: secret, digest: %q}]\n"+
			"  - id: m2\n    client_certs: [%q]\n    keys: [{role: secret, digest: %q}]\n",
			`"`+strings.Join(m1Certs, `", "`)+`"`, proxy.KeyDigest(pk), proxy.KeyDigest(skA), pki.bDig, proxy.KeyDigest(skB))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", c.write(upstream, merchants(pki.a1Dig))}) }()
	waitReady(t, "http://"+c.admin+"/readyz", done)

	tok := tokenizeForTest(t, "http://"+c.collect, pk)
	// forward pays with tok as a backend with cert would, and returns the status and
	// error code, or the transport error.
	forward := func(cert *tls.Certificate, sk, tok, orderID string) (int, string, error) {
		t.Helper()
		tc := &tls.Config{RootCAs: pki.ca.Pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 20 * time.Second}
		defer client.CloseIdleConnections()
		body, _ := json.Marshal(paymentBody(tok, orderID))
		req, _ := http.NewRequest(http.MethodPost, "https://"+c.forward+"/initPaymentHost2Host", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", testcards.BasicAuth)
		req.Header.Set("Proxy-Authorization", "Bearer "+sk)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var m struct {
			Status float64 `json:"status"`
			Error  struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode == http.StatusOK && m.Status != 2 {
			t.Errorf("order %s: got payment status %v, want 2", orderID, m.Status)
		}
		return resp.StatusCode, m.Error.Code, nil
	}

	if _, _, err := forward(nil, skA, tok, "no-cert"); err == nil {
		t.Error("without a client certificate: the request went through, want the handshake refused")
	}
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
	}{{"m2's certificate with m1's key", &pki.b}, {"an unlisted certificate of m1's", &pki.a2}} {
		if status, code, err := forward(tt.cert, skA, tok, "refused"); err != nil || status != http.StatusForbidden || code != "client_certificate_mismatch" {
			t.Errorf("%s: got %d %q (%v), want 403 client_certificate_mismatch", tt.name, status, code, err)
		}
	}
	if got := sandbox.Received("/initPaymentHost2Host"); len(got) != 0 {
		t.Fatalf("the refused requests reached the upstream %d times, want none", len(got))
	}
	if status, code, err := forward(&pki.a1, skA, tok, "mtls-1"); err != nil || status != http.StatusOK {
		t.Fatalf("m1's certificate with m1's key: got %d %q (%v), want 200", status, code, err)
	}
	if got := sandbox.Received("/initPaymentHost2Host"); len(got) != 1 || !bytes.Contains(got[0].Body, []byte(testcards.Success)) {
		t.Errorf("the upstream got %d payments, want one with the card injected", len(got))
	}

	c.write(upstream, merchants(pki.a1Dig, pki.a2Dig))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitAudit(t, c, "reload", 1)
	if status, code, err := forward(&pki.a2, skA, tokenizeForTest(t, "http://"+c.collect, pk), "mtls-2"); err != nil || status != http.StatusOK {
		t.Errorf("after the reload, m1's second certificate: got %d %q (%v), want 200", status, code, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	recs, raw := c.audit()
	refused := 0
	for _, r := range recs {
		if r["code"] == "client_certificate_mismatch" && r["merchant"] == "m1" && r["outcome"] != "success" {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("got %d audit records of client_certificate_mismatch for m1, want 2", refused)
	}
	if bytes.Contains(raw, []byte(testcards.Success)) {
		t.Error("the audit trail holds the PAN")
	}
}

// waitAudit waits for the n-th audit record of event.
func waitAudit(t *testing.T, c *testConfig, event string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if recs, _ := c.audit(); len(events(recs, event)) >= n {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("no %s record %d within 10s", event, n)
		}
	}
}

// tokenizeForTest tokenizes the success test card with pk and returns the token.
func tokenizeForTest(t *testing.T, collectURL, pk string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth,
		"card_exp_year": testcards.ExpYear, "card_cvv": testcards.CVV, "card_holder": testcards.Holder})
	req, _ := http.NewRequest(http.MethodPost, collectURL+"/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+pk)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("tokenize: got %d (%v), want 201", resp.StatusCode, err)
	}
	return m.Token
}

// paymentBody is an initPaymentHost2Host body paying with tok (card and CVV).
func paymentBody(tok, orderID string) map[string]any {
	return map[string]any{
		"payment_method": "card", "account": "EUR-sandbox", "amount": 1000, "currency": "EUR", "order_id": orderID,
		"merchant_site": "https://merchant.site", "customer_first_name": "John", "customer_last_name": "Doe",
		"customer_address": "10 Downing Street", "customer_city": "London", "customer_zip_code": "121165",
		"customer_country": "GB", "customer_phone": "+442079460612", "customer_email": "john@example.com",
		"customer_ip_address": "127.0.0.1", "card_number": tok, "card_cvv": tok,
	}
}

// serve --check-config (and so serve and a reload) refuses client certificate
// settings that would lock a merchant out or only look like protection.
func TestCheckConfigClientCertificates(t *testing.T) {
	dir := t.TempDir()
	pki := newMTLSPKI(t, dir)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sk1, sk2 := proxy.KeyDigest("sk_"+strings.Repeat("b", 32)), proxy.KeyDigest("sk_"+strings.Repeat("c", 32))
	base := fmt.Sprintf(`policy: ../../deploy/policy.yaml
audit: stdout
listen:
  collect: {addr: "127.0.0.1:1"}
  forward: {addr: "127.0.0.1:2", tls_cert: %s, tls_key: %s, client_ca: %s, client_auth: require}
  admin: {addr: "127.0.0.1:3"}
vault: {address: "http://127.0.0.1:8200", token_file: %s}
redis: {addrs: ["127.0.0.1:6379"]}
idempotency: {secret_file: %s}
merchants:
  - id: m1
    client_certs: ["%s"]
    keys: [{role: secret, digest: "%s"}]
  - id: m2
    client_certs: ["%s"]
    keys: [{role: secret, digest: "%s"}]
`, pki.certFile, pki.keyFile, pki.caFile, write("token", "t"), write("idem", strings.Repeat("k", 40)),
		pki.a1Dig, sk1, pki.bDig, sk2)
	tests := []struct {
		name string
		repl []string // old, new, …: each must apply exactly once
		env  string   // CHDPROXY_KEYS
		want string   // a piece of the problems; "": ok
	}{
		{name: "every merchant with a secret key lists its certificates: ok"},
		{name: "a merchant with a secret key and no certificates is a problem",
			repl: []string{`client_certs: ["` + pki.bDig + `"]`, "client_certs: []"},
			want: "merchant m2: listen.forward.client_auth is require but it lists no client_certs"},
		{name: "a secret key given in CHDPROXY_KEYS counts too", env: "m3:secret:" + proxy.KeyDigest("sk_"+strings.Repeat("d", 32)),
			want: "merchant m3: listen.forward.client_auth is require"},
		{name: "without client_auth no merchant needs certificates",
			repl: []string{", client_ca: " + pki.caFile + ", client_auth: require", "", `client_certs: ["` + pki.bDig + `"]`, "client_certs: []"}},
		{name: "a digest that is not sha256 hex is a problem", repl: []string{pki.bDig, "sha256:abc"},
			want: "merchants[1].client_certs[0]: use sha256:<64 hex digits>"},
		{name: "require without client_ca is a problem", repl: []string{"client_ca: " + pki.caFile + ", ", ""},
			want: "listen.forward: client_auth: require needs client_ca"},
		{name: "client_ca without require is a problem", repl: []string{", client_auth: require", ""},
			want: "client_ca is set but client_auth is not require"},
		{name: "an unknown client_auth is a problem", repl: []string{"client_auth: require", "client_auth: optional"},
			want: `listen.forward.client_auth: "optional" is neither require nor off`},
		{name: "require without chdproxy's own TLS is a problem", repl: []string{"tls_cert: " + pki.certFile + ", tls_key: " + pki.keyFile + ", ", ""},
			want: "listen.forward: client_auth: require needs tls_cert and tls_key"},
		{name: "client certificates on the collect listener are a problem", repl: []string{`collect: {addr: "127.0.0.1:1"}`, `collect: {addr: "127.0.0.1:1", client_auth: require}`},
			want: "listen.collect: client_auth and client_ca are for listen.forward only"},
		{name: "a client_ca without certificates is a problem", repl: []string{"client_ca: " + pki.caFile, "client_ca: " + write("empty.pem", "none")},
			want: "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CHDPROXY_KEYS", tt.env)
			text := replaceOnce(t, base, tt.repl)
			file := filepath.Join(t.TempDir(), "chdproxy.yaml")
			if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := checkConfig(file, &stdout, &stderr)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v: %s, want ok", err, stderr.String())
			case tt.want != "" && (err == nil || !strings.Contains(stderr.String(), tt.want)):
				t.Fatalf("got %v: %s, want a problem with %q", err, stderr.String(), tt.want)
			}
		})
	}
}
