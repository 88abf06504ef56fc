package proxy_test

// The harness of the package's external tests: chdproxy's three listeners built
// by proxy.New exactly as `chdproxy dev` and `serve` build them, on real TCP
// servers made by proxy.NewServer, over miniredis (or a real redis-server) and
// the dev cipher (or a real Vault), with the SmartPayments sandbox as upstream
// over TLS (a CA made for the test run). newHarness is the only place that
// assembles the proxy. With CHDPROXY_SUITE_BACKEND=real (main_test.go) every
// harness runs on its own redis-server and the run's one Vault dev server.
// Everything a test can observe afterwards — responses, logs, audit records,
// Redis — is captured, and leak_test.go's assertNoCardData looks at all of it
// when the test ends.
//
// harness_requests_test.go has the clients, bodies and assertions the tests use.

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
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

// The two merchants every harness knows, and the browser origins of their pages.
const (
	merchantA = "merchant_a"
	merchantB = "merchant_b"
	originA   = "https://shop-a.example"
	originB   = "https://shop-b.example"
)

// harnessOptions change what newHarness builds; the zero value is the
// SmartPayments sandbox over TLS, miniredis, the dev cipher behind faultTransit,
// default limits and testTimeouts. In the real backend mode (suiteReal) it is a
// redis-server and the run's Vault transit instead; transit and realRedis
// still take precedence.
type harnessOptions struct {
	upstream        http.Handler               // served over TLS (test CA) instead of the sandbox
	upstreamTLS     *tls.Config                // with upstream: this TLS configuration instead
	upstreamURL     string                     // both upstreams point here; no upstream is started
	upstreamBase    func(srvURL string) string // rewrites the policy's base URL (egress tests)
	responseTimeout time.Duration              // the upstream client's; default its own
	connectTimeout  time.Duration              // the upstream client's (TCP and TLS); default 2s
	vaultTimeout    time.Duration              // proxy.Config.VaultTimeout; default its own
	transit         vault.Transit              // instead of the dev cipher (faultTransit still wraps it)
	realRedis       bool                       // a real redis-server instead of miniredis (skips without one)
	limits          proxy.Limits               // default proxy.DefaultLimits
	trustedProxies  []netip.Prefix             // peers whose X-Forwarded-For names the client
	timeouts        proxy.Timeouts             // of the three servers; default testTimeouts
}

// testTimeouts are short but leave the forward listener time for its upstream call.
var testTimeouts = proxy.Timeouts{ReadHeader: 2 * time.Second, Read: 5 * time.Second, Write: 20 * time.Second, Idle: 10 * time.Second}

// harness is chdproxy's three listeners on loopback, the upstream they forward
// to, and everything the tests look at afterwards.
type harness struct {
	t         *testing.T
	pol       *policy.Policy
	log       *logrus.Logger
	logs      *testenv.Buffer // the redacting logger's output
	audit     *testenv.Buffer // the audit trail
	auditor   *faultAuditor
	transit   *faultTransit
	mr        *miniredis.Miniredis // nil with harnessOptions.realRedis
	rs        *testenv.RedisServer // nil without harnessOptions.realRedis
	rdb       redis.UniversalClient
	vault     *vault.Vault
	keys      map[string]map[proxy.Role]string // merchant → role → secret
	sandbox   *smartpay.Sandbox                // nil with harnessOptions.upstream or upstreamURL
	upstream  *httptest.Server                 // nil with harnessOptions.upstreamURL
	listeners *proxy.Listeners
	client    *http.Client // the proxy's upstream client

	collect, forward, admin   string // base URLs
	colAddr, fwdAddr, admAddr string // host:port
	skipLeakCheckAtEnd        bool   // for the leak finder's own tests, which plant card data

	mu        sync.Mutex
	seen      [][]byte // every response (headers and body) the test received
	redisDown bool
	orderN    atomic.Int64
}

// newHarness builds the listeners through proxy.New and serves them, and
// registers a check, run when the test ends, that no test card data is in the
// logs, the audit trail, any response the test received, or Redis.
func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, logs: &testenv.Buffer{}, audit: &testenv.Buffer{}}

	base := o.upstreamURL
	if base == "" {
		up := o.upstream
		if up == nil {
			h.sandbox = smartpay.NewSandbox(smartpay.Options{})
			t.Cleanup(func() { h.sandbox.Close() })
			up = h.sandbox.Handler()
		}
		cfg := o.upstreamTLS
		if cfg == nil { // valid for the names an egress test may reach it by
			cfg = serverTLS(t, loopbackNames...)
		}
		h.upstream = serveTLS(t, up, cfg)
		base = h.upstream.URL
	}
	if o.upstreamBase != nil {
		base = o.upstreamBase(base)
	}
	h.pol = testPolicy(t, base)
	h.log = redact.NewLogger(h.logs, redact.New(h.pol.RedactRules()), h.pol.Hash)

	dev := h.startBackends(t, o)
	v, err := vault.New(vault.Config{
		Transit: h.transit, Store: vault.NewStore(h.rdb, vault.StoreOptions{}),
		TokenTTL: h.pol.Tokens.Card, CVVTTL: h.pol.Tokens.CVV, WalletTTL: h.pol.Tokens.Wallet,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.vault = v

	var keys *proxy.Keys
	keys, h.keys = generateKeys(t, merchantA, merchantB)
	h.auditor = &faultAuditor{inner: proxy.NewJSONLAudit(h.audit, h.pol.Hash)}
	h.listeners, err = proxy.New(proxy.Config{
		Policy: h.pol, Vault: h.vault, Keys: keys,
		Merchants: []proxy.Merchant{{ID: merchantA, Origins: []string{originA}}, {ID: merchantB, Origins: []string{originB}}},
		Log:       h.log, Audit: h.auditor,
		Redis: h.rdb, IdempotencySecret: []byte("harness idempotency secret, 32+ bytes"),
		Limits: o.limits, TrustedProxies: o.trustedProxies, VaultTimeout: o.vaultTimeout,
		Upstream: proxy.UpstreamOptions{RootCAs: theCA(t).Pool, ConnectTimeout: cmp.Or(o.connectTimeout, 2*time.Second), ResponseTimeout: o.responseTimeout},
		Dev:      dev, // the dev cipher, as `chdproxy dev` runs
	})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	t.Cleanup(h.listeners.Close)
	h.client = h.listeners.UpstreamClient()

	to := o.timeouts
	if to == (proxy.Timeouts{}) {
		to = testTimeouts
	}
	h.colAddr = h.serve(h.listeners.Collect, to)
	h.fwdAddr = h.serve(h.listeners.Forward, to)
	h.admAddr = h.serve(h.listeners.Admin, to)
	h.collect, h.forward, h.admin = "http://"+h.colAddr, "http://"+h.fwdAddr, "http://"+h.admAddr

	t.Cleanup(func() {
		if !h.skipLeakCheckAtEnd {
			h.assertNoCardData(t)
		}
	})
	return h
}

// startBackends starts Redis and the transit for o (see harnessOptions), the
// transit behind faultTransit, and reports whether it is the dev cipher.
func (h *harness) startBackends(t *testing.T, o harnessOptions) (dev bool) {
	t.Helper()
	if o.realRedis || suiteReal {
		h.rs = testenv.Redis(t)
		h.rdb = redisClient(t, h.rs.Addr)
	} else {
		h.mr = miniredis.RunT(t)
		h.rdb = redisClient(t, h.mr.Addr())
	}
	inner := o.transit
	if inner == nil && suiteReal {
		inner = suiteTransit(t)
	}
	if inner == nil {
		c, err := vault.NewLocalCipher()
		if err != nil {
			t.Fatal(err)
		}
		inner, dev = c, true
	}
	h.transit = &faultTransit{inner: inner}
	return dev
}

// serve runs handler on a loopback listener with the http.Server chdproxy uses,
// until the test ends, and returns its address.
func (h *harness) serve(handler http.Handler, to proxy.Timeouts) string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	srv := proxy.NewServer(ln.Addr().String(), handler, h.log, to)
	go srv.Serve(ln)
	h.t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// testPolicy is the default policy with both upstreams at base, linted with
// the dev rules when base is plain http.
func testPolicy(t testing.TB, base string) *policy.Policy {
	t.Helper()
	def, err := policy.LoadDefault()
	if err != nil {
		t.Fatalf("default policy: %v", err)
	}
	lint := policy.LintOptions{Dev: strings.HasPrefix(base, "http:")}
	pol, err := def.WithUpstreams(map[string]string{"chd-api": base, "api-gateway": base, "transaction-export": base}, lint)
	if err != nil {
		t.Fatalf("policy upstreams: %v", err)
	}
	return pol
}

// redisClient is a client of the Redis at addr, closed when t ends.
func redisClient(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{addr}})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// realVault starts a real Vault dev server for t and returns a transit client
// of it (timeout per call) with the keys made.
func realVault(t *testing.T, timeout time.Duration) (vault.Transit, *testenv.VaultServer) {
	t.Helper()
	vs := testenv.Vault(t)
	transit, err := transitOf(vs, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return transit, vs
}

// transitOf is a transit client of vs (timeout per call) with the keys made.
func transitOf(vs *testenv.VaultServer, timeout time.Duration) (vault.Transit, error) {
	transit, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: vs.Addr, Token: vs.Token, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := transit.EnsureKeys(ctx); err != nil {
		return nil, fmt.Errorf("EnsureKeys: %w", err)
	}
	return transit, nil
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

// closeRedis stops Redis (an outage): miniredis keeps its data for
// restartRedis and for the card-data check; a real redis-server is gone for good.
func (h *harness) closeRedis() {
	h.mu.Lock()
	h.redisDown = true
	h.mu.Unlock()
	if h.mr != nil {
		h.mr.Close()
		return
	}
	h.rs.Stop()
}

// needsMiniredis skips t in the real backend mode: it uses feature, which
// only miniredis has.
func needsMiniredis(t testing.TB, feature string) {
	t.Helper()
	if suiteReal {
		t.Skipf("%s=real: needs miniredis's %s", backendEnv, feature)
	}
}

// restartRedis brings miniredis back with its data.
func (h *harness) restartRedis(t testing.TB) {
	t.Helper()
	if h.mr == nil {
		t.Fatal("restartRedis: only miniredis restarts")
	}
	if err := h.mr.Restart(); err != nil {
		t.Fatalf("miniredis restart: %v", err)
	}
	h.mu.Lock()
	h.redisDown = false
	h.mu.Unlock()
}

// ---------------------------------------------------------------------------
// TLS for the upstreams.

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

// serveTLS serves h over TLS with cfg until t ends. Without Certificates in
// cfg it is httptest's own certificate, which the proxy does not trust.
func serveTLS(t testing.TB, h http.Handler, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// startTLSUpstream serves h over TLS with a certificate from the test CA.
func startTLSUpstream(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	return serveTLS(t, h, serverTLS(t))
}

// ---------------------------------------------------------------------------
// Upstreams and dependencies that misbehave on purpose.

// fakeUpstream records every request that arrives and answers with respond,
// or with {"status":1} when respond is nil.
type fakeUpstream struct {
	respond func(w http.ResponseWriter, r *http.Request)

	mu     sync.Mutex
	bodies map[string][][]byte // by path
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	if f.bodies == nil {
		f.bodies = map[string][][]byte{}
	}
	f.bodies[r.URL.Path] = append(f.bodies[r.URL.Path], b)
	f.mu.Unlock()
	if f.respond == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":1}`))
		return
	}
	f.respond(w, r)
}

// arrivals is the number of requests that reached path ("" for any path).
func (f *fakeUpstream) arrivals(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if path != "" {
		return len(f.bodies[path])
	}
	n := 0
	for _, b := range f.bodies {
		n += len(b)
	}
	return n
}

// body is the i-th body that reached path.
func (f *fakeUpstream) body(path string, i int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[path][i]
}

// hangUntil is a fakeUpstream answer that sends nothing until release closes
// or the client gives up.
func hangUntil(release <-chan struct{}) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

// faultTransit wraps a transit with switchable faults: every call fails with
// an error (Vault sealed or down), or takes hang and then fails with
// vault.ErrTimeout (a transit client with a per-call deadline of hang, as
// VaultTransit has).
type faultTransit struct {
	inner vault.Transit
	calls atomic.Int64
	mu    sync.Mutex
	err   error
	hang  time.Duration
}

func (x *faultTransit) setFail(err error) { x.mu.Lock(); x.err = err; x.mu.Unlock() }
func (x *faultTransit) setHang(d time.Duration) {
	x.mu.Lock()
	x.hang = d
	x.mu.Unlock()
}

func (x *faultTransit) fault(ctx context.Context) error {
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

func (x *faultTransit) Encrypt(ctx context.Context, k vault.Key, items []vault.EncryptItem) ([]vault.EncryptResult, error) {
	if err := x.fault(ctx); err != nil {
		return nil, err
	}
	return x.inner.Encrypt(ctx, k, items)
}

func (x *faultTransit) Decrypt(ctx context.Context, k vault.Key, items []vault.DecryptItem) ([]vault.DecryptResult, error) {
	if err := x.fault(ctx); err != nil {
		return nil, err
	}
	return x.inner.Decrypt(ctx, k, items)
}

func (x *faultTransit) HMAC(ctx context.Context, items []vault.HMACItem) ([]vault.HMACResult, error) {
	if err := x.fault(ctx); err != nil {
		return nil, err
	}
	return x.inner.HMAC(ctx, items)
}

func (x *faultTransit) Ping(ctx context.Context) error {
	if err := x.fault(ctx); err != nil {
		return err
	}
	return x.inner.Ping(ctx)
}

// DevOnly passes on whether the wrapped transit is the dev-only cipher.
func (x *faultTransit) DevOnly() bool {
	d, ok := x.inner.(interface{ DevOnly() bool })
	return ok && d.DevOnly()
}

// Observe passes the proxy's metrics on to the wrapped transit.
func (x *faultTransit) Observe(o vault.Observer) {
	if t, ok := x.inner.(vault.Observable); ok {
		t.Observe(o)
	}
}

// ObserveSync passes the proxy's metrics on to the wrapped auditor.
func (a *faultAuditor) ObserveSync(f func(int, time.Duration, error)) {
	if o, ok := a.inner.(proxy.SyncObservable); ok {
		o.ObserveSync(f)
	}
}

// faultAuditor is the JSONL auditor with a switch that makes every Write fail
// (a full disk, a closed pipe).
type faultAuditor struct {
	inner proxy.Auditor
	fail  atomic.Bool
}

var errAuditSink = errors.New("audit sink: no space left on device")

func (a *faultAuditor) Write(r proxy.AuditRecord) error {
	if a.fail.Load() {
		return errAuditSink
	}
	return a.inner.Write(r)
}

func (a *faultAuditor) Enqueue(r proxy.AuditRecord, failed func(error)) {
	if a.fail.Load() {
		failed(errAuditSink)
		return
	}
	a.inner.Enqueue(r, failed)
}

func (a *faultAuditor) Health() error {
	if a.fail.Load() {
		return errAuditSink
	}
	return a.inner.Health()
}

// trapListener is a TCP listener that only counts connections: a place
// chdproxy must never dial (callback_url, Host header, absolute-form targets).
type trapListener struct {
	ln    net.Listener
	conns atomic.Int64
}

func startTrapListener(t testing.TB) *trapListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &trapListener{ln: ln}
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

func (l *trapListener) addr() string { return l.ln.Addr().String() }

// assertNoConnection waits a moment for a late dial, then checks none came.
func (l *trapListener) assertNoConnection(t testing.TB) {
	t.Helper()
	time.Sleep(150 * time.Millisecond)
	if n := l.conns.Load(); n != 0 {
		t.Errorf("got %d connections to %s, want 0: chdproxy dialled an address the policy does not name", n, l.addr())
	}
}
