package proxy_test

// The harness of the hostile-input suite (hostile_test.go): chdproxy's three
// listeners built from the package's exported API exactly as `chdproxy dev` and
// `serve` wire them, on real TCP servers made by proxy.NewServer, over miniredis
// and the dev cipher, with the SmartPayments sandbox as upstream over TLS (a CA
// made for the test run). Everything a test can observe afterwards — responses,
// logs, audit records, Redis — is captured so assertNoCardData can look at it.
//
// Every top-level name here starts with "hx": the package's other external
// tests (harness_test.go and friends) share this namespace.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

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

// Test card data: published test numbers only, and only in _test.go files.
const (
	hxPANVisa      = "4012000000003010" // SmartPayments sandbox: frictionless success
	hxPANChallenge = "4003830171874018" // sandbox: challenge flow
	hxPANMC        = "5555555555554444"
	hxPANAmex      = "378282246310005"
	hxPANOther     = "4111111111111111"
	hxCVV          = "737"
	hxCVVAmex      = "4821"
	hxHolder       = "Jane Roe"
	hxExpMonth     = "12"
	hxExpYear      = "2030"

	// Wallet payloads from the SmartPayments documentation.
	hxDPANApple  = "eyJhcHBsaWNhdGlvblByaW1hcnlBY2NvdW50TnVtYmVyIjoiKioqIiwiYXBwbGljYXRpb25FeHBpcmF0aW9uRGF0ZSI6IioqKiIsImN1cnJlbmN5Q29kZSI6Ijk3OCIsInRyYW5zYWN0aW9uQW1vdW50IjoxMDAsImRldmljZU1hbnVmYWN0dXJlcklkZW50aWZpZXIiOiIqKioiLCJwYXltZW50RGF0YVR5cGUiOiIzRFNlY3VyZSIsInBheW1lbnREYXRhIjp7Im9ubGluZVBheW1lbnRDcnlwdG9ncmFtIjoiKioqIiwiZWNpSW5kaWNhdG9yIjoiNyJ9fQ=="
	hxDPANGoogle = "eyJzaWduYXR1cmUiOiIqKioiLCJpbnRlcm1lZGlhdGVTaWduaW5nS2V5Ijp7InNpZ25lZEtleSI6Insia2V5VmFsdWUiOiIqKioiLCJrZXlFeHBpcmF0aW9uIjoiMTcxMTQzNDQ1MjgzNiJ9Iiwic2lnbmF0dXJlcyI6WyIqKioiXX0sInByb3RvY29sVmVyc2lvbiI6IkVDdjIiLCJzaWduZWRNZXNzYWdlIjoieyJlbmNyeXB0ZWRNZXNzYWdlIjoiKioqIiwiZXBoZW1lcmFsUHVibGljS2V5IjoiKioqIiwidGFnIjoiKioqIn0ifQ"

	hxBasic = "Basic dGVzdDpxd2VydHk=" // the documentation's merchant test:qwerty

	hxMerchantA = "merchant_alpha"
	hxMerchantB = "merchant_beta"
	hxOriginA   = "https://alpha-shop.example"
	hxOriginB   = "https://beta-shop.example"
)

var (
	hxPANs  = []string{hxPANVisa, hxPANChallenge, hxPANMC, hxPANAmex, hxPANOther}
	hxCVVs  = []string{hxCVV, hxCVVAmex}
	hxDPANs = []string{hxDPANApple, hxDPANGoogle}
)

// ---------------------------------------------------------------------------
// Finding card data in anything the proxy let out.

// hxPANForms are the spellings of pan looked for verbatim: raw, grouped by
// spaces or dashes, JSON \u escapes, percent-encoding, HTML entities and
// fullwidth digits. hxFindCardData also looks in a normalised copy (escapes
// decoded, any Unicode digit made ASCII, separators dropped), which catches
// the mixtures.
func hxPANForms(pan string) map[string]string {
	group := func(sep string) string {
		var b strings.Builder
		for i, c := range pan {
			if i > 0 && i%4 == 0 {
				b.WriteString(sep)
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	enc := func(f func(r rune) string) string {
		var b strings.Builder
		for _, c := range pan {
			b.WriteString(f(c))
		}
		return b.String()
	}
	return map[string]string{
		"raw":               pan,
		"grouped (spaces)":  group(" "),
		"grouped (dashes)":  group("-"),
		"JSON \\u-escaped":  enc(func(r rune) string { return fmt.Sprintf(`\u%04x`, r) }),
		"JSON \\U-escaped":  enc(func(r rune) string { return fmt.Sprintf(`\u%04X`, r) }),
		"percent-encoded":   enc(func(r rune) string { return fmt.Sprintf("%%%02X", r) }),
		"HTML entities":     enc(func(r rune) string { return fmt.Sprintf("&#%d;", r) }),
		"fullwidth digits":  enc(func(r rune) string { return string(r - '0' + '０') }),
		"Arabic-Indic form": enc(func(r rune) string { return string(r - '0' + '٠') }),
	}
}

var (
	hxUEscape   = regexp.MustCompile(`\\u([0-9a-fA-F]{4})`)
	hxPctEscape = regexp.MustCompile(`%([0-9a-fA-F]{2})`)
	hxEntity    = regexp.MustCompile(`&#([0-9]{1,6});`)
	hxCVVRes    sync.Map
)

// hxUnescape decodes JSON \u escapes (and \" \\ \/), percent-encoding and
// numeric HTML entities, repeatedly, so doubly escaped text is read too.
func hxUnescape(s string) string {
	for range 3 {
		prev := s
		s = hxUEscape.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.ParseUint(m[2:], 16, 32)
			return string(rune(n))
		})
		s = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\/`, `/`).Replace(s)
		s = hxPctEscape.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.ParseUint(m[1:], 16, 8)
			return string([]byte{byte(n)})
		})
		s = hxEntity.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.Atoi(m[2 : len(m)-1])
			return string(rune(n))
		})
		if s == prev {
			break
		}
	}
	return s
}

// hxDigitsFlat maps every Unicode decimal digit to ASCII and drops the
// separators a PAN may be grouped with.
func hxDigitsFlat(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == '-' || r == '+' || r == '\u00a0' || r == '\t':
			continue
		case r > 0x7f && unicode.Is(unicode.Nd, r):
			start := r
			for unicode.Is(unicode.Nd, start-1) {
				start--
			}
			b.WriteByte(byte('0' + (r-start)%10))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func hxCVVPattern(cvv string) *regexp.Regexp {
	if re, ok := hxCVVRes.Load(cvv); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(`["']` + cvv + `["']|[:=]\s*` + cvv + `([^0-9.]|$)`)
	hxCVVRes.Store(cvv, re)
	return re
}

// hxFindCardData describes the first test card datum (or extra string) in b,
// or returns "".
func hxFindCardData(b []byte, extra ...string) string {
	raw := string(b)
	norm := hxUnescape(raw)
	flat := hxDigitsFlat(norm)
	for _, pan := range hxPANs {
		for form, s := range hxPANForms(pan) {
			if strings.Contains(raw, s) {
				return "the test PAN ending " + pan[len(pan)-4:] + " (" + form + ")"
			}
		}
		if strings.Contains(flat, pan) {
			return "the test PAN ending " + pan[len(pan)-4:] + " (after unescaping and removing separators)"
		}
	}
	for _, cvv := range hxCVVs {
		if hxCVVPattern(cvv).MatchString(raw) || hxCVVPattern(cvv).MatchString(norm) {
			return "a test CVV"
		}
	}
	for _, d := range hxDPANs {
		for _, part := range []string{d, d[20:60]} {
			if strings.Contains(raw, part) || strings.Contains(norm, part) {
				return "a test wallet DPAN"
			}
		}
	}
	if strings.Contains(raw, hxHolder) || strings.Contains(norm, hxHolder) {
		return "the test card holder name"
	}
	for _, x := range extra {
		if x != "" && (strings.Contains(raw, x) || strings.Contains(norm, x)) {
			return fmt.Sprintf("the input %q", x)
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// Sinks, fault injection.

// hxTransit wraps the dev cipher with switchable faults: every call fails
// with an error (Vault sealed or down), or takes hang and then fails with
// vault.ErrTimeout (a transit client with a per-call deadline of hang, as
// VaultTransit has).
type hxTransit struct {
	inner vault.Transit
	calls atomic.Int64
	mu    sync.Mutex
	err   error
	hang  time.Duration
}

func (x *hxTransit) setFail(err error) { x.mu.Lock(); x.err = err; x.mu.Unlock() }
func (x *hxTransit) setHang(d time.Duration) {
	x.mu.Lock()
	x.hang = d
	x.mu.Unlock()
}

func (x *hxTransit) fault(ctx context.Context) error {
	x.calls.Add(1)
	x.mu.Lock()
	err, hang := x.err, x.hang
	x.mu.Unlock()
	if hang > 0 {
		t := time.NewTimer(hang)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return vault.ErrTimeout
	}
	return err
}

func (x *hxTransit) Encrypt(ctx context.Context, k vault.Key, items []vault.EncryptItem) ([]vault.EncryptResult, error) {
	if err := x.fault(ctx); err != nil {
		return nil, err
	}
	return x.inner.Encrypt(ctx, k, items)
}

func (x *hxTransit) Decrypt(ctx context.Context, k vault.Key, items []vault.DecryptItem) ([]vault.DecryptResult, error) {
	if err := x.fault(ctx); err != nil {
		return nil, err
	}
	return x.inner.Decrypt(ctx, k, items)
}

func (x *hxTransit) HMAC(ctx context.Context, items []vault.HMACItem) ([]vault.HMACResult, error) {
	if err := x.fault(ctx); err != nil {
		return nil, err
	}
	return x.inner.HMAC(ctx, items)
}

func (x *hxTransit) Ping(ctx context.Context) error {
	if err := x.fault(ctx); err != nil {
		return err
	}
	return x.inner.Ping(ctx)
}

// hxAuditor is the JSONL auditor with a switch that makes every Write fail
// (a full disk, a closed pipe).
type hxAuditor struct {
	inner proxy.Auditor
	fail  atomic.Bool
}

func (a *hxAuditor) Write(r proxy.AuditRecord) error {
	if a.fail.Load() {
		return errors.New("audit sink: no space left on device")
	}
	return a.inner.Write(r)
}

func (a *hxAuditor) Enqueue(r proxy.AuditRecord, failed func(error)) {
	if a.fail.Load() {
		failed(errors.New("audit sink: no space left on device"))
		return
	}
	a.inner.Enqueue(r, failed)
}

// ---------------------------------------------------------------------------
// hxStartTLS serves h over TLS. cfg nil: a certificate from the test CA.
func hxStartTLS(t testing.TB, h http.Handler, cfg *tls.Config) *httptest.Server {
	t.Helper()
	if cfg == nil {
		cfg = serverTLS(t, "vm", "runsc")
	}
	return serveTLS(t, h, cfg)
}

// hxListener is a TCP listener that only counts connections: a place chdproxy
// must never dial (callback_url, Host header, absolute-form targets).
type hxListener struct {
	ln    net.Listener
	conns atomic.Int64
}

func hxStartListener(t testing.TB) *hxListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &hxListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

func (l *hxListener) addr() string { return l.ln.Addr().String() }

// assertNoConnection waits a moment for a late dial, then checks none came.
func (l *hxListener) assertNoConnection(t testing.TB) {
	t.Helper()
	time.Sleep(150 * time.Millisecond)
	if n := l.conns.Load(); n != 0 {
		t.Errorf("got %d connections to %s, want 0: chdproxy dialled an address the policy does not name", n, l.addr())
	}
}

// ---------------------------------------------------------------------------
// The environment.

// hxOptions change what newHostileEnv builds; the zero value is the sandbox
// over TLS, miniredis, the dev cipher behind hxTransit, default limits.
type hxOptions struct {
	upstream        http.Handler               // served over TLS (test CA) instead of the sandbox
	upstreamTLS     *tls.Config                // with upstream: this TLS configuration instead
	upstreamBase    func(srvURL string) string // rewrites the policy's base URL (egress tests)
	responseTimeout time.Duration              // upstream client's; default its own
	transit         vault.Transit              // instead of the dev cipher (hxTransit still wraps it)
	limits          proxy.Limits
	timeouts        proxy.Timeouts // of the three servers; default hxTimeouts
}

// hxTimeouts are short but leave the forward listener time for its upstream call.
var hxTimeouts = proxy.Timeouts{ReadHeader: 2 * time.Second, Read: 5 * time.Second, Write: 20 * time.Second, Idle: 10 * time.Second}

type hxEnv struct {
	t        *testing.T
	pol      *policy.Policy
	red      *redact.Redactor
	log      *logrus.Logger
	logs     *testenv.Buffer
	audit    *testenv.Buffer
	auditor  *hxAuditor
	transit  *hxTransit
	mr       *miniredis.Miniredis
	rdb      redis.UniversalClient
	vault    *vault.Vault
	keyring  *proxy.Keys
	keys     map[string]map[proxy.Role]string // merchant → role → secret
	sandbox  *smartpay.Sandbox                // nil with hxOptions.upstream
	upstream *httptest.Server
	client   *http.Client // the proxy's upstream client

	deps     proxy.Deps
	fdeps    proxy.ForwardDeps
	collect  string // base URLs
	forward  string
	admin    string
	fwdAddr  string
	colAddr  string
	admAddr  string
	timeouts proxy.Timeouts

	mu        sync.Mutex
	seen      [][]byte // every response (headers and body) the test received
	redisDown bool
	orderN    atomic.Int64
}

func newHostileEnv(t *testing.T, o hxOptions) *hxEnv {
	t.Helper()
	e := &hxEnv{t: t, logs: &testenv.Buffer{}, audit: &testenv.Buffer{}}

	h := o.upstream
	if h == nil {
		e.sandbox = smartpay.NewSandbox(smartpay.Options{})
		t.Cleanup(func() { e.sandbox.Close() })
		h = e.sandbox.Handler()
	}
	e.upstream = hxStartTLS(t, h, o.upstreamTLS)
	base := e.upstream.URL
	if o.upstreamBase != nil {
		base = o.upstreamBase(base)
	}
	e.pol = testPolicy(t, base)
	e.red, e.log = redactingLogger(e.pol, e.logs)

	e.mr, e.rdb = startMiniredis(t)
	e.transit = &hxTransit{inner: orDevCipher(t, o.transit)}
	e.vault = newTestVault(t, e.transit, e.rdb, e.pol)

	e.keyring, e.keys = generateKeys(t, hxMerchantA, hxMerchantB)
	e.client = upstreamClient(t, e.pol, proxy.UpstreamOptions{ConnectTimeout: 2 * time.Second, ResponseTimeout: o.responseTimeout})

	e.auditor = &hxAuditor{inner: proxy.NewJSONLAudit(e.audit, e.pol.Hash)}
	e.deps = proxy.Deps{
		Vault: e.vault, Keys: e.keyring, Log: e.log, Audit: e.auditor,
		Limiter:     proxy.NewLimiter(o.limits),
		Idempotency: proxy.NewIdempotency(e.rdb, []byte("hostile-suite idempotency secret, 32+ bytes"), 0),
		Merchants: map[string]proxy.Merchant{
			hxMerchantA: {ID: hxMerchantA, Origins: []string{hxOriginA}},
			hxMerchantB: {ID: hxMerchantB, Origins: []string{hxOriginB}},
		},
	}
	e.fdeps = proxy.ForwardDeps{Deps: e.deps, Policy: e.pol, Redactor: e.red, Client: e.client}
	e.timeouts = o.timeouts
	if e.timeouts == (proxy.Timeouts{}) {
		e.timeouts = hxTimeouts
	}
	e.colAddr = e.serve(proxy.CollectHandler(e.deps), e.timeouts)
	e.fwdAddr = e.serve(proxy.ForwardHandler(e.fdeps), e.timeouts)
	e.admAddr = e.serve(proxy.AdminHandler(e.deps, policy.Explain(e.pol)), e.timeouts)
	e.collect, e.forward, e.admin = "http://"+e.colAddr, "http://"+e.fwdAddr, "http://"+e.admAddr
	return e
}

// serve runs h on a loopback listener with the http.Server chdproxy uses.
func (e *hxEnv) serve(h http.Handler, to proxy.Timeouts) string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	srv := proxy.NewServer(ln.Addr().String(), h, e.log, to)
	go srv.Serve(ln)
	e.t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// hxHTTP is the tests' client: no proxy from the environment, no compression.
var hxHTTP = &http.Client{
	Timeout:   20 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// hxResp is one answer a test received, and how long it took.
type hxResp struct {
	response
	elapsed time.Duration
}

// json decodes a JSON object body.
func (r *hxResp) json(t testing.TB) map[string]any {
	t.Helper()
	return r.object(t)
}

// record keeps a response for assertNoCardData.
func (e *hxEnv) record(b []byte) {
	e.mu.Lock()
	e.seen = append(e.seen, b)
	e.mu.Unlock()
}

// hxHeaders are request headers; a "" value removes a header set by default.
type hxHeaders map[string]string

// do sends one request. body: nil, string, []byte, or anything else as JSON.
func (e *hxEnv) do(t testing.TB, method, rawURL string, body any, hdr hxHeaders) *hxResp {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b = hxJSON(t, v)
	}
	r, err := e.send(method, rawURL, b, body != nil, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return r
}

// send is do for any goroutine: it reports errors instead of failing a test.
func (e *hxEnv) send(method, rawURL string, body []byte, hasBody bool, hdr hxHeaders) (*hxResp, error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		switch {
		case strings.EqualFold(k, "Host"):
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	start := time.Now()
	resp, err := hxHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	r := &hxResp{response: response{status: resp.StatusCode, header: resp.Header, body: b}, elapsed: time.Since(start)}
	e.record(dumpResponse(resp.Header, b))
	return r, nil
}

// col posts body to the collect listener with merchant's publishable key.
func (e *hxEnv) col(t testing.TB, merchant string, body any, hdr hxHeaders) *hxResp {
	t.Helper()
	all := withHeaders(hxHeaders{"Authorization": "Bearer " + e.keys[merchant][proxy.RolePublishable]}, hdr)
	return e.do(t, http.MethodPost, e.collect+"/v1/tokens", body, all)
}

// fwd calls the forward listener as merchant's backend: its sk_ key in
// Proxy-Authorization, the SmartPayments Basic credentials in Authorization.
func (e *hxEnv) fwd(t testing.TB, merchant, method, path string, body any, hdr hxHeaders) *hxResp {
	t.Helper()
	return e.do(t, method, e.forward+path, body, e.fwdHeaders(merchant, hdr))
}

// pay posts body to path on the forward listener as merchant A.
func (e *hxEnv) pay(t testing.TB, path string, body any) *hxResp {
	t.Helper()
	return e.fwd(t, hxMerchantA, http.MethodPost, path, body, nil)
}

// hxCard is a card with CVV and holder as collect fields.
func hxCard(pan, cvv string) map[string]string {
	return map[string]string{
		"card_number": pan, "card_exp_month": hxExpMonth, "card_exp_year": hxExpYear,
		"card_cvv": cvv, "card_holder": hxHolder,
	}
}

// tokenize stores a card for merchant and returns its token id.
func (e *hxEnv) tokenize(t testing.TB, merchant, pan, cvv string) string {
	t.Helper()
	r := e.col(t, merchant, hxCard(pan, cvv), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("tokenize: got %d %q, want 201", r.status, r.code())
	}
	tok, _ := r.json(t)["token"].(string)
	if !vault.ValidTokenID(tok) {
		t.Fatalf("tokenize: got token %q, want a tok_ id", tok)
	}
	return tok
}

// tokenizeWallet stores an Apple Pay or Google Pay payload for merchant.
func (e *hxEnv) tokenizeWallet(t testing.TB, merchant, method, dpan string) string {
	t.Helper()
	prefix := walletPrefix(method)
	r := e.col(t, merchant, map[string]string{
		"payment_method": method, prefix + "dpan": dpan, prefix + "payment_method_network": "Visa",
	}, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("tokenize wallet: got %d %q, want 201", r.status, r.code())
	}
	return r.json(t)["token"].(string)
}

// order returns a unique order id without long digit runs.
func (e *hxEnv) order() string { return orderName("hostile-order-", e.orderN.Add(1)) }

// cardPayment names tok for the PAN and the CVV.
func (e *hxEnv) cardPayment(tok string) map[string]any {
	return paymentBody(e.order(), map[string]any{"payment_method": "card", "card_number": tok, "card_cvv": tok})
}

// hxJSON marshals v.
func hxJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hxWithRaw returns the JSON of m with raw appended as further members
// (`"k":v,...` text written by hand: duplicates, escapes, odd values).
func hxWithRaw(t testing.TB, m map[string]any, raw string) []byte {
	t.Helper()
	b := hxJSON(t, m)
	return append(append(b[:len(b)-1], ","+raw...), '}')
}

// upstreamCalls counts what the sandbox received on path ("" for all).
func (e *hxEnv) upstreamCalls(path string) int {
	if e.sandbox == nil {
		return 0
	}
	return len(e.sandbox.Received(path))
}

// hasCVV asks the forward listener whether tok still has its CVV.
func (e *hxEnv) hasCVV(t testing.TB, merchant, tok string) bool {
	t.Helper()
	r := e.fwd(t, merchant, http.MethodGet, "/v1/tokens/"+tok, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("token metadata: got %d %q, want 200", r.status, r.code())
	}
	v, _ := r.json(t)["has_cvv"].(bool)
	return v
}

// recKeys returns the token record keys in Redis.
func (e *hxEnv) recKeys() []string {
	var out []string
	for _, k := range e.mr.Keys() {
		if strings.Contains(k, ":rec:") || strings.Contains(k, ":cvv:") {
			out = append(out, k)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Assertions.

// hxWantError checks an error answer of chdproxy's own: status, stable code,
// the documented shape with a fixed message, and no caching.
func hxWantError(t testing.TB, r *hxResp, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Errorf("got %d %q, want %d %q", r.status, r.code(), status, code)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type: got %q, want %q", ct, "application/json")
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("error Cache-Control: got %q, want %q", cc, "no-store")
	}
	var b map[string]map[string]string
	if err := json.Unmarshal(r.body, &b); err != nil || len(b) != 1 || len(b["error"]) != 2 || b["error"]["message"] == "" {
		t.Errorf("error body: got %q, want {\"error\":{\"code\",\"message\"}}", r.body)
	}
}

// hxWantStatus checks a status code.
func hxWantStatus(t testing.TB, r *hxResp, status int) {
	t.Helper()
	wantStatus(t, &r.response, status)
}

// hxWantFast fails when a request took longer than d.
func hxWantFast(t testing.TB, r *hxResp, d time.Duration) {
	t.Helper()
	if r.elapsed > d {
		t.Errorf("answer took %s, want under %s", r.elapsed.Round(time.Millisecond), d)
	}
}

// redisContents returns every key and value in Redis: strings, hash fields,
// list and set members, and the base64 []byte fields of JSON values decoded
// (the idempotency records keep whole response bodies that way).
func (e *hxEnv) redisContents(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, k := range e.mr.Keys() {
		out = append(out, k)
		var vals []string
		switch e.mr.Type(k) {
		case "string":
			v, _ := e.mr.Get(k)
			vals = append(vals, v)
		case "hash":
			fs, _ := e.mr.HKeys(k)
			for _, f := range fs {
				vals = append(vals, f, e.mr.HGet(k, f))
			}
		case "list":
			l, _ := e.mr.List(k)
			vals = append(vals, l...)
		case "set":
			m, _ := e.mr.Members(k)
			vals = append(vals, m...)
		default:
			vals = append(vals, e.mr.Dump())
		}
		for _, v := range vals {
			out = append(out, v)
			out = append(out, hxDecodedFields(v)...)
		}
	}
	return out
}

// hxDecodedFields base64-decodes the string members of a JSON object value.
func hxDecodedFields(v string) []string {
	var m map[string]any
	if json.Unmarshal([]byte(v), &m) != nil {
		return nil
	}
	var out []string
	for _, x := range m {
		if s, ok := x.(string); ok && len(s) >= 4 {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// assertNoCardData fails t when a test PAN, CVV or DPAN — raw, grouped or
// escaped — or one of extra (inputs that must not be echoed) is in any
// response the test received (headers and body), in raw (the answers read off
// a TCP connection), in the captured logs, in the audit trail, or in any Redis
// key or value.
func (e *hxEnv) assertNoCardData(t testing.TB, extra ...string) {
	t.Helper()
	check := func(where string, b []byte) {
		t.Helper()
		if what := hxFindCardData(b, extra...); what != "" {
			t.Errorf("%s contains %s", where, what)
		}
	}
	check("the logs", e.logs.Bytes())
	check("the audit trail", e.audit.Bytes())
	e.mu.Lock()
	seen := append([][]byte(nil), e.seen...)
	down := e.redisDown
	e.mu.Unlock()
	for i, b := range seen {
		check(fmt.Sprintf("response %d", i+1), b)
	}
	if down {
		t.Errorf("assertNoCardData: Redis is down; restart it first")
		return
	}
	for _, kv := range e.redisContents(t) {
		check("Redis", []byte(kv))
	}
	// Every log line and audit record is one JSON object: nothing a client
	// sent can break a line in two.
	e.logLines(t)
	e.auditRecords(t)
}

// logLines parses the captured logs: one JSON object per line.
func (e *hxEnv) logLines(t testing.TB) []map[string]any {
	t.Helper()
	return hxJSONLines(t, "log", e.logs.Bytes())
}

// auditRecords parses the audit trail: one JSON object per line.
func (e *hxEnv) auditRecords(t testing.TB) []map[string]any {
	t.Helper()
	return hxJSONLines(t, "audit", e.audit.Bytes())
}

func hxJSONLines(t testing.TB, what string, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("%s output does not end with a newline", what)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" && len(b) == 0 {
			break
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s line %d is not one JSON object (%v): %.120q", what, i+1, err, line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// requestLines returns the access-log entries ("msg":"request").
func (e *hxEnv) requestLines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range e.logLines(t) {
		if l["msg"] == "request" {
			out = append(out, l)
		}
	}
	return out
}

// closeRedis stops miniredis (an outage); restartRedis brings it back with
// its data.
func (e *hxEnv) closeRedis() {
	e.mu.Lock()
	e.redisDown = true
	e.mu.Unlock()
	e.mr.Close()
}

func (e *hxEnv) restartRedis(t testing.TB) {
	t.Helper()
	if err := e.mr.Restart(); err != nil {
		t.Fatalf("miniredis restart: %v", err)
	}
	e.mu.Lock()
	e.redisDown = false
	e.mu.Unlock()
}

// ---------------------------------------------------------------------------
// Raw TCP, for what net/http's client will not send.

// hxRawResp is one response read off a raw connection.
type hxRawResp = response

// raw writes request bytes to addr and reads every response until the server
// closes the connection or wait passes. closed reports whether the server
// closed it (EOF or reset) rather than the wait running out.
func (e *hxEnv) raw(t testing.TB, addr, request string, wait time.Duration) (resps []*hxRawResp, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatalf("raw write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return resps, !(errors.As(err, &ne) && ne.Timeout())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.record(dumpResponse(resp.Header, b))
		resps = append(resps, &hxRawResp{status: resp.StatusCode, header: resp.Header, body: b})
	}
}

// rawRequest builds an HTTP/1.1 request by hand: header lines as given (CRLF
// added), then body.
func hxRawRequest(requestLine string, headers []string, body string) string {
	var b strings.Builder
	b.WriteString(requestLine + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// hxDigest is the hex digest of a key as Keys.Add stores it.
func hxDigest(secret string) string {
	return strings.TrimPrefix(proxy.KeyDigest(secret), "sha256:")
}

// hxKeyID is the public id the proxy logs for a key: role prefix and the
// first 4 bytes of the digest.
func hxKeyID(secret string) string {
	return secret[:3] + hxDigest(secret)[:8]
}

// hxRandomTokenID returns a well-formed token id that was never issued.
func hxRandomTokenID(t testing.TB, like string) string {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, len(like)-4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	id := "tok_" + string(b)
	if !vault.ValidTokenID(id) {
		t.Fatalf("random token id %q is not well-formed", id)
	}
	return id
}

// hxHostname returns a name other than "localhost" that resolves to a
// loopback address, or "".
func hxHostname() string {
	cands := []string{"vm", "runsc", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
	if h, err := os.Hostname(); err == nil {
		cands = append(cands, h)
	}
	for _, n := range cands {
		addrs, err := net.LookupHost(n)
		if err != nil || len(addrs) == 0 {
			continue
		}
		if ip := net.ParseIP(addrs[0]); ip != nil && ip.IsLoopback() {
			return n
		}
	}
	return ""
}

// hxHostPort returns the host:port of a URL.
func hxHostPort(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// fwdSend is fwd for any goroutine.
func (e *hxEnv) fwdSend(merchant, method, path string, body []byte, hdr hxHeaders) (*hxResp, error) {
	return e.send(method, e.forward+path, body, body != nil, e.fwdHeaders(merchant, hdr))
}

// fwdHeaders are merchant's backend credentials, with hdr's headers added.
func (e *hxEnv) fwdHeaders(merchant string, hdr hxHeaders) hxHeaders {
	return withHeaders(hxHeaders{
		"Proxy-Authorization": "Bearer " + e.keys[merchant][proxy.RoleSecret],
		"Authorization":       hxBasic,
	}, hdr)
}

// waitAudit polls the audit trail until ok accepts it or a second passes:
// wrap writes a request's record as its handler returns, which can be just
// after the client read the answer.
func (e *hxEnv) waitAudit(t testing.TB, ok func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		recs := e.auditRecords(t)
		if ok(recs) || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRequestLines polls the access log until it holds n request lines or a
// second passes.
func (e *hxEnv) waitRequestLines(t testing.TB, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		l := e.requestLines(t)
		if len(l) >= n || time.Now().After(deadline) {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// The harness checked: a suite whose detector misses a leak proves nothing.

func TestHostileHarness_FindsCardDataInEveryForm(t *testing.T) {
	for _, pan := range hxPANs {
		for form, s := range hxPANForms(pan) {
			for _, wrap := range []string{`{"x":"%s"}`, `x=%s&y=1`, `%s`, `{"x":"a %s b"}`} {
				if hxFindCardData([]byte(fmt.Sprintf(wrap, s))) == "" {
					t.Errorf("PAN …%s %s in %q: not found", pan[len(pan)-4:], form, wrap)
				}
			}
		}
		mixed := strings.ReplaceAll(hxPANForms(pan)["JSON \\u-escaped"], `\`, `%5C`) // a percent-encoded JSON escape
		if hxFindCardData([]byte(mixed)) == "" {
			t.Errorf("PAN …%s percent-encoded JSON escapes: not found", pan[len(pan)-4:])
		}
		if hxFindCardData([]byte(`{"n":`+pan+`}`)) == "" {
			t.Errorf("PAN …%s as a JSON number: not found", pan[len(pan)-4:])
		}
	}
	for _, cvv := range hxCVVs {
		for _, s := range []string{`{"card_cvv":"` + cvv + `"}`, `cvv=` + cvv + `&x=1`, `{\"cvv\":\"` + cvv + `\"}`, `{"cvv":` + cvv + `}`, `cvv: ` + cvv} {
			if hxFindCardData([]byte(s)) == "" {
				t.Errorf("CVV in %q: not found", s)
			}
		}
	}
	for _, d := range hxDPANs {
		if hxFindCardData([]byte(`{"dpan":"`+d+`"}`)) == "" || hxFindCardData([]byte("x"+d[15:80]+"y")) == "" {
			t.Error("a DPAN or a slice of one: not found")
		}
	}
	// What chdproxy legitimately shows must pass.
	for _, s := range []string{
		`{"token":"tok_AbC123","kind":"card","card":{"bin":"40120000","last4":"3010","brand":"visa","exp_month":"12","exp_year":"2030"},"has_cvv":true}`,
		`{"card":{"number":"401200******3010"},"masked":"************4444","duration_ms":7.37,"status":200}`,
		`{"level":"info","msg":"request","request_id":"req_9aZ","key_id":"sk_1a2b3c4d","card_cvv":"[REDACTED]"}`,
	} {
		if what := hxFindCardData([]byte(s)); what != "" {
			t.Errorf("false positive %s in %s", what, s)
		}
	}
}

// hxRecorderTB collects the errors a check reports instead of failing the test.
type hxRecorderTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *hxRecorderTB) Helper() {}
func (r *hxRecorderTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func TestHostileHarness_AssertNoCardDataSeesEverySink(t *testing.T) {
	plant := map[string]func(e *hxEnv){
		// Written past the redacting formatter, which would mask it (as it should).
		"a log line": func(e *hxEnv) {
			e.logs.Write([]byte(`{"msg":"leak ` + hxPANForms(hxPANMC)["fullwidth digits"] + `"}` + "\n"))
		},
		"an audit record": func(e *hxEnv) { e.audit.Write([]byte(`{"event":"x","token":"` + hxPANVisa + `"}` + "\n")) },
		"a response body": func(e *hxEnv) { e.record([]byte(`{"echo":"` + hxPANForms(hxPANAmex)["JSON \\u-escaped"] + `"}`)) },
		"a response header": func(e *hxEnv) {
			e.record([]byte("X-Card: " + hxPANForms(hxPANVisa)["grouped (dashes)"] + "\r\n\r\n{}"))
		},
		"a Redis key":   func(e *hxEnv) { e.mr.Set("chd:x:"+hxPANVisa, "1") },
		"a Redis value": func(e *hxEnv) { e.mr.Set("chd:x", `{"card_cvv":"`+hxCVV+`"}`) },
		"a Redis hash":  func(e *hxEnv) { e.mr.HSet("chd:h", "f", hxDPANApple) },
		"a stored answer": func(e *hxEnv) {
			e.mr.Set("chd:idem:x", string(hxJSON(t, map[string]any{"body": []byte(`{"n":"` + hxPANMC + `"}`)})))
		},
		"a broken log line": func(e *hxEnv) { e.logs.Write([]byte("not json\n")) },
	}
	for name, f := range plant {
		t.Run(name, func(t *testing.T) {
			e := newHostileEnv(t, hxOptions{})
			e.assertNoCardData(t) // clean to start with
			f(e)
			rec := &hxRecorderTB{TB: t}
			e.assertNoCardData(rec)
			if len(rec.errs) == 0 {
				t.Errorf("card data planted in %s was not reported", name)
			}
		})
	}
}
