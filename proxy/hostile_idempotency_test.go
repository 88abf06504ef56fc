package proxy_test

// Hostile-input suite (see hostile_body_test.go): idempotency keys replayed,
// reused and raced.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestHostile_IdempotentReplayMakesNoSecondUpstreamCall(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	h.payAndReplay(t, mustJSON(t, cardPayment(h.orderID(), tok)), headers{"Idempotency-Key": "pay-once-1"})
}

// payAndReplay pays with body twice under idem: one upstream call, and the second
// answer is the first one replayed.
func (h *harness) payAndReplay(t *testing.T, body []byte, idem headers) {
	t.Helper()
	first := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
	wantStatus(t, first, http.StatusOK)
	second := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
	wantStatus(t, second, http.StatusOK)
	wantReplayOf(t, first, second)
	h.wantUpstreamCalls(t, "/initPaymentHost2Host", 1)
}

// wantReplayOf checks that second is first replayed.
func wantReplayOf(t *testing.T, first, second *response) {
	t.Helper()
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("replayed answer differs:\n got %s\nwant %s", second.body, first.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Error("the replay is not marked Idempotent-Replayed")
	}
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

// idemRecords reads the stored idempotency records raw from Redis, by key.
func (h *harness) idemRecords(t testing.TB) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, k := range h.redisKeys(t) {
		if !strings.HasPrefix(k, "chd:idem:") {
			continue
		}
		b, err := h.rdb.Get(context.Background(), k).Bytes()
		if err != nil {
			t.Fatalf("GET idempotency record: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("idempotency record is not JSON: %v", err)
		}
		out[k] = m
	}
	return out
}

// idemBindings returns the binding of each stored record, in the order of the
// Idempotency-Keys given (the Redis key ends in a digest of the Idempotency-Key).
func (h *harness) idemBindings(t testing.TB, idemKeys ...string) []string {
	t.Helper()
	recs := h.idemRecords(t)
	var out []string
	for _, ik := range idemKeys {
		sum := sha256.Sum256([]byte(ik))
		found := ""
		for k, rec := range recs {
			if strings.HasSuffix(k, ":"+hex.EncodeToString(sum[:16])) {
				found, _ = rec["binding"].(string)
			}
		}
		if found == "" {
			t.Fatalf("no stored record with a binding for Idempotency-Key %q", ik)
		}
		out = append(out, found)
	}
	return out
}

// A tokenize record holds no card data and no hash of it under a key outside Vault:
// its fields are the state, a binding and the answer; the binding is the same when
// only the CVV changes (the CVV is no input) and differs with the card (which is
// bound, through Vault's HMAC key: no digest under the proxy's own key matches).
func TestHostile_IdempotencyRecordHoldsNoCardData(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	otherCVV := testcards.CVVMastercard
	if otherCVV == testcards.CVV {
		t.Fatal("testcards.CVVMastercard must differ from testcards.CVV")
	}
	sent := map[string]map[string]string{
		"bind-cvv-a": cardFields(testcards.Success, testcards.CVV),
		"bind-cvv-b": cardFields(testcards.Success, otherCVV),
		"bind-pan":   cardFields(testcards.Decline, testcards.CVV),
	}
	for ik, f := range sent {
		wantStatus(t, h.col(t, merchantA, f, headers{"Idempotency-Key": ik}), http.StatusCreated)
	}
	b := h.idemBindings(t, "bind-cvv-a", "bind-cvv-b", "bind-pan")
	if b[0] != b[1] {
		t.Error("the binding changed with the CVV alone: the CVV is an input of a stored digest")
	}
	if b[0] == b[2] {
		t.Error("two cards gave one binding: the record is not bound to its card")
	}
	// Digests anyone holding the proxy's idempotency secret could compute.
	secret := []byte("harness idempotency secret, 32+ bytes")
	var guesses []string
	for _, f := range sent {
		body := mustJSON(t, f)
		guesses = append(guesses, localMAC(secret, "POST", "/v1/tokens", "", string(body)))
		for _, v := range []string{f["card_number"], f["card_cvv"], f["card_number"] + f["card_cvv"]} {
			guesses = append(guesses, localMAC(secret, v), localMAC(secret, v, ""))
		}
	}
	for k, rec := range h.idemRecords(t) {
		for field := range rec {
			if !slices.Contains([]string{"state", "binding", "status", "content_type", "body"}, field) {
				t.Errorf("record %s has field %q", k, field)
			}
		}
		if rec["state"] != "done" {
			t.Errorf("record %s: state %v, want done", k, rec["state"])
		}
		if slices.Contains(guesses, rec["binding"].(string)) {
			t.Errorf("record %s: the binding is a digest of card data under the proxy's own key", k)
		}
		if ttl := h.rdb.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > h.pol.Tokens.CVV {
			t.Errorf("record %s lives %v, want at most the CVV lifetime %v", k, ttl, h.pol.Tokens.CVV)
		}
	}
}

// localMAC is HMAC-SHA256 under key of parts, each ended by a NUL, in hex: how the
// proxy digests what is not card data.
func localMAC(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// chdproxy's own refusals free the key: a corrected retry under the same key runs.
// The answer a replay returns is still the first success.
func TestHostile_IdempotencyRefusalDoesNotLockTheKey(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	idem := headers{"Idempotency-Key": "fix-and-retry"}
	wantError(t, h.col(t, merchantA, cardFields(testcards.BadLuhn, testcards.CVV), idem), http.StatusBadRequest, "invalid_card_checksum")
	first := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), idem)
	wantStatus(t, first, http.StatusCreated)
	again := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), idem)
	wantStatus(t, again, http.StatusCreated)
	wantReplayOf(t, first, again)
	tok := first.object(t)["token"].(string)

	fwdIdem := headers{"Idempotency-Key": "fix-and-retry-forward"}
	unknown := randomTokenID(t, tok)
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), unknown), fwdIdem), http.StatusNotFound, "token_not_found")
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"note":"`+tok+`"`), fwdIdem), http.StatusBadRequest, "token_not_allowed")
	h.payAndReplay(t, mustJSON(t, cardPayment(h.orderID(), tok)), fwdIdem)
}

// A forward body with a CVV in the clear is refused before it is digested: it never
// meets the stored record of its key (which would answer "reused"), and no digest of
// it is stored.
func TestHostile_IdempotencyClearCVVRefusedBeforeDigest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	idem := headers{"Idempotency-Key": "clear-cvv"}
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), idem), http.StatusOK)
	before := h.idemRecords(t)
	clear := paymentBody(h.orderID(), map[string]any{"payment_method": "card", "card_number": tok, "card_cvv": testcards.CVV})
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", clear, idem), http.StatusBadRequest, "raw_card_data")
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", clear, headers{"Idempotency-Key": "clear-cvv-new"}), http.StatusBadRequest, "raw_card_data")
	if after := h.idemRecords(t); len(after) != len(before) {
		t.Errorf("got %d idempotency records, want %d: a refused clear CVV left one", len(after), len(before))
	}
	h.wantUpstreamCalls(t, "", 1)
}

// ---------------------------------------------------------------------------
// The state machine under faults (README.md, "Idempotency-Key"): an in_flight claim
// is a lease its request renews; an outcome that may have been processed is kept and
// replayed; a refusal with nothing sent frees the key.

// idemRecordKey is the Redis key of merchant A's record for ik (secret key).
func (h *harness) idemRecordKey(ik string) string {
	sum := sha256.Sum256([]byte(ik))
	return "chd:idem:" + merchantA + ":" + keyID(h.keys[merchantA][proxy.RoleSecret]) + ":" + hex.EncodeToString(sum[:16])
}

// A process that died (SIGKILL, a cut drain) leaves its in_flight claim behind with
// the lease it last had: the retry waits for the lease to run out, then runs.
func TestHostile_IdempotencyAbandonedClaimExpiresWithItsLease(t *testing.T) {
	up := &fakeUpstream{}
	h := newHarness(t, harnessOptions{upstream: up, realRedis: true})
	body := mustJSON(t, map[string]any{"order_id": h.orderID()})
	const lease = 1500 * time.Millisecond
	binding := localMAC([]byte("harness idempotency secret, 32+ bytes"), http.MethodPost, "/check", "", string(body))
	claim := mustJSON(t, map[string]any{"state": "in_flight", "binding": binding, "owner": "killed"})
	if err := h.rdb.Set(context.Background(), h.idemRecordKey("abandoned"), claim, lease).Err(); err != nil {
		t.Fatal(err)
	}
	r := h.fwd(t, merchantA, http.MethodPost, "/check", body, headers{"Idempotency-Key": "abandoned"})
	wantStatus(t, r, http.StatusOK)
	if r.elapsed < lease/2 || r.elapsed > lease+2*time.Second {
		t.Errorf("the retry took %v, want it to run once the %v lease ran out", r.elapsed, lease)
	}
	if n := up.arrivals("/check"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	if rec := h.idemRecords(t)[h.idemRecordKey("abandoned")]; rec["state"] != "done" {
		t.Errorf("after the retry the record is %v, want done", rec)
	}
}

// A request that outlives several leases keeps its claim (sent, renewed every lease/3,
// so never taken for abandoned): a duplicate meanwhile waits, then gets 409 idempotency_in_progress with Retry-After,
// never a second upstream call; once the first answers, duplicates get it replayed.
func TestHostile_IdempotencyLeaseRenewedWhileTheRequestRuns(t *testing.T) {
	release := make(chan struct{})
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		hangUntil(release)(w, r)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":2}`))
	}}
	h := newHarness(t, harnessOptions{upstream: up, realRedis: true})
	const lease = 300 * time.Millisecond
	h.listeners.SetIdempotencyTiming(lease, 2*lease)
	body := mustJSON(t, map[string]any{"order_id": h.orderID()})
	idem := headers{"Idempotency-Key": "long-request"}
	first := make(chan *response, 1)
	go func() {
		r, err := h.fwdSend(merchantA, http.MethodPost, "/check", body, idem)
		if err != nil {
			t.Errorf("the first request: %v", err)
		}
		first <- r
	}()
	for deadline := time.Now().Add(5 * time.Second); up.arrivals("/check") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the upstream")
		}
	}
	time.Sleep(4 * lease) // the claim outlives its first lease only if it is renewed
	if rec := h.idemRecords(t)[h.idemRecordKey("long-request")]; rec["state"] != "sent" {
		t.Errorf("while the request runs upstream its record is %v, want sent", rec["state"])
	}
	dup := h.fwd(t, merchantA, http.MethodPost, "/check", body, idem)
	wantError(t, dup, http.StatusConflict, "idempotency_in_progress")
	if ra, err := strconv.Atoi(dup.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After: got %q, want whole seconds, at least 1", dup.header.Get("Retry-After"))
	}
	if n := up.arrivals("/check"); n != 1 {
		t.Fatalf("upstream calls while the first ran: got %d, want 1 (the claim expired under a running request)", n)
	}
	close(release)
	r := <-first
	if r == nil {
		return
	}
	wantStatus(t, r, http.StatusOK)
	wantReplayOf(t, r, h.fwd(t, merchantA, http.MethodPost, "/check", body, idem))
	if n := up.arrivals("/check"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
}

// After 504 upstream_timeout or 502 upstream_result_unknown the request may have been
// processed: a retry under the same key replays that answer ("check first") and never
// reaches the upstream again — the /check and the payment of issue 16 went twice.
func TestHostile_IdempotencyReplaysAResultUnknown(t *testing.T) {
	for _, tt := range []struct {
		name, code string
		status     int
		respond    func(http.ResponseWriter, *http.Request)
	}{
		{"504 upstream_timeout", "upstream_timeout", http.StatusGatewayTimeout, hangUntil(nil)},
		{"502 upstream_result_unknown", "upstream_result_unknown", http.StatusBadGateway, func(w http.ResponseWriter, _ *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close() // the request arrived; the connection dies before any answer
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeUpstream{respond: tt.respond}
			h := newHarness(t, harnessOptions{upstream: up, responseTimeout: 300 * time.Millisecond})
			tok := h.cardToken(t, testcards.Success, testcards.CVV)
			for path, body := range map[string][]byte{
				"/check":                mustJSON(t, map[string]any{"order_id": h.orderID()}),
				"/initPaymentHost2Host": mustJSON(t, cardPayment(h.orderID(), tok)),
			} {
				idem := headers{"Idempotency-Key": "unknown" + path}
				first := h.fwd(t, merchantA, http.MethodPost, path, body, idem)
				wantError(t, first, tt.status, tt.code)
				again := h.fwd(t, merchantA, http.MethodPost, path, body, idem)
				wantError(t, again, tt.status, tt.code)
				wantReplayOf(t, first, again)
				if n := up.arrivals(path); n != 1 {
					t.Errorf("%s: upstream calls: got %d, want 1", path, n)
				}
			}
		})
	}
}

// Refusals that say "nothing was sent" free the key: 502 upstream_unavailable (the
// upstream cannot be reached) and 503 upstream_busy; the retry runs and is answered.
func TestHostile_IdempotencyFreedWhenNothingWasSent(t *testing.T) {
	t.Run("502 upstream_unavailable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there: the dial is refused
		h := newHarness(t, harnessOptions{upstreamURL: "https://" + addr})
		body := mustJSON(t, map[string]any{"order_id": h.orderID()})
		idem := headers{"Idempotency-Key": "unreachable"}
		wantError(t, h.fwd(t, merchantA, http.MethodPost, "/check", body, idem), http.StatusBadGateway, "upstream_unavailable")
		if recs := h.idemRecords(t); len(recs) != 0 {
			t.Fatalf("got records %v, want the key freed", recs)
		}
		// A payment's key is marked sent before its CVV is spent: the failed dial
		// frees that sent claim too, and the CVV is put back.
		tok := h.cardToken(t, testcards.Success, testcards.CVV)
		payment := mustJSON(t, cardPayment(h.orderID(), tok))
		payIdem := headers{"Idempotency-Key": "unreachable-payment"}
		wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", payment, payIdem), http.StatusBadGateway, "upstream_unavailable")
		if recs := h.idemRecords(t); len(recs) != 0 {
			t.Fatalf("got records %v, want the payment's sent claim freed", recs)
		}
		h.wantCVVKept(t, tok)
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Skipf("the port was taken meanwhile: %v", err)
		}
		up := &fakeUpstream{}
		srv := httptest.NewUnstartedServer(up)
		srv.Listener, srv.TLS = ln, serverTLS(t, loopbackNames...)
		srv.StartTLS()
		defer srv.Close()
		r := h.fwd(t, merchantA, http.MethodPost, "/check", body, idem)
		wantStatus(t, r, http.StatusOK)
		if r.header.Get("Idempotent-Replayed") != "" || up.arrivals("/check") != 1 {
			t.Errorf("the retry was not run: replayed %q, %d upstream calls", r.header.Get("Idempotent-Replayed"), up.arrivals("/check"))
		}
		r = h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", payment, payIdem)
		wantStatus(t, r, http.StatusOK)
		if r.header.Get("Idempotent-Replayed") != "" || up.arrivals("/initPaymentHost2Host") != 1 {
			t.Errorf("the payment's retry was not run: replayed %q, %d upstream calls", r.header.Get("Idempotent-Replayed"), up.arrivals("/initPaymentHost2Host"))
		}
	})
	t.Run("503 upstream_busy", func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 { // the first holds the one upstream slot
				hangUntil(release)(w, r)
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":2}`))
		}}
		h := newHarness(t, harnessOptions{upstream: up, limits: proxy.Limits{Upstream: 1, SlotWait: 100 * time.Millisecond}})
		held := make(chan struct{})
		go func() {
			defer close(held)
			_, _ = h.fwdSend(merchantA, http.MethodPost, "/check", mustJSON(t, map[string]any{"order_id": h.orderID()}), nil)
		}()
		for deadline := time.Now().Add(5 * time.Second); up.arrivals("/check") == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the held request never reached the upstream")
			}
		}
		body := mustJSON(t, map[string]any{"order_id": h.orderID()})
		idem := headers{"Idempotency-Key": "busy"}
		wantError(t, h.fwd(t, merchantA, http.MethodPost, "/check", body, idem), http.StatusServiceUnavailable, "upstream_busy")
		close(release)
		<-held
		r := h.fwd(t, merchantA, http.MethodPost, "/check", body, idem)
		wantStatus(t, r, http.StatusOK)
		if r.header.Get("Idempotent-Replayed") != "" || up.arrivals("/check") != 2 {
			t.Errorf("the retry was not run: replayed %q, %d upstream calls (want 2: the held one and the retry)", r.header.Get("Idempotent-Replayed"), up.arrivals("/check"))
		}
	})
}

// h2TLS is the upstream's TLS configuration offering HTTP/2 first.
func h2TLS(t *testing.T) *tls.Config {
	cfg := serverTLS(t, loopbackNames...)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg
}

// The point of no return: the key is a sent record, with the record's lifetime and
// not a lease, before the first byte of the request reaches the upstream (the upstream
// looks at Redis when it arrives), over HTTP/1.1 and HTTP/2; the answer then settles it.
func TestHostile_IdempotencyKeyMarkedSentBeforeTheFirstByte(t *testing.T) {
	for _, tt := range []struct {
		name  string
		tls   func(*testing.T) *tls.Config
		proto int
	}{
		{"HTTP/1.1", func(t *testing.T) *tls.Config { return serverTLS(t, loopbackNames...) }, 1},
		{"HTTP/2", h2TLS, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h *harness
			type seen struct {
				state any
				pttl  time.Duration
				proto int
			}
			arrived := make(chan seen, 4)
			up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
				k := h.idemRecordKey("marked" + r.URL.Path)
				rec := h.idemRecords(t)[k]
				arrived <- seen{rec["state"], h.rdb.PTTL(context.Background(), k).Val(), r.ProtoMajor}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"status":1}`))
			}}
			h = newHarness(t, harnessOptions{upstream: up, upstreamTLS: tt.tls(t)})
			tok := h.cardToken(t, testcards.Success, testcards.CVV)
			for path, body := range map[string][]byte{
				"/check":                mustJSON(t, map[string]any{"order_id": h.orderID()}),
				"/initPaymentHost2Host": mustJSON(t, cardPayment(h.orderID(), tok)),
			} {
				wantStatus(t, h.fwd(t, merchantA, http.MethodPost, path, body, headers{"Idempotency-Key": "marked" + path}), http.StatusOK)
				s := <-arrived
				if s.state != "sent" || s.pttl < time.Hour || s.proto != tt.proto {
					t.Errorf("%s: at the upstream the key was %v for %v more (HTTP/%d), want sent for the record's 24h over HTTP/%d", path, s.state, s.pttl, s.proto, tt.proto)
				}
				if rec := h.idemRecords(t)[h.idemRecordKey("marked"+path)]; rec["state"] != "done" {
					t.Errorf("%s: after the answer the record is %v, want done", path, rec["state"])
				}
			}
		})
	}
}

// A process killed after the point of no return leaves a sent claim nobody renews:
// once a lease has passed without renewal, a retry gets 502 upstream_result_unknown
// replayed (call /check), the record becomes that outcome, and the upstream is never
// called again. Until then the retry waits, as for any claim still held.
func TestHostile_IdempotencyAbandonedSentClaimIsResultUnknown(t *testing.T) {
	up := &fakeUpstream{}
	h := newHarness(t, harnessOptions{upstream: up})
	const lease = 400 * time.Millisecond
	h.listeners.SetIdempotencyTiming(lease, 10*lease)
	ttl := 24 * time.Hour
	for _, tt := range []struct {
		name      string
		age       time.Duration // since the dead owner last renewed it
		minWait   time.Duration
		idem, ord string
	}{
		{"renewed just before the kill: the retry waits out a lease", 0, lease * 3 / 4, "killed-fresh", h.orderID()},
		{"not renewed for a lease: replayed at once", 2 * lease, 0, "killed-old", h.orderID()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := mustJSON(t, map[string]any{"order_id": tt.ord})
			binding := localMAC([]byte("harness idempotency secret, 32+ bytes"), http.MethodPost, "/check", "", string(body))
			sent := mustJSON(t, map[string]any{"state": "sent", "binding": binding, "owner": "killed", "ttl_ms": ttl.Milliseconds()})
			if err := h.rdb.Set(context.Background(), h.idemRecordKey(tt.idem), sent, ttl-tt.age).Err(); err != nil {
				t.Fatal(err)
			}
			if h.mr != nil && tt.age == 0 {
				go func() { time.Sleep(lease); h.mr.FastForward(2 * lease) }() // miniredis's clock moves only when told
			}
			idem := headers{"Idempotency-Key": tt.idem}
			r := h.fwd(t, merchantA, http.MethodPost, "/check", body, idem)
			wantError(t, r, http.StatusBadGateway, "upstream_result_unknown")
			if r.header.Get("Idempotent-Replayed") != "true" {
				t.Error("the result-unknown answer is not marked as a replay")
			}
			if r.elapsed < tt.minWait || r.elapsed > lease+2*time.Second {
				t.Errorf("answered after %v, want between %v and a lease (%v) + 2s", r.elapsed, tt.minWait, lease)
			}
			if rec := h.idemRecords(t)[h.idemRecordKey(tt.idem)]; rec["state"] != "done" {
				t.Errorf("the record is %v, want done (result unknown)", rec["state"])
			}
			wantReplayOf(t, r, h.fwd(t, merchantA, http.MethodPost, "/check", body, idem))
			if n := up.arrivals("/check"); n != 0 {
				t.Errorf("upstream calls: got %d, want 0 (the dead request may have been processed)", n)
			}
		})
	}
}

// When the key cannot be marked sent (here its claim was lost to another holder while
// the request waited for an upstream slot; Redis down is the same), the request is
// held back: nothing reaches the upstream, over HTTP/1.1 or HTTP/2, the answer is 503
// idempotency_unavailable (nothing sent), and the other holder's record is left alone.
// A payment is marked before its CVV is spent, so its CVV was never taken (restoring
// it would need the Redis that just failed); a passthrough call is marked as its
// connection is ready and stopped there. Once the key is free, both run.
func TestHostile_IdempotencyUnmarkableKeyHoldsTheRequestBack(t *testing.T) {
	for _, tt := range []struct {
		name string
		tls  func(*testing.T) *tls.Config
	}{
		{"HTTP/1.1", func(t *testing.T) *tls.Config { return serverTLS(t, loopbackNames...) }},
		{"HTTP/2", h2TLS},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{}, 1)
			up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/capture" {
					hangUntil(release)(w, r) // holds the one upstream slot
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"status":1}`))
			}}
			h := newHarness(t, harnessOptions{upstream: up, upstreamTLS: tt.tls(t), limits: proxy.Limits{Upstream: 1, SlotWait: 5 * time.Second}})
			tok := h.cardToken(t, testcards.Success, testcards.CVV)
			for _, c := range []struct {
				path string
				body []byte
			}{
				{"/initPaymentHost2Host", mustJSON(t, cardPayment(h.orderID(), tok))},
				{"/check", mustJSON(t, map[string]any{"order_id": h.orderID()})},
			} {
				path, body := c.path, c.body
				idem := headers{"Idempotency-Key": "lost-claim" + path}
				r := h.withClaimStolen(t, up, release, path, body, idem)
				wantError(t, r, http.StatusServiceUnavailable, "idempotency_unavailable")
				if n := up.arrivals(path); n != 0 {
					t.Fatalf("%s: the upstream received %d requests, want none", path, n)
				}
				if path == "/initPaymentHost2Host" {
					h.wantCVVKept(t, tok)
					recs := h.waitAudit(t, func(rs []map[string]any) bool {
						return slices.ContainsFunc(rs, func(r map[string]any) bool { return r["code"] == "idempotency_unavailable" })
					})
					if n := restoredRecords(recs, tok); n != 0 {
						t.Errorf("%d audit records say the CVV was restored, want none: it was never taken", n)
					}
				}
				h.rdb.Del(context.Background(), h.idemRecordKey("lost-claim"+path))
				wantStatus(t, h.fwd(t, merchantA, http.MethodPost, path, body, idem), http.StatusOK)
				if n := up.arrivals(path); n != 1 {
					t.Errorf("%s: the upstream received %d requests, want 1", path, n)
				}
			}
		})
	}
}

// withClaimStolen sends a request under idem while the one upstream slot is held (by
// a /capture the upstream hangs until release), replaces its claim by another holder's
// meanwhile, then frees the slot; it returns the request's answer, after checking that
// the other holder's record was left alone.
func (h *harness) withClaimStolen(t *testing.T, up *fakeUpstream, release chan struct{}, path string, body []byte, idem headers) *response {
	t.Helper()
	held := make(chan struct{})
	captures := up.arrivals("/capture")
	go func() {
		defer close(held)
		_, _ = h.fwdSend(merchantA, http.MethodPost, "/capture", mustJSON(t, map[string]any{"order_id": h.orderID()}), nil)
	}()
	waitFor(t, "the held request at the upstream", func() bool { return up.arrivals("/capture") == captures+1 })
	answer := make(chan *response, 1)
	go func() {
		r, err := h.fwdSend(merchantA, http.MethodPost, path, body, idem)
		if err != nil {
			t.Error(err)
		}
		answer <- r
	}()
	k := h.idemRecordKey(idem["Idempotency-Key"])
	waitFor(t, "the claim", func() bool { return h.rdb.Exists(context.Background(), k).Val() == 1 })
	other := `{"state":"in_flight","binding":"x","owner":"another"}`
	if err := h.rdb.Set(context.Background(), k, other, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	release <- struct{}{}
	<-held
	r := <-answer
	if r == nil {
		t.FailNow()
	}
	if got := h.rdb.Get(context.Background(), k).Val(); got != other {
		t.Errorf("the other holder's record became %q", got)
	}
	return r
}

// waitFor polls ok for up to 5s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within 5s", what)
		}
	}
}
