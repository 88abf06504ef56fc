package proxy_test

// Hostile-input suite (see hostile_body_test.go): replayed and misused tokens,
// double spending of a CVV.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

func TestHostile_CVVTokenReplay(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusConflict, "cvv_unavailable")
	wantError(t, h.post(t, "/authorize", cardPayment(h.orderID(), tok)), http.StatusConflict, "cvv_unavailable")
	h.wantUpstreamCalls(t, "", 1)
}

func TestHostile_ConcurrentCVVDoubleSpend(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	const n = 12
	var wg sync.WaitGroup
	statuses := make([]string, n)
	for i := range n {
		body := mustJSON(t, cardPayment(h.orderID(), tok))
		wg.Go(func() {
			r, err := h.fwdSend(merchantA, http.MethodPost, "/initPaymentHost2Host", body, nil)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			statuses[i] = strconv.Itoa(r.status) + " " + r.code()
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count["200 "] != 1 || count["409 cvv_unavailable"] != n-1 {
		t.Errorf("got %v, want one 200 and %d × 409 cvv_unavailable", count, n-1)
	}
	if c := h.upstreamCalls(""); c != 1 {
		t.Errorf("upstream calls: got %d, want 1", c)
	}
}

func TestHostile_WalletTokenReplay(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.walletToken(t, "applePayDPan", testcards.DPANApple, "Visa")
	body := func() map[string]any {
		return paymentBody(h.orderID(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": tok})
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", body()), http.StatusOK)
	r := h.post(t, "/initPaymentHost2Host", body())
	if r.code() == "token_not_found" {
		wantError(t, r, http.StatusNotFound, "token_not_found")
	} else {
		wantError(t, r, http.StatusConflict, "wallet_token_consumed")
	}
	h.wantUpstreamCalls(t, "", 1)
}

func TestHostile_TokenInFieldThePolicyDoesNotName(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, extra := range []string{`"purpose_ref":"` + tok + `"`, `"meta":{"card":"` + tok + `"}`, `"items":["` + tok + `"]`, `"note":"pay with ` + tok + ` now"`} {
		wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), extra)), http.StatusBadRequest, "token_not_allowed")
	}
	wantError(t, h.post(t, "/refund", map[string]any{"order_id": h.orderID(), "amount": 100, "reason": tok}), http.StatusBadRequest, "token_not_allowed")
	wantError(t, h.post(t, "/check?t="+tok, map[string]any{"order_id": h.orderID()}), http.StatusBadRequest, "token_not_allowed")
	// withdrawal/init takes no CVV: the CVV field there is not injectable.
	wd := map[string]any{"account": "EUR-sandbox-payout", "order_id": h.orderID(), "amount": 100, "payment_method": "card", "customer_card_number": tok, "card_cvv": tok}
	wantError(t, h.post(t, "/withdrawal/init", wd), http.StatusBadRequest, "token_not_allowed")
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
}

func TestHostile_TwoTokensInOneRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tok2 := h.cardToken(t, testcards.Decline, testcards.CVV)
	body := paymentBody(h.orderID(), map[string]any{"card_number": tok, "card_cvv": tok2})
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "token_mismatch")
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok, tok2)
}

func TestHostile_PaymentMethodDoesNotMatchToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wallet := h.walletToken(t, "applePayDPan", testcards.DPANApple, "Visa")
	body := paymentBody(h.orderID(), map[string]any{"payment_method": "applePayDPan", "card_number": tok, "card_cvv": tok})
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "payment_method_mismatch")
	body = paymentBody(h.orderID(), map[string]any{"payment_method": "googlePayDPan", "apple_pay_dpan": wallet})
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "payment_method_mismatch")
	// A wallet token on a card-only route.
	wantError(t, h.post(t, "/authorize", paymentBody(h.orderID(), map[string]any{"card_number": wallet})), http.StatusBadRequest, "token_kind_not_allowed")
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
	// The wallet token was not consumed either.
	wantStatus(t, h.post(t, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": wallet})), http.StatusOK)
}

// tokenKey is the Redis key of merchant A's token record ("rec") or CVV ("cvv").
func tokenKey(space, tok string) string { return "chd:" + space + ":" + merchantA + ":{" + tok + "}" }

// With write access to Redis, an attacker extends a token's lifetime or changes its
// kind or BIN: the record no longer decrypts and nothing is injected or sent.
func TestHostile_TamperedTokenRecordIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	for _, edit := range []func(r map[string]any){
		func(r map[string]any) {
			r["expires_at"] = time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339Nano)
		},
		func(r map[string]any) { r["cvv_expires_at"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano) },
		func(r map[string]any) { r["card"].(map[string]any)["bin"] = testcards.Decline[:8] },
	} {
		tok := h.cardToken(t, testcards.Success, testcards.CVV)
		var rec map[string]any
		if err := json.Unmarshal([]byte(h.rdb.Get(ctx, tokenKey("rec", tok)).Val()), &rec); err != nil {
			t.Fatal(err)
		}
		edit(rec)
		h.rdb.Set(ctx, tokenKey("rec", tok), mustJSON(t, rec), redis.KeepTTL)
		wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusInternalServerError, "internal_error")
	}
	h.wantUpstreamCalls(t, "", 0)
}

// A consumed CVV's ciphertext, put back into Redis, is not injected again.
func TestHostile_RestoredCVVIsNotInjectedAgain(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	ct := h.rdb.Get(ctx, tokenKey("cvv", tok)).Val()
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
	h.rdb.Set(ctx, tokenKey("cvv", tok), ct, time.Minute)
	if h.hasCVV(t, merchantA, tok) {
		t.Error("a restored CVV shows as available")
	}
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusConflict, "cvv_unavailable")
	h.wantUpstreamCalls(t, "", 1)
}

// A card-on-file payment that does not ask for the CVV still ends it once the
// upstream accepted it (PCI DSS 3.3.1: no sensitive authentication data after
// authorization). A declined payment and a withdrawal leave it.
func TestHostile_CVVEndsAtAuthorizationEvenWhenNotInjected(t *testing.T) {
	var status atomic.Value
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":`+status.Load().(string)+`}`)
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	noCVV := func() map[string]any {
		return paymentBody(h.orderID(), map[string]any{"payment_method": "card", "card_number": tok})
	}
	status.Store("-1") // declined: the shopper may try again
	wantStatus(t, h.post(t, "/initPaymentHost2Host", noCVV()), http.StatusOK)
	status.Store("2")
	wd := map[string]any{"account": "EUR-sandbox-payout", "order_id": h.orderID(), "amount": 100, "payment_method": "card", "customer_card_number": tok}
	wantStatus(t, h.post(t, "/withdrawal/init", wd), http.StatusOK)
	h.wantCVVKept(t, tok)

	wantStatus(t, h.post(t, "/authorize", noCVV()), http.StatusOK)
	if h.hasCVV(t, merchantA, tok) {
		t.Error("the CVV outlived an authorization of its card")
	}
	recs := h.waitAudit(t, func(rs []map[string]any) bool { return dropRecords(rs, tok) > 0 })
	if dropRecords(recs, tok) != 1 {
		t.Errorf("got %d audit records of the CVV's deletion, want 1", dropRecords(recs, tok))
	}
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusConflict, "cvv_unavailable")
	if n := up.arrivals(""); n != 3 {
		t.Errorf("the upstream saw %d requests, want 3", n)
	}
}

// dropRecords counts the audit records of tok's CVV deleted after authorization.
func dropRecords(recs []map[string]any, tok string) int {
	return tokenRecords(recs, "cvv_drop", "success", tok)
}
