package proxy_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestAdminReportsHealthAndReadiness(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	t.Run("healthz answers 200 without a key", func(t *testing.T) {
		r := h.do(t, http.MethodGet, h.admin+"/healthz", nil, nil)
		wantStatus(t, r, http.StatusOK)
		if got := r.object(t)["status"]; got != "ok" {
			t.Errorf("status: got %q, want %q", got, "ok")
		}
	})
	t.Run("readyz answers 200 while Redis and the cipher are up", func(t *testing.T) {
		r := h.do(t, http.MethodGet, h.admin+"/readyz", nil, nil)
		wantStatus(t, r, http.StatusOK)
		if got := string(r.body); got != `{"status":"ready","checks":{"vault":"ok","redis":"ok","audit":"ok"}}`+"\n" {
			t.Errorf("body: got %s", got)
		}
	})
	t.Run("readyz answers 503 naming Redis quickly once Redis is gone", func(t *testing.T) {
		h.closeRedis()
		start := time.Now()
		r := h.do(t, http.MethodGet, h.admin+"/readyz", nil, nil)
		wantStatus(t, r, http.StatusServiceUnavailable)
		if got := string(r.body); got != `{"status":"unavailable","checks":{"vault":"ok","redis":"unreachable","audit":"ok"}}`+"\n" {
			t.Errorf("body: got %s", got)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("answer after %s, want well under the 2s readiness deadline plus slack", d)
		}
		if got := r.header.Get("Retry-After"); got == "" {
			t.Error("Retry-After: got none, want one on 503")
		}
		if got := h.do(t, http.MethodGet, h.admin+"/healthz", nil, nil); got.status != http.StatusOK {
			t.Errorf("healthz with Redis gone: got %d, want 200 (liveness does not depend on Redis)", got.status)
		}
	})
}

func TestAdminDeletesTokensWithTheAdminKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tests := []struct {
		name   string
		hdr    headers
		status int
		code   string
	}{
		{"a delete without a key is refused", nil, 401, "unauthorized"},
		{"a delete with the merchant's secret key is refused on admin", h.bearer(merchantA, proxy.RoleSecret), 401, "unauthorized"},
		{"a delete with the merchant's publishable key is refused on admin", h.bearer(merchantA, proxy.RolePublishable), 401, "unauthorized"},
		{"another merchant's admin key finds no such token", h.bearer(merchantB, proxy.RoleAdmin), 404, "token_not_found"},
		{"the merchant's admin key deletes the token", h.bearer(merchantA, proxy.RoleAdmin), 204, ""},
		{"a second delete finds no such token", h.bearer(merchantA, proxy.RoleAdmin), 404, "token_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(t, http.MethodDelete, h.admin+"/v1/tokens/"+tok, nil, tt.hdr)
			if tt.code == "" {
				wantStatus(t, r, tt.status)
				return
			}
			wantError(t, r, tt.status, tt.code)
		})
	}
	wantError(t, h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil), http.StatusNotFound, "token_not_found")
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after the delete: got %d, want 0", n)
	}
}

func TestAdminKeysOpenOnlyTheAdminListener(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	ak := "Bearer " + h.keys[merchantA][proxy.RoleAdmin]
	r := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), headers{"Proxy-Authorization": ak})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	r = h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, headers{"Proxy-Authorization": ak})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	r = h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Authorization": ak})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	r = h.do(t, http.MethodGet, h.admin+"/v1/tokens/"+tok, nil, h.bearer(merchantA, proxy.RoleAdmin))
	if r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Errorf("reading a token on admin: got %d, want 404 or 405 (admin cannot read card metadata)", r.status)
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestAdminServesThePolicyReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	t.Run("the report needs an admin key", func(t *testing.T) {
		wantError(t, h.do(t, http.MethodGet, h.admin+"/v1/policy", nil, nil), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("the report is the explain output of the policy in force", func(t *testing.T) {
		r := h.do(t, http.MethodGet, h.admin+"/v1/policy", nil, h.bearer(merchantA, proxy.RoleAdmin))
		wantStatus(t, r, http.StatusOK)
		if got := r.header.Get("Content-Type"); !strings.HasPrefix(got, "text/markdown") {
			t.Errorf("Content-Type: got %q, want text/markdown", got)
		}
		if want := policy.Explain(h.pol); !bytes.Equal(r.body, want) {
			t.Errorf("report: got %d bytes, want the %d bytes of policy.Explain", len(r.body), len(want))
		}
		if !bytes.Contains(r.body, []byte(h.pol.Hash)) {
			t.Errorf("report: does not name the policy hash %q", h.pol.Hash)
		}
	})
	t.Run("every log line carries the policy hash", func(t *testing.T) {
		for _, line := range bytes.Split(bytes.TrimSpace(h.logs.Bytes()), []byte("\n")) {
			if !bytes.Contains(line, []byte(`"policy_hash":"`+h.pol.Hash+`"`)) {
				t.Errorf("log line without the policy hash: %s", line)
			}
		}
	})
}
