package proxy_test

// Hostile-input suite (see hostile_body_test.go): card data in unexpected shapes
// and places.

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

func TestHostile_PANAsJSONNumberOnCollect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	wantError(t, h.col(t, merchantA, `{"card_number":`+testcards.Success+`,"card_exp_month":"12","card_exp_year":"2030"}`, nil),
		http.StatusBadRequest, "invalid_field_type")
	wantError(t, h.col(t, merchantA, withRaw(t, map[string]any{"card_number": testcards.Success, "card_exp_month": "12", "card_exp_year": "2030"}, `"card_cvv":`+testcards.CVV), nil),
		http.StatusBadRequest, "invalid_field_type")
	h.wantTokenKeys(t, 0)
}

func TestHostile_PANAsJSONNumberOnForward(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	pan := testcards.Success
	for _, num := range []string{pan, pan[:1] + "." + pan[1:] + "e15", pan + ".0", pan + "0e-1"} {
		body := withRaw(t, paymentBody(h.orderID(), map[string]any{"card_cvv": nil}), `"card_number":`+num)
		wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
		body = withRaw(t, map[string]any{"order_id": h.orderID()}, `"ref":`+num)
		wantError(t, h.post(t, "/check", body), http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_PANWithLetters(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	p := testcards.Success
	for _, pan := range []string{
		p[:4] + "OOOOOOOO" + p[12:], p + "x", "x" + p, p[:4] + " " + p[4:8] + "-" + p[8:12] + " " + p[12:], p[:4] + "__" + p[4:], "0x" + p,
	} {
		r := h.col(t, merchantA, cardFields(pan, testcards.CVV), nil)
		wantError(t, r, http.StatusBadRequest, "invalid_card_number")
		if bytes.Contains(r.body, []byte(pan)) {
			t.Errorf("the answer echoes the input %q", pan)
		}
	}
	h.wantTokenKeys(t, 0)
	h.assertNoCardData(t, "OOOOOOOO")
}

func TestHostile_FullwidthPANOnCollect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	forms := testcards.Spellings(testcards.Success)
	for _, f := range []string{"fullwidth digits", "Arabic-Indic form"} {
		wantError(t, h.col(t, merchantA, cardFields(forms[f], testcards.CVV), nil), http.StatusBadRequest, "invalid_card_number")
	}
	h.wantTokenKeys(t, 0)
}

func TestHostile_FullwidthPANSmuggledInForward(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	forms := testcards.Spellings(testcards.Decline)
	for _, f := range []string{"fullwidth digits", "Arabic-Indic form"} {
		body := cardPayment(h.orderID(), tok)
		body["purpose"] = "gift card " + forms[f]
		wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
		wantError(t, h.post(t, "/initPayment", paymentBody(h.orderID(), map[string]any{"purpose": forms[f]})), http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
}

func TestHostile_PANHiddenInNestedObjects(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, nested := range []string{
		`"customer":{"billing":{"note":"card ` + testcards.Decline + `"}}`,
		`"meta":{"` + testcards.Decline + `":"as a key"}`,
		`"meta":{"a":{"b":{"c":{"d":"` + testcards.Spellings(testcards.Decline)["grouped (dashes)"] + `"}}}}`,
	} {
		wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), nested)), http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_PANHiddenInArrays(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, arr := range []string{
		`"items":["a",1,["` + testcards.Spellings(testcards.Decline)["grouped (spaces)"] + `"]]`,
		`"items":[{"sku":"x","pan":"` + testcards.Amex + `"}]`,
		`"items":[` + testcards.Decline + `]`,
	} {
		wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), arr)), http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_PANHiddenInJSONEscapes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	forms := testcards.Spellings(testcards.Decline)
	d := testcards.Decline // and once with some digits escaped, grouped by an escaped dash
	for _, esc := range []string{forms["JSON \\u-escaped"], d[:2] + `\u0035\u0035` + d[4:8] + `\u002d` + d[8:]} {
		wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"note":"`+esc+`"`)), http.StatusBadRequest, "raw_card_data")
	}
	// A PAN escaped into the injectable field itself.
	body := withRaw(t, paymentBody(h.orderID(), map[string]any{"card_cvv": tok}), `"card_number":"`+forms["JSON \\u-escaped"]+`"`)
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_PANInQueryString(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, q := range []string{"ref=" + testcards.Decline, "ref=" + testcards.Spellings(testcards.Decline)["percent-encoded"], testcards.Decline + "=1", "a=1&ref=" + strings.ReplaceAll(testcards.Spellings(testcards.Decline)["grouped (spaces)"], " ", "+")} {
		wantError(t, h.post(t, "/initPaymentHost2Host?"+q, cardPayment(h.orderID(), tok)), http.StatusBadRequest, "raw_card_data")
		wantError(t, h.post(t, "/check?"+q, map[string]any{"order_id": h.orderID()}), http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
}

func TestHostile_PANInPassthroughCall(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/check", map[string]any{"order_id": testcards.Decline}},
		{"/refund", map[string]any{"order_id": h.orderID(), "amount": 100, "reason": "card " + testcards.Spellings(testcards.Success)["grouped (spaces)"]}},
		{"/initPayment", paymentBody(h.orderID(), map[string]any{"card_number": testcards.Success})},
		{"/withdrawal/tokenize-form", map[string]any{"account": "EUR-sandbox-payout", "order_id": h.orderID(), "note": testcards.Amex}},
	} {
		wantError(t, h.post(t, c.path, c.body), http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_PANInRequestHeader(t *testing.T) {
	// Request headers other than chdproxy's own are forwarded upstream: a PAN
	// there would reach api-gateway (or chd-api) past every body check.
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, v := range []string{testcards.Decline, testcards.Spellings(testcards.Decline)["grouped (spaces)"], "ref=" + testcards.Amex} {
		wantError(t, h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": h.orderID()}, headers{"X-Customer-Card": v}),
			http.StatusBadRequest, "raw_card_data")
		wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), headers{"X-Customer-Card": v}),
			http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
}

func TestHostile_PANInCompressedBody(t *testing.T) {
	// chdproxy does not inflate bodies: a gzip body cannot be checked, so it
	// must not be forwarded either.
	h := newHarness(t, harnessOptions{})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(mustJSON(t, paymentBody(h.orderID(), map[string]any{"card_number": testcards.Success, "card_cvv": testcards.CVV})))
	zw.Close()
	for _, path := range []string{"/initPaymentHost2Host", "/initPayment"} {
		wantError(t, h.fwd(t, merchantA, http.MethodPost, path, buf.Bytes(), headers{"Content-Encoding": "gzip"}),
			http.StatusBadRequest, "invalid_text")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_RawCVVInCVVField(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := paymentBody(h.orderID(), map[string]any{"card_number": tok, "card_cvv": testcards.CVV})
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	body = paymentBody(h.orderID(), map[string]any{"card_number": tok, "card_cvv": testcards.CVVAmex})
	wantError(t, h.post(t, "/authorize", body), http.StatusBadRequest, "raw_card_data")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_RawCVVAsNonStringInCVVField(t *testing.T) {
	// A CVV sent as a number, array or object in the CVV field is card data
	// in the clear as much as a string is.
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, v := range []string{testcards.CVV, `["` + testcards.CVV + `"]`, `{"v":"` + testcards.CVV + `"}`, `7.37e2`} {
		body := withRaw(t, paymentBody(h.orderID(), map[string]any{"card_number": tok}), `"card_cvv":`+v)
		wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_RawWalletPayloadInForward(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body := paymentBody(h.orderID(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": testcards.DPANApple, "apple_pay_payment_method_network": "Visa"})
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	body = paymentBody(h.orderID(), map[string]any{"payment_method": "googlePayDPan", "google_pay_dpan": testcards.DPANGoogle, "google_pay_payment_method_network": "Visa"})
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_ErrorsNeverEchoInput(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	cases := []struct {
		field, value, code string
	}{
		{"card_exp_month", "13<script>alert(1)</script>", "invalid_exp_month"},
		{"card_exp_year", "20x0'--", "invalid_exp_year"},
		{"card_cvv", "73<b>", "invalid_cvv"},
		{"card_number", testcards.BadLuhn, "invalid_card_checksum"},
		{"card_holder", "Robert'); DROP TABLE cards;--", "invalid_card_holder"},
		{"payment_method", "evil${jndi:ldap://x}", "invalid_payment_method"},
	}
	for _, c := range cases {
		f := cardFields(testcards.Success, testcards.CVV)
		f[c.field] = c.value
		r := h.col(t, merchantA, f, nil)
		wantError(t, r, http.StatusBadRequest, c.code)
		if bytes.Contains(r.body, []byte(c.value)) {
			t.Errorf("%s: the answer echoes the input", c.field)
		}
	}
	h.assertNoCardData(t, "<script>", "DROP TABLE", "jndi", testcards.BadLuhn)
}
