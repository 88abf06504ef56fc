package proxy_test

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/hosted"
	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// frameHeaders are what a hosted-field frame's browser sends with its POSTs: its
// own origin (the collect listener's), fetched same-origin.
func (h *harness) frameHeaders(merchant string) headers {
	return withHeaders(h.bearer(merchant, proxy.RolePublishable), headers{"Origin": h.collect, "Sec-Fetch-Site": "same-origin"})
}

func (h *harness) frameURL(kind, merchant, origin string, extra ...string) string {
	q := url.Values{"key": {h.keys[merchant][proxy.RolePublishable]}, "origin": {origin}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return h.collect + "/collect/v1/" + kind + "?" + q.Encode()
}

func TestHostedFramesAnswerOnlyTheMerchantsRegisteredOrigin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	r := h.do(t, http.MethodGet, h.frameURL("card", merchantA, originA), nil, nil)
	wantStatus(t, r, http.StatusOK)
	if got, want := r.header.Get("Content-Security-Policy"), hosted.FrameCSP(originA); got != want {
		t.Errorf("CSP: got %q, want %q", got, want)
	}
	if !strings.HasSuffix(r.header.Get("Content-Security-Policy"), "frame-ancestors "+originA) {
		t.Errorf("CSP %q does not end with frame-ancestors %s", r.header.Get("Content-Security-Policy"), originA)
	}
	for _, id := range []string{"number", "expiry", "cvv", "holder"} {
		if !strings.Contains(string(r.body), `<input id="`+id+`"`) {
			t.Errorf("the card frame has no %s input", id)
		}
	}

	for name, u := range map[string]string{
		"merchant B's origin with merchant A's key": h.frameURL("card", merchantA, originB),
		"an unknown key": strings.Replace(h.frameURL("card", merchantA, originA), "key=pk_", "key=pk_x", 1),
		"a secret key":   h.collect + "/collect/v1/card?" + url.Values{"key": {h.keys[merchantA][proxy.RoleSecret]}, "origin": {originA}}.Encode(),
		"the CVV frame for another merchant's origin": h.frameURL("cvv", merchantA, originB, "session", "cvs_"+strings.Repeat("A", 26)),
	} {
		t.Run(name, func(t *testing.T) {
			r := h.do(t, http.MethodGet, u, nil, nil)
			wantStatus(t, r, http.StatusForbidden)
			if got := r.header.Get("Content-Security-Policy"); got != hosted.RefusedCSP {
				t.Errorf("CSP: got %q, want %q", got, hosted.RefusedCSP)
			}
			if strings.Contains(string(r.body), "<input") {
				t.Error("the refusal has fields")
			}
		})
	}
}

func TestHostedCollectJSIsServedWithItsPublishedIntegrity(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for _, path := range []string{"/collect.js", "/collect/v1/collect.js", "/collect/v" + hosted.Version + "/collect.js"} {
		r := h.do(t, http.MethodGet, h.collect+path, nil, headers{"Origin": originA})
		wantStatus(t, r, http.StatusOK)
		sum := sha512.Sum384(r.body)
		if got := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); got != hosted.SRI() {
			t.Errorf("%s: got integrity %s, want %s", path, got, hosted.SRI())
		}
		if ct, acao := r.header.Get("Content-Type"), r.header.Get("Access-Control-Allow-Origin"); ct != "text/javascript; charset=utf-8" || acao != "*" {
			t.Errorf("%s: got Content-Type %q and ACAO %q, want JavaScript readable with CORS", path, ct, acao)
		}
	}
	r := h.do(t, http.MethodGet, h.collect+"/collect/v1/collect.d.ts", nil, nil)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), "tokenize(): Promise<TokenResult>") {
		t.Error("collect.d.ts does not declare tokenize")
	}
}

func TestCollectAcceptsTheFramesOwnOriginOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	fields := cardFields(testcards.Success, testcards.CVV)
	wantStatus(t, h.col(t, merchantA, fields, headers{"Origin": h.collect, "Sec-Fetch-Site": "same-origin"}), http.StatusCreated)

	otherPort := strings.Replace(h.collect, h.colAddr[strings.LastIndex(h.colAddr, ":"):], ":1", 1)
	for name, hdr := range map[string]headers{
		"its own origin without Sec-Fetch-Site":          {"Origin": h.collect},
		"its own origin fetched cross-site":              {"Origin": h.collect, "Sec-Fetch-Site": "cross-site"},
		"its own origin fetched same-site":               {"Origin": h.collect, "Sec-Fetch-Site": "same-site"},
		"another site claiming same-origin":              {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
		"the same host on another port, same-origin":     {"Origin": otherPort, "Sec-Fetch-Site": "same-origin"},
		"its own origin with a path":                     {"Origin": h.collect + "/x", "Sec-Fetch-Site": "same-origin"},
		"merchant B's origin with merchant A's key":      {"Origin": originB},
		"merchant B's origin claiming to be same-origin": {"Origin": originB, "Sec-Fetch-Site": "same-origin"},
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, h.col(t, merchantA, fields, hdr), http.StatusForbidden, "origin_not_allowed")
		})
	}
}

// cardWithoutCVV tokenizes the success card without a CVV for merchant A.
func (h *harness) cardWithoutCVV(t testing.TB) string {
	t.Helper()
	f := cardFields(testcards.Success, "")
	delete(f, "card_cvv")
	return h.tokenize(t, merchantA, f).Token
}

// cvvSession opens a CVV session for merchant's tok on the forward listener.
func (h *harness) cvvSession(t testing.TB, merchant, tok string) *response {
	t.Helper()
	return h.fwd(t, merchant, http.MethodPost, "/v1/tokens/"+tok+"/cvv-sessions", nil, nil)
}

func (h *harness) openCVVSession(t testing.TB, tok string) string {
	t.Helper()
	r := h.cvvSession(t, merchantA, tok)
	wantStatus(t, r, http.StatusCreated)
	var s struct {
		Session   string    `json:"session"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(r.body, &s); err != nil || !vault.ValidCVVSessionID(s.Session) {
		t.Fatalf("session answer %s: want a cvs_ id", r.body)
	}
	if d := time.Until(s.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute {
		t.Errorf("session expires in %v, want 10 minutes", d)
	}
	return s.Session
}

// attach posts a CVV for session as the CVV frame of merchant does.
func (h *harness) attach(t testing.TB, merchant, session, cvv string) *response {
	t.Helper()
	return h.do(t, http.MethodPost, h.collect+"/v1/cvv", map[string]string{"session": session, "cvv": cvv}, h.frameHeaders(merchant))
}

func TestCVVSessionsAreForTheMerchantsOwnCardTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardWithoutCVV(t)
	wallet := h.walletToken(t, "applePayDPan", testcards.DPANApple, "Visa")

	h.openCVVSession(t, tok)
	other := h.cvvSession(t, merchantB, tok)
	unknown := h.cvvSession(t, merchantB, randomTokenID(t, tok))
	wantError(t, other, http.StatusNotFound, "token_not_found")
	wantError(t, unknown, http.StatusNotFound, "token_not_found")
	if string(other.body) != string(unknown.body) {
		t.Errorf("another merchant's token answers %s, an unknown one %s: want the same", other.body, unknown.body)
	}
	wantError(t, h.cvvSession(t, merchantA, wallet), http.StatusConflict, "token_not_card")
	wantError(t, h.cvvSession(t, merchantA, "tok_short"), http.StatusNotFound, "token_not_found")
	wantError(t, h.do(t, http.MethodPost, h.forward+"/v1/tokens/"+tok+"/cvv-sessions", nil, nil), http.StatusUnauthorized, "unauthorized")
	// The publishable key cannot open one: the route is on the forward listener only.
	r := h.do(t, http.MethodPost, h.collect+"/v1/tokens/"+tok+"/cvv-sessions", nil, h.bearer(merchantA, proxy.RolePublishable))
	wantError(t, r, http.StatusNotFound, "not_found")
}

func TestCVVReCollectionPaysOnceWithTheFreshCVV(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusConflict, "cvv_unavailable")

	fresh := testcards.CVVMastercard // a 3-digit test CVV other than the one tokenized
	session := h.openCVVSession(t, tok)
	r := h.attach(t, merchantA, session, fresh)
	wantStatus(t, r, http.StatusOK)
	if got := r.object(t); got["token"] != tok || got["cvv"] != "attached" {
		t.Errorf("attach answer: got %s, want the token and cvv attached", r.body)
	}
	if !h.hasCVV(t, merchantA, tok) {
		t.Fatal("the token has no CVV after the attach")
	}
	wantError(t, h.attach(t, merchantA, session, fresh), http.StatusNotFound, "cvv_session_not_found")

	wantStatus(t, h.post(t, "/authorize", cardPayment(h.orderID(), tok)), http.StatusOK)
	got := h.received(t, "/authorize")
	if len(got) != 1 {
		t.Fatalf("requests at the sandbox: got %d, want 1", len(got))
	}
	wantReceived(t, got[0], map[string]any{"card_number": testcards.Success, "card_cvv": fresh})
	wantError(t, h.post(t, "/authorize", cardPayment(h.orderID(), tok)), http.StatusConflict, "cvv_unavailable")
	h.wantUpstreamCalls(t, "/authorize", 1)

	// The attach and the refused reuse are both in the audit trail, with no CVV.
	recorded := func(recs []map[string]any) bool {
		var ok, reuse bool
		for _, rec := range recs {
			if rec["event"] != "cvv_attach" || rec["merchant"] != merchantA {
				continue
			}
			ok = ok || rec["outcome"] != "attempt" && rec["status"] == 200.0 && rec["token"] == tok
			reuse = reuse || rec["code"] == "cvv_session_not_found"
		}
		return ok && reuse
	}
	if !recorded(h.waitAudit(t, recorded)) {
		t.Error("the audit trail lacks the attach (status 200, the token) or the refused reuse")
	}
	h.assertNoCardData(t) // the test CVVs, fresh among them, are matched as values, not as any three digits
}

func TestCVVAttachRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardWithoutCVV(t)
	session := h.openCVVSession(t, tok)

	wantError(t, h.attach(t, merchantB, session, testcards.CVV), http.StatusNotFound, "cvv_session_not_found")
	wantError(t, h.attach(t, merchantA, session, testcards.CVVAmex), http.StatusBadRequest, "invalid_cvv")
	wantError(t, h.attach(t, merchantA, session, "12a"), http.StatusBadRequest, "invalid_cvv")
	wantError(t, h.attach(t, merchantA, "cvs_"+strings.Repeat("B", 26), testcards.CVV), http.StatusNotFound, "cvv_session_not_found")
	wantError(t, h.attach(t, merchantA, "", testcards.CVV), http.StatusBadRequest, "missing_field")
	r := h.do(t, http.MethodPost, h.collect+"/v1/cvv", map[string]string{"session": session, "cvv": testcards.CVV},
		withHeaders(h.bearer(merchantA, proxy.RolePublishable), headers{"Origin": "https://evil.example"}))
	wantError(t, r, http.StatusForbidden, "origin_not_allowed")
	if h.hasCVV(t, merchantA, tok) {
		t.Fatal("a refused attach left a CVV")
	}
	// Every refusal above kept the session: it still attaches once.
	wantStatus(t, h.attach(t, merchantA, session, testcards.CVV), http.StatusOK)
	if !h.hasCVV(t, merchantA, tok) {
		t.Fatal("no CVV after the attach")
	}
}

func TestCVVSessionExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	needsMiniredis(t, "FastForward")
	tok := h.cardWithoutCVV(t)
	session := h.openCVVSession(t, tok)
	h.mr.FastForward(vault.CVVSessionTTL + time.Second)
	wantError(t, h.attach(t, merchantA, session, testcards.CVV), http.StatusNotFound, "cvv_session_not_found")
	if h.hasCVV(t, merchantA, tok) {
		t.Fatal("an expired session attached a CVV")
	}
}
