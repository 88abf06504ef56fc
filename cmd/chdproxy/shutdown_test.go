package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/smartpay"
)

// serveEnv is what `chdproxy serve` runs on in the fault tests: a real Vault dev
// server and redis-server, an upstream over TLS (test CA) and a config file.
type serveEnv struct {
	cfg, audit              string // paths
	collect, forward, admin string // host:port
	pk, sk                  string
	redis                   string // host:port
	upstream                *httptest.Server
}

// newServeEnv writes a serve config whose upstreams are up, served over TLS, with
// extra appended to the file.
func newServeEnv(t *testing.T, up http.Handler, extra string) *serveEnv {
	t.Helper()
	return newServeEnvWith(t, envOptions{}, up, extra)
}

// envOptions are the fault tests' choices of servers for a serveEnv.
type envOptions struct {
	redis  *testenv.RedisServer            // default: testenv.Redis
	vault  *testenv.VaultServer            // default: testenv.Vault
	wrapLn func(net.Listener) net.Listener // wraps the upstream's TCP listener (a stalling one)
	// vaultTimeout is vault.timeout (default 5s); upstream is added to the upstream
	// mapping (", connect_timeout: 1s").
	vaultTimeout, upstream string
}

// newServeEnvWith is newServeEnv on o's servers.
func newServeEnvWith(t *testing.T, o envOptions, up http.Handler, extra string) *serveEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	rs, vs := o.redis, o.vault
	if rs == nil {
		rs = testenv.Redis(t)
	}
	if vs == nil {
		vs = testenv.Vault(t)
	}
	srv, caPEM := tlsUpstream(t, up, o.wrapLn)
	dir, write := checkConfigFixture(t)
	polText := shippedPolicyFor(t, srv.URL)
	e := &serveEnv{upstream: srv, audit: filepath.Join(dir, "audit.jsonl"), pk: "pk_" + strings.Repeat("c", 32), sk: "sk_" + strings.Repeat("d", 32), redis: rs.Addr}
	addrs := make([]string, 3)
	for i := range addrs {
		p, err := testenv.FreePort(false)
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	e.collect, e.forward, e.admin = addrs[0], addrs[1], addrs[2]
	e.cfg = write("chdproxy.yaml", fmt.Sprintf(`policy: %s
audit: %s
listen: {collect: {addr: "%s"}, forward: {addr: "%s"}, admin: {addr: "%s"}}
vault: {address: "%s", token_file: %s, create_keys: true, timeout: %s}
redis: {addrs: ["%s"]}
idempotency: {secret_file: %s}
upstream: {ca_file: %s%s}
merchants:
  - id: m1
    keys: [{role: publishable, digest: "%s"}, {role: secret, digest: "%s"}]
%s`, write("policy.yaml", polText), e.audit, e.collect, e.forward, e.admin, vs.Addr, write("vault-token", vs.Token), cmp.Or(o.vaultTimeout, "5s"), rs.Addr,
		write("idem", strings.Repeat("k", 40)), write("ca.pem", string(caPEM)), o.upstream, proxy.KeyDigest(e.pk), proxy.KeyDigest(e.sk), extra))
	return e
}

// readyz is the admin listener's /readyz status and body ("" when unreachable).
func (e *serveEnv) readyz() (int, string) {
	resp, err := http.Get("http://" + e.admin + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// call sends a JSON body and returns the status and the decoded answer.
func (e *serveEnv) call(url, auth string, hdr map[string]string, body any) (int, map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", auth)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// token tokenizes the sandbox's success card with a CVV.
func (e *serveEnv) token(t *testing.T) string {
	t.Helper()
	status, tok, err := e.call("http://"+e.collect+"/v1/tokens", "Bearer "+e.pk, nil, map[string]string{
		"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear,
		"card_cvv": testcards.CVV, "card_holder": testcards.Holder,
	})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("tokenize: got %d %v %v, want 201", status, tok, err)
	}
	return tok["token"].(string)
}

// pay pays orderID with tok through the forward listener, with hdr's headers.
func (e *serveEnv) pay(orderID, tok string, hdr map[string]string) (int, map[string]any, error) {
	body := map[string]any{
		"payment_method": "card", "account": "EUR-sandbox", "amount": 1000, "currency": "EUR", "order_id": orderID,
		"merchant_site": "https://merchant.site", "customer_first_name": "John", "customer_last_name": "Doe",
		"customer_address": "10 Downing Street", "customer_city": "London", "customer_zip_code": "121165",
		"customer_country": "GB", "customer_phone": "+442079460612", "customer_email": "john@example.com",
		"customer_ip_address": "127.0.0.1", "card_number": tok, "card_cvv": tok,
	}
	h := map[string]string{"Proxy-Authorization": "Bearer " + e.sk}
	for k, v := range hdr {
		h[k] = v
	}
	return e.call("http://"+e.forward+"/initPaymentHost2Host", testcards.BasicAuth, h, body)
}

// heldUpstream is the sandbox behind a gate on payments: hold is called with each
// payment's number (from 1) and returns when the sandbox may handle it. The
// body is read first and the sandbox runs even when the caller has gone, as a
// real upstream that received a request does.
func heldUpstream(hold func(n int64)) (http.Handler, *atomic.Int64) {
	sandbox := smartpay.NewSandbox(smartpay.Options{})
	var pays atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/initPaymentHost2Host" {
			b, _ := io.ReadAll(r.Body)
			hold(pays.Add(1))
			r = r.WithContext(context.WithoutCancel(r.Context()))
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		sandbox.Handler().ServeHTTP(w, r)
	}), &pays
}

// SIGTERM with payments held upstream: /readyz says "draining" at once, new
// connections are refused after the delay, every payment in flight gets its real
// answer, its outcome reaches the audit file, and serve returns nil (exit 0).
func TestSIGTERMDrainsPaymentsHeldUpstream(t *testing.T) {
	const hold, delay, n = 11 * time.Second, time.Second, 4 // hold: longer than the old hard-coded 10s drain
	up, pays := heldUpstream(func(int64) { time.Sleep(hold) })
	e := newServeEnv(t, up, fmt.Sprintf("shutdown: {delay: %v}\n", delay))
	ctx, cancel := context.WithCancel(context.Background()) // SIGTERM ends runServe's context
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", e.cfg}) }()
	waitReady(t, "http://"+e.admin+"/readyz", done)
	type result struct {
		status int
		body   map[string]any
		err    error
	}
	results := make(chan result, n)
	for i := range n {
		tok := e.token(t)
		go func() {
			s, b, err := e.pay(fmt.Sprintf("drain-%c", 'a'+i), tok, nil)
			results <- result{s, b, err}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); pays.Load() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d payments reached the upstream", pays.Load(), n)
		}
	}
	cancel()
	stopped := time.Now()
	for status, body := e.readyz(); status != http.StatusServiceUnavailable || !strings.Contains(body, `"draining"`); status, body = e.readyz() {
		if time.Since(stopped) > delay/2 {
			t.Fatalf("/readyz during the drain: got %d %s, want 503 draining", status, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Until(stopped.Add(delay + 300*time.Millisecond)))
	if c, err := net.DialTimeout("tcp", e.forward, time.Second); err == nil {
		c.Close()
		t.Error("the forward listener accepted a connection after the delay")
	}
	if status, body := e.readyz(); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while payments drain: got %d %s, want 503 draining", status, body)
	}
	for range n {
		r := <-results
		if r.err != nil || r.status != http.StatusOK || r.body["status"] != 2.0 {
			t.Errorf("a payment in flight at SIGTERM: got %d %v %v, want 200 with status 2", r.status, r.body, r.err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v, want nil after a clean drain", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after the drain")
	}
	audit, err := os.ReadFile(e.audit)
	if err != nil {
		t.Fatal(err)
	}
	if got := countOutcomes(audit, "inject", "success"); got != n {
		t.Errorf("inject success records in the audit file: got %d, want %d (flushed before exit)", got, n)
	}
}

// countOutcomes counts the audit records of event with outcome.
func countOutcomes(audit []byte, event, outcome string) int {
	n := 0
	for _, line := range bytes.Split(audit, []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && rec["event"] == event && rec["outcome"] == outcome {
			n++
		}
	}
	return n
}

// TestServeHelperProcess is `chdproxy serve` as a child process of the fault tests
// (CHDPROXY_SERVE_HELPER names the config); on its own it skips.
func TestServeHelperProcess(t *testing.T) {
	cfg := os.Getenv("CHDPROXY_SERVE_HELPER")
	if cfg == "" {
		t.Skip("runs only as the child process of a fault test")
	}
	if err := runServe([]string{"--config", cfg}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child is `chdproxy serve` running as a child process; exited reports its end.
type child struct {
	cmd    *exec.Cmd
	exited chan error
	log    string // its standard output and error
}

// startServe runs `chdproxy serve` on e's config as a child process, ready.
func (e *serveEnv) startServe(t *testing.T) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$"), exited: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), "CHDPROXY_SERVE_HELPER="+e.cfg)
	c.log = filepath.Join(t.TempDir(), "serve.log")
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() { _ = c.cmd.Process.Kill() })
	waitReady(t, "http://"+e.admin+"/readyz", c.exited)
	return c
}

// chdproxy killed (SIGKILL) while a payment is held upstream, then restarted: the
// Idempotency-Key of the killed request was marked sent before its first byte left,
// so the kill cannot free it. The retry after the restart is answered once the dead
// claim's 10 s lease has passed unrenewed, with 502 upstream_result_unknown replayed
// (call /check), and never reaches the upstream: the upstream, which completed the
// payment it received, saw it exactly once. Further retries get the same replay at
// once. The restarted process stops on SIGTERM with exit status 0.
func TestKilledAfterSendTheRetryIsResultUnknown(t *testing.T) {
	release := make(chan struct{})
	up, pays := heldUpstream(func(n int64) {
		if n == 1 {
			<-release
		}
	})
	e := newServeEnv(t, up, "shutdown: {delay: 0s}\n")
	first := e.startServe(t)
	tok := e.token(t)
	idem := map[string]string{"Idempotency-Key": "killed-order"}
	killed := make(chan error, 1)
	go func() { _, _, err := e.pay("killed-order", tok, idem); killed <- err }()
	for deadline := time.Now().Add(10 * time.Second); pays.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the payment never reached the upstream")
		}
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	if err := <-killed; err == nil {
		t.Fatal("the killed process answered the payment")
	}
	close(release) // the upstream completes the payment it received
	rdb := redis.NewClient(&redis.Options{Addr: e.redis})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "chd:idem:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("idempotency records after the kill: %v %v, want the one claim", keys, err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(rdb.Get(context.Background(), keys[0]).Val()), &rec); err != nil || rec["state"] != "sent" {
		t.Fatalf("the dead request's record: %v %v, want state sent", rec, err)
	}
	if ttl := rdb.PTTL(context.Background(), keys[0]).Val(); ttl < time.Hour {
		t.Errorf("the sent claim lives %v more, want the record's lifetime (a lease would free the key)", ttl)
	}

	second := e.startServe(t)
	start := time.Now()
	status, body, err := e.pay("killed-order", tok, idem)
	if err != nil || status != http.StatusBadGateway || body["error"].(map[string]any)["code"] != "upstream_result_unknown" {
		t.Fatalf("the retry after the restart: got %d %v %v, want 502 upstream_result_unknown", status, body, err)
	}
	if took := time.Since(start); took > 13*time.Second {
		t.Errorf("the retry took %v, want it answered once the 10s lease passed unrenewed", took)
	}
	start = time.Now()
	if status, _, err := e.pay("killed-order", tok, idem); err != nil || status != http.StatusBadGateway || time.Since(start) > 2*time.Second {
		t.Errorf("the next retry: got %d %v after %v, want the 502 replayed at once", status, err, time.Since(start))
	}
	if n := pays.Load(); n != 1 {
		t.Errorf("payments at the upstream: got %d, want 1 (a retry paid again)", n)
	}
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second.exited:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v, want exit status 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("serve did not exit within 60s of SIGTERM")
	}
}
