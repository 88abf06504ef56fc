package proxy_test

// Hostile-input suite (see hostile_body_test.go): Vault, Redis and the upstream
// failing.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
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
	h.wantUnready(t, "vault")
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
	h.wantUnready(t, "vault")
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
	h.wantUnready(t, "redis")
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
