package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/smartpay"
)

// The fault tests of issue 16 on real servers: chdproxy serve (a child process) on a
// real Vault, a redis-server and a TLS sandbox, with shoppers who retry every 5xx
// under the same Idempotency-Key, as a merchant backend does.

// countingUpstream is the sandbox behind a counter of payments by order id, which
// can be hung: a payment that arrives while it is hung is read whole, then waits
// until the hang ends and is processed, as by an upstream that received it.
type countingUpstream struct {
	sandbox *smartpay.Sandbox
	hung    atomic.Bool
	mu      sync.Mutex
	orders  map[string]int // payments received, by order id
}

func newCountingUpstream() *countingUpstream {
	return &countingUpstream{sandbox: smartpay.NewSandbox(smartpay.Options{}), orders: map[string]int{}}
}

func (u *countingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/initPaymentHost2Host" {
		b, _ := io.ReadAll(r.Body)
		var p struct {
			OrderID string `json:"order_id"`
		}
		_ = json.Unmarshal(b, &p)
		u.mu.Lock()
		u.orders[p.OrderID]++
		u.mu.Unlock()
		for u.hung.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		r = r.WithContext(context.WithoutCancel(r.Context()))
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	u.sandbox.Handler().ServeHTTP(w, r)
}

// duplicates are the order ids the upstream received more than once.
func (u *countingUpstream) duplicates() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var d []string
	for id, n := range u.orders {
		if n > 1 {
			d = append(d, fmt.Sprintf("%s×%d", id, n))
		}
	}
	return d
}

func (u *countingUpstream) payments() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, c := range u.orders {
		n += c
	}
	return n
}

// stallingListener holds the TLS handshake of every connection accepted while stall
// is set until it is cleared: the client's connect timeout runs out first.
type stallingListener struct {
	net.Listener
	stall *atomic.Bool
}

func (l stallingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || !l.stall.Load() {
		return c, err
	}
	return &stalledConn{Conn: c, stall: l.stall}, nil
}

type stalledConn struct {
	net.Conn
	stall *atomic.Bool
}

func (c *stalledConn) Read(p []byte) (int, error) {
	for c.stall.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	return c.Conn.Read(p)
}

// shopStats is what the shoppers saw.
type shopStats struct {
	mu         sync.Mutex
	requests   int
	codes      map[string]int // by "status code", every answer
	paid       int            // payments answered 200
	unknown    int            // payments whose result is unknown (502/504 after sending): checked, not retried
	violations []string
	payKeys    map[string]payment // by Idempotency-Key: the last attempt of each payment
}

type payment struct {
	order, tok string
	status     int
	code       string
}

func newShopStats() *shopStats {
	return &shopStats{codes: map[string]int{}, payKeys: map[string]payment{}}
}

func (s *shopStats) saw(status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.codes[fmt.Sprintf("%d %s", status, code)]++
	if status == http.StatusInternalServerError {
		s.violations = append(s.violations, "a 500: "+code)
	}
}

func (s *shopStats) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

// errCode is the error code of an answer ("" for none).
func errCode(body map[string]any) string {
	if e, ok := body["error"].(map[string]any); ok {
		code, _ := e["code"].(string)
		return code
	}
	return ""
}

// resultUnknown reports an answer after which the request may have been processed:
// the backend calls /check instead of retrying.
func resultUnknown(status int, code string) bool {
	return status == http.StatusBadGateway && code == "upstream_result_unknown" || status == http.StatusGatewayTimeout && code == "upstream_timeout"
}

// shopper tokenizes then pays, again and again until ctx ends, retrying every 5xx
// and 409 idempotency_in_progress under the same Idempotency-Key; a payment whose
// result is unknown is not retried. A payment in progress when ctx ends is finished.
func (e *serveEnv) shopper(ctx context.Context, name string, st *shopStats) {
	for i := 0; ctx.Err() == nil; i++ {
		tok, ok := e.tokenizeRetrying(name, i, st)
		if !ok {
			continue
		}
		order := fmt.Sprintf("soak-%s-%d", name, i)
		e.payRetrying(order, tok, "pay-"+order, st)
	}
}

// retryUntil bounds the retries of one request: long enough to outlast every fault.
const retryUntil = 60 * time.Second

func (e *serveEnv) tokenizeRetrying(name string, i int, st *shopStats) (string, bool) {
	hdr := map[string]string{"Idempotency-Key": fmt.Sprintf("tok-%s-%d", name, i)}
	fields := map[string]string{
		"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear,
		"card_cvv": testcards.CVV, "card_holder": testcards.Holder,
	}
	for start := time.Now(); time.Since(start) < retryUntil; time.Sleep(150 * time.Millisecond) {
		status, body, err := e.call("http://"+e.collect+"/v1/tokens", "Bearer "+e.pk, hdr, fields)
		if err != nil {
			st.violation("tokenize: no answer: %v", err)
			return "", false
		}
		st.saw(status, errCode(body))
		switch {
		case status == http.StatusCreated:
			tok, _ := body["token"].(string)
			return tok, tok != ""
		case status >= 500, status == http.StatusConflict && errCode(body) == "idempotency_in_progress":
			continue
		default:
			st.violation("tokenize: %d %s", status, errCode(body))
			return "", false
		}
	}
	st.violation("tokenize %d of %s: still refused after %v", i, name, retryUntil)
	return "", false
}

func (e *serveEnv) payRetrying(order, tok, key string, st *shopStats) {
	hdr := map[string]string{"Idempotency-Key": key}
	nothingSent := "" // the last "nothing was sent" refusal, after which the CVV must still be usable
	for start := time.Now(); time.Since(start) < retryUntil; time.Sleep(150 * time.Millisecond) {
		status, body, err := e.pay(order, tok, hdr)
		if err != nil {
			st.violation("pay %s: no answer: %v", order, err)
			return
		}
		code := errCode(body)
		st.saw(status, code)
		st.mu.Lock()
		st.payKeys[key] = payment{order: order, tok: tok, status: status, code: code}
		st.mu.Unlock()
		switch {
		case status == http.StatusOK:
			st.mu.Lock()
			st.paid++
			st.mu.Unlock()
			return
		case resultUnknown(status, code):
			st.mu.Lock()
			st.unknown++
			st.mu.Unlock()
			return // the backend calls /check for its order; never a blind retry
		case code == "cvv_unavailable" && nothingSent != "":
			st.violation("pay %s: the CVV was lost to a refusal that said nothing was sent (%s)", order, nothingSent)
			return
		case status >= 500:
			nothingSent = fmt.Sprintf("%d %s", status, code)
		case status == http.StatusConflict && code == "idempotency_in_progress":
		default:
			st.violation("pay %s: %d %s", order, status, code)
			return
		}
	}
	st.violation("pay %s: still refused after %v", order, retryUntil)
}

// unlimited lifts the rate limits: the shoppers are many clients behind one address.
const unlimited = "limits: {per_key_rate: 100000, per_key_burst: 100000, per_client_rate: 100000, per_client_burst: 100000}\n"

// killAndRestartRedis kills redis-server (SIGKILL), leaves it down for down, and
// starts it again on its address with its data (RedisDurable).
func killAndRestartRedis(t *testing.T, rs *testenv.RedisServer, down time.Duration) {
	t.Helper()
	rs.Stop()
	time.Sleep(down)
	if err := rs.Restart(); err != nil {
		t.Fatalf("redis-server did not come back: %v", err)
	}
}

// noCardDataIn fails t when the log holds a test card number.
func noCardDataIn(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, pan := range []string{testcards.Success, testcards.Decline} {
		if bytes.Contains(b, []byte(pan)) {
			t.Errorf("a card number is in the serve log %s", path)
		}
	}
}

// halfWrittenTokens are the tokens in Redis that hold a record without their CVV or
// a CVV without a record, minus those whose CVV a payment spent.
func halfWrittenTokens(t *testing.T, addr string, spent map[string]bool) []string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	recs, err := rdb.Keys(ctx, "chd:rec:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	cvvs, err := rdb.Keys(ctx, "chd:cvv:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	tokOf := func(k string) string { return k[strings.LastIndex(k, ":")+1:] }
	has := map[string]int{}
	for _, k := range recs {
		has[tokOf(k)] |= 1
	}
	for _, k := range cvvs {
		has[tokOf(k)] |= 2
	}
	var half []string
	for tok, h := range has {
		if h == 2 || h == 1 && !spent[strings.Trim(tok, "{}")] {
			half = append(half, tok)
		}
	}
	return half
}

// Redis killed (SIGKILL) and restarted with its data while shoppers pay: while it
// is down every answer is a clean 503 that says nothing was done, fast; once it is
// back chdproxy serves again within seconds; no token is half-written; the keys
// used during the outage are usable after it (the refused payments then pay, their
// CVVs intact); a payment made before the outage replays; no order is paid twice.
func TestRedisKilledAndRestartedMidTraffic(t *testing.T) {
	rs := testenv.RedisDurable(t)
	up := newCountingUpstream()
	e := newServeEnvWith(t, envOptions{redis: rs}, up, "shutdown: {delay: 0s}\n"+unlimited)
	srv := e.startServe(t)
	before, during := e.token(t), e.token(t)
	hdr := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }
	if status, _, err := e.pay("redis-before", before, hdr("redis-before")); err != nil || status != http.StatusOK {
		t.Fatalf("the payment before the outage: %d %v", status, err)
	}

	st := newShopStats()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { e.shopper(ctx, fmt.Sprintf("r%d", i), st) })
	}
	time.Sleep(500 * time.Millisecond)
	rs.Stop()
	for _, probe := range []struct {
		name   string
		do     func() (int, map[string]any, error)
		status int
		code   string
	}{
		{"pay with a key", func() (int, map[string]any, error) { return e.pay("redis-during", during, hdr("redis-during")) }, 503, "idempotency_unavailable"},
		{"pay without a key", func() (int, map[string]any, error) { return e.pay("redis-during-nokey", during, nil) }, 503, "vault_unavailable"},
		{"tokenize", func() (int, map[string]any, error) {
			return e.call("http://"+e.collect+"/v1/tokens", "Bearer "+e.pk, nil, map[string]string{
				"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear, "card_cvv": testcards.CVV,
			})
		}, 503, "vault_unavailable"},
	} {
		start := time.Now()
		status, body, err := probe.do()
		if err != nil || status != probe.status || errCode(body) != probe.code {
			t.Errorf("%s while Redis is down: got %d %q %v, want %d %s", probe.name, status, errCode(body), err, probe.status, probe.code)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s while Redis is down took %v, want a prompt refusal", probe.name, took)
		}
	}
	if status, body := e.readyz(); status != http.StatusServiceUnavailable || !strings.Contains(body, "redis") {
		t.Errorf("/readyz while Redis is down: %d %s, want 503 naming redis", status, body)
	}
	time.Sleep(time.Second)
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for status, _ := e.readyz(); status != http.StatusOK; status, _ = e.readyz() {
		if time.Since(back) > 5*time.Second {
			t.Fatalf("/readyz still %d 5s after Redis came back", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("ready again %v after redis-server answered", time.Since(back))
	time.Sleep(time.Second) // shoppers work on the restarted Redis
	stop()
	wg.Wait()

	if status, body, err := e.pay("redis-during", during, hdr("redis-during")); err != nil || status != http.StatusOK {
		t.Errorf("the payment refused during the outage, retried with its key: %d %q %v, want 200 (key usable, CVV kept)", status, errCode(body), err)
	}
	status, body, err := e.pay("redis-before", before, hdr("redis-before"))
	if err != nil || status != http.StatusOK || body["status"] == nil {
		t.Errorf("the payment made before the outage, retried: %d %v %v, want its 200 replayed", status, body, err)
	}
	if d := up.duplicates(); len(d) > 0 {
		t.Errorf("orders the upstream received more than once: %v", d)
	}
	spent := map[string]bool{before: true, during: true}
	for _, p := range st.payKeys {
		spent[p.tok] = true
	}
	if half := halfWrittenTokens(t, e.redis, spent); len(half) > 0 {
		t.Errorf("half-written tokens after the outage: %v", half)
	}
	for _, v := range st.violations {
		t.Error(v)
	}
	t.Logf("%d requests, %d paid, %d result unknown, %d payments at the upstream; answers: %v", st.requests, st.paid, st.unknown, up.payments(), st.codes)
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-srv.exited
	noCardDataIn(t, srv.log)
}

// soakDuration is how long the soak runs: CHDPROXY_SOAK=1 for five minutes (or a
// duration, CHDPROXY_SOAK=90s), else a short run in the normal suite.
func soakDuration() time.Duration {
	v := os.Getenv("CHDPROXY_SOAK")
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	if v == "1" {
		return 5 * time.Minute
	}
	return 24 * time.Second
}

// The soak with faults injected (issue 16, "Done when"): shoppers tokenize then pay
// unique orders under Idempotency-Keys, retrying every 5xx with the same key and
// stopping at "result unknown", while a fault injector cycles through the upstream
// hung for 2 s, Vault stopped (SIGSTOP) for 2 s, redis-server killed and restarted,
// and the upstream's TLS handshake stalled for 2 s. No order reaches the upstream
// twice, no refusal that says nothing was sent costs a CVV, no key stays stuck
// (every key answers afterwards, without reaching the upstream again), no 500s, no
// card data in the log.
func TestSoakWithFaults(t *testing.T) {
	rs, vs := testenv.RedisDurable(t), testenv.Vault(t)
	up := newCountingUpstream()
	var stall atomic.Bool
	e := newServeEnvWith(t, envOptions{
		redis: rs, vault: vs, vaultTimeout: "1s", upstream: ", connect_timeout: 1s, response_timeout: 1500ms",
		wrapLn: func(ln net.Listener) net.Listener { return stallingListener{ln, &stall} },
	}, up, "shutdown: {delay: 0s}\n"+unlimited)
	srv := e.startServe(t)

	st := newShopStats()
	ctx, stop := context.WithTimeout(context.Background(), soakDuration())
	defer stop()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { e.shopper(ctx, fmt.Sprintf("s%d", i), st) })
	}
	faults := map[string]int{}
	cycle := []struct {
		name string
		do   func()
	}{
		{"upstream hung 2s", func() { up.hung.Store(true); time.Sleep(2 * time.Second); up.hung.Store(false) }},
		{"vault stopped 2s", func() {
			_ = syscall.Kill(vs.Pid(), syscall.SIGSTOP)
			time.Sleep(2 * time.Second)
			_ = syscall.Kill(vs.Pid(), syscall.SIGCONT)
		}},
		{"redis killed and restarted", func() { killAndRestartRedis(t, rs, time.Second) }},
		{"upstream TLS handshake stalled 2s", func() {
			stall.Store(true)
			e.upstream.Config.SetKeepAlivesEnabled(false) // closes idle connections: new ones stall
			time.Sleep(2 * time.Second)
			e.upstream.Config.SetKeepAlivesEnabled(true)
			stall.Store(false)
		}},
	}
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second): // recovery between faults
			f := cycle[i%len(cycle)]
			f.do()
			faults[f.name]++
		}
	}
	wg.Wait()

	// Afterwards every key answers, once a lease has passed, and reaches nothing new.
	time.Sleep(11 * time.Second)
	before := up.payments()
	for _, key := range slices.Sorted(maps.Keys(st.payKeys)) {
		p := st.payKeys[key]
		status, body, err := e.pay(p.order, p.tok, map[string]string{"Idempotency-Key": key})
		code := errCode(body)
		switch {
		case err != nil:
			t.Errorf("%s afterwards: %v", key, err)
		case status == http.StatusConflict && code == "idempotency_in_progress":
			t.Errorf("%s is stuck: 409 idempotency_in_progress a lease after the soak", key)
		case status == http.StatusInternalServerError:
			t.Errorf("%s afterwards: 500", key)
		}
	}
	if n := up.payments() - before; n > 0 {
		t.Logf("%d payments reached the upstream when every key was retried afterwards (keys whose last answer was a nothing-sent refusal)", n)
	}
	if d := up.duplicates(); len(d) > 0 {
		t.Errorf("orders the upstream received more than once: %v", d)
	}
	for _, v := range st.violations {
		t.Error(v)
	}
	t.Logf("soak %v: %d requests, %d payments paid, %d result unknown, %d payments at the upstream, duplicates %d; faults %v; answers %v",
		soakDuration(), st.requests, st.paid, st.unknown, up.payments(), len(up.duplicates()), faults, st.codes)
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-srv.exited
	noCardDataIn(t, srv.log)
}
