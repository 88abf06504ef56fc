package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/smartpay"
	"github.com/chdproxy/chdproxy/vault"
)

// Test card data. The PANs are the SmartPayments sandbox's and the card
// networks' published test numbers; they appear only in _test.go files.
const (
	panSuccess   = "4012000000003010" // sandbox: frictionless success (payments and withdrawals)
	panDecline   = "5555555555554444" // Mastercard test card: the sandbox declines it
	panAmex      = "378282246310005"  // Amex test card (4-digit CVV)
	panBadLuhn   = "4012000000003011" // check digit wrong
	cvvVisa      = "737"
	cvvMC        = "629"
	cvvAmex      = "4821"
	holder       = "John Doe"
	expMonth     = "12"
	expYear      = "2030"
	expYearShort = "30" // what the proxy injects (as in the SmartPayments examples)

	// Wallet payloads from the SmartPayments documentation (base64 of the
	// decrypted wallet token data).
	dpanApple  = "eyJhcHBsaWNhdGlvblByaW1hcnlBY2NvdW50TnVtYmVyIjoiKioqIiwiYXBwbGljYXRpb25FeHBpcmF0aW9uRGF0ZSI6IioqKiIsImN1cnJlbmN5Q29kZSI6Ijk3OCIsInRyYW5zYWN0aW9uQW1vdW50IjoxMDAsImRldmljZU1hbnVmYWN0dXJlcklkZW50aWZpZXIiOiIqKioiLCJwYXltZW50RGF0YVR5cGUiOiIzRFNlY3VyZSIsInBheW1lbnREYXRhIjp7Im9ubGluZVBheW1lbnRDcnlwdG9ncmFtIjoiKioqIiwiZWNpSW5kaWNhdG9yIjoiNyJ9fQ=="
	dpanGoogle = "eyJzaWduYXR1cmUiOiIqKioiLCJpbnRlcm1lZGlhdGVTaWduaW5nS2V5Ijp7InNpZ25lZEtleSI6Insia2V5VmFsdWUiOiIqKioiLCJrZXlFeHBpcmF0aW9uIjoiMTcxMTQzNDQ1MjgzNiJ9Iiwic2lnbmF0dXJlcyI6WyIqKioiXX0sInByb3RvY29sVmVyc2lvbiI6IkVDdjIiLCJzaWduZWRNZXNzYWdlIjoieyJlbmNyeXB0ZWRNZXNzYWdlIjoiKioqIiwiZXBoZW1lcmFsUHVibGljS2V5IjoiKioqIiwidGFnIjoiKioqIn0ifQ"

	// The SmartPayments documentation's example merchant, as the backend sends it.
	basicAuth = "Basic dGVzdDpxd2VydHk=" // test:qwerty

	merchantA = "merchant_a"
	merchantB = "merchant_b"
	originA   = "https://shop-a.example"
	originB   = "https://shop-b.example"
)

var (
	testPANs  = []string{panSuccess, panDecline, panAmex, panBadLuhn, "4111111111111111", "4003830171874018"}
	testCVVs  = []string{cvvVisa, cvvMC, cvvAmex}
	testDPANs = []string{dpanApple, dpanGoogle}
)

// cardDataIn returns a description of the first test card datum found in b, or
// "". PANs are looked for as digits with any spaces, dashes or '+' removed (so
// "4012 0000 0000 3010" and "4012-0000-0000-3010" count); CVVs as a JSON string
// or a JSON/form/key=value value; DPANs whole or by a slice of their middle.
// extra strings (invalid inputs that must not be echoed) are looked for as they are.
func cardDataIn(b []byte, extra ...string) string {
	s := string(b)
	flat := strings.NewReplacer(" ", "", "-", "", "+", "", "%20", "", `\u0020`, "").Replace(s)
	for _, p := range testPANs {
		if strings.Contains(flat, p) {
			return "the test PAN ending " + p[len(p)-4:]
		}
	}
	for _, c := range testCVVs {
		if cvvPattern(c).MatchString(s) {
			return "a test CVV"
		}
	}
	for _, d := range testDPANs {
		if strings.Contains(s, d) || strings.Contains(s, d[20:60]) {
			return "a test DPAN"
		}
	}
	for _, e := range extra {
		if e != "" && strings.Contains(s, e) {
			return fmt.Sprintf("the input %q", e)
		}
	}
	return ""
}

var cvvPatterns sync.Map

func cvvPattern(cvv string) *regexp.Regexp {
	if re, ok := cvvPatterns.Load(cvv); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(`"` + cvv + `"|[:=]\s*` + cvv + `([^0-9.]|$)`)
	cvvPatterns.Store(cvv, re)
	return re
}

var (
	caOnce sync.Once
	caVal  *testenv.CA
	caErr  error
)

// theCA returns the run's test CA, created on first use.
func theCA(t testing.TB) *testenv.CA {
	t.Helper()
	caOnce.Do(func() { caVal, caErr = testenv.NewCA() })
	if caErr != nil {
		t.Fatalf("test CA: %v", caErr)
	}
	return caVal
}

// serverCert issues a certificate of the test CA for loopback and names.
func serverCert(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	c, err := theCA(t).Leaf(names...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serverTLS is a TLS configuration with a certificate of the test CA for
// loopback and names.
func serverTLS(t testing.TB, names ...string) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{serverCert(t, names...)}, MinVersion: tls.VersionTLS12}
}

// serveTLS serves h over TLS with cfg until t ends.
func serveTLS(t testing.TB, h http.Handler, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS() // without Certificates in cfg: httptest's own, which the proxy does not trust
	t.Cleanup(srv.Close)
	return srv
}

// startTLSUpstream serves h over TLS with a certificate from the test CA.
func startTLSUpstream(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	return serveTLS(t, h, serverTLS(t))
}

// testPolicy is the default policy with both upstreams at base.
func testPolicy(t testing.TB, base string) *policy.Policy {
	t.Helper()
	def, err := policy.LoadDefault()
	if err != nil {
		t.Fatalf("default policy: %v", err)
	}
	pol, err := def.WithUpstreams(map[string]string{"chd-api": base, "api-gateway": base})
	if err != nil {
		t.Fatalf("policy upstreams: %v", err)
	}
	return pol
}

// redactingLogger is pol's redactor (last-4 PAN mask) and a logger through it
// writing to w.
func redactingLogger(pol *policy.Policy, w io.Writer) (*redact.Redactor, *logrus.Logger) {
	red := redact.New(redact.Rules{PANMask: redact.MaskLast4, Fields: pol.Redaction.Fields, Headers: pol.Redaction.Headers})
	return red, redact.NewLogger(w, red, pol.Hash)
}

// startMiniredis runs a miniredis for t and returns a client of it, closed
// when t ends.
func startMiniredis(t *testing.T) (*miniredis.Miniredis, redis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{mr.Addr()}})
	t.Cleanup(func() { rdb.Close() })
	return mr, rdb
}

// orDevCipher returns transit, or the dev cipher when it is nil.
func orDevCipher(t testing.TB, transit vault.Transit) vault.Transit {
	t.Helper()
	if transit != nil {
		return transit
	}
	c, err := vault.NewLocalCipher()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestVault is a vault on transit and rdb with pol's token lifetimes.
func newTestVault(t testing.TB, transit vault.Transit, rdb redis.UniversalClient, pol *policy.Policy) *vault.Vault {
	t.Helper()
	v, err := vault.New(vault.Config{
		Transit: transit, Store: vault.NewStore(rdb, vault.StoreOptions{}),
		TokenTTL: pol.Tokens.Card, CVVTTL: pol.Tokens.CVV, WalletTTL: pol.Tokens.Wallet,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// generateKeys makes a publishable, a secret and an admin key for each
// merchant: the key ring, and keys[merchant][role] the secret of each.
func generateKeys(t testing.TB, merchants ...string) (*proxy.Keys, map[string]map[proxy.Role]string) {
	t.Helper()
	ring, keys := &proxy.Keys{}, map[string]map[proxy.Role]string{}
	for _, m := range merchants {
		keys[m] = map[proxy.Role]string{}
		for _, role := range []proxy.Role{proxy.RolePublishable, proxy.RoleSecret, proxy.RoleAdmin} {
			k, err := ring.Generate(m, role)
			if err != nil {
				t.Fatal(err)
			}
			keys[m][role] = k
		}
	}
	return ring, keys
}

// upstreamClient is the proxy's upstream client for pol, trusting the test
// CA, with o's other options; its idle connections close when t ends.
func upstreamClient(t testing.TB, pol *policy.Policy, o proxy.UpstreamOptions) *http.Client {
	t.Helper()
	o.RootCAs = theCA(t).Pool
	client, err := proxy.NewUpstreamClient(pol, o)
	if err != nil {
		t.Fatalf("upstream client: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

// realRedis starts a real redis-server for t and returns a client of it,
// closed when t ends.
func realRedis(t *testing.T) (*testenv.RedisServer, redis.UniversalClient) {
	t.Helper()
	rs := testenv.Redis(t)
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{rs.Addr}})
	t.Cleanup(func() { rdb.Close() })
	return rs, rdb
}

// realDeps starts a real redis-server and a real Vault dev server for t, and
// returns a Vault transit client (timeout per call) with the keys made, a
// Redis client, and the Vault server.
func realDeps(t *testing.T, timeout time.Duration) (vault.Transit, redis.UniversalClient, *testenv.VaultServer) {
	t.Helper()
	_, rdb := realRedis(t)
	vs := testenv.Vault(t)
	transit, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: vs.Addr, Token: vs.Token, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := transit.EnsureKeys(ctx); err != nil {
		t.Fatalf("EnsureKeys: %v", err)
	}
	return transit, rdb, vs
}

// harnessOptions change what newHarness builds; the zero value is the
// SmartPayments sandbox over TLS, miniredis and the dev cipher.
type harnessOptions struct {
	upstream        http.Handler          // served over TLS instead of the sandbox
	upstreamURL     string                // both upstreams point here; no upstream is started
	responseTimeout time.Duration         // the upstream client's; default its own
	transit         vault.Transit         // default vault.NewLocalCipher()
	redis           redis.UniversalClient // default a client of a new miniredis
	limits          proxy.Limits          // default proxy.DefaultLimits
}

// harness is chdproxy's three listeners on httptest servers, the upstream
// they forward to, and everything the tests look at afterwards.
type harness struct {
	pol      *policy.Policy
	red      *redact.Redactor
	logs     *testenv.Buffer      // the redacting logger's output
	audit    *testenv.Buffer      // the audit trail
	mr       *miniredis.Miniredis // nil with opts.redis
	rdb      redis.UniversalClient
	vault    *vault.Vault
	sandbox  *smartpay.Sandbox // nil with opts.upstream or opts.upstreamURL
	upstream *httptest.Server  // nil with opts.upstreamURL

	collect, forward, admin *httptest.Server

	// keys[merchant][role] is the secret of each API key.
	keys map[string]map[proxy.Role]string

	mu          sync.Mutex
	responses   [][]byte // every response body and header dump the tests received
	redisClosed bool
	orderN      atomic.Int64
}

// newHarness builds the listeners as `chdproxy dev` and `serve` wire them, and
// registers a check, run when the test ends, that no test card data is in the
// logs, in any response the test received, or in Redis.
func newHarness(t *testing.T, opts harnessOptions) *harness {
	t.Helper()
	h := &harness{logs: &testenv.Buffer{}, audit: &testenv.Buffer{}}

	base := opts.upstreamURL
	switch {
	case base != "":
	case opts.upstream != nil:
		h.upstream = startTLSUpstream(t, opts.upstream)
		base = h.upstream.URL
	default:
		h.sandbox = smartpay.NewSandbox(smartpay.SandboxOptions{})
		t.Cleanup(func() { h.sandbox.Close() })
		h.upstream = startTLSUpstream(t, h.sandbox.Handler())
		base = h.upstream.URL
	}
	pol := testPolicy(t, base)
	lint := policy.LintOptions{}
	if strings.HasPrefix(base, "http:") {
		lint.Dev = true
	}
	if err := pol.Validate(lint); err != nil {
		t.Fatalf("policy with test upstreams: %v", err)
	}
	h.pol = pol
	var logger *logrus.Logger
	h.red, logger = redactingLogger(pol, h.logs)

	h.rdb = opts.redis
	if h.rdb == nil {
		h.mr, h.rdb = startMiniredis(t)
	}
	h.vault = newTestVault(t, orDevCipher(t, opts.transit), h.rdb, pol)

	var keys *proxy.Keys
	keys, h.keys = generateKeys(t, merchantA, merchantB)
	client := upstreamClient(t, pol, proxy.UpstreamOptions{ResponseTimeout: opts.responseTimeout})

	deps := proxy.Deps{
		Vault: h.vault, Keys: keys, Log: logger,
		Audit:       proxy.NewJSONLAudit(h.audit, pol.Hash),
		Limiter:     proxy.NewLimiter(opts.limits),
		Idempotency: proxy.NewIdempotency(h.rdb, []byte("idempotency test secret"), 0),
		Merchants: map[string]proxy.Merchant{
			merchantA: {ID: merchantA, Origins: []string{originA}},
			merchantB: {ID: merchantB, Origins: []string{originB}},
		},
	}
	h.collect = startProxyServer(t, proxy.CollectHandler(deps), logger)
	h.forward = startProxyServer(t, proxy.ForwardHandler(proxy.ForwardDeps{Deps: deps, Policy: pol, Redactor: h.red, Client: client}), logger)
	h.admin = startProxyServer(t, proxy.AdminHandler(deps, policy.Explain(pol)), logger)

	t.Cleanup(func() { h.assertNoCardData(t) })
	return h
}

// startProxyServer serves h on loopback with the http.Server chdproxy uses.
func startProxyServer(t *testing.T, h http.Handler, logger *logrus.Logger) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config = proxy.NewServer("", h, logger, proxy.DefaultTimeouts)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// response is one answer a test received.
type response struct {
	status int
	header http.Header
	body   []byte
}

// code returns the stable error code of an error body, or "".
func (r *response) code() string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// object decodes a JSON object body.
func (r *response) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object (status %d): %v", r.status, err)
	}
	return m
}

// wantError checks an error answer: status, code, and the documented shape.
func wantError(t testing.TB, r *response, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Errorf("got %d %q, want %d %q", r.status, r.code(), status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type: got %q, want %q", ct, "application/json")
	}
}

// wantStatus checks a status code and shows the error code, if any, on failure.
func wantStatus(t testing.TB, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status: got %d (code %q), want %d", r.status, r.code(), status)
	}
}

// testClient plays the browser and the backend; it follows no redirect, so a test
// sees exactly what the proxy answered.
var testClient = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// send makes one request to one of the harness's servers and records the
// answer for the card-data check. body is a string, []byte, url.Values
// (form-encoded), nil, or anything else (JSON-encoded). A header value of ""
// removes that header.
func (h *harness) send(t testing.TB, srv *httptest.Server, method, path string, body any, hdr map[string]string) *response {
	t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case url.Values:
		rd = strings.NewReader(b.Encode())
		ct = "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	h.mu.Lock()
	h.responses = append(h.responses, dumpResponse(resp.Header, b))
	h.mu.Unlock()
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// dumpResponse is an answer as the card-data check reads it: header, then body.
func dumpResponse(header http.Header, body []byte) []byte {
	var dump bytes.Buffer
	header.Write(&dump)
	dump.Write(body)
	return dump.Bytes()
}

// fwd sends a request to the forward listener as merchant A's backend would:
// its sk_ key in Proxy-Authorization and its SmartPayments Basic credentials
// in Authorization. hdr adds or (with "") removes headers.
func (h *harness) fwd(t testing.TB, method, path string, body any, hdr map[string]string) *response {
	t.Helper()
	all := withHeaders(map[string]string{
		"Proxy-Authorization": "Bearer " + h.keys[merchantA][proxy.RoleSecret],
		"Authorization":       basicAuth,
	}, hdr)
	return h.send(t, h.forward, method, path, body, all)
}

// withHeaders sets hdr's headers in all and returns it.
func withHeaders(all, hdr map[string]string) map[string]string {
	for k, v := range hdr {
		all[k] = v
	}
	return all
}

// post is fwd for a POST without extra headers.
func (h *harness) post(t testing.TB, path string, body any) *response {
	t.Helper()
	return h.fwd(t, http.MethodPost, path, body, nil)
}

// tokenMeta is the collect listener's answer.
type tokenMeta struct {
	Token string `json:"token"`
	Kind  string `json:"kind"`
	Card  *struct {
		BIN      string `json:"bin"`
		Last4    string `json:"last4"`
		Brand    string `json:"brand"`
		ExpMonth string `json:"exp_month"`
		ExpYear  string `json:"exp_year"`
	} `json:"card"`
	Network     string `json:"network"`
	Fingerprint string `json:"fingerprint"`
	HasCVV      bool   `json:"has_cvv"`
	ExpiresAt   string `json:"expires_at"`
}

// tokenize posts fields to the collect listener as JSON with merchant's pk_
// key and expects 201.
func (h *harness) tokenize(t testing.TB, merchant string, fields map[string]string) tokenMeta {
	t.Helper()
	r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", fields, map[string]string{
		"Authorization": "Bearer " + h.keys[merchant][proxy.RolePublishable],
	})
	wantStatus(t, r, http.StatusCreated)
	var m tokenMeta
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("tokenize answer: %v", err)
	}
	if !vault.ValidTokenID(m.Token) {
		t.Fatalf("tokenize answer: got token %q, want a tok_ id", m.Token)
	}
	return m
}

// cardFields are the collect fields of a card with CVV and holder.
func cardFields(pan, cvv string) map[string]string {
	return map[string]string{
		"card_number": pan, "card_exp_month": expMonth, "card_exp_year": expYear,
		"card_cvv": cvv, "card_holder": holder,
	}
}

// cardToken tokenizes pan with cvv for merchant A and returns the token id.
func (h *harness) cardToken(t testing.TB, pan, cvv string) string {
	t.Helper()
	return h.tokenize(t, merchantA, cardFields(pan, cvv)).Token
}

// walletToken tokenizes a wallet payload for merchant A.
func (h *harness) walletToken(t testing.TB, method, dpan, network string) string {
	t.Helper()
	prefix := walletPrefix(method)
	return h.tokenize(t, merchantA, map[string]string{
		"payment_method": method, prefix + "dpan": dpan, prefix + "payment_method_network": network,
	}).Token
}

// walletPrefix is the prefix of the collect fields of a wallet payment method.
func walletPrefix(method string) string {
	if method == "googlePayDPan" {
		return "google_pay_"
	}
	return "apple_pay_"
}

// orderID returns an order id unique in the harness, without digit runs that
// could be taken for card numbers.
func (h *harness) orderID() string { return orderName("order-", h.orderN.Add(1)) }

// orderName is prefix and n in letters: no digit run that could be taken for
// a card number.
func orderName(prefix string, n int64) string {
	var b strings.Builder
	b.WriteString(prefix)
	for ; n > 0; n /= 26 {
		b.WriteByte(byte('a' + n%26))
	}
	return b.String()
}

// paymentBody is a documented initPaymentHost2Host/authorize request without
// card fields; set adds fields, and a nil value removes one.
func paymentBody(orderID string, set map[string]any) map[string]any {
	m := map[string]any{
		"account": "EUR-sandbox", "amount": 1000, "currency": "EUR", "order_id": orderID,
		"merchant_site": "https://merchant.site", "recurrent": false, "purpose": "description",
		"customer_first_name": "John", "customer_last_name": "Doe",
		"customer_address": "10 Downing Street", "customer_city": "London",
		"customer_zip_code": 121165, "customer_country": "GB",
		"customer_phone": "+442079460612", "customer_email": "john.doe@example.com",
		"customer_ip_address": "127.0.0.1",
		"success_url":         "https://site.com/success", "fail_url": "https://site.com/fail",
		"callback_url": "https://site.com/callback", "status_url": "https://site.com/redir",
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// cardPayment is a card payment naming tok for the PAN and the CVV.
func cardPayment(orderID, tok string) map[string]any {
	return paymentBody(orderID, map[string]any{"payment_method": "card", "card_number": tok, "card_cvv": tok})
}

// received returns what the sandbox received on path, decoded.
func (h *harness) received(t testing.TB, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range h.sandbox.Received(path) {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("the sandbox received a body that is not JSON on %s: %v", path, err)
		}
		out = append(out, m)
	}
	return out
}

// checkStatus asks /check through the forward listener's passthrough.
func (h *harness) checkStatus(t testing.TB, orderID string) float64 {
	t.Helper()
	r := h.post(t, "/check", map[string]any{"order_id": orderID})
	wantStatus(t, r, http.StatusOK)
	st, ok := r.object(t)["status"].(float64)
	if !ok {
		t.Fatalf("check: no numeric status")
	}
	return st
}

// closeRedis stops miniredis (an outage); the card-data check then skips Redis.
func (h *harness) closeRedis() {
	h.mu.Lock()
	h.redisClosed = true
	h.mu.Unlock()
	h.mr.Close()
}

// redisContents returns every key and every value in Redis.
func (h *harness) redisContents(t testing.TB) []string {
	t.Helper()
	var out []string
	if h.mr != nil {
		for _, k := range h.mr.Keys() {
			out = append(out, k)
			if v, err := h.mr.Get(k); err == nil {
				out = append(out, v)
			} else {
				out = append(out, h.mr.Dump())
			}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it := h.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		out = append(out, k)
		v, err := h.rdb.Get(ctx, k).Result()
		if err != nil && err != redis.Nil {
			t.Errorf("redis GET of a key: %v", err)
		}
		out = append(out, v)
	}
	if err := it.Err(); err != nil {
		t.Errorf("redis SCAN: %v", err)
	}
	return out
}

// assertNoCardData fails t if a test PAN, CVV or DPAN (or one of extra) is in
// the logs, in the audit trail, in a response the test received, or in any Redis key or value.
func (h *harness) assertNoCardData(t testing.TB, extra ...string) {
	t.Helper()
	if what := cardDataIn(h.logs.Bytes(), extra...); what != "" {
		t.Errorf("the logs contain %s", what)
	}
	if what := cardDataIn(h.audit.Bytes(), extra...); what != "" {
		t.Errorf("the audit trail contains %s", what)
	}
	h.mu.Lock()
	resps := append([][]byte(nil), h.responses...)
	closed := h.redisClosed
	h.mu.Unlock()
	for i, r := range resps {
		if what := cardDataIn(r, extra...); what != "" {
			t.Errorf("response %d contains %s", i+1, what)
		}
	}
	if closed {
		return
	}
	for _, kv := range h.redisContents(t) {
		if what := cardDataIn([]byte(kv), extra...); what != "" {
			t.Errorf("Redis holds %s", what)
		}
	}
}
