package proxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestCollectTokenizesACard(t *testing.T) {
	t.Parallel()
	pan := testcards.Success
	forms := testcards.Spellings(pan)
	tests := []struct {
		name string
		body any
	}{
		{"a JSON body with every card field is tokenized", cardFields(testcards.Success, testcards.CVV)},
		{"a form-encoded body with every card field is tokenized", url.Values{
			"card_number": {testcards.Success}, "card_exp_month": {testcards.ExpMonth}, "card_exp_year": {testcards.ExpYear},
			"card_cvv": {testcards.CVV}, "card_holder": {testcards.Holder},
		}},
		{"a number grouped by spaces is tokenized", url.Values{
			"card_number": {forms["grouped (spaces)"]}, "card_exp_month": {"12"}, "card_exp_year": {"30"},
		}},
		{"a number grouped by dashes without CVV or holder is tokenized", map[string]string{
			"card_number": forms["grouped (dashes)"], "card_exp_month": "1", "card_exp_year": testcards.ExpYear,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			r := h.col(t, merchantA, tt.body, nil)
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
			if got, want := c["last4"], pan[len(pan)-4:]; got != want {
				t.Errorf("last4: got %q, want %q", got, want)
			}
			if got := c["brand"]; got != "visa" {
				t.Errorf("brand: got %q, want %q", got, "visa")
			}
			if got := c["bin"]; got != pan[:6] {
				t.Errorf("bin: got %q, want the first 6 digits %s", got, pan[:6])
			}
			if got := r.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control: got %q, want %q", got, "no-store")
			}
			if len(h.redisContents(t)) == 0 {
				t.Error("Redis is empty after tokenizing: the card-data scan would prove nothing")
			}
		})
	}
}

func TestCollectTokenizesAnAmexCardWithAFourDigitCVV(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	m := h.tokenize(t, merchantA, cardFields(testcards.Amex, testcards.CVVAmex))
	if m.Card == nil || m.Card.Brand != "amex" || m.Card.Last4 != "0005" {
		t.Errorf("card: got %+v, want brand amex, last4 0005", m.Card)
	}
	if !m.HasCVV {
		t.Error("has_cvv: got false, want true")
	}
}

func TestCollectRefusesInvalidCards(t *testing.T) {
	t.Parallel()
	// Every case comes from one address: more than its default burst.
	h := newHarness(t, harnessOptions{limits: proxy.Limits{PerClientBurst: 100}})
	with := func(k, v string) map[string]string {
		f := cardFields(testcards.Success, testcards.CVV)
		f[k] = v
		return f
	}
	without := func(k string) map[string]string {
		f := cardFields(testcards.Success, testcards.CVV)
		delete(f, k)
		return f
	}
	pan := testcards.Success
	forms := testcards.Spellings(pan)
	wide, arabic := forms["fullwidth digits"], forms["Arabic-Indic form"]
	wide4, arabic4 := string([]rune(wide)[:4]), string([]rune(arabic)[:4])
	tests := []struct {
		name  string
		body  any
		code  string
		input string // a part of the input that must not be echoed anywhere
	}{
		{"a number failing the Luhn check is refused", with("card_number", testcards.BadLuhn), "invalid_card_checksum", testcards.BadLuhn},
		{"a number with letters is refused", with("card_number", pan[:4]+"zqxw"+pan[8:]), "invalid_card_number", "zqxw"},
		{"a number in fullwidth digits is refused", with("card_number", wide), "invalid_card_number", wide4},
		{"a number in Arabic-Indic digits is refused", with("card_number", arabic), "invalid_card_number", arabic4},
		{"a number with doubled separators is refused", with("card_number", strings.Replace(forms["grouped (spaces)"], " ", "  ", 1)), "invalid_card_number", ""},
		{"a number that is too short is refused", with("card_number", pan[:11]), "invalid_card_length", ""},
		{"a number of an unknown brand is refused", with("card_number", "9999999999999995"), "unsupported_card_brand", "9999999999999995"},
		{"a number sent as a JSON number is refused", `{"card_number":` + pan + `,"card_exp_month":"12","card_exp_year":"2030"}`, "invalid_field_type", ""},
		{"an expiry month sent as a JSON number is refused", `{"card_number":"` + pan + `","card_exp_month":12,"card_exp_year":"2030"}`, "invalid_field_type", ""},
		{"a CVV sent as a JSON number is refused", `{"card_number":"` + pan + `","card_exp_month":"12","card_exp_year":"2030","card_cvv":` + testcards.CVV + `}`, "invalid_field_type", ""},
		{"a null card number is refused", `{"card_number":null,"card_exp_month":"12","card_exp_year":"2030"}`, "invalid_field_type", ""},
		{"an expired card is refused", with("card_exp_year", "2020"), "card_expired", ""},
		{"month 13 is refused", with("card_exp_month", "13"), "invalid_exp_month", ""},
		{"month 0 is refused", with("card_exp_month", "0"), "invalid_exp_month", ""},
		{"a three-digit year is refused", with("card_exp_year", "203"), "invalid_exp_year", ""},
		{"a two-digit CVV is refused", with("card_cvv", "73"), "invalid_cvv", ""},
		{"a four-digit CVV on a Visa card is refused", with("card_cvv", "7373"), "invalid_cvv", ""},
		{"a CVV with a letter is refused", with("card_cvv", "7x3"), "invalid_cvv", ""},
		{"a three-digit CVV on an Amex card is refused", map[string]string{
			"card_number": testcards.Amex, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear, "card_cvv": testcards.CVV,
		}, "invalid_cvv", ""},
		{"a holder with a control character is refused", with("card_holder", "John\u0007Doe"), "invalid_text", ""},
		{"a missing card number is refused", without("card_number"), "missing_field", ""},
		{"a missing expiry year is refused", without("card_exp_year"), "missing_field", ""},
		{"an unknown payment method is refused", with("payment_method", "paypal"), "invalid_payment_method", "paypal"},
		{"a wallet field beside card fields is refused", with("apple_pay_dpan", testcards.DPANApple), "unknown_field", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.col(t, merchantA, tt.body, nil)
			wantError(t, r, http.StatusBadRequest, tt.code)
			if what := findCardData(r.body, tt.input); what != "" {
				t.Errorf("the error body echoes %s", what)
			}
		})
	}
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after refused cards: got %d, want 0", n)
	}
	h.assertNoCardData(t, testcards.BadLuhn, "zqxw", wide4, arabic4, "9999999999999995", "paypal")
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
			"payment_method": "applePayDPan", "apple_pay_dpan": testcards.DPANApple, "apple_pay_payment_method_network": "Visa",
		}, "apple_pay", "Visa"},
		{"a Google Pay payload is tokenized with the network as the wallet spelled it", map[string]string{
			"payment_method": "googlePayDPan", "google_pay_dpan": testcards.DPANGoogle, "google_pay_payment_method_network": "MASTERCARD",
		}, "google_pay", "MASTERCARD"},
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
			"payment_method": "googlePayDPan", "google_pay_dpan": testcards.DPANGoogle, "google_pay_payment_method_network": "Bitcoin",
		}, "invalid_network"},
		{"a missing network is refused", map[string]string{
			"payment_method": "googlePayDPan", "google_pay_dpan": testcards.DPANGoogle,
		}, "missing_field"},
		{"the other wallet's payload field is refused", map[string]string{
			"payment_method": "applePayDPan", "google_pay_dpan": testcards.DPANGoogle, "apple_pay_payment_method_network": "Visa",
		}, "unknown_field"},
		{"a card number beside a wallet payload is refused", map[string]string{
			"payment_method": "applePayDPan", "apple_pay_dpan": testcards.DPANApple, "apple_pay_payment_method_network": "Visa",
			"card_number": testcards.Success,
		}, "unknown_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.col(t, merchantA, tt.fields, nil)
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
			r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Authorization": tt.auth})
			wantError(t, r, http.StatusUnauthorized, "unauthorized")
		})
	}
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after refused requests: got %d, want 0", n)
	}
}

func TestCollectAppliesEachMerchantsOriginAllowlist(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	preflight := func(origin string) *response {
		hdr := headers{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
		if origin != "" {
			hdr["Origin"] = origin
		}
		return h.do(t, http.MethodOptions, h.collect+"/v1/tokens", nil, hdr)
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
		r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Origin": originA})
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
			r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Origin": tt.origin})
			wantError(t, r, http.StatusForbidden, "origin_not_allowed")
			if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("Access-Control-Allow-Origin: got %q, want none", got)
			}
			if after := len(h.redisContents(t)); after != before {
				t.Errorf("Redis keys: got %d, want %d (nothing stored)", after, before)
			}
		})
	}
}

func TestCollectRefusesAmbiguousOrOversizedBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	pan, other := testcards.Success, testcards.Decline
	card := `"card_number":"` + pan + `","card_exp_month":"12","card_exp_year":"2030"`
	tests := []struct {
		name   string
		body   string
		ctype  string
		status int
		code   string
	}{
		{"a body over the size limit is refused", `{"card_holder":"` + strings.Repeat("A", 40<<10) + `",` + card + `}`, "application/json", http.StatusRequestEntityTooLarge, "body_too_large"},
		{"a JSON body with a duplicate key is refused", `{` + card + `,"card_number":"` + other + `"}`, "application/json", http.StatusBadRequest, "duplicate_field"},
		{"a JSON body with a case-variant duplicate key is refused", `{` + card + `,"Card_Number":"` + other + `"}`, "application/json", http.StatusBadRequest, "unknown_field"},
		{"a form body with a duplicate key is refused", "card_number=" + pan + "&card_number=" + other + "&card_exp_month=12&card_exp_year=2030", "application/x-www-form-urlencoded", http.StatusBadRequest, "duplicate_field"},
		{"an unknown field is refused", `{` + card + `,"cardnumber2":"x"}`, "application/json", http.StatusBadRequest, "unknown_field"},
		{"a nested object is refused", `{` + card + `,"card_holder":{"name":"` + testcards.Holder + `"}}`, "application/json", http.StatusBadRequest, "invalid_field_type"},
		{"trailing garbage after the object is refused", `{` + card + `} trailing`, "application/json", http.StatusBadRequest, "invalid_json"},
		{"a second JSON object after the first is refused", `{` + card + `}{}`, "application/json", http.StatusBadRequest, "invalid_json"},
		{"a JSON array is refused", `[` + card + `]`, "application/json", http.StatusBadRequest, "invalid_json"},
		{"a truncated object is refused", `{` + card, "application/json", http.StatusBadRequest, "invalid_json"},
		{"invalid UTF-8 in a JSON value is refused", `{` + card + `,"card_holder":"Jo` + "\xff\xfe" + `hn"}`, "application/json", http.StatusBadRequest, "invalid_text"},
		{"invalid UTF-8 in a form value is refused", "card_number=" + pan + "&card_exp_month=12&card_exp_year=2030&card_holder=Jo%FFhn", "application/x-www-form-urlencoded", http.StatusBadRequest, "invalid_text"},
		{"a form body with a semicolon is refused", "card_number=" + pan + ";card_exp_month=12&card_exp_year=2030", "application/x-www-form-urlencoded", http.StatusBadRequest, "invalid_form"},
		{"a text/plain body is refused", `{` + card + `}`, "text/plain", http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"a body without a content type is refused", `{` + card + `}`, "", http.StatusUnsupportedMediaType, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.col(t, merchantA, tt.body, headers{"Content-Type": tt.ctype})
			wantError(t, r, tt.status, tt.code)
			if what := findCardData(r.body, "trailing", "cardnumber2"); what != "" {
				t.Errorf("the error body echoes %s", what)
			}
		})
	}
	if n := len(h.redisContents(t)); n != 0 {
		t.Errorf("Redis keys after refused bodies: got %d, want 0", n)
	}
}

func TestCollectServesOnlyItsOwnRoute(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
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
			r := h.do(t, tt.method, h.collect+tt.path, nil, h.bearer(merchantA, proxy.RolePublishable))
			wantError(t, r, tt.status, tt.code)
		})
	}
}
