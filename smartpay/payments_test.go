package smartpay

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestHostToHostPaymentOutcomes(t *testing.T) {
	cases := []struct {
		name         string
		body         map[string]any
		status       status
		responseType string
		err          string
		cardType     string
		cardNumber   string
		cascade      int
	}{
		{"the frictionless test card succeeds at once", cardPayment("p1", panFrictionless), statusSuccess, responseSuccess, "", "VISA", "401200******3010", 0},
		{"the challenge test card is sent to the challenge page", cardPayment("p2", panChallenge), statusProcessing, responseRedirect, "", "VISA", "400383******4018", 0},
		{"any other card is declined with the documented cascade", cardPayment("p3", panDecline), statusFail, responseFail, declineGateNotFound, "VISA", "412354******1114", 3},
		{"a Mastercard that is not a test card is declined", cardPayment("p4", panMastercard), statusFail, responseFail, declineGateNotFound, "MASTERCARD", "555555******4444", 3},
		{"the documentation's expired 02/25 card is declined even if it is the success card",
			with(cardPayment("p5", panFrictionless), "card_exp_month", "02", "card_exp_year", "25"), statusFail, responseFail, declineCardExpired, "VISA", "401200******3010", 0},
		{"a card expiring this month still works", with(cardPayment("p6", panFrictionless), "card_exp_month", "3", "card_exp_year", "2026"), statusSuccess, responseSuccess, "", "VISA", "401200******3010", 0},
		{"payment_method defaults to card", with(cardPayment("p7", panFrictionless), "payment_method", nil), statusSuccess, responseSuccess, "", "VISA", "401200******3010", 0},
		{"an Apple Pay Visa payload succeeds", walletPayment("p8", methodApplePay, "Visa"), statusSuccess, responseSuccess, "", "VISA", "", 0},
		{"a Google Pay MasterCard payload succeeds, network in any case", walletPayment("p9", methodGooglePay, "MASTERCARD"), statusSuccess, responseSuccess, "", "MASTERCARD", "", 0},
		{"a Google Pay Amex payload is declined", walletPayment("p10", methodGooglePay, "Amex"), statusFail, responseFail, declineBrandUnavailable, "AMEX", "", 1},
	}
	e := newEnv(t, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp paymentResponse
			e.post("/initPaymentHost2Host", c.body, &resp)
			if resp.Status != c.status || resp.ResponseType != c.responseType {
				t.Errorf("got status %d %q, want %d %q", resp.Status, resp.ResponseType, c.status, c.responseType)
			}
			if len(resp.OrderID) != 24 {
				t.Errorf("got order_id %q, want the sandbox's 24-hex transaction id", resp.OrderID)
			}
			if c.err != "" && deref(resp.Err) != c.err {
				t.Errorf("got err %q, want %q", deref(resp.Err), c.err)
			}
			if (resp.FormURL != nil) != (c.responseType == responseRedirect) {
				t.Errorf("got form_url %q for responseType %q", deref(resp.FormURL), resp.ResponseType)
			}
			chk := e.checkOrder(c.body["order_id"].(string))
			if chk.Status != c.status {
				t.Errorf("check: got status %d, want %d", chk.Status, c.status)
			}
			if chk.Card == nil || chk.Card.Type != c.cardType || chk.Card.Number != c.cardNumber {
				t.Errorf("check: got card %+v, want type %q number %q", chk.Card, c.cardType, c.cardNumber)
			}
			if c.err != "" && deref(chk.ErrorMessage) != c.err {
				t.Errorf("check: got errorMessage %q, want %q", deref(chk.ErrorMessage), c.err)
			}
			if len(chk.CascadeErrors) != c.cascade {
				t.Errorf("check: got %d cascade errors, want %d", len(chk.CascadeErrors), c.cascade)
			}
			if (chk.EndDate != nil) != (c.status != statusProcessing) {
				t.Errorf("check: got endDate %q for status %d", deref(chk.EndDate), chk.Status)
			}
		})
	}
}

func TestCheckReportsTheOrderAsDocumented(t *testing.T) {
	e := newEnv(t, Options{})
	var resp paymentResponse
	e.post("/initPaymentHost2Host", cardPayment("sandboxId_1015", panFrictionless), &resp)

	t.Run("a successful payment", func(t *testing.T) {
		c := e.checkOrder("sandboxId_1015")
		wantCard := cardInfo{Number: "401200******3010", BIN: "401200", Country: "Spain", ISO: "ESP", Type: "VISA"}
		if c.OrderID != "sandboxId_1015" || c.Status != statusSuccess || c.Amount != 1000 || c.Type != typePayment || c.FirstName != "John" || c.LastName != "Doe" {
			t.Errorf("got %+v, want order sandboxId_1015, status 2, amount 1000, Payment, John Doe", c)
		}
		if c.Card == nil || *c.Card != wantCard {
			t.Errorf("got card %+v, want %+v", c.Card, wantCard)
		}
		if got := deref(c.EndDate); got != "2026-03-15T12:00:00.000Z" {
			t.Errorf("got endDate %q, want 2026-03-15T12:00:00.000Z", got)
		}
		if c.ErrorMessage != nil || c.CascadeErrors != nil || c.AuthorizeStatus != nil {
			t.Errorf("got errorMessage/cascadeErrors/authorize_status on a success")
		}
	})
	t.Run("the sandbox's transaction id finds the same order", func(t *testing.T) {
		if c := e.checkOrder(resp.OrderID); c.OrderID != "sandboxId_1015" {
			t.Errorf("got %q, want sandboxId_1015", c.OrderID)
		}
	})
	t.Run("null fields are sent as null", func(t *testing.T) {
		_, b := e.do(http.MethodPost, "/check", defaultAuth, map[string]any{"order_id": "sandboxId_1015"})
		for _, want := range []string{`"errorMessage":null`, `"cascadeErrors":null`, `"authorize_status":null`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("got %s, want it to contain %s", b, want)
			}
		}
		if strings.Contains(string(b), panFrictionless) {
			t.Errorf("check response carries the PAN")
		}
	})
	t.Run("an unknown order is refused", func(t *testing.T) {
		e.refuse("/check", map[string]any{"order_id": "nope"}, http.StatusNotFound, codeOrderNotFound)
	})
	t.Run("a missing order_id is a validation error", func(t *testing.T) {
		e.refuse("/check", map[string]any{}, http.StatusBadRequest, codeValidation)
	})
}

func TestHostToHostValidation(t *testing.T) {
	base := cardPayment("v", panFrictionless)
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"a missing card number", with(base, "card_number", nil), "card_number"},
		{"a card number failing Luhn", with(base, "card_number", "4012000000003011"), "card_number"},
		{"a card number with spaces", with(base, "card_number", "4012 0000 0000 3010"), "card_number"},
		{"a card number too short", with(base, "card_number", "42"), "card_number"},
		{"a missing CVV", with(base, "card_cvv", nil), "card_cvv"},
		{"a two-digit CVV", with(base, "card_cvv", "12"), "card_cvv"},
		{"a five-digit CVV", with(base, "card_cvv", "12345"), "card_cvv"},
		{"a CVV with letters", with(base, "card_cvv", "12a"), "card_cvv"},
		{"month 13", with(base, "card_exp_month", "13"), "card_exp_month"},
		{"month 0", with(base, "card_exp_month", "0"), "card_exp_month"},
		{"a three-digit year", with(base, "card_exp_year", "203"), "card_exp_year"},
		{"a missing card holder", with(base, "card_holder", nil), "card_holder"},
		{"a missing merchant_site", with(base, "merchant_site", nil), "merchant_site"},
		{"a missing customer_ip_address", with(base, "customer_ip_address", nil), "customer_ip_address"},
		{"a missing zip code", with(base, "customer_zip_code", nil), "customer_zip_code"},
		{"a missing e-mail", with(base, "customer_email", nil), "customer_email"},
		{"a missing account", with(base, "account", nil), "account"},
		{"a zero amount", with(base, "amount", 0), "amount"},
		{"a lower-case currency", with(base, "currency", "eur"), "currency"},
		{"a missing order_id", with(base, "order_id", nil), "order_id"},
		{"a non-http callback_url", with(base, "callback_url", "javascript:alert(1)"), "callback_url"},
		{"a relative success_url", with(base, "success_url", "/ok"), "success_url"},
		{"an unknown payment_method", with(base, "payment_method", "cash"), "payment_method"},
		{"a recur_exp that is no date", with(base, "recur_exp", "tomorrow"), "recur_exp"},
		{"an Apple Pay payload that is not base64", with(walletPayment("v", methodApplePay, "Visa"), "apple_pay_dpan", "not base64!"), "apple_pay_dpan"},
		{"an Apple Pay payload that is too short", with(walletPayment("v", methodApplePay, "Visa"), "apple_pay_dpan", "YWJj"), "apple_pay_dpan"},
		{"an Apple Pay payment without network", with(walletPayment("v", methodApplePay, "Visa"), "apple_pay_payment_method_network", nil), "apple_pay_payment_method_network"},
		{"a Google Pay payment without payload", with(walletPayment("v", methodGooglePay, "Visa"), "google_pay_dpan", nil), "google_pay_dpan"},
		{"a Google Pay payment with an unknown network", with(walletPayment("v", methodGooglePay, "Visa"), "google_pay_payment_method_network", "Bogus"), "google_pay_payment_method_network"},
	}
	e := newEnv(t, Options{})
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			er := e.refuse("/initPaymentHost2Host", c.body, http.StatusBadRequest, codeValidation)
			if len(er.Fields) != 1 || er.Fields[0] != c.field {
				t.Errorf("got fields %v, want [%s]", er.Fields, c.field)
			}
			if !strings.Contains(er.Msg, c.field) {
				t.Errorf("got msg %q, want it to name %s", er.Msg, c.field)
			}
		})
	}
	t.Run("every problem is listed at once", func(t *testing.T) {
		er := e.refuse("/initPaymentHost2Host", with(base, "card_cvv", nil, "amount", nil, "customer_city", nil), http.StatusBadRequest, codeValidation)
		if fmt.Sprint(er.Fields) != "[amount customer_city card_cvv]" {
			t.Errorf("got fields %v, want [amount customer_city card_cvv]", er.Fields)
		}
	})
	t.Run("nothing was created by a refused request", func(t *testing.T) {
		e.refuse("/check", map[string]any{"order_id": "v"}, http.StatusNotFound, codeOrderNotFound)
	})

	accepted := []struct {
		name string
		body map[string]any
	}{
		{"a string zip code", with(base, "order_id", "ok1", "customer_zip_code", "SW1A 2AA")},
		{"a four-digit year and a one-digit month", with(base, "order_id", "ok2", "card_exp_year", "2030", "card_exp_month", "7")},
		{"a four-digit CVV", with(base, "order_id", "ok3", "card_cvv", "1234")},
		{"a wallet payment without card holder", with(walletPayment("ok4", methodApplePay, "Visa"), "card_holder", nil)},
		{"an unpadded URL-safe payload", with(walletPayment("ok5", methodGooglePay, "Visa"), "google_pay_dpan", strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(examplePayload), "="))},
		{"unknown fields", with(base, "order_id", "ok6", "something_new", 1)},
		{"browser fields sent as numbers", with(base, "order_id", "ok7", "browser_color_depth", 24, "browser_screen_height", 1080, "browser_java_enabled", false)},
		{"recur_freq and an ISO 8601 recur_exp", with(base, "order_id", "ok8", "recur_freq", 30, "recur_exp", "2027-12-13T14:00:53.421Z")},
	}
	for _, c := range accepted {
		t.Run(c.name+" is accepted", func(t *testing.T) {
			e.post("/initPaymentHost2Host", c.body, nil)
		})
	}
}

func TestAccountsMustBelongToTheMerchantAndFitTheCall(t *testing.T) {
	e := newEnv(t, Options{})
	cases := []struct {
		name, path string
		body       map[string]any
		code       string
	}{
		{"an unknown account", "/initPaymentHost2Host", with(cardPayment("a1", panFrictionless), "account", "USD-other"), codeAccountNotFound},
		{"a payout account for a payment", "/initPaymentHost2Host", with(cardPayment("a2", panFrictionless), "account", defaultPayoutAccount), codeAccountType},
		{"a payout account for an authorization", "/authorize", with(cardPayment("a3", panFrictionless), "account", defaultPayoutAccount), codeAccountType},
		{"a payout account for a hosted form", "/initPayment", with(customer("a4"), "account", defaultPayoutAccount), codeAccountType},
		{"a currency other than the account's", "/initPaymentHost2Host", with(cardPayment("a5", panFrictionless), "currency", "USD"), codeCurrencyMismatch},
		{"a payment account for a withdrawal", "/withdrawal/init", with(withdrawal("a6", panFrictionless, 100), "account", defaultPaymentAccount), codeAccountType},
		{"a payment account for a tokenize form", "/withdrawal/tokenize-form", map[string]any{"account": defaultPaymentAccount, "order_id": "a7"}, codeAccountType},
		{"a payment account for a balance", "/withdrawal/balance/get", map[string]any{"account": defaultPaymentAccount}, codeAccountType},
		{"an unknown account for a balance", "/withdrawal/balance/get", map[string]any{"account": "nope"}, codeAccountNotFound},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			e.refuse(c.path, c.body, http.StatusBadRequest, c.code)
		})
	}
}

func TestOrderIDsAreUniquePerMerchant(t *testing.T) {
	second := defaultMerchants()[0]
	second.Key, second.Secret = "other", "other-secret"
	e := newEnv(t, Options{Merchants: append(defaultMerchants(), second)})

	e.post("/initPaymentHost2Host", cardPayment("dup-1", panDecline), nil)
	cases := []struct {
		name, path string
		body       any
	}{
		{"a second payment", "/initPaymentHost2Host", cardPayment("dup-1", panFrictionless)},
		{"an authorization", "/authorize", cardPayment("dup-1", panFrictionless)},
		{"a hosted form", "/initPayment", customer("dup-1")},
		{"a withdrawal", "/withdrawal/init", withdrawal("dup-1", panFrictionless, 100)},
		{"a tokenize form", "/withdrawal/tokenize-form", map[string]any{"account": defaultPayoutAccount, "order_id": "dup-1"}},
	}
	for _, c := range cases {
		t.Run(c.name+" reusing the order_id is refused", func(t *testing.T) {
			e.refuse(c.path, c.body, http.StatusConflict, codeDuplicateOrder)
		})
	}
	t.Run("the first order is untouched", func(t *testing.T) {
		if c := e.checkOrder("dup-1"); c.Status != statusFail || c.Card.Number != "412354******1114" {
			t.Errorf("got %d %s, want the first, declined order", c.Status, c.Card.Number)
		}
	})
	t.Run("another merchant may use the same order_id and cannot see the first", func(t *testing.T) {
		auth := basic("other", "other-secret")
		status, b := e.do(http.MethodPost, "/check", auth, map[string]any{"order_id": "dup-1"})
		if status != http.StatusNotFound {
			t.Errorf("check by another merchant: got %d %s, want 404", status, b)
		}
		status, b = e.do(http.MethodPost, "/initPaymentHost2Host", auth, cardPayment("dup-1", panFrictionless))
		if status != http.StatusOK {
			t.Errorf("got %d %s, want 200", status, b)
		}
	})
}

// challengePage fetches the page behind a form_url and returns its path.
func (e *env) challengePage(formURL string) string {
	e.t.Helper()
	u, err := url.Parse(formURL)
	if err != nil || !strings.HasPrefix(formURL, e.srv.URL+challengePrefix) {
		e.t.Fatalf("got form_url %q, want a link to the sandbox's challenge page", formURL)
	}
	resp := e.doResp(http.MethodGet, u.Path, "", "", nil)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `value="success"`) || !strings.Contains(string(b), `value="fail"`) {
		e.t.Fatalf("challenge page: got %d %s, want 200 with success and fail buttons", resp.StatusCode, b)
	}
	return u.Path
}

func (e *env) submit(path string, form url.Values) *http.Response {
	e.t.Helper()
	resp := e.doResp(http.MethodPost, path, "", "application/x-www-form-urlencoded", form.Encode())
	resp.Body.Close()
	return resp
}

func TestChallengeFlowEndToEnd(t *testing.T) {
	cases := []struct {
		name, decision string
		status         status
		redirect       string
		errMsg         string
	}{
		{"passing the challenge makes the payment succeed", challengeSuccess, statusSuccess, "https://site.com/success", ""},
		{"failing the challenge makes the payment fail", challengeFail, statusFail, "https://site.com/fail", decline3DSFailed},
	}
	e := newEnv(t, Options{})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			order := fmt.Sprint("challenge-", i)
			body := with(cardPayment(order, panChallenge), "success_url", "https://site.com/success", "fail_url", "https://site.com/fail")
			var resp paymentResponse
			e.post("/initPaymentHost2Host", body, &resp)
			if resp.Status != statusProcessing || resp.ResponseType != responseRedirect || deref(resp.ACSURL) != deref(resp.FormURL) {
				t.Fatalf("got %d %q acsurl %q, want 1 REDIRECT with acsurl = form_url", resp.Status, resp.ResponseType, deref(resp.ACSURL))
			}
			path := e.challengePage(deref(resp.FormURL))
			if c := e.checkOrder(order); c.Status != statusProcessing || c.EndDate != nil {
				t.Fatalf("before the challenge check: got %d, want 1 without endDate", c.Status)
			}

			r := e.submit(path, url.Values{"decision": {c.decision}})
			if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != c.redirect {
				t.Errorf("got %d to %q, want 303 to %q", r.StatusCode, r.Header.Get("Location"), c.redirect)
			}
			chk := e.checkOrder(order)
			if chk.Status != c.status || deref(chk.ErrorMessage) != deref(ptrOrNil(c.errMsg)) {
				t.Errorf("check: got %d %q, want %d %q", chk.Status, deref(chk.ErrorMessage), c.status, c.errMsg)
			}
			if r := e.submit(path, url.Values{"decision": {challengeSuccess}}); r.StatusCode != http.StatusNotFound {
				t.Errorf("answering twice: got %d, want 404", r.StatusCode)
			}
			if chk2 := e.checkOrder(order); chk2.Status != c.status {
				t.Errorf("answering twice changed the status to %d", chk2.Status)
			}
		})
	}
	t.Run("without redirect URLs a result page is shown", func(t *testing.T) {
		var resp paymentResponse
		e.post("/initPaymentHost2Host", cardPayment("challenge-page", panChallenge), &resp)
		path := e.challengePage(deref(resp.FormURL))
		r := e.submit(path, url.Values{"decision": {challengeSuccess}})
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("got %d %q, want 200 text/html", r.StatusCode, r.Header.Get("Content-Type"))
		}
	})
	t.Run("an unknown decision changes nothing", func(t *testing.T) {
		var resp paymentResponse
		e.post("/initPaymentHost2Host", cardPayment("challenge-bad", panChallenge), &resp)
		path := e.challengePage(deref(resp.FormURL))
		if r := e.submit(path, url.Values{"decision": {"maybe"}}); r.StatusCode != http.StatusBadRequest {
			t.Errorf("got %d, want 400", r.StatusCode)
		}
		if c := e.checkOrder("challenge-bad"); c.Status != statusProcessing {
			t.Errorf("got status %d, want 1", c.Status)
		}
	})
	t.Run("an unknown challenge id is 404", func(t *testing.T) {
		resp := e.doResp(http.MethodGet, challengePrefix+"000000000000000000000000", "", "", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("got %d, want 404", resp.StatusCode)
		}
	})
}

func ptrOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func TestBaseURLOptionShapesTheLinks(t *testing.T) {
	e := newEnv(t, Options{BaseURL: "https://sandbox.example/"})
	var resp paymentResponse
	e.post("/initPaymentHost2Host", cardPayment("b1", panChallenge), &resp)
	if want := "https://sandbox.example" + challengePrefix + resp.OrderID; deref(resp.FormURL) != want {
		t.Errorf("got %q, want %q", deref(resp.FormURL), want)
	}
}

func TestHostedPaymentForm(t *testing.T) {
	e := newEnv(t, Options{})
	start := func(order string, extra ...any) string {
		t.Helper()
		var resp initPaymentResponse
		e.post("/initPayment", with(customer(order), extra...), &resp)
		if resp.Status != statusProcessing || resp.ResponseType != responseRedirect || resp.OrderID != order {
			t.Fatalf("got %+v, want status 1 REDIRECT with the merchant's order_id", resp)
		}
		if resp.ACSUrl != nil || resp.MD != nil || resp.TermURL != nil {
			t.Errorf("got 3-D Secure fields on initPayment")
		}
		u, _ := url.Parse(deref(resp.FormURL))
		if !strings.HasPrefix(u.Path, payFormPrefix) {
			t.Fatalf("got form_url %q, want the sandbox's payment form", deref(resp.FormURL))
		}
		page := e.doResp(http.MethodGet, u.Path, "", "", nil)
		b, _ := io.ReadAll(page.Body)
		page.Body.Close()
		if page.StatusCode != http.StatusOK || !strings.Contains(string(b), `name="card_number"`) || !strings.Contains(string(b), "10.00 EUR") {
			t.Fatalf("form page: got %d %s", page.StatusCode, b)
		}
		return u.Path
	}
	card := func(pan string) url.Values {
		return url.Values{"card_holder": {"John Doe"}, "card_number": {pan}, "card_exp_month": {"12"}, "card_exp_year": {"2030"}, "card_cvv": {testCVV}}
	}

	t.Run("merchant_site is optional and customer_ip_address required", func(t *testing.T) {
		e.post("/initPayment", with(customer("hf-0"), "merchant_site", nil), nil)
		e.refuse("/initPayment", with(customer("hf-0b"), "customer_ip_address", nil), http.StatusBadRequest, codeValidation)
	})
	t.Run("the order waits in status 1 until the form is submitted", func(t *testing.T) {
		start("hf-1")
		if c := e.checkOrder("hf-1"); c.Status != statusProcessing || c.Card != nil {
			t.Errorf("got %d %+v, want 1 without card", c.Status, c.Card)
		}
	})
	t.Run("the frictionless card succeeds and goes to success_url", func(t *testing.T) {
		path := start("hf-2", "success_url", "https://site.com/success")
		r := e.submit(path, card(panFrictionless))
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "https://site.com/success" {
			t.Errorf("got %d %q, want 303 to success_url", r.StatusCode, r.Header.Get("Location"))
		}
		if c := e.checkOrder("hf-2"); c.Status != statusSuccess || c.Card.Number != "401200******3010" {
			t.Errorf("got %d %+v, want 2 with the masked card", c.Status, c.Card)
		}
	})
	t.Run("a card typed with spaces is accepted", func(t *testing.T) {
		path := start("hf-3")
		r := e.submit(path, card("4012 0000 0000 3010"))
		if r.StatusCode != http.StatusOK {
			t.Errorf("got %d, want 200 result page", r.StatusCode)
		}
		if c := e.checkOrder("hf-3"); c.Status != statusSuccess {
			t.Errorf("got %d, want 2", c.Status)
		}
	})
	t.Run("the challenge card is sent on to the challenge page", func(t *testing.T) {
		path := start("hf-4")
		r := e.submit(path, card(panChallenge))
		if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), challengePrefix) {
			t.Fatalf("got %d %q, want 303 to the challenge page", r.StatusCode, r.Header.Get("Location"))
		}
		cp := e.challengePage(r.Header.Get("Location"))
		e.submit(cp, url.Values{"decision": {challengeSuccess}})
		if c := e.checkOrder("hf-4"); c.Status != statusSuccess {
			t.Errorf("got %d, want 2", c.Status)
		}
	})
	t.Run("an invalid card re-shows the form and changes nothing", func(t *testing.T) {
		path := start("hf-5")
		r := e.submit(path, with2(card("4012000000003011"), "card_cvv", "1"))
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("got %d, want 400", r.StatusCode)
		}
		if c := e.checkOrder("hf-5"); c.Status != statusProcessing {
			t.Errorf("got %d, want 1", c.Status)
		}
		e.submit(path, card(panDecline))
		if c := e.checkOrder("hf-5"); c.Status != statusFail {
			t.Errorf("after a declined card got %d, want -1", c.Status)
		}
		if r := e.submit(path, card(panFrictionless)); r.StatusCode != http.StatusNotFound {
			t.Errorf("submitting twice: got %d, want 404", r.StatusCode)
		}
	})
}

func with2(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for key, vals := range v {
		out[key] = vals
	}
	out.Set(k, val)
	return out
}

func TestAuthorizeThenCaptureOrCancel(t *testing.T) {
	e := newEnv(t, Options{})
	authorize := func(order string) paymentResponse {
		t.Helper()
		var resp paymentResponse
		e.post("/authorize", with(cardPayment(order, panFrictionless), "customer_ip_address", nil), &resp)
		if resp.Status != statusProcessing || resp.ResponseType != responseAuthorized {
			t.Fatalf("authorize: got %d %q, want 1 AUTHORIZED", resp.Status, resp.ResponseType)
		}
		if c := e.checkOrder(order); c.Status != statusProcessing || deref(c.AuthorizeStatus) != authorizeAuthorized {
			t.Fatalf("check after authorize: got %d %q, want 1 authorized", c.Status, deref(c.AuthorizeStatus))
		}
		return resp
	}
	cases := []struct {
		name       string
		path       string
		amount     any // nil: no amount
		status     status
		authStatus string
		checkAmt   int64
	}{
		{"a capture without amount takes the whole authorization", "/capture", nil, statusSuccess, authorizeCaptured, 1000},
		{"a partial capture takes part of it", "/capture", 400, statusSuccess, authorizeCaptured, 400},
		{"a capture amount may be a string, as documented", "/capture", "250", statusSuccess, authorizeCaptured, 250},
		{"a capture of exactly the authorized amount is allowed", "/capture", 1000, statusSuccess, authorizeCaptured, 1000},
		{"a cancel voids the authorization", "/cancel", nil, statusFail, authorizeCancelled, 1000},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			order := fmt.Sprint("auth-", i)
			auth := authorize(order)
			body := map[string]any{"order_id": order}
			if c.amount != nil {
				body["amount"] = c.amount
			}
			var resp captureResponse
			e.post(c.path, body, &resp)
			if resp.Status != c.status || resp.OrderID != auth.OrderID {
				t.Errorf("got %+v, want status %d and order_id %q", resp, c.status, auth.OrderID)
			}
			chk := e.checkOrder(order)
			if chk.Status != c.status || deref(chk.AuthorizeStatus) != c.authStatus || chk.Amount != c.checkAmt || chk.EndDate == nil {
				t.Errorf("check: got %d %q amount %d, want %d %q amount %d", chk.Status, deref(chk.AuthorizeStatus), chk.Amount, c.status, c.authStatus, c.checkAmt)
			}
		})
	}

	t.Run("capture and cancel accept the transaction id", func(t *testing.T) {
		auth := authorize("auth-by-id")
		e.post("/capture", map[string]any{"order_id": auth.OrderID}, nil)
	})
	refusals := []struct {
		name, setup, path string
		body              func(order string) map[string]any
		status            int
		code              string
	}{
		{"capturing more than authorized", "authorized", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o, "amount": 1001} }, http.StatusBadRequest, codeAmountExceeds},
		{"capturing zero", "authorized", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o, "amount": 0} }, http.StatusBadRequest, codeValidation},
		{"capturing a non-numeric amount", "authorized", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o, "amount": "12.5"} }, http.StatusBadRequest, codeValidation},
		{"capturing twice", "captured", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o} }, http.StatusConflict, codeInvalidState},
		{"cancelling a captured order", "captured", "/cancel", func(o string) map[string]any { return map[string]any{"order_id": o} }, http.StatusConflict, codeInvalidState},
		{"capturing a cancelled order", "cancelled", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o} }, http.StatusConflict, codeInvalidState},
		{"capturing a direct payment", "payment", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o} }, http.StatusConflict, codeInvalidState},
		{"cancelling a direct payment", "payment", "/cancel", func(o string) map[string]any { return map[string]any{"order_id": o} }, http.StatusConflict, codeInvalidState},
		{"capturing a declined authorization", "declined", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o} }, http.StatusConflict, codeInvalidState},
		{"capturing an unknown order", "none", "/capture", func(o string) map[string]any { return map[string]any{"order_id": o} }, http.StatusNotFound, codeOrderNotFound},
	}
	for i, c := range refusals {
		t.Run(c.name+" is refused", func(t *testing.T) {
			order := fmt.Sprint("auth-ref-", i)
			switch c.setup {
			case "authorized":
				authorize(order)
			case "captured":
				authorize(order)
				e.post("/capture", map[string]any{"order_id": order}, nil)
			case "cancelled":
				authorize(order)
				e.post("/cancel", map[string]any{"order_id": order}, nil)
			case "payment":
				e.post("/initPaymentHost2Host", cardPayment(order, panFrictionless), nil)
			case "declined":
				var resp paymentResponse
				e.post("/authorize", cardPayment(order, panDecline), &resp)
				if resp.Status != statusFail {
					t.Fatalf("got %d, want a declined authorization", resp.Status)
				}
			}
			e.refuse(c.path, c.body(order), c.status, c.code)
		})
	}

	t.Run("authorize requires every card field, even with a payment_method", func(t *testing.T) {
		er := e.refuse("/authorize", with(cardPayment("auth-v", panFrictionless), "card_holder", nil, "card_cvv", nil), http.StatusBadRequest, codeValidation)
		if fmt.Sprint(er.Fields) != "[card_holder card_cvv]" {
			t.Errorf("got %v, want [card_holder card_cvv]", er.Fields)
		}
	})
	t.Run("the challenge card authorizes after the challenge, then captures", func(t *testing.T) {
		var resp paymentResponse
		e.post("/authorize", cardPayment("auth-ch", panChallenge), &resp)
		if resp.ResponseType != responseRedirect {
			t.Fatalf("got %q, want REDIRECT", resp.ResponseType)
		}
		e.refuse("/capture", map[string]any{"order_id": "auth-ch"}, http.StatusConflict, codeInvalidState)
		e.submit(e.challengePage(deref(resp.FormURL)), url.Values{"decision": {challengeSuccess}})
		if c := e.checkOrder("auth-ch"); c.Status != statusProcessing || deref(c.AuthorizeStatus) != authorizeAuthorized {
			t.Fatalf("got %d %q, want 1 authorized", c.Status, deref(c.AuthorizeStatus))
		}
		e.post("/capture", map[string]any{"order_id": "auth-ch", "amount": 10}, nil)
		if c := e.checkOrder("auth-ch"); c.Status != statusSuccess || c.Amount != 10 {
			t.Errorf("got %d amount %d, want 2 amount 10", c.Status, c.Amount)
		}
	})
}

func TestRefund(t *testing.T) {
	e := newEnv(t, Options{})
	e.post("/initPaymentHost2Host", cardPayment("rf-paid", panFrictionless), nil)
	e.post("/initPaymentHost2Host", cardPayment("rf-failed", panDecline), nil)
	e.post("/initPaymentHost2Host", cardPayment("rf-pending", panChallenge), nil)
	var paid checkResponse

	t.Run("a partial refund of a successful payment", func(t *testing.T) {
		var resp refundResponse
		e.post("/refund", map[string]any{"order_id": "rf-paid", "amount": 600, "reason": "refund"}, &resp)
		if !resp.Success || resp.Message != "" || len(resp.RefundID) != 36 || len(resp.ParentTransaction) != 24 {
			t.Errorf("got %+v, want success with a UUID refund_id and the parent's transaction id", resp)
		}
		r := e.checkOrder(resp.RefundID)
		if r.Type != typeRefund || r.Status != statusSuccess || r.Amount != 600 || r.Card.Number != "401200******3010" {
			t.Errorf("check of the refund: got %+v", r)
		}
		paid = e.checkOrder("rf-paid")
		if paid.Status != statusSuccess {
			t.Errorf("the parent's status changed to %d", paid.Status)
		}
	})
	refusals := []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"more than what is left", map[string]any{"order_id": "rf-paid", "amount": 401, "reason": "r"}, http.StatusBadRequest, codeAmountExceeds},
		{"a failed payment", map[string]any{"order_id": "rf-failed", "amount": 1, "reason": "r"}, http.StatusConflict, codeInvalidState},
		{"a payment still processing", map[string]any{"order_id": "rf-pending", "amount": 1, "reason": "r"}, http.StatusConflict, codeInvalidState},
		{"an unknown order", map[string]any{"order_id": "rf-none", "amount": 1, "reason": "r"}, http.StatusNotFound, codeOrderNotFound},
		{"no reason", map[string]any{"order_id": "rf-paid", "amount": 1}, http.StatusBadRequest, codeValidation},
		{"no amount", map[string]any{"order_id": "rf-paid", "reason": "r"}, http.StatusBadRequest, codeValidation},
	}
	for _, c := range refusals {
		t.Run("a refund of "+c.name+" is refused", func(t *testing.T) {
			e.refuse("/refund", c.body, c.status, c.code)
		})
	}
	t.Run("the rest can still be refunded, then nothing more", func(t *testing.T) {
		e.post("/refund", map[string]any{"order_id": "rf-paid", "amount": 400, "reason": "rest"}, nil)
		e.refuse("/refund", map[string]any{"order_id": "rf-paid", "amount": 1, "reason": "r"}, http.StatusBadRequest, codeAmountExceeds)
	})
	t.Run("a refund cannot be refunded", func(t *testing.T) {
		var resp refundResponse
		e.post("/initPaymentHost2Host", cardPayment("rf-2", panFrictionless), nil)
		e.post("/refund", map[string]any{"order_id": "rf-2", "amount": 1, "reason": "r"}, &resp)
		e.refuse("/refund", map[string]any{"order_id": resp.RefundID, "amount": 1, "reason": "r"}, http.StatusConflict, codeInvalidState)
	})
	t.Run("a partially captured payment refunds at most the captured amount", func(t *testing.T) {
		e.post("/authorize", cardPayment("rf-cap", panFrictionless), nil)
		e.post("/capture", map[string]any{"order_id": "rf-cap", "amount": 300}, nil)
		e.refuse("/refund", map[string]any{"order_id": "rf-cap", "amount": 301, "reason": "r"}, http.StatusBadRequest, codeAmountExceeds)
		e.post("/refund", map[string]any{"order_id": "rf-cap", "amount": 300, "reason": "r"}, nil)
	})
}

func TestRecurrent(t *testing.T) {
	e := newEnv(t, Options{})
	e.post("/initPaymentHost2Host", with(cardPayment("rc-parent", panFrictionless), "recurrent", true), nil)
	e.post("/initPaymentHost2Host", cardPayment("rc-once", panFrictionless), nil)
	e.post("/initPaymentHost2Host", with(cardPayment("rc-failed", panDecline), "recurrent", true), nil)
	req := func(order, parent string) map[string]any {
		return map[string]any{"order_id": order, "parent_order_id": parent, "amount": 700, "purpose": "test recurrent"}
	}

	t.Run("a recurrent payment from a successful recurrent parent succeeds on the same card", func(t *testing.T) {
		var resp recurrentResponse
		e.post("/recurrent", with(req("rc-1", "rc-parent"), "recur_period", recurMonthly), &resp)
		if !resp.Success || resp.Err != nil || len(resp.PaymentID) != 36 {
			t.Errorf("got %+v, want success with a UUID payment_id", resp)
		}
		c := e.checkOrder("rc-1")
		if c.Status != statusSuccess || c.Amount != 700 || c.Card.Number != "401200******3010" || c.Type != typePayment || c.FirstName != "John" {
			t.Errorf("got %+v, want a successful 700 payment on the parent's card", c)
		}
		if e.checkOrder(resp.PaymentID).OrderID != "rc-1" {
			t.Errorf("check by payment_id did not find the payment")
		}
	})
	t.Run("a recurrent payment can be the parent of the next", func(t *testing.T) {
		e.post("/recurrent", req("rc-2", "rc-1"), nil)
	})
	refusals := []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"a parent made without recurrent=true", req("rc-x1", "rc-once"), http.StatusConflict, codeInvalidState},
		{"a failed parent", req("rc-x2", "rc-failed"), http.StatusConflict, codeInvalidState},
		{"an unknown parent", req("rc-x3", "rc-none"), http.StatusNotFound, codeOrderNotFound},
		{"a reused order_id", req("rc-parent", "rc-parent"), http.StatusConflict, codeDuplicateOrder},
		{"an unknown recur_period", with(req("rc-x4", "rc-parent"), "recur_period", "02"), http.StatusBadRequest, codeValidation},
		{"no purpose", with(req("rc-x5", "rc-parent"), "purpose", nil), http.StatusBadRequest, codeValidation},
		{"no parent_order_id", with(req("rc-x6", "rc-parent"), "parent_order_id", nil), http.StatusBadRequest, codeValidation},
	}
	for _, c := range refusals {
		t.Run(c.name+" is refused", func(t *testing.T) {
			e.refuse("/recurrent", c.body, c.status, c.code)
		})
	}
}
