package proxy_test

// Hostile-input suite (see hostile_body_test.go): Vault, Redis and the upstream
// failing.

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

func TestHostile_VaultUnavailable(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	before := h.recKeys()
	h.transit.setFail(vault.ErrUnavailable)
	r := h.col(t, merchantA, cardFields(testcards.Decline, testcards.CVV), nil)
	wantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	wantFast(t, r, time.Second)
	if r.header.Get("Retry-After") == "" {
		t.Error("a 503 without Retry-After")
	}
	r = h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	wantFast(t, r, time.Second)
	h.wantUnready(t, "vault", "unavailable")
	if got := h.recKeys(); !slices.Equal(got, before) {
		t.Errorf("Redis keys changed while Vault was down: got %v, want %v", got, before)
	}
	h.wantUpstreamCalls(t, "", 0)
	h.transit.setFail(nil)
	if !h.hasCVV(t, merchantA, tok) {
		t.Fatal("the CVV was lost to the outage")
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
}

func TestHostile_VaultSealed(t *testing.T) {
	vs := testenv.Vault(t)
	tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: vs.Addr, Token: vs.Token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.EnsureKeys(context.Background()); err != nil {
		t.Fatalf("EnsureKeys: %v", err)
	}
	h := newHarness(t, harnessOptions{transit: tr})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	before := h.recKeys()
	if err := vs.Seal(); err != nil {
		t.Fatalf("seal: %v", err)
	}
	r := h.col(t, merchantA, cardFields(testcards.Decline, testcards.CVV), nil)
	wantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	wantFast(t, r, 2*time.Second)
	r = h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	wantFast(t, r, 2*time.Second)
	h.wantUnready(t, "vault", "sealed")
	if got := h.recKeys(); !slices.Equal(got, before) {
		t.Errorf("Redis keys changed while Vault was sealed: got %v, want %v", got, before)
	}
	if !h.hasCVV(t, merchantA, tok) {
		t.Error("the CVV was lost to the outage")
	}
	h.wantUpstreamCalls(t, "", 0)
	h.assertNoCardData(t, vs.Token)
}

func TestHostile_VaultSlowOnTokenize(t *testing.T) {
	// The production transit client against a Vault that accepts connections
	// and never answers.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: hang.URL, Token: "hostile-test-token", Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{transit: tr})
	r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), nil)
	wantError(t, r, http.StatusGatewayTimeout, "vault_timeout")
	wantFast(t, r, 2*time.Second)
	h.wantTokenKeys(t, 0)
	h.assertNoCardData(t, "hostile-test-token")
}

func TestHostile_VaultSlowOnDetokenize(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	h.transit.setHang(400 * time.Millisecond)
	r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, r, http.StatusGatewayTimeout, "vault_timeout")
	wantFast(t, r, 2*time.Second)
	h.wantUpstreamCalls(t, "", 0)
	h.transit.setHang(0)
	if !h.hasCVV(t, merchantA, tok) {
		t.Fatal("the CVV was lost to the slow Vault")
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
}

func TestHostile_RedisGone(t *testing.T) {
	needsMiniredis(t, "Restart (Redis back with its data)")
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	before := h.recKeys()
	h.closeRedis()
	r := h.col(t, merchantA, cardFields(testcards.Decline, testcards.CVV), nil)
	wantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	wantFast(t, r, 2*time.Second)
	r = h.col(t, merchantA, cardFields(testcards.Decline, testcards.CVV), headers{"Idempotency-Key": "during-outage"})
	wantError(t, r, http.StatusServiceUnavailable, "idempotency_unavailable")
	wantFast(t, r, 2*time.Second)
	r = h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	wantFast(t, r, 2*time.Second)
	h.wantUnready(t, "redis", "unreachable")
	h.restartRedis(t)
	if got := h.recKeys(); !slices.Equal(got, before) {
		t.Errorf("after the outage Redis holds %v, want only %v: a failed request left a record", got, before)
	}
	for _, k := range h.mr.Keys() {
		if strings.Contains(k, "idem") {
			t.Errorf("an idempotency record was left behind: %s", k)
		}
	}
	h.wantUpstreamCalls(t, "", 0)
	if !h.hasCVV(t, merchantA, tok) {
		t.Fatal("the CVV was lost to the outage")
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
}

func TestHostile_UpstreamTimesOutAfterTheRequestWasSent(t *testing.T) {
	release := make(chan struct{})
	up := &fakeUpstream{respond: hangUntil(release)}
	h := newHarness(t, harnessOptions{upstream: up, responseTimeout: 400 * time.Millisecond})
	t.Cleanup(func() { close(release) })
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, r, http.StatusGatewayTimeout, "upstream_timeout")
	wantFast(t, r, 3*time.Second)
	time.Sleep(500 * time.Millisecond) // room for a retry, if there were one
	if n := up.arrivals("/initPaymentHost2Host"); n != 1 {
		t.Errorf("the upstream saw %d requests, want exactly 1 (no retry after sending)", n)
	}
	// The CVV went out with that request; it cannot be sent a second time.
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusConflict, "cvv_unavailable")
	if n := up.arrivals(""); n != 1 {
		t.Errorf("the upstream saw %d requests, want 1", n)
	}
}

func TestHostile_UpstreamDropsConnectionAfterTheRequestWasSent(t *testing.T) {
	var calls atomic.Int64
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 { // the first call keeps the connection for the payment
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":2}`)
			return
		}
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantStatus(t, h.post(t, "/check", map[string]any{"order_id": h.orderID()}), http.StatusOK)
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusBadGateway, "upstream_result_unknown")
	time.Sleep(300 * time.Millisecond)
	if n := up.arrivals("/initPaymentHost2Host"); n != 1 {
		t.Errorf("the upstream saw %d payment requests, want exactly 1 (a reused connection must not be retried)", n)
	}
}

// stallableUpstream serves over TLS (test CA) behind a listener that, while stall
// is set, accepts TCP connections and then never answers on them: a TLS handshake
// that never completes, as with a hung upstream.
type stallableUpstream struct {
	*httptest.Server
	stall atomic.Bool
}

type stallListener struct {
	net.Listener
	u    *stallableUpstream
	mu   sync.Mutex
	held []net.Conn
}

func (l *stallListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.u.stall.Load() {
			return c, err
		}
		l.mu.Lock()
		l.held = append(l.held, c)
		l.mu.Unlock()
	}
}

func (l *stallListener) Close() error {
	l.mu.Lock()
	for _, c := range l.held {
		c.Close()
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

func startStallableUpstream(t *testing.T, h http.Handler) *stallableUpstream {
	t.Helper()
	u := &stallableUpstream{Server: httptest.NewUnstartedServer(h)}
	u.Listener = &stallListener{Listener: u.Listener, u: u}
	u.TLS = serverTLS(t)
	u.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

// tokenRecords counts the audit records of event with outcome on tok.
func tokenRecords(recs []map[string]any, event, outcome, tok string) int {
	n := 0
	for _, r := range recs {
		if r["event"] == event && r["outcome"] == outcome && r["token"] == tok {
			n++
		}
	}
	return n
}

// restoredRecords counts the audit records saying tok's consumed card data was put
// back.
func restoredRecords(recs []map[string]any, tok string) int {
	return tokenRecords(recs, "detokenize", "restored", tok)
}

// A TLS handshake that never completes: no byte of the payment was written, so the
// answer says nothing was sent (502 upstream_unavailable, not 504) at the connect
// timeout, and the CVV and the wallet token consumed for it are put back, usable
// once the upstream answers again.
func TestHostile_UpstreamTLSHandshakeStallsAndNothingIsSpent(t *testing.T) {
	up := &fakeUpstream{}
	srv := startStallableUpstream(t, up)
	const connect = 300 * time.Millisecond
	h := newHarness(t, harnessOptions{upstreamURL: srv.URL, connectTimeout: connect})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wallet := h.walletToken(t, "applePayDPan", testcards.DPANApple, "Visa")
	walletPayment := func() map[string]any {
		return paymentBody(h.orderID(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": wallet})
	}
	srv.stall.Store(true)
	for _, body := range []map[string]any{cardPayment(h.orderID(), tok), walletPayment()} {
		r := h.post(t, "/initPaymentHost2Host", body)
		wantError(t, r, http.StatusBadGateway, "upstream_unavailable")
		wantFast(t, r, connect+1500*time.Millisecond)
	}
	h.wantCVVKept(t, tok)
	recs := h.waitAudit(t, func(rs []map[string]any) bool {
		return restoredRecords(rs, tok) == 1 && restoredRecords(rs, wallet) == 1
	})
	if restoredRecords(recs, tok) != 1 || restoredRecords(recs, wallet) != 1 {
		t.Error("no audit record says the consumed CVV and wallet token were restored")
	}
	srv.stall.Store(false)
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
	wantStatus(t, h.post(t, "/initPaymentHost2Host", walletPayment()), http.StatusOK)
	if n := up.arrivals("/initPaymentHost2Host"); n != 2 {
		t.Fatalf("the upstream saw %d payments, want 2", n)
	}
	var got map[string]any
	if err := json.Unmarshal(up.body("/initPaymentHost2Host", 0), &got); err != nil || got["card_cvv"] != testcards.CVV {
		t.Error("the payment after the stall did not carry the restored CVV")
	}
}

// With every upstream slot held by a payment the upstream has not answered, another
// payment is refused 503 upstream_busy before its CVV is consumed, and pays once a
// slot is free.
func TestHostile_UpstreamBusyKeepsTheCVV(t *testing.T) {
	release := make(chan struct{})
	stop := sync.OnceFunc(func() { close(release) })
	t.Cleanup(stop)
	var hold atomic.Bool
	hold.Store(true)
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() {
			hangUntil(release)(w, r)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":1}`)
	}}
	h := newHarness(t, harnessOptions{upstream: up, limits: proxy.Limits{Upstream: 1, SlotWait: 200 * time.Millisecond}})
	held := h.cardToken(t, testcards.Success, testcards.CVV)
	tok := h.cardToken(t, testcards.Challenge, testcards.CVV)
	first := make(chan *response, 1)
	body := mustJSON(t, cardPayment(h.orderID(), held))
	go func() {
		r, err := h.fwdSend(merchantA, http.MethodPost, "/initPaymentHost2Host", body, nil)
		if err != nil {
			t.Error(err)
		}
		first <- r
	}()
	for deadline := time.Now().Add(5 * time.Second); up.arrivals("") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first payment never reached the upstream")
		}
	}
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusServiceUnavailable, "upstream_busy")
	h.wantCVVKept(t, tok)
	hold.Store(false)
	stop()
	if r := <-first; r != nil {
		wantStatus(t, r, http.StatusOK)
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
	if n := up.arrivals("/initPaymentHost2Host"); n != 2 {
		t.Errorf("the upstream saw %d payments, want 2", n)
	}
}

// With Vault hung, the refusal comes at the configured vault timeout (the bound of
// a request's Vault and Redis work), not at a fixed 5 s, on both listeners.
func TestHostile_VaultHungIsRefusedAtTheVaultTimeout(t *testing.T) {
	const timeout = time.Second
	h := newHarness(t, harnessOptions{vaultTimeout: timeout})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	h.transit.setHang(time.Minute)
	pay := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	col := h.col(t, merchantA, cardFields(testcards.Decline, testcards.CVV), nil)
	for _, r := range []*response{pay, col} {
		wantError(t, r, http.StatusGatewayTimeout, "vault_timeout")
		wantFast(t, r, timeout+1500*time.Millisecond) // the old bound was 5 s
	}
	h.transit.setHang(0)
	h.wantCVVKept(t, tok)
	h.wantUpstreamCalls(t, "", 0)
}
