package proxy_test

// The PAN oracle (issue 11): BIN and last 4 leave few candidates for the unknown digits,
// so anything that tells whether a guess is the card (a fingerprint that any guess can be
// given through the public pk_) recovers the PAN. No answer carries a fingerprint, and
// guessing through tokenize is throttled per client address and per key.

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

// The fields a token's answer may have, and of its card: nothing else.
var (
	tokenAnswerFields = []string{"card", "cvv_expires_at", "expires_at", "has_cvv", "kind", "network", "token"}
	cardAnswerFields  = []string{"bin", "brand", "exp_month", "exp_year", "last4"}
)

// wantTokenAnswer checks that a token answer has only the documented fields (plus
// extra ones), so no fingerprint, and a 6-digit BIN for a card.
func wantTokenAnswer(t testing.TB, r *response, pan string, extra ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("token answer is not a JSON object: %v", err)
	}
	allowed := append(slices.Clone(tokenAnswerFields), extra...)
	for k := range m {
		if !slices.Contains(allowed, k) {
			t.Errorf("token answer field %q: want only %v", k, allowed)
		}
	}
	if pan == "" {
		return
	}
	var c map[string]string
	if err := json.Unmarshal(m["card"], &c); err != nil {
		t.Fatalf("card: %v", err)
	}
	for k := range c {
		if !slices.Contains(cardAnswerFields, k) {
			t.Errorf("card field %q: want only %v", k, cardAnswerFields)
		}
	}
	if c["bin"] != pan[:6] || c["last4"] != pan[len(pan)-4:] {
		t.Errorf("card: got bin %q last4 %q, want the first 6 and the last 4 digits", c["bin"], c["last4"])
	}
}

func TestHostile_PublishableKeyNeverSeesAFingerprint(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, pan := range []string{testcards.Success, testcards.Amex} {
		cvv := testcards.CVV
		if pan == testcards.Amex {
			cvv = testcards.CVVAmex
		}
		r := h.col(t, merchantA, cardFields(pan, cvv), headers{"Origin": originA})
		wantStatus(t, r, http.StatusCreated)
		wantTokenAnswer(t, r, pan)
	}
	// The replay of an Idempotency-Key is the stored answer: the same fields.
	idem := headers{"Idempotency-Key": "oracle-replay"}
	first := h.col(t, merchantA, cardFields(testcards.Visa, testcards.CVV), idem)
	wantStatus(t, first, http.StatusCreated)
	replay := h.col(t, merchantA, cardFields(testcards.Visa, testcards.CVV), idem)
	wantStatus(t, replay, http.StatusCreated)
	if replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("the second request was not a replay")
	}
	wantTokenAnswer(t, replay, testcards.Visa)
	wallet := h.col(t, merchantA, map[string]string{
		"payment_method": "applePayDPan", "apple_pay_dpan": testcards.DPANApple, "apple_pay_payment_method_network": "VISA",
	}, nil)
	wantStatus(t, wallet, http.StatusCreated)
	wantTokenAnswer(t, wallet, "")
}

// An sk_ holder can tokenize any guess with the public pk_ and read the guess's
// metadata back: a fingerprint there would be the oracle again (100,000 candidates
// with BIN 6 and last 4, one tokenize and one read each). GET shows none either.
func TestHostile_SecretKeyMetadataShowsNoFingerprint(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	r := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil)
	wantStatus(t, r, http.StatusOK)
	wantTokenAnswer(t, r, testcards.Success, "created_at")
}

// oracleCandidates are n Luhn-valid numbers with pan's first 6 and last 4 digits:
// the guesses of the oracle attack.
func oracleCandidates(t testing.TB, pan string, n int) []string {
	t.Helper()
	var out []string
	width := len(pan) - 10
	for i := 0; len(out) < n; i++ {
		mid := strconv.Itoa(i)
		if len(mid) > width {
			t.Fatalf("fewer than %d candidates", n)
		}
		c := pan[:6] + strings.Repeat("0", width-len(mid)) + mid + pan[len(pan)-4:]
		if _, err := card.ParsePAN(c); err == nil && c != pan {
			out = append(out, c)
		}
	}
	return out
}

// oracleRun is what a flood of tokenize requests got.
type oracleRun struct {
	accepted, refused atomic.Int64
	elapsed           time.Duration
	mu                sync.Mutex
	refusals          map[string]int // error message → count
}

// floodTokenize tokenizes candidates, over and over, with merchant A's pk_ from 4
// goroutines for d; from(i) is the X-Forwarded-For of the i-th request ("" for none).
// A refused worker pauses 5ms (the attacker would not; the bucket does not care, and
// the run's logs stay small). Every 201 is checked for a fingerprint.
func (h *harness) floodTokenize(t *testing.T, cands []string, d time.Duration, from func(i int) string) *oracleRun {
	t.Helper()
	run := &oracleRun{refusals: map[string]int{}}
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				i := int(next.Add(1)) - 1
				hdr := withHeaders(h.bearer(merchantA, proxy.RolePublishable), headers{"X-Forwarded-For": from(i)})
				body := mustJSON(t, cardFields(cands[i%len(cands)], testcards.CVV))
				r, err := h.send(http.MethodPost, h.collect+"/v1/tokens", body, "application/json", hdr)
				if err != nil {
					t.Error(err)
					return
				}
				if run.record(t, r) {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	run.elapsed = time.Since(start)
	return run
}

// record counts r and reports whether it was refused.
func (run *oracleRun) record(t *testing.T, r *response) (refused bool) {
	switch {
	case r.status == http.StatusCreated:
		run.accepted.Add(1)
		if strings.Contains(string(r.body), "fingerprint") {
			t.Errorf("a tokenize answer has a fingerprint: %s", r.body)
		}
	case r.status == http.StatusTooManyRequests && r.code() == "rate_limited":
		run.refused.Add(1)
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("Retry-After: got %q, want whole seconds ≥ 1", r.header.Get("Retry-After"))
		}
		run.mu.Lock()
		run.refusals[errorMessage(r)]++
		run.mu.Unlock()
		return true
	default:
		t.Errorf("got %d %q, want 201 or 429 rate_limited", r.status, r.code())
	}
	return false
}

// errorMessage is the message of an error answer.
func errorMessage(r *response) string {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Message
}

// wantThrottled checks that run got no more than burst plus rate over its time, that
// it was refused by the limit named msg only, and logs the measured figures.
func (run *oracleRun) wantThrottled(t *testing.T, who string, rate float64, burst int, msg string) {
	t.Helper()
	ok, secs := run.accepted.Load(), run.elapsed.Seconds()
	if limit := float64(burst) + rate*secs + 1; float64(ok) > limit || ok < int64(burst) {
		t.Errorf("%s: %d tokenize requests accepted in %.2fs, want between %d and %.0f", who, ok, secs, burst, limit)
	}
	if run.refused.Load() == 0 || len(run.refusals) != 1 || run.refusals[msg] == 0 {
		t.Errorf("%s: refusals %v, want only %q", who, run.refusals, msg)
	}
	sustained := max(float64(ok)-float64(burst), 1) / secs
	t.Logf("%s: %d accepted, %d refused in %.2fs: burst %d, then %.2f/s measured (%.0f/h); 100,000 candidates take %.1f h",
		who, ok, run.refused.Load(), secs, burst, sustained, sustained*3600, (100000-float64(burst))/sustained/3600)
}

// oracleLimits keep the default limits' shape (a client's bucket far smaller than
// the key's) at a twentieth of their rates.
var oracleLimits = proxy.Limits{PerClientRate: 0.05, PerClientBurst: 5, PerKeyRate: 5, PerKeyBurst: 10}

// The attack from one address: tokenize guesses with the pk_ as fast as possible.
// Its address's bucket empties after its burst; then one guess a second.
//
// Both oracle tests run with small limits, so that even a slow machine (-race) meets
// them within the run; the figures for the default limits are in threat-model.md.
func TestHostile_PANOracleFromOneAddressIsThrottled(t *testing.T) {
	l := oracleLimits
	h := newHarness(t, harnessOptions{limits: l})
	run := h.floodTokenize(t, oracleCandidates(t, testcards.Success, 100), 2*time.Second, func(int) string { return "" })
	run.wantThrottled(t, "one address", l.PerClientRate, l.PerClientBurst, "too many requests from this client address")
}

// The attack spread over many addresses (each request from another one, as a botnet
// behind a trusted load balancer looks): the pk_'s own bucket is the bound.
func TestHostile_PANOracleFromManyAddressesIsThrottledByTheKey(t *testing.T) {
	l := oracleLimits
	h := newHarness(t, harnessOptions{limits: l, trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	run := h.floodTokenize(t, oracleCandidates(t, testcards.Success, 100), 2*time.Second, func(i int) string {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
	})
	run.wantThrottled(t, "one pk_ from many addresses", l.PerKeyRate, l.PerKeyBurst, "too many requests for this key")
}
