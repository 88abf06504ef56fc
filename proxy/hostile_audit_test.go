package proxy_test

// Hostile-input suite (see hostile_body_test.go): the audit trail.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

	recs := h.waitAudit(t, func(r []map[string]any) bool {
		return slices.ContainsFunc(r, func(rec map[string]any) bool { return rec["event"] == "delete" && rec["outcome"] == "success" })
	})
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

// Every operation on card data or tokens, not only detokenization, needs its attempt
// record durable first: with the sink failing nothing is tokenized, read, deleted
// or forwarded.
func TestHostile_AuditFailsClosedForEveryOperation(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	h.auditor.fail.Store(true)
	tests := []struct {
		name string
		send func() *response
	}{
		{"tokenize", func() *response { return h.col(t, merchantA, cardFields(testcards.Visa, testcards.CVV), nil) }},
		{"metadata read", func() *response { return h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil) }},
		{"token delete on forward", func() *response { return h.fwd(t, merchantA, http.MethodDelete, "/v1/tokens/"+tok, nil, nil) }},
		{"token delete on admin", func() *response {
			return h.do(t, http.MethodDelete, h.admin+"/v1/tokens/"+tok, nil, h.bearer(merchantA, proxy.RoleAdmin))
		}},
		{"passthrough", func() *response { return h.post(t, "/check", map[string]any{"order_id": h.orderID()}) }},
		{"injection route without a token", func() *response {
			return h.post(t, "/withdrawal/init", map[string]any{"account": "EUR-sandbox-payout", "order_id": h.orderID(), "amount": 100, "payment_method": "token"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.send(), http.StatusServiceUnavailable, "audit_unavailable")
		})
	}
	h.wantUpstreamCalls(t, "", 0)
	h.wantTokenKeys(t, 2) // the one token's record and CVV: nothing added, nothing deleted
	h.auditor.fail.Store(false)
	h.wantCVVKept(t, tok)
	if !bytes.Contains(h.logs.Bytes(), []byte("audit write failed; request refused")) {
		t.Error("the refusals are not in the log")
	}
}

// Readiness names the audit trail: a replica that can write no record can do nothing.
func TestHostile_ReadyzReportsAFailingAuditTrail(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ready := func(status int, body string) {
		t.Helper()
		r := h.do(t, http.MethodGet, h.admin+"/readyz", nil, nil)
		if r.status != status || string(r.body) != body+"\n" {
			t.Errorf("readyz: got %d %s, want %d %s", r.status, r.body, status, body)
		}
	}
	ready(http.StatusOK, `{"status":"ready","checks":{"vault":"ok","redis":"ok","audit":"ok"}}`)
	h.auditor.fail.Store(true)
	ready(http.StatusServiceUnavailable, `{"status":"unavailable","checks":{"vault":"ok","redis":"ok","audit":"failing"}}`)
	h.auditor.fail.Store(false)
	ready(http.StatusOK, `{"status":"ready","checks":{"vault":"ok","redis":"ok","audit":"ok"}}`)
}

// wantUnready checks that /readyz answers 503 with the fixed body naming the
// fault of check.
func (h *harness) wantUnready(t testing.TB, check, fault string) {
	t.Helper()
	r := h.do(t, http.MethodGet, h.admin+"/readyz", nil, nil)
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusServiceUnavailable ||
		body.Status != "unavailable" || body.Checks[check] != fault || len(body.Checks) != 3 {
		t.Errorf("readyz: got %d %s, want 503 with %s %s", r.status, r.body, check, fault)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("readyz: a 503 without Retry-After")
	}
}

// Anyone can send requests without a key. They are answered and logged one by one,
// but audited as a few summary records, not one fsynced record each: a flood of
// them cannot fill the audit disk (after which payments would fail closed).
func TestHostile_UnauthenticatedFloodIsSummarizedInTheAuditTrail(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	const n = 1000
	kinds := []struct{ method, url, key, code string }{
		{http.MethodPost, h.collect + "/v1/tokens", "Authorization", "unauthorized"},
		{http.MethodPost, h.forward + "/initPaymentHost2Host", "Proxy-Authorization", "unauthorized"},
		{http.MethodGet, h.forward + "/.env", "", "not_found"},
		{http.MethodDelete, h.admin + "/v1/tokens/tok_x", "Authorization", "unauthorized"},
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				k := kinds[i%len(kinds)]
				hdr := headers{}
				if k.key != "" {
					hdr[k.key] = "Bearer sk_" + strings.Repeat("x", 32)
				}
				r, err := h.send(k.method, k.url, []byte(`{}`), "application/json", hdr)
				if err != nil || (r.code() != k.code && r.code() != "rate_limited") { // per-client limits refuse early
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d requests were not refused as expected", f)
	}
	if got := len(h.waitRequestLines(t, n)); got != n {
		t.Errorf("access-log lines: got %d, want %d (one per request)", got, n)
	}
	time.Sleep(50 * time.Millisecond) // past the enqueue lag: a per-request record would be out
	if recs := h.auditRecords(t); len(recs) != 0 {
		t.Errorf("audit records before the summary: got %d, want 0", len(recs))
	}
	h.listeners.Close() // shutdown writes the summaries (every 10s otherwise)
	counted := func(recs []map[string]any) (total float64) {
		for _, r := range recs {
			c, _ := r["count"].(float64)
			total += c
		}
		return total
	}
	recs := h.waitAudit(t, func(r []map[string]any) bool { return counted(r) >= n })
	// One summary per listener, route and code: a 401 or a 429 for each keyed route.
	if len(recs) < len(kinds) || len(recs) > 2*len(kinds) {
		t.Errorf("audit records: got %d, want %d to %d summaries", len(recs), len(kinds), 2*len(kinds))
	}
	for _, r := range recs {
		if r["outcome"] != "denied" || r["source_ip"] != "127.0.0.1" || r["since"] == nil || r["listener"] == nil || r["count"] == nil {
			t.Errorf("summary record %v: want outcome denied, a count, the source, since and listener", r)
		}
	}
	if total := counted(recs); total != n {
		t.Errorf("summaries count %v refusals, want %d", total, n)
	}
}

// card_data_sent says when card data left chdproxy; "denied" means only that
// chdproxy refused: a payment the upstream answered 400 is not denied.
func TestHostile_OutcomeSaysWhetherCardDataLeft(t *testing.T) {
	up := &fakeUpstream{respond: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":0,"message":"invalid amount"}`))
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	sent := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantStatus(t, sent, http.StatusBadRequest)
	check := h.post(t, "/check", map[string]any{"order_id": h.orderID()})
	wantStatus(t, check, http.StatusBadRequest)
	refused := h.post(t, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"card_number": testcards.Visa}))
	wantError(t, refused, http.StatusBadRequest, "raw_card_data")
	if up.arrivals("") != 2 {
		t.Fatalf("upstream arrivals: got %d, want 2", up.arrivals(""))
	}
	outcomes := map[string]map[string]any{}
	h.waitAudit(t, func(recs []map[string]any) bool {
		for _, r := range recs {
			if r["outcome"] != "attempt" {
				outcomes[r["request_id"].(string)] = r
			}
		}
		return len(outcomes) >= 4
	})
	for _, tt := range []struct {
		name     string
		r        *response
		outcome  string
		cardSent any
	}{
		{"a payment answered 400", sent, "upstream_declined", true},
		{"a passthrough answered 400", check, "upstream_declined", nil},
		{"raw card data refused by chdproxy", refused, "denied", nil},
	} {
		rec := outcomes[tt.r.header.Get("X-Request-Id")]
		if rec["outcome"] != tt.outcome || rec["card_data_sent"] != tt.cardSent {
			t.Errorf("%s: got outcome %v, card_data_sent %v; want %s, %v", tt.name, rec["outcome"], rec["card_data_sent"], tt.outcome, tt.cardSent)
		}
	}
}
