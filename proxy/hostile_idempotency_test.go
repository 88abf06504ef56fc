package proxy_test

// Hostile-input suite (see hostile_body_test.go): idempotency keys replayed,
// reused and raced.

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestHostile_IdempotentReplayMakesNoSecondUpstreamCall(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := mustJSON(t, cardPayment(h.orderID(), tok))
	idem := headers{"Idempotency-Key": "pay-once-1"}
	first := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
	wantStatus(t, first, http.StatusOK)
	second := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
	wantStatus(t, second, http.StatusOK)
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("replayed answer differs:\n got %s\nwant %s", second.body, first.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Error("the replay is not marked Idempotent-Replayed")
	}
	h.wantUpstreamCalls(t, "/initPaymentHost2Host", 1)
}

func TestHostile_IdempotencyKeyReusedWithAnotherBody(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	idem := headers{"Idempotency-Key": "pay-once-2"}
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), idem), http.StatusOK)
	other := cardPayment(h.orderID(), tok)
	other["amount"] = 999999
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", other, idem), http.StatusConflict, "idempotency_key_reused")
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/authorize", cardPayment(h.orderID(), tok), idem), http.StatusConflict, "idempotency_key_reused")
	h.wantUpstreamCalls(t, "", 1)
}

func TestHostile_IdempotencyConcurrentDuplicates(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := mustJSON(t, cardPayment(h.orderID(), tok))
	const n = 20
	var wg sync.WaitGroup
	resps := make([]*response, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := h.fwdSend(merchantA, http.MethodPost, "/initPaymentHost2Host", body, headers{"Idempotency-Key": "pay-once-concurrent"})
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resps[i] = r
		})
	}
	close(start)
	wg.Wait()
	for i, r := range resps {
		if r == nil {
			continue
		}
		if r.status != http.StatusOK || !bytes.Equal(r.body, resps[0].body) {
			t.Errorf("request %d: got %d %q, want 200 and the first answer", i, r.status, r.code())
		}
	}
	if c := h.upstreamCalls("/initPaymentHost2Host"); c != 1 {
		t.Errorf("upstream calls: got %d, want exactly 1", c)
	}
}

func TestHostile_IdempotencyKeyOfAnotherMerchant(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := mustJSON(t, cardPayment(h.orderID(), tok))
	idem := headers{"Idempotency-Key": "shared-key"}
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, idem), http.StatusOK)
	// Merchant B replays A's request with A's key: it must not get A's stored answer.
	r := h.fwd(t, merchantB, http.MethodPost, "/initPaymentHost2Host", body, idem)
	wantError(t, r, http.StatusNotFound, "token_not_found")
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Error("merchant B got merchant A's stored answer")
	}
	h.wantUpstreamCalls(t, "", 1)
}

func TestHostile_IdempotentTokenizeReplay(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	idem := headers{"Idempotency-Key": "tokenize-once"}
	first := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), idem)
	wantStatus(t, first, http.StatusCreated)
	second := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), idem)
	wantStatus(t, second, http.StatusCreated)
	if first.object(t)["token"] != second.object(t)["token"] {
		t.Error("a replayed tokenize made a second token")
	}
	wantError(t, h.col(t, merchantA, cardFields(testcards.Decline, testcards.CVV), idem), http.StatusConflict, "idempotency_key_reused")
	h.wantTokenKeys(t, 2) // one record and its CVV
	h.assertNoCardData(t) // the stored answer (base64 in Redis) is read too
}

// Replays sit behind the authentication layer like every other request: once the
// caller's bucket is empty a replay is a 429, and every replay's access-log line and
// audit record name the merchant and the key.
func TestHostile_IdempotentReplaysAreRateLimitedAndAudited(t *testing.T) {
	h := newHarness(t, harnessOptions{limits: proxy.Limits{PerKeyRate: 0.01, PerKeyBurst: 3, Upstream: 16, Vault: 16, SlotWait: time.Second}})
	tok := h.cardToken(t, testcards.Success, testcards.CVV) // one request from merchant A's pk_ bucket
	body := mustJSON(t, cardPayment(h.orderID(), tok))
	idem := headers{"Idempotency-Key": "pay-once-limited"}
	for i := range 3 { // the sk_ bucket holds 3: the payment and two replays
		r := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
		wantStatus(t, r, http.StatusOK)
		if replayed := r.header.Get("Idempotent-Replayed") == "true"; replayed != (i > 0) {
			t.Errorf("request %d: Idempotent-Replayed %v", i, replayed)
		}
	}
	r := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("a rate-limited replay has no Retry-After")
	}
	h.wantUpstreamCalls(t, "/initPaymentHost2Host", 1)

	sk := keyID(h.keys[merchantA][proxy.RoleSecret])
	recs := h.waitAudit(t, func(recs []map[string]any) bool {
		n := 0
		for _, rec := range recs {
			if rec["event"] == "inject" && rec["outcome"] != "attempt" {
				n++
			}
		}
		return n == 4
	})
	n := 0
	for _, rec := range recs {
		if rec["event"] != "inject" {
			continue
		}
		n++
		if rec["merchant"] != merchantA || rec["key_id"] != sk {
			t.Errorf("audit record %v: want merchant %q and key %q", rec, merchantA, sk)
		}
	}
	if n != 4 {
		t.Errorf("got %d inject audit records, want 4 (one payment, two replays, one refusal)", n)
	}
	for _, line := range h.waitRequestLines(t, 5) {
		if line["route"] == "initPaymentHost2Host" && (line["merchant"] != merchantA || line["key_id"] != sk) {
			t.Errorf("access-log line %v: want merchant %q and key %q", line, merchantA, sk)
		}
	}
}
