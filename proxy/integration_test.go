package proxy_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

// TestIntegrationTokenizePayCheckOnRealRedisAndVault runs the whole path on a real
// redis-server and a real Vault dev server (transit): tokenize at collect, pay with
// the token at forward over TLS to the sandbox, check the order through passthrough.
// It is skipped when the servers are missing, and fails instead under CI=true.
func TestIntegrationTokenizePayCheckOnRealRedisAndVault(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Parallel()
	transit, _ := realVault(t, 5*time.Second)
	h := newHarness(t, harnessOptions{transit: transit, realRedis: true})

	wantStatus(t, h.do(t, http.MethodGet, h.admin+"/readyz", nil, nil), http.StatusOK)

	tests := []struct {
		name       string
		pan, cvv   string
		wantStatus float64
	}{
		{"the frictionless test card pays and check reports 2", testcards.Success, testcards.CVV, 2},
		{"another valid card is declined and check reports -1", testcards.Decline, testcards.CVVMastercard, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := h.tokenize(t, merchantA, cardFields(tt.pan, tt.cvv))
			if m.Card == nil || m.Card.Last4 != tt.pan[len(tt.pan)-4:] || m.Fingerprint != "" {
				t.Fatalf("tokenize: got card %+v fingerprint %q, want last4 %s and no fingerprint", m.Card, m.Fingerprint, tt.pan[len(tt.pan)-4:])
			}
			// The record keeps Vault's HMAC fingerprint; no answer shows it.
			if rec, err := h.vault.Metadata(context.Background(), merchantA, m.Token); err != nil || !strings.HasPrefix(rec.Fingerprint, "fp_") {
				t.Fatalf("stored fingerprint: got %q (%v), want an fp_ fingerprint", rec.Fingerprint, err)
			}
			// What Redis holds is Vault ciphertext, not the dev cipher's.
			var sawVaultCiphertext bool
			for _, v := range h.redisContents(t) {
				if strings.Contains(v, "vault:v") {
					sawVaultCiphertext = true
				}
			}
			if !sawVaultCiphertext {
				t.Error("Redis holds no Vault transit ciphertext")
			}

			order := h.orderID()
			r := h.post(t, "/initPaymentHost2Host", cardPayment(order, m.Token))
			wantStatus(t, r, http.StatusOK)
			got := h.received(t, "/initPaymentHost2Host")
			last := got[len(got)-1]
			wantReceived(t, last, map[string]any{
				"card_number": tt.pan, "card_cvv": tt.cvv, "card_exp_month": testcards.ExpMonth,
				"card_exp_year": testcards.ExpYearShort, "card_holder": testcards.Holder, "order_id": order,
			})
			if got := h.checkStatus(t, order); got != tt.wantStatus {
				t.Errorf("check status: got %v, want %v", got, tt.wantStatus)
			}
			again := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), m.Token))
			wantError(t, again, http.StatusConflict, "cvv_unavailable")
		})
	}
	t.Run("another merchant's token is not found", func(t *testing.T) {
		theirs := h.tokenize(t, merchantB, cardFields(testcards.Success, testcards.CVV)).Token
		wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), theirs)), http.StatusNotFound, "token_not_found")
	})
	if n := len(h.redisContents(t)); n == 0 {
		t.Error("Redis is empty: the card-data scan would prove nothing")
	}
}
