package proxy_test

// Hostile-input suite (see hostile_body_test.go): log injection.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestHostile_LogInjectionCRLFInHolderName(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	forged := `{"level":"error","msg":"forged entry","merchant":"merchant_beta"}`
	f := cardFields(testcards.Success, testcards.CVV)
	f["card_holder"] = "Jane Roe\r\n" + forged
	wantError(t, h.col(t, merchantA, f, nil), http.StatusBadRequest, "invalid_text")
	form := url.Values{"card_number": {testcards.Success}, "card_exp_month": {"12"}, "card_exp_year": {"2030"}, "card_holder": {"Jane\n" + forged}}
	wantError(t, h.col(t, merchantA, form.Encode(), headers{"Content-Type": "application/x-www-form-urlencoded"}),
		http.StatusBadRequest, "invalid_text")
	f["card_holder"] = "Jane\u2028Roe\u0085" + forged // Unicode line separators
	r := h.col(t, merchantA, f, nil)
	if r.status != http.StatusBadRequest {
		t.Errorf("Unicode line separators in the holder name: got %d %q, want 400", r.status, r.code())
	}
	lines := h.waitRequestLines(t, 3)
	if len(lines) != 3 {
		t.Errorf("got %d access-log lines for 3 requests, want 3", len(lines))
	}
	for _, l := range h.logLines(t) {
		if l["msg"] == "forged entry" {
			t.Error("a request created a log line of its own")
		}
	}
	h.assertNoCardData(t, "forged entry")
}

func TestHostile_LogInjectionCRInRawHeader(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, hdr := range []string{
		"X-Note: a\rX-Forged: 1",
		"X-Note: a\r\x00b",
		"X-Note: a\x1b[2Jb",
	} {
		req := rawRequest("POST /check HTTP/1.1", []string{
			"Host: x", "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth,
			"Content-Type: application/json", hdr, "Content-Length: 2",
		}, "{}")
		resps, closed := h.raw(t, h.fwdAddr, req, 2*time.Second)
		if len(resps) != 1 || resps[0].status != http.StatusBadRequest || !closed {
			t.Errorf("%q: got %d answers (first %v), closed %v; want one 400 and the connection closed", hdr, len(resps), statuses(resps), closed)
		}
	}
	if n := len(h.requestLines(t)); n != 0 {
		t.Errorf("got %d access-log lines, want 0: a malformed request reached a handler", n)
	}
	h.wantUpstreamCalls(t, "", 0)
	h.assertNoCardData(t, "X-Forged")
}

func TestHostile_LogInjectionInIdempotencyKey(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, k := range []string{"key\u2028{\"msg\":\"forged entry\"}", "key\tforged entry", strings.Repeat("k", 256), "key with spaces"} {
		wantError(t, h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Idempotency-Key": k}), http.StatusBadRequest, "invalid_idempotency_key")
	}
	for _, l := range h.logLines(t) {
		if l["msg"] == "forged entry" {
			t.Error("a request created a log line of its own")
		}
	}
	h.wantTokenKeys(t, 0)
	h.assertNoCardData(t, "forged entry")
}

func TestHostile_LogInjectionEncodedCRLFInPath(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	inj := url.PathEscape("tok\r\n{\"level\":\"error\",\"msg\":\"forged entry\"}")
	wantError(t, h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+inj, nil, nil), http.StatusNotFound, "token_not_found")
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host"+url.PathEscape("\r\nforged entry"), map[string]any{}, nil),
		http.StatusNotFound, "not_found")
	lines := h.waitRequestLines(t, 2)
	if len(lines) != 2 {
		t.Errorf("got %d access-log lines for 2 requests, want 2", len(lines))
	}
	h.assertNoCardData(t, "forged entry")
}
