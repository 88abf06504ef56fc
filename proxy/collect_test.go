package proxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/proxy"
)

// pk returns the Authorization header of merchant A's publishable key.
func (h *harness) pk() map[string]string {
	return map[string]string{"Authorization": "Bearer " + h.keys[merchantA][proxy.RolePublishable]}
}

func TestCollectTokenizesACard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body any
	}{
		{"a JSON body with every card field is tokenized", cardFields(panSuccess, cvvVisa)},
		{"a form-encoded body with every card field is tokenized", url.Values{
			"card_number": {panSuccess}, "card_exp_month": {expMonth}, "card_exp_year": {expYear},
			"card_cvv": {cvvVisa}, "card_holder": {holder},
		}},
		{"a number grouped by spaces is tokenized", url.Values{
			"card_number": {"4012 0000 0000 3010"}, "card_exp_month": {"12"}, "card_exp_year": {"30"},
		}},
		{"a number grouped by dashes without CVV or holder is tokenized", map[string]string{
			"card_number": "4012-0000-0000-3010", "card_exp_month": "1", "card_exp_year": expYear,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", tt.body, h.pk())
			wantStatus(t, r, http.StatusCreated)
			m := r.object(t)
			tok, _ := m["token"].(string)
			if !strings.HasPrefix(tok, "tok_") {
				t.Errorf("token: got %q, want a tok_ id", tok)
			}
			if got := m["kind"]; got != "card" {
				t.Errorf("kind: got %q, want %q", got, "card")
			}
			c, _ := m["card"].(map[string]any)
			if got := c["last4"]; got != "3010" {
				t.Errorf("last4: got %q, want %q", got, "3010")
			}
			if got := c["brand"]; got != "visa" {
				t.Errorf("brand: got %q, want %q", got, "visa")
			}
			if got, _ := c["bin"].(string); !strings.HasPrefix(got, "401200") || len(got) > 8 {
				t.Errorf("bin: got %q, want at most 8 digits starting 401200", got)
			}
			if got := r.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control: got %q, want %q", got, "no-store")
			}
			if len(h.redisContents(t)) == 0 {
				t.Error("Redis is empty after tokenizing: the card-data scan would prove nothing")
			}
			h.assertNoCardData(t)
		})
	}
}

func TestCollectTokenizesAnAmexCardWithAFourDigitCVV(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	m := h.tokenize(t, merchantA, cardFields(panAmex, cvvAmex))
	if m.Card == nil || m.Card.Brand != "amex" || m.Card.Last4 != "0005" {
		t.Errorf("card: got %+v, want brand amex, last4 0005", m.Card)
	}
	if !m.HasCVV {
		t.Error("has_cvv: got false, want true")
	}
	h.assertNoCardData(t)
}

func TestCollectRefusesInvalidCards(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	with := func(k, v string) map[string]string {
		f := cardFields(panSuccess, cvvVisa)
		f[k] = v
		return f
	}
	without := func(k string) map[string]string {
		f := cardFields(panSuccess, cvvVisa)
		delete(f, k)
		return f
	}
	tests := []struct {
		name  string
		body  any
		code  string
		input string // a part of the input that must not be echoed anywhere
	}{
		{"a number failing the Luhn check is refused", with("card_number", panBadLuhn), "invalid_card_checksum", panBadLuhn},
		{"a number with letters is refused", with("card_number", "4012zqxw00003010"), "invalid_card_number", "zqxw"},
		{"a number in fullwidth digits is refused", with("card_number", "４０１２０００００００００３０１０"), "invalid_card_number", "４０１２"},
		{"a number in Arabic-Indic digits is refused", with("card_number", "٤٠١٢٠٠٠٠٠٠٠٠٣٠١٠"), "invalid_card_number", "٤٠١٢"},
		{"a number with doubled separators is refused", with("card_number", "4012  0000 0000 3010"), "invalid_card_number", ""},
		{"a number that is too short is refused", with("card_number", "40120000003"), "invalid_card_length", ""},
		{"a number of an unknown brand is refused", with("card_number", "9999999999999995"), "unsupported_card_brand", "9999999999999995"},
		{"a number sent as a JSON number is refused", `{"card_number":4012000000003010,"card_exp_month":"12","card_exp_year":"2030"}`, "invalid_field_type", ""},
		{"an expiry month sent as a JSON number is refused", `{"card_number":"4012000000003010","card_exp_month":12,"card_exp_year":"2030"}`, "invalid_field_type", ""},
		{"a CVV sent as a JSON number is refused", `{"card_number":"4012000000003010","card_exp_month":"12","card_exp_year":"2030","card_cvv":737}`, "invalid_field_type", ""},
		{"a null card number is refused", `{"card_number":null,"card_exp_month":"12","card_exp_year":"2030"}`, "invalid_field_type", ""},
		{"an expired card is refused", with("card_exp_year", "2020"), "card_expired", ""},
		{"month 13 is refused", with("card_exp_month", "13"), "invalid_exp_month", ""},
		{"month 0 is refused", with("card_exp_month", "0"), "invalid_exp_month", ""},
		{"a three-digit year is refused", with("card_exp_year", "203"), "invalid_exp_year", ""},
		{"a two-digit CVV is refused", with("card_cvv", "73"), "invalid_cvv", ""},
		{"a four-digit CVV on a Visa card is refused", with("card_cvv", "7373"), "invalid_cvv", ""},
		{"a CVV with a letter is refused", with("card_cvv", "7x3"), "invalid_cvv", ""},
		{"a three-digit CVV on an Amex card is refused", map[string]string{
			"card_number": panAmex, "card_exp_month": expMonth, "card_exp_year": expYear, "card_cvv": cvvVisa,
		}, "invalid_cvv", ""},
		{"a holder with a control character is refused", with("card_holder", "John\u0007Doe"), "invalid_text", ""},
		{"a missing card number is refused", without("card_number"), "missing_field", ""},
		{"a missing expiry year is refused", without("card_exp_year"), "missing_field", ""},
		{"an unknown payment method is refused", with("payment_method", "paypal"), "invalid_payment_method", "paypal"},
		{"a wallet field beside card fields is refused", with("apple_pay_dpan", dpanApple), "unknown_field", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", tt.body, h.pk())
			wantError(t, r, http.StatusBadRequest, tt.code)
			if what := cardDataIn(r.body, tt.input); what != "" {
				t.Errorf("the error body echoes %s", what)
			}
		})
	}
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after refused cards: got %d, want 0", n)
	}
	h.assertNoCardData(t, panBadLuhn, "zqxw", "４０１２", "٤٠١٢", "9999999999999995", "paypal")
}

func TestCollectTokenizesWalletPayloads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fields  map[string]string
		kind    string
		network string
	}{
		{"an Apple Pay payload is tokenized", map[string]string{
			"payment_method": "applePayDPan", "apple_pay_dpan": dpanApple, "apple_pay_payment_method_network": "Visa",
		}, "apple_pay", "Visa"},
		{"a Google Pay payload is tokenized with the network's canonical casing", map[string]string{
			"payment_method": "googlePayDPan", "google_pay_dpan": dpanGoogle, "google_pay_payment_method_network": "MASTERCARD",
		}, "google_pay", "Mastercard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			m := h.tokenize(t, merchantA, tt.fields)
			if m.Kind != tt.kind {
				t.Errorf("kind: got %q, want %q", m.Kind, tt.kind)
			}
			if m.Network != tt.network {
				t.Errorf("network: got %q, want %q", m.Network, tt.network)
			}
			if m.Card != nil {
				t.Errorf("card: got %+v, want none for a wallet token", m.Card)
			}
			h.assertNoCardData(t)
		})
	}
}

func TestCollectRefusesInvalidWalletPayloads(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tests := []struct {
		name   string
		fields map[string]string
		code   string
	}{
		{"a payload that is not base64 is refused", map[string]string{
			"payment_method": "applePayDPan", "apple_pay_dpan": "not base64 at all!", "apple_pay_payment_method_network": "Visa",
		}, "invalid_dpan"},
		{"a payload that decodes to too few bytes is refused", map[string]string{
			"payment_method": "applePayDPan", "apple_pay_dpan": "c2hvcnQ=", "apple_pay_payment_method_network": "Visa",
		}, "invalid_dpan"},
		{"an unknown network is refused", map[string]string{
			"payment_method": "googlePayDPan", "google_pay_dpan": dpanGoogle, "google_pay_payment_method_network": "Bitcoin",
		}, "invalid_network"},
		{"a missing network is refused", map[string]string{
			"payment_method": "googlePayDPan", "google_pay_dpan": dpanGoogle,
		}, "missing_field"},
		{"the other wallet's payload field is refused", map[string]string{
			"payment_method": "applePayDPan", "google_pay_dpan": dpanGoogle, "apple_pay_payment_method_network": "Visa",
		}, "unknown_field"},
		{"a card number beside a wallet payload is refused", map[string]string{
			"payment_method": "applePayDPan", "apple_pay_dpan": dpanApple, "apple_pay_payment_method_network": "Visa",
			"card_number": panSuccess,
		}, "unknown_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", tt.fields, h.pk())
			wantError(t, r, http.StatusBadRequest, tt.code)
		})
	}
	h.assertNoCardData(t, "Bitcoin")
}

func TestCollectAuthenticatesWithPublishableKeysOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	pk := h.keys[merchantA][proxy.RolePublishable]
	tests := []struct {
		name string
		auth string
	}{
		{"a request without a key is refused", ""},
		{"an unknown key is refused", "Bearer pk_" + strings.Repeat("x", 32)},
		{"merchant A's secret key is refused on collect", "Bearer " + h.keys[merchantA][proxy.RoleSecret]},
		{"merchant A's admin key is refused on collect", "Bearer " + h.keys[merchantA][proxy.RoleAdmin]},
		{"the publishable key sent with the Basic scheme is refused", "Basic " + pk},
		{"the publishable key without a scheme is refused", pk},
		{"the publishable key with a character missing is refused", "Bearer " + pk[:len(pk)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", cardFields(panSuccess, cvvVisa), map[string]string{"Authorization": tt.auth})
			wantError(t, r, http.StatusUnauthorized, "unauthorized")
		})
	}
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after refused requests: got %d, want 0", n)
	}
	h.assertNoCardData(t)
}

func TestCollectAppliesEachMerchantsOriginAllowlist(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	preflight := func(origin string) *response {
		hdr := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
		if origin != "" {
			hdr["Origin"] = origin
		}
		return h.send(t, h.collect, http.MethodOptions, "/v1/tokens", nil, hdr)
	}
	t.Run("a preflight from an allowed origin is answered with CORS headers", func(t *testing.T) {
		r := preflight(originA)
		wantStatus(t, r, http.StatusNoContent)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != originA {
			t.Errorf("Access-Control-Allow-Origin: got %q, want %q", got, originA)
		}
		if got := r.header.Get("Access-Control-Allow-Methods"); got != "POST" {
			t.Errorf("Access-Control-Allow-Methods: got %q, want %q", got, "POST")
		}
		if got := r.header.Get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(got), "authorization") {
			t.Errorf("Access-Control-Allow-Headers: got %q, want it to name Authorization", got)
		}
	})
	t.Run("a preflight from an unknown origin is refused without CORS headers", func(t *testing.T) {
		r := preflight("https://evil.example")
		wantError(t, r, http.StatusForbidden, "origin_not_allowed")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin: got %q, want none", got)
		}
	})
	t.Run("a preflight without an origin is refused", func(t *testing.T) {
		wantError(t, preflight(""), http.StatusForbidden, "origin_not_allowed")
	})
	t.Run("a POST from the merchant's own origin is allowed", func(t *testing.T) {
		hdr := h.pk()
		hdr["Origin"] = originA
		r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", cardFields(panSuccess, cvvVisa), hdr)
		wantStatus(t, r, http.StatusCreated)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != originA {
			t.Errorf("Access-Control-Allow-Origin: got %q, want %q", got, originA)
		}
	})
	tests := []struct {
		name   string
		origin string
	}{
		{"a POST from an unknown origin is refused", "https://evil.example"},
		{"a POST from another merchant's origin is refused", originB},
		{"a POST from the merchant's origin over http is refused", "http://shop-a.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.redisContents(t))
			hdr := h.pk()
			hdr["Origin"] = tt.origin
			r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", cardFields(panSuccess, cvvVisa), hdr)
			wantError(t, r, http.StatusForbidden, "origin_not_allowed")
			if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("Access-Control-Allow-Origin: got %q, want none", got)
			}
			if after := len(h.redisContents(t)); after != before {
				t.Errorf("Redis keys: got %d, want %d (nothing stored)", after, before)
			}
		})
	}
	h.assertNoCardData(t)
}

func TestCollectRefusesAmbiguousOrOversizedBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	const card = `"card_number":"4012000000003010","card_exp_month":"12","card_exp_year":"2030"`
	tests := []struct {
		name   string
		body   string
		ctype  string
		status int
		code   string
	}{
		{"a body over the size limit is refused", `{"card_holder":"` + strings.Repeat("A", 40<<10) + `",` + card + `}`, "application/json", http.StatusRequestEntityTooLarge, "body_too_large"},
		{"a JSON body with a duplicate key is refused", `{` + card + `,"card_number":"5555555555554444"}`, "application/json", http.StatusBadRequest, "duplicate_field"},
		{"a JSON body with a case-variant duplicate key is refused", `{` + card + `,"Card_Number":"5555555555554444"}`, "application/json", http.StatusBadRequest, "unknown_field"},
		{"a form body with a duplicate key is refused", "card_number=4012000000003010&card_number=5555555555554444&card_exp_month=12&card_exp_year=2030", "application/x-www-form-urlencoded", http.StatusBadRequest, "duplicate_field"},
		{"an unknown field is refused", `{` + card + `,"cardnumber2":"x"}`, "application/json", http.StatusBadRequest, "unknown_field"},
		{"a nested object is refused", `{` + card + `,"card_holder":{"name":"John Doe"}}`, "application/json", http.StatusBadRequest, "invalid_field_type"},
		{"trailing garbage after the object is refused", `{` + card + `} trailing`, "application/json", http.StatusBadRequest, "invalid_json"},
		{"a second JSON object after the first is refused", `{` + card + `}{}`, "application/json", http.StatusBadRequest, "invalid_json"},
		{"a JSON array is refused", `[` + card + `]`, "application/json", http.StatusBadRequest, "invalid_json"},
		{"a truncated object is refused", `{` + card, "application/json", http.StatusBadRequest, "invalid_json"},
		{"invalid UTF-8 in a JSON value is refused", `{` + card + `,"card_holder":"Jo` + "\xff\xfe" + `hn"}`, "application/json", http.StatusBadRequest, "invalid_text"},
		{"invalid UTF-8 in a form value is refused", "card_number=4012000000003010&card_exp_month=12&card_exp_year=2030&card_holder=Jo%FFhn", "application/x-www-form-urlencoded", http.StatusBadRequest, "invalid_text"},
		{"a form body with a semicolon is refused", "card_number=4012000000003010;card_exp_month=12&card_exp_year=2030", "application/x-www-form-urlencoded", http.StatusBadRequest, "invalid_form"},
		{"a text/plain body is refused", `{` + card + `}`, "text/plain", http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"a body without a content type is refused", `{` + card + `}`, "", http.StatusUnsupportedMediaType, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := h.pk()
			hdr["Content-Type"] = tt.ctype
			r := h.send(t, h.collect, http.MethodPost, "/v1/tokens", tt.body, hdr)
			wantError(t, r, tt.status, tt.code)
			if what := cardDataIn(r.body, "John Doe", "trailing", "cardnumber2"); what != "" {
				t.Errorf("the error body echoes %s", what)
			}
		})
	}
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after refused bodies: got %d, want 0", n)
	}
	h.assertNoCardData(t)
}

func TestCollectServesOnlyItsOwnRoute(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, panSuccess, cvvVisa)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"reading a token back on collect is not possible", http.MethodGet, "/v1/tokens/" + tok, http.StatusNotFound, "not_found"},
		{"GET on the tokenize path is not allowed", http.MethodGet, "/v1/tokens", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"a forward route does not exist on collect", http.MethodPost, "/initPaymentHost2Host", http.StatusNotFound, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.send(t, h.collect, tt.method, tt.path, nil, h.pk())
			wantError(t, r, tt.status, tt.code)
		})
	}
	h.assertNoCardData(t)
}
