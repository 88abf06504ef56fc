package proxy_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

func TestForwardInjectsACardIntoInitPaymentHost2Host(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		pan, cvv   string
		wantStatus float64 // the transaction status check reports
	}{
		{"a payment with the frictionless test card succeeds and check reports 2", testcards.Success, testcards.CVV, 2},
		{"a payment with another valid card fails and check reports -1", testcards.Decline, testcards.CVVMastercard, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			tok := h.cardToken(t, tt.pan, tt.cvv)
			order := h.orderID()

			r := h.post(t, "/initPaymentHost2Host", cardPayment(order, tok))
			wantStatus(t, r, http.StatusOK)
			if got := r.object(t)["status"]; got != tt.wantStatus {
				t.Errorf("payment status: got %v, want %v", got, tt.wantStatus)
			}
			if what := findCardData(r.body); what != "" {
				t.Errorf("the backend's answer contains %s", what)
			}

			got := h.received(t, "/initPaymentHost2Host")
			if len(got) != 1 {
				t.Fatalf("requests at the sandbox: got %d, want 1", len(got))
			}
			wantReceived(t, got[0], map[string]any{
				"card_number": tt.pan, "card_cvv": tt.cvv,
				"card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYearShort, "card_holder": testcards.Holder,
				"order_id": order, "amount": float64(1000), "payment_method": "card",
				"customer_zip_code": float64(121165), "customer_email": "john.doe@example.com",
			})

			if got := h.checkStatus(t, order); got != tt.wantStatus {
				t.Errorf("check status: got %v, want %v", got, tt.wantStatus)
			}
			// The CVV was consumed by the payment; the card stays usable without it.
			m := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil)
			wantStatus(t, m, http.StatusOK)
			if got := m.object(t)["has_cvv"]; got != false {
				t.Errorf("has_cvv after the payment: got %v, want false", got)
			}
		})
	}
}

func TestForwardLeavesEveryOtherByteOfTheBodyAsSent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	order := h.orderID()
	// Unusual spacing, key order and escapes must reach the upstream untouched.
	body := `{ "order_id" : "` + order + `",  "card_number":"` + tok + `", "amount":1000,"currency":"EUR","account":"EUR-sandbox",` +
		`"merchant_site":"https://merchant.site","customer_first_name":"J\u00f6hn","customer_last_name":"Doe",` +
		`"customer_address":"10 Downing Street","customer_city":"London","customer_zip_code":"121165","customer_country":"GB",` +
		`"customer_phone":"+442079460612","customer_email":"john.doe@example.com","customer_ip_address":"127.0.0.1",` +
		`"card_cvv" :"` + tok + `"}`
	r := h.post(t, "/initPaymentHost2Host", body)
	wantStatus(t, r, http.StatusOK)
	got := h.sandbox.Received("/initPaymentHost2Host")
	if len(got) != 1 {
		t.Fatalf("requests at the sandbox: got %d, want 1", len(got))
	}
	want := `{ "order_id" : "` + order + `",  "card_number":"` + testcards.Success + `", "amount":1000,"currency":"EUR","account":"EUR-sandbox",` +
		`"merchant_site":"https://merchant.site","customer_first_name":"J\u00f6hn","customer_last_name":"Doe",` +
		`"customer_address":"10 Downing Street","customer_city":"London","customer_zip_code":"121165","customer_country":"GB",` +
		`"customer_phone":"+442079460612","customer_email":"john.doe@example.com","customer_ip_address":"127.0.0.1",` +
		`"card_cvv" :"` + testcards.CVV + `","card_exp_month":"` + testcards.ExpMonth + `","card_exp_year":"` + testcards.ExpYearShort +
		`","card_holder":"` + testcards.Holder + `"}`
	if string(got[0].Body) != want {
		t.Errorf("the sandbox received\n%s\nwant\n%s", got[0].Body, want)
	}
}

func TestForwardRefusesASecondPaymentWithTheSameCVV(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)

	for _, path := range []string{"/initPaymentHost2Host", "/authorize"} {
		r := h.post(t, path, cardPayment(h.orderID(), tok))
		wantError(t, r, http.StatusConflict, "cvv_unavailable")
	}
	if n := len(h.sandbox.Received("/initPaymentHost2Host")) + len(h.sandbox.Received("/authorize")); n != 1 {
		t.Errorf("payment requests at the sandbox: got %d, want 1", n)
	}
}

func TestForwardInjectsWalletPayloads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, prefix, dpan, network string
	}{
		{"an Apple Pay payment carries the exact payload and network", "applePayDPan", "apple_pay_", testcards.DPANApple, "Visa"},
		{"a Google Pay payment carries the exact payload and network", "googlePayDPan", "google_pay_", testcards.DPANGoogle, "Mastercard"},
		{"an Apple Pay MasterCard reaches SmartPayments spelled as the wallet sent it", "applePayDPan", "apple_pay_", testcards.DPANApple, "MasterCard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			tok := h.walletToken(t, tt.method, tt.dpan, tt.network)
			order := h.orderID()
			body := paymentBody(order, map[string]any{"payment_method": tt.method, tt.prefix + "dpan": tok})

			r := h.post(t, "/initPaymentHost2Host", body)
			wantStatus(t, r, http.StatusOK)
			if got := r.object(t)["status"]; got != float64(2) {
				t.Errorf("payment status: got %v, want 2", got)
			}
			got := h.received(t, "/initPaymentHost2Host")
			if len(got) != 1 {
				t.Fatalf("requests at the sandbox: got %d, want 1", len(got))
			}
			wantReceived(t, got[0], map[string]any{
				tt.prefix + "dpan": tt.dpan, tt.prefix + "payment_method_network": tt.network,
				"payment_method": tt.method, "order_id": order,
			})
			for _, k := range []string{"card_number", "card_cvv", "card_exp_month", "card_holder"} {
				if _, ok := got[0][k]; ok {
					t.Errorf("the sandbox received %s in a wallet payment", k)
				}
			}
			if got := h.checkStatus(t, order); got != 2 {
				t.Errorf("check status: got %v, want 2", got)
			}

			// The wallet payload is a one-time cryptogram: the token is spent.
			again := h.post(t, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"payment_method": tt.method, tt.prefix + "dpan": tok}))
			if !(again.status == http.StatusConflict && again.code() == "wallet_token_consumed" ||
				again.status == http.StatusNotFound && again.code() == "token_not_found") {
				t.Errorf("second use: got %d %q, want 409 %q or 404 %q", again.status, again.code(), "wallet_token_consumed", "token_not_found")
			}
			if n := len(h.sandbox.Received("/initPaymentHost2Host")); n != 1 {
				t.Errorf("requests at the sandbox after the second use: got %d, want 1", n)
			}
		})
	}
}

func TestForwardAuthorizeThenCaptureOrCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		path       string
		wantStatus float64
	}{
		{"an authorized payment captured through passthrough ends in status 2", "/capture", 2},
		{"an authorized payment cancelled through passthrough ends in status -1", "/cancel", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			tok := h.cardToken(t, testcards.Success, testcards.CVV)
			order := h.orderID()
			body := cardPayment(order, tok)
			delete(body, "payment_method") // authorize has no payment_method
			delete(body, "customer_ip_address")

			r := h.post(t, "/authorize", body)
			wantStatus(t, r, http.StatusOK)
			if what := findCardData(r.body); what != "" {
				t.Errorf("the backend's answer contains %s", what)
			}
			got := h.received(t, "/authorize")
			if len(got) != 1 {
				t.Fatalf("requests at the sandbox: got %d, want 1", len(got))
			}
			wantReceived(t, got[0], map[string]any{
				"card_number": testcards.Success, "card_cvv": testcards.CVV, "card_exp_month": testcards.ExpMonth,
				"card_exp_year": testcards.ExpYearShort, "card_holder": testcards.Holder,
			})
			if got := h.checkStatus(t, order); got != 1 {
				t.Errorf("check status after authorize: got %v, want 1", got)
			}

			c := h.post(t, tt.path, map[string]any{"order_id": order})
			wantStatus(t, c, http.StatusOK)
			if got := c.object(t)["status"]; got != tt.wantStatus {
				t.Errorf("%s status: got %v, want %v", tt.path, got, tt.wantStatus)
			}
			rec := h.sandbox.Received(tt.path)
			if len(rec) != 1 || !bytes.Equal(rec[0].Body, []byte(`{"order_id":"`+order+`"}`)) {
				t.Errorf("passthrough did not forward the body unchanged")
			}
			if got := h.checkStatus(t, order); got != tt.wantStatus {
				t.Errorf("check status: got %v, want %v", got, tt.wantStatus)
			}
		})
	}
}

func TestForwardInjectsACardIntoAWithdrawal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	balance := func() float64 {
		r := h.post(t, "/withdrawal/balance/get", map[string]any{"account": "EUR-sandbox-payout"})
		wantStatus(t, r, http.StatusOK)
		b, _ := r.object(t)["balance"].(float64)
		return b
	}
	before := balance()
	order := h.orderID()
	r := h.post(t, "/withdrawal/init", map[string]any{
		"account": "EUR-sandbox-payout", "order_id": order, "amount": 10000, "payment_method": "card",
		"customer_card_number": tok, "merchant_site": "https://merchant.site",
		"customer_first_name": "John", "customer_middle_name": "Jerom", "customer_last_name": "Doe",
		"customer_phone": "+442079460612", "customer_birthdate": "06.06.1997", "customer_zip_code": "121165",
		"callback_url": "https://site.com/callback",
	})
	wantStatus(t, r, http.StatusOK)
	if got := r.object(t)["status"]; got != float64(2) {
		t.Errorf("withdrawal status: got %v, want 2", got)
	}
	if what := findCardData(r.body); what != "" {
		t.Errorf("the backend's answer contains %s", what)
	}
	rec := h.sandbox.Received("/withdrawal/init")
	if len(rec) != 1 {
		t.Fatalf("requests at the sandbox: got %d, want 1", len(rec))
	}
	got := h.received(t, "/withdrawal/init")[0]
	wantReceived(t, got, map[string]any{
		"customer_card_number": testcards.Success, "customer_card_exp_month": testcards.ExpMonth, "customer_card_exp_year": testcards.ExpYearShort,
		"order_id": order, "payment_method": "card",
	})
	if _, ok := got["card_cvv"]; ok {
		t.Error("the sandbox received card_cvv in a withdrawal")
	}
	if cvvPattern(testcards.CVV).Match(rec[0].Body) {
		t.Error("the sandbox received the CVV in a withdrawal")
	}
	if after := balance(); after != before-10000 {
		t.Errorf("balance: got %v, want %v", after, before-10000)
	}
	if got := h.checkStatus(t, order); got != 2 {
		t.Errorf("check status: got %v, want 2", got)
	}
	// A withdrawal does not use the CVV: it stays for a payment.
	m := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil)
	if got := m.object(t)["has_cvv"]; got != true {
		t.Errorf("has_cvv after the withdrawal: got %v, want true", got)
	}
}

func TestForwardPassesTheMerchantsAuthorizationAndNothingOfChdproxys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	hdr := headers{
		"Connection":    "X-Hop-Secret",
		"X-Hop-Secret":  "dropped because Connection names it",
		"X-Request-Tag": "dropped: only the headers SmartPayments reads go upstream",
	}
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), hdr), http.StatusOK)
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": "nothing-here"}, hdr), http.StatusNotFound)
	for _, path := range []string{"/initPaymentHost2Host", "/check"} {
		rec := h.sandbox.Received(path)
		if len(rec) != 1 {
			t.Fatalf("requests at %s: got %d, want 1", path, len(rec))
		}
		got := rec[0].Header
		if v := got.Get("Authorization"); v != testcards.BasicAuth {
			t.Errorf("%s: Authorization: got %q, want %q", path, v, testcards.BasicAuth)
		}
		if v := got.Values("Proxy-Authorization"); len(v) != 0 {
			t.Errorf("%s: Proxy-Authorization reached the upstream", path)
		}
		if v := got.Get("X-Hop-Secret"); v != "" {
			t.Errorf("%s: X-Hop-Secret: got %q, want it dropped", path, v)
		}
		if v := got.Get("X-Request-Tag"); v != "" {
			t.Errorf("%s: X-Request-Tag: got %q, want it dropped", path, v)
		}
	}
}

func TestForwardReplaysAPaymentRetriedWithTheSameIdempotencyKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := cardPayment(h.orderID(), tok)
	hdr := headers{"Idempotency-Key": "order-attempt-one"}

	first := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, hdr)
	wantStatus(t, first, http.StatusOK)
	second := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, hdr)
	wantStatus(t, second, http.StatusOK)
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("replayed answer: got %q, want %q", second.body, first.body)
	}
	if n := len(h.sandbox.Received("/initPaymentHost2Host")); n != 1 {
		t.Errorf("requests at the sandbox: got %d, want 1", n)
	}
	other := cardPayment(h.orderID(), tok)
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", other, hdr), http.StatusConflict, "idempotency_key_reused")
}
