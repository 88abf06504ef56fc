package proxy_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestForwardRefusesRawCardData(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	apple := h.walletToken(t, "applePayDPan", testcards.DPANApple, "Visa")
	pan := testcards.Success
	forms := testcards.Spellings(pan)
	pay := func(set map[string]any) map[string]any {
		b := cardPayment(h.orderID(), tok)
		for k, v := range set {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"a raw PAN in card_number is refused", "/initPaymentHost2Host", pay(map[string]any{"card_number": testcards.Success}), 400, "raw_card_data"},
		{"a raw PAN grouped by spaces in a free-text field is refused", "/initPaymentHost2Host", pay(map[string]any{"purpose": "card " + forms["grouped (spaces)"]}), 400, "raw_card_data"},
		{"a raw PAN nested in an object is refused", "/initPaymentHost2Host", pay(map[string]any{"meta": map[string]any{"notes": []any{"x", map[string]any{"c": forms["grouped (dashes)"]}}}}), 400, "raw_card_data"},
		{"a raw PAN as a JSON number is refused", "/initPaymentHost2Host", `{"order_id":"o","customer_card":` + pan + `,"card_number":"` + tok + `"}`, 400, "raw_card_data"},
		{"a raw PAN written with JSON escapes is refused", "/initPaymentHost2Host", `{"purpose":"` + forms["JSON \\u-escaped"][:12] + pan[2:] + `","card_number":"` + tok + `"}`, 400, "raw_card_data"},
		{"a raw PAN in a field name is refused", "/initPaymentHost2Host", `{"` + pan + `":"x","card_number":"` + tok + `"}`, 400, "raw_card_data"},
		{"a raw PAN on a route without a token is refused", "/withdrawal/init", map[string]any{"account": "EUR-sandbox-payout", "order_id": "o", "amount": 1, "customer_card_number": testcards.Success}, 400, "raw_card_data"},
		{"a raw PAN in a passthrough call is refused", "/check", map[string]any{"order_id": testcards.Success}, 400, "raw_card_data"},
		{"a raw PAN in a passthrough refund reason is refused", "/refund", map[string]any{"order_id": "o", "amount": 1, "reason": "card " + testcards.Spellings(testcards.Decline)["grouped (spaces)"]}, 400, "raw_card_data"},
		{"a raw PAN in the query of an injection route is refused", "/initPaymentHost2Host?card=" + testcards.Success, pay(nil), 400, "raw_card_data"},
		{"a raw PAN percent-encoded in the query of a passthrough call is refused", "/check?c=" + forms["percent-encoded"], map[string]any{"order_id": "o"}, 400, "raw_card_data"},
		{"a CVV in the clear beside a card token is refused", "/initPaymentHost2Host", pay(map[string]any{"card_cvv": testcards.CVV}), 400, "raw_card_data"},
		{"a CVV as a JSON number beside a card token is refused", "/initPaymentHost2Host", pay(map[string]any{"card_cvv": json.Number(testcards.CVV)}), 400, "raw_card_data"},
		{"a wallet payload in the clear is refused", "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": testcards.DPANApple, "apple_pay_payment_method_network": "Visa"}), 400, "raw_card_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.upstreamCalls("")
			r := h.post(t, tt.path, tt.body)
			wantError(t, r, tt.status, tt.code)
			if after := h.upstreamCalls(""); after != before {
				t.Errorf("requests at the sandbox: got %d, want %d", after, before)
			}
		})
	}
	// Nothing was consumed by the refusals.
	for _, id := range []string{tok, apple} {
		m := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil)
		wantStatus(t, m, http.StatusOK)
		if id == tok && m.object(t)["has_cvv"] != true {
			t.Errorf("has_cvv after refused requests: got %v, want true", m.object(t)["has_cvv"])
		}
	}
}

func TestForwardRefusesTokensWhereThePolicyAllowsNone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tok2 := h.cardToken(t, testcards.Decline, testcards.CVVMastercard)
	apple := h.walletToken(t, "applePayDPan", testcards.DPANApple, "Visa")
	google := h.walletToken(t, "googlePayDPan", testcards.DPANGoogle, "Visa")
	order := h.orderID()
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"a token in a field the policy does not name is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"card_number": tok, "purpose": tok}), 400, "token_not_allowed"},
		{"a token nested in an object is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"card_number": tok, "meta": map[string]any{"card": tok}}), 400, "token_not_allowed"},
		{"a token inside free text is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"card_number": tok, "purpose": "pay with " + tok + " please"}), 400, "token_not_allowed"},
		{"a token in a wallet field of a card payment is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"payment_method": "card", "card_number": tok, "apple_pay_dpan": tok}), 400, "token_not_allowed"},
		{"a wallet token in the card number field is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"payment_method": "applePayDPan", "card_number": apple}), 400, "token_not_allowed"},
		{"a card token in the CVV field of a withdrawal is refused", "/withdrawal/init",
			map[string]any{"account": "EUR-sandbox-payout", "order_id": order, "amount": 1, "customer_card_number": tok, "card_cvv": tok}, 400, "token_not_allowed"},
		{"a token in the query of an injection route is refused", "/initPaymentHost2Host?ref=" + tok,
			cardPayment(order, tok), 400, "token_not_allowed"},
		{"a token on a passthrough route is refused", "/check",
			map[string]any{"order_id": tok}, 400, "token_not_allowed"},
		{"a token nested in a passthrough body is refused", "/refund",
			map[string]any{"order_id": order, "amount": 1, "reason": "refund", "x": []any{tok}}, 400, "token_not_allowed"},
		{"a token in the query of a passthrough route is refused", "/recurrent?t=" + tok,
			map[string]any{"order_id": order, "parent_order_id": "p", "amount": 1, "purpose": "p"}, 400, "token_not_allowed"},
		{"two different tokens in one request are refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"card_number": tok, "card_cvv": tok2}), 400, "token_mismatch"},
		{"a card token with payment_method applePayDPan is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"payment_method": "applePayDPan", "card_number": tok}), 400, "payment_method_mismatch"},
		{"an Apple Pay token with payment_method card is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"payment_method": "card", "apple_pay_dpan": apple}), 400, "payment_method_mismatch"},
		{"an Apple Pay token without payment_method (card by default) is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"apple_pay_dpan": apple}), 400, "payment_method_mismatch"},
		{"a Google Pay token with payment_method applePayDPan is refused", "/initPaymentHost2Host",
			paymentBody(order, map[string]any{"payment_method": "applePayDPan", "google_pay_dpan": google}), 400, "payment_method_mismatch"},
		{"a card token with payment_method token on a withdrawal is refused", "/withdrawal/init",
			map[string]any{"account": "EUR-sandbox-payout", "order_id": order, "amount": 1, "payment_method": "token", "customer_card_number": tok}, 400, "payment_method_mismatch"},
		{"a wallet token on authorize is refused", "/authorize",
			paymentBody(order, map[string]any{"card_number": apple}), 400, "token_kind_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.upstreamCalls("")
			r := h.post(t, tt.path, tt.body)
			wantError(t, r, tt.status, tt.code)
			if after := h.upstreamCalls(""); after != before {
				t.Errorf("requests at the sandbox: got %d, want %d", after, before)
			}
		})
	}
	for _, id := range []string{tok, tok2, apple, google} {
		m := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil)
		wantStatus(t, m, http.StatusOK)
		if strings.HasPrefix(m.object(t)["kind"].(string), "card") && m.object(t)["has_cvv"] != true {
			t.Errorf("has_cvv after refused requests: got %v, want true", m.object(t)["has_cvv"])
		}
	}
}

func TestForwardAnswersAnotherMerchantsTokenLikeAnUnknownOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	theirs := h.tokenize(t, merchantB, cardFields(testcards.Success, testcards.CVV)).Token
	unknown := "tok_" + strings.Repeat("Q", 22)

	var bodies []string
	for _, id := range []string{theirs, unknown} {
		r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), id))
		wantError(t, r, http.StatusNotFound, "token_not_found")
		bodies = append(bodies, string(r.body))
		m := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil)
		wantError(t, m, http.StatusNotFound, "token_not_found")
		bodies = append(bodies, string(m.body))
		d := h.fwd(t, merchantA, http.MethodDelete, "/v1/tokens/"+id, nil, nil)
		wantError(t, d, http.StatusNotFound, "token_not_found")
		bodies = append(bodies, string(d.body))
	}
	for i := 0; i < 3; i++ {
		if bodies[i] != bodies[i+3] {
			t.Errorf("another merchant's token: got %q, want %q (as for an unknown token)", bodies[i], bodies[i+3])
		}
	}
	h.wantUpstreamCalls(t, "", 0)
	// The owner's token is intact: merchant B can still pay with it.
	r := h.fwd(t, merchantB, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), theirs), nil)
	wantStatus(t, r, http.StatusOK)
}

func TestForwardRefusesExpiredTokensAndCVVs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wait    time.Duration
		payment func(order, tok string) map[string]any
		status  int
		code    string
	}{
		{"a card token past its TTL is not found", 25 * time.Hour, cardPayment, 404, "token_not_found"},
		{"a CVV past its TTL is unavailable", 11 * time.Minute, cardPayment, 409, "cvv_unavailable"},
		{"a card token whose CVV expired still pays out a withdrawal", 11 * time.Minute, func(order, tok string) map[string]any {
			return map[string]any{"account": "EUR-sandbox-payout", "order_id": order, "amount": 100, "payment_method": "card", "customer_card_number": tok}
		}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			tok := h.cardToken(t, testcards.Success, testcards.CVV)
			h.mr.FastForward(tt.wait)
			body := tt.payment(h.orderID(), tok)
			path := "/initPaymentHost2Host"
			if _, ok := body["customer_card_number"]; ok {
				path = "/withdrawal/init"
			}
			r := h.post(t, path, body)
			if tt.code == "" {
				wantStatus(t, r, tt.status)
			} else {
				wantError(t, r, tt.status, tt.code)
				h.wantUpstreamCalls(t, "", 0)
			}
		})
	}
	t.Run("a wallet token past its TTL is not found", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		tok := h.walletToken(t, "googlePayDPan", testcards.DPANGoogle, "Visa")
		h.mr.FastForward(11 * time.Minute)
		r := h.post(t, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"payment_method": "googlePayDPan", "google_pay_dpan": tok}))
		wantError(t, r, http.StatusNotFound, "token_not_found")
	})
}

func TestForwardAuthenticatesWithSecretKeysOnly(t *testing.T) {
	t.Parallel()
	// Every refused case comes from one address: more than its default burst.
	h := newHarness(t, harnessOptions{limits: proxy.Limits{PerClientBurst: 100}})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tests := []struct {
		name string
		hdr  headers
	}{
		{"a request without Proxy-Authorization is refused", headers{"Proxy-Authorization": ""}},
		{"the secret key in Authorization instead of Proxy-Authorization is refused", headers{"Proxy-Authorization": "", "Authorization": "Bearer " + h.keys[merchantA][proxy.RoleSecret]}},
		{"a publishable key is refused on forward", headers{"Proxy-Authorization": "Bearer " + h.keys[merchantA][proxy.RolePublishable]}},
		{"an admin key is refused on forward", headers{"Proxy-Authorization": "Bearer " + h.keys[merchantA][proxy.RoleAdmin]}},
		{"an unknown secret key is refused", headers{"Proxy-Authorization": "Bearer sk_" + strings.Repeat("Z", 32)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct{ method, path string }{
				{http.MethodPost, "/initPaymentHost2Host"}, {http.MethodPost, "/check"},
				{http.MethodGet, "/v1/tokens/" + tok}, {http.MethodDelete, "/v1/tokens/" + tok},
			} {
				var body any
				if c.method == http.MethodPost {
					body = cardPayment(h.orderID(), tok)
				}
				r := h.fwd(t, merchantA, c.method, c.path, body, tt.hdr)
				wantError(t, r, http.StatusUnauthorized, "unauthorized")
			}
		})
	}
	h.wantUpstreamCalls(t, "", 0)
	if m := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil); m.object(t)["has_cvv"] != true {
		t.Error("the token lost its CVV to unauthenticated requests")
	}
}

func TestForwardServesTokenMetadataAndDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)

	r := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil)
	wantStatus(t, r, http.StatusOK)
	m := r.object(t)
	if m["token"] != tok || m["kind"] != "card" || m["has_cvv"] != true {
		t.Errorf("metadata: got token %v kind %v has_cvv %v, want %s card true", m["token"], m["kind"], m["has_cvv"], tok)
	}
	c, _ := m["card"].(map[string]any)
	last4 := testcards.Success[len(testcards.Success)-4:]
	if c["last4"] != last4 || c["brand"] != "visa" || c["exp_month"] != testcards.ExpMonth || c["exp_year"] != testcards.ExpYear {
		t.Errorf("card metadata: got %v", c)
	}
	if what := findCardData(r.body, testcards.Holder); what != "" {
		t.Errorf("metadata contains %s", what)
	}

	tests := []struct {
		name, method, id string
		status           int
		code             string
	}{
		{"a malformed token id is not found", http.MethodGet, "tok_short", 404, "token_not_found"},
		{"an id without the tok_ prefix is not found", http.MethodGet, "not-a-token", 404, "token_not_found"},
		{"deleting the token succeeds", http.MethodDelete, tok, 204, ""},
		{"the deleted token is not found", http.MethodGet, tok, 404, "token_not_found"},
		{"deleting it again is not found", http.MethodDelete, tok, 404, "token_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.fwd(t, merchantA, tt.method, "/v1/tokens/"+tt.id, nil, nil)
			if tt.code == "" {
				wantStatus(t, r, tt.status)
				return
			}
			wantError(t, r, tt.status, tt.code)
		})
	}
	p := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantError(t, p, http.StatusNotFound, "token_not_found")
	if keys := h.redisContents(t); len(keys) != 0 && strings.Contains(strings.Join(keys, "\n"), tok) {
		t.Error("Redis still holds keys of the deleted token")
	}
}

func TestForwardRefusesAmbiguousBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	q := func(s string) string { return `"` + s + `"` }
	tests := []struct {
		name   string
		path   string
		body   string
		ctype  string
		status int
		code   string
	}{
		{"a duplicate key is refused", "/initPaymentHost2Host", `{"card_number":` + q(tok) + `,"order_id":"a","order_id":"b"}`, "application/json", 400, "duplicate_field"},
		{"a case-variant duplicate of a card field is refused", "/initPaymentHost2Host", `{"card_number":` + q(tok) + `,"Card_Number":"x"}`, "application/json", 400, "duplicate_field"},
		{"a duplicate key on a passthrough call is refused", "/check", `{"order_id":"a","order_id":"b"}`, "application/json", 400, "duplicate_field"},
		{"trailing data after the object is refused", "/initPaymentHost2Host", `{"card_number":` + q(tok) + `}{"card_number":"x"}`, "application/json", 400, "invalid_json"},
		{"a body that is not an object is refused", "/initPaymentHost2Host", `[` + q(tok) + `]`, "application/json", 400, "invalid_json"},
		{"invalid UTF-8 is refused", "/initPaymentHost2Host", `{"card_number":` + q(tok) + `,"purpose":"` + "\xff" + `"}`, "application/json", 400, "invalid_text"},
		{"a form-encoded body is refused", "/initPaymentHost2Host", "card_number=" + tok, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"a body over the size limit is refused", "/initPaymentHost2Host", `{"card_number":` + q(tok) + `,"purpose":"` + strings.Repeat("x", 70<<10) + `"}`, "application/json", 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.fwd(t, merchantA, http.MethodPost, tt.path, tt.body, headers{"Content-Type": tt.ctype})
			wantError(t, r, tt.status, tt.code)
		})
	}
	h.wantUpstreamCalls(t, "", 0)
	if m := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil); m.object(t)["has_cvv"] != true {
		t.Error("the token lost its CVV to refused requests")
	}
}
