package proxy_test

import (
	"net/http"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

func TestForwardFillsEmptyCardFieldsFromTheToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := paymentBody(h.orderID(), map[string]any{
		"payment_method": "card", "card_number": "", "card_exp_month": "", "card_cvv": tok,
	})
	wantStatus(t, h.post(t, "/initPaymentHost2Host", body), http.StatusOK)
	got := h.received(t, "/initPaymentHost2Host")
	wantReceived(t, got[len(got)-1], map[string]any{
		"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth, "card_cvv": testcards.CVV, "card_holder": testcards.Holder,
	})
}
