package proxy_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
)

// adminKey returns the Authorization header of merchant's admin key.
func (h *harness) adminKey(merchant string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + h.keys[merchant][proxy.RoleAdmin]}
}

func TestAdminReportsHealthAndReadiness(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	t.Run("healthz answers 200 without a key", func(t *testing.T) {
		r := h.send(t, h.admin, http.MethodGet, "/healthz", nil, nil)
		wantStatus(t, r, http.StatusOK)
		if got := r.object(t)["status"]; got != "ok" {
			t.Errorf("status: got %q, want %q", got, "ok")
		}
	})
	t.Run("readyz answers 200 while Redis and the cipher are up", func(t *testing.T) {
		r := h.send(t, h.admin, http.MethodGet, "/readyz", nil, nil)
		wantStatus(t, r, http.StatusOK)
		if got := r.object(t)["status"]; got != "ready" {
			t.Errorf("status: got %q, want %q", got, "ready")
		}
	})
	t.Run("readyz answers 503 vault_unavailable quickly once Redis is gone", func(t *testing.T) {
		h.closeRedis()
		start := time.Now()
		r := h.send(t, h.admin, http.MethodGet, "/readyz", nil, nil)
		wantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("answer after %s, want well under the 2s readiness deadline plus slack", d)
		}
		if got := r.header.Get("Retry-After"); got == "" {
			t.Error("Retry-After: got none, want one on 503")
		}
		if got := h.send(t, h.admin, http.MethodGet, "/healthz", nil, nil); got.status != http.StatusOK {
			t.Errorf("healthz with Redis gone: got %d, want 200 (liveness does not depend on Redis)", got.status)
		}
	})
	h.assertNoCardData(t)
}

func TestAdminDeletesTokensWithTheAdminKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, panSuccess, cvvVisa)
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"a delete without a key is refused", nil, 401, "unauthorized"},
		{"a delete with the merchant's secret key is refused on admin", map[string]string{"Authorization": "Bearer " + h.keys[merchantA][proxy.RoleSecret]}, 401, "unauthorized"},
		{"a delete with the merchant's publishable key is refused on admin", map[string]string{"Authorization": "Bearer " + h.keys[merchantA][proxy.RolePublishable]}, 401, "unauthorized"},
		{"another merchant's admin key finds no such token", h.adminKey(merchantB), 404, "token_not_found"},
		{"the merchant's admin key deletes the token", h.adminKey(merchantA), 204, ""},
		{"a second delete finds no such token", h.adminKey(merchantA), 404, "token_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.send(t, h.admin, http.MethodDelete, "/v1/tokens/"+tok, nil, tt.hdr)
			if tt.code == "" {
				wantStatus(t, r, tt.status)
				return
			}
			wantError(t, r, tt.status, tt.code)
		})
	}
	wantError(t, h.fwd(t, http.MethodGet, "/v1/tokens/"+tok, nil, nil), http.StatusNotFound, "token_not_found")
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after the delete: got %d, want 0", n)
	}
	h.assertNoCardData(t)
}

func TestAdminKeysOpenOnlyTheAdminListener(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, panSuccess, cvvVisa)
	ak := "Bearer " + h.keys[merchantA][proxy.RoleAdmin]
	r := h.fwd(t, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), map[string]string{"Proxy-Authorization": ak})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	r = h.fwd(t, http.MethodGet, "/v1/tokens/"+tok, nil, map[string]string{"Proxy-Authorization": ak})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	r = h.send(t, h.collect, http.MethodPost, "/v1/tokens", cardFields(panSuccess, cvvVisa), map[string]string{"Authorization": ak})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	r = h.send(t, h.admin, http.MethodGet, "/v1/tokens/"+tok, nil, h.adminKey(merchantA))
	if r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Errorf("reading a token on admin: got %d, want 404 or 405 (admin cannot read card metadata)", r.status)
	}
	if n := h.upstreamCount(); n != 0 {
		t.Errorf("requests at the sandbox: got %d, want 0", n)
	}
	h.assertNoCardData(t)
}

func TestAdminServesThePolicyReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	t.Run("the report needs an admin key", func(t *testing.T) {
		wantError(t, h.send(t, h.admin, http.MethodGet, "/v1/policy", nil, nil), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("the report is the explain output of the policy in force", func(t *testing.T) {
		r := h.send(t, h.admin, http.MethodGet, "/v1/policy", nil, h.adminKey(merchantA))
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
	h.assertNoCardData(t)
}
