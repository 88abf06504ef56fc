package proxy_test

import (
	"net/http"
	"testing"
)

func TestForwardFillsEmptyCardFieldsFromTheToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, panSuccess, cvvVisa)
	body := paymentBody(h.orderID(), map[string]any{
		"payment_method": "card", "card_number": "", "card_exp_month": "", "card_cvv": tok,
	})
	wantStatus(t, h.post(t, "/initPaymentHost2Host", body), http.StatusOK)
	got := h.received(t, "/initPaymentHost2Host")
	wantReceived(t, got[len(got)-1], map[string]any{
		"card_number": panSuccess, "card_exp_month": expMonth, "card_cvv": cvvVisa, "card_holder": holder,
	})
	h.assertNoCardData(t)
}
