package proxy_test

// Hostile-input suite (see hostile_body_test.go): the audit trail.

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestHostile_AuditFailsClosed(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	h.auditor.fail.Store(true)
	r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, r, http.StatusServiceUnavailable, "audit_unavailable")
	wd := map[string]any{"account": "EUR-sandbox-payout", "order_id": h.orderID(), "amount": 100, "payment_method": "card", "customer_card_number": tok}
	wantError(t, h.post(t, "/withdrawal/init", wd), http.StatusServiceUnavailable, "audit_unavailable")
	if n := h.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls without an audit record: got %d, want 0", n)
	}
	h.auditor.fail.Store(false)
	if !h.hasCVV(t, merchantA, tok) {
		t.Fatal("the CVV was consumed although the detokenization was refused")
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
	if !bytes.Contains(h.logs.Bytes(), []byte("detokenization refused")) {
		t.Error("the refusal is not in the log")
	}
}

func TestHostile_AuditTrailOfAFullPaymentFlow(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := cardPayment(h.orderID(), tok)
	pay := h.post(t, "/initPaymentHost2Host", body)
	wantStatus(t, pay, http.StatusOK)
	check := h.post(t, "/check", map[string]any{"order_id": body["order_id"]})
	wantStatus(t, check, http.StatusOK)
	denied := h.fwd(t, merchantB, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), nil)
	wantError(t, denied, http.StatusNotFound, "token_not_found")
	replay := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, replay, http.StatusConflict, "cvv_unavailable")
	del := h.fwd(t, merchantA, http.MethodDelete, "/v1/tokens/"+tok, nil, nil)
	wantStatus(t, del, http.StatusNoContent)

	recs := h.waitAudit(t, func(r []map[string]any) bool { return len(r) >= 8 })
	upHost := hostPort(t, h.upstream.URL)
	pk, skA, skB := keyID(h.keys[merchantA][proxy.RolePublishable]), keyID(h.keys[merchantA][proxy.RoleSecret]), keyID(h.keys[merchantB][proxy.RoleSecret])
	for i, r := range recs {
		ts, _ := r["time"].(string)
		if tt, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(tt) > time.Minute {
			t.Errorf("record %d: time %q is not a recent UTC time", i, ts)
		}
		if r["policy_hash"] != h.pol.Hash || r["request_id"] == "" || r["request_id"] == nil || r["source_ip"] != "127.0.0.1" || r["listener"] == nil {
			t.Errorf("record %d lacks policy hash, request id, source ip or listener: %v", i, r)
		}
	}
	want := []struct {
		name  string
		match map[string]any
	}{
		{"tokenize", map[string]any{"event": "tokenize", "outcome": "success", "status": 201.0, "listener": "collect", "route": "tokenize", "merchant": merchantA, "key_id": pk, "token": tok}},
		{"detokenize attempt", map[string]any{"event": "detokenize", "outcome": "attempt", "listener": "forward", "route": "initPaymentHost2Host", "merchant": merchantA, "key_id": skA, "token": tok, "upstream_host": upHost, "request_id": pay.header.Get("X-Request-Id")}},
		{"inject success", map[string]any{"event": "inject", "outcome": "success", "status": 200.0, "route": "initPaymentHost2Host", "merchant": merchantA, "key_id": skA, "token": tok, "upstream_host": upHost, "upstream_status": 200.0, "request_id": pay.header.Get("X-Request-Id")}},
		{"passthrough check", map[string]any{"event": "passthrough", "outcome": "success", "status": 200.0, "route": "check", "merchant": merchantA, "key_id": skA, "upstream_host": upHost, "upstream_status": 200.0, "request_id": check.header.Get("X-Request-Id")}},
		{"denied other merchant", map[string]any{"event": "inject", "outcome": "denied", "status": 404.0, "code": "token_not_found", "merchant": merchantB, "key_id": skB, "token": tok, "request_id": denied.header.Get("X-Request-Id")}},
		{"denied replay", map[string]any{"event": "inject", "outcome": "denied", "status": 409.0, "code": "cvv_unavailable", "merchant": merchantA, "token": tok, "request_id": replay.header.Get("X-Request-Id")}},
		{"delete", map[string]any{"event": "delete", "outcome": "success", "status": 204.0, "route": "token_delete", "merchant": merchantA, "token": tok}},
	}
	for _, w := range want {
		found := false
		for _, r := range recs {
			ok := true
			for k, v := range w.match {
				if r[k] != v {
					ok = false
					break
				}
			}
			if ok {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no audit record for %s: want fields %v", w.name, w.match)
		}
	}
	for _, r := range recs {
		if r["event"] == "detokenize" && r["merchant"] == merchantB {
			t.Error("a detokenization attempt was recorded for the other merchant's refused request: it never got that far")
		}
	}
	var secrets []string
	for _, m := range h.keys {
		for _, s := range m {
			secrets = append(secrets, s[3:])
		}
	}
	h.assertNoCardData(t, secrets...)
}
