package proxy_test

// The hostile-input suite (issue 5, item 7), in hostile_*_test.go: one test per
// attack a payments security reviewer would try. Each asserts the status code and
// stable error code, and that no test card data reached a response, the logs, the
// audit trail or Redis (assertNoCardData, leak_test.go). This file: oversized, malformed and ambiguous bodies.

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestHostile_OversizedBodyOnCollect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	f := cardFields(testcards.Success, testcards.CVV)
	f["card_holder"] = strings.Repeat("A", 40<<10)
	wantError(t, h.col(t, merchantA, f, nil), http.StatusRequestEntityTooLarge, "body_too_large")
	// The same through the idempotency layer, which reads the body first.
	wantError(t, h.col(t, merchantA, f, headers{"Idempotency-Key": "big-1"}), http.StatusRequestEntityTooLarge, "body_too_large")
	h.wantTokenKeys(t, 0)
}

func TestHostile_OversizedBodyOnForward(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := cardPayment(h.orderID(), tok)
	body["purpose"] = strings.Repeat("x", 70<<10)
	wantError(t, h.post(t, "/initPaymentHost2Host", body), http.StatusRequestEntityTooLarge, "body_too_large")
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", body, headers{"Idempotency-Key": "big-2"}),
		http.StatusRequestEntityTooLarge, "body_too_large")
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
}

func TestHostile_MalformedJSON(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantError(t, h.col(t, merchantA, `{"card_number":"`+testcards.Success+`","card_exp_month":"12",,"card_exp_year":"2030"}`, nil),
		http.StatusBadRequest, "invalid_json")
	wantError(t, h.col(t, merchantA, `{card_number:"`+testcards.Success+`"}`, nil), http.StatusBadRequest, "invalid_json")
	wantError(t, h.col(t, merchantA, `["`+testcards.Success+`"]`, nil), http.StatusBadRequest, "invalid_json")
	wantError(t, h.post(t, "/initPaymentHost2Host", `{"card_number":"`+tok+`" "card_cvv":"`+tok+`"}`), http.StatusBadRequest, "invalid_json")
	wantError(t, h.post(t, "/check", `{"order_id":}`), http.StatusBadRequest, "invalid_json")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_TruncatedJSON(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	whole := string(mustJSON(t, cardFields(testcards.Success, testcards.CVV)))
	for _, cut := range []int{1, len(whole) / 3, len(whole) / 2, len(whole) - 1} {
		wantError(t, h.col(t, merchantA, whole[:cut], nil), http.StatusBadRequest, "invalid_json")
	}
	pay := string(mustJSON(t, cardPayment(h.orderID(), tok)))
	wantError(t, h.post(t, "/initPaymentHost2Host", pay[:len(pay)-1]), http.StatusBadRequest, "invalid_json")
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
}

func TestHostile_TrailingGarbage(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	card := string(mustJSON(t, cardFields(testcards.Success, testcards.CVV)))
	for _, tail := range []string{`{"card_number":"` + testcards.Visa + `"}`, ` garbage`, `]`, "\x00"} {
		wantError(t, h.col(t, merchantA, card+tail, nil), http.StatusBadRequest, "invalid_json")
	}
	pay := string(mustJSON(t, cardPayment(h.orderID(), tok)))
	for _, tail := range []string{`{"amount":1}`, ` x`, `}`} {
		wantError(t, h.post(t, "/initPaymentHost2Host", pay+tail), http.StatusBadRequest, "invalid_json")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_DuplicateKeys(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tok2 := h.cardToken(t, testcards.Decline, testcards.CVV)
	// Which card_number would the vault keep, which would a log show?
	wantError(t, h.col(t, merchantA, withRaw(t, cardFields(testcards.Success, testcards.CVV), `"card_number":"`+testcards.Visa+`"`), nil),
		http.StatusBadRequest, "duplicate_field")
	form := "card_number=" + testcards.Success + "&card_number=" + testcards.Visa + "&card_exp_month=12&card_exp_year=2030"
	wantError(t, h.col(t, merchantA, form, headers{"Content-Type": "application/x-www-form-urlencoded"}),
		http.StatusBadRequest, "duplicate_field")
	// Forward: the proxy must not read one card_cvv while the upstream reads another.
	wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"card_cvv":"`+tok2+`"`)),
		http.StatusBadRequest, "duplicate_field")
	wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"card_number":"`+tok+`"`)),
		http.StatusBadRequest, "duplicate_field")
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok, tok2)
}

func TestHostile_CaseVariantKeys(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tok2 := h.cardToken(t, testcards.Decline, testcards.CVV)
	wantError(t, h.col(t, merchantA, withRaw(t, cardFields(testcards.Success, testcards.CVV), `"Card_Number":"`+testcards.Visa+`"`), nil),
		http.StatusBadRequest, "unknown_field")
	wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"CARD_CVV":"`+tok2+`"`)),
		http.StatusBadRequest, "duplicate_field")
	wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"Card_Number":"x"`)),
		http.StatusBadRequest, "duplicate_field")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_EscapedDuplicateKeys(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tok2 := h.cardToken(t, testcards.Decline, testcards.CVV)
	// "card\u005fnumber" is "card_number" once decoded.
	wantError(t, h.col(t, merchantA, withRaw(t, cardFields(testcards.Success, testcards.CVV), `"card\u005fnumber":"`+testcards.Visa+`"`), nil),
		http.StatusBadRequest, "duplicate_field")
	wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"card\u005Fcvv":"`+tok2+`"`)),
		http.StatusBadRequest, "duplicate_field")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_UnknownFieldOnCollect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, extra := range []string{`"card_pin":"1234"`, `"__proto__":"x"`, `"constructor":"x"`, `"apple_pay_dpan":"` + testcards.DPANApple + `"`, `"":"x"`} {
		wantError(t, h.col(t, merchantA, withRaw(t, cardFields(testcards.Success, testcards.CVV), extra), nil), http.StatusBadRequest, "unknown_field")
	}
	h.wantTokenKeys(t, 0)
}

func TestHostile_InvalidUTF8(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	f := string(mustJSON(t, cardFields(testcards.Success, testcards.CVV)))
	wantError(t, h.col(t, merchantA, strings.Replace(f, testcards.Holder, "Jane\xffRoe", 1), nil), http.StatusBadRequest, "invalid_text")
	// Overlong encodings of ASCII digits ("\xc0\xb4" is an overlong '4').
	wantError(t, h.col(t, merchantA, strings.Replace(f, testcards.Success, "\xc0\xb4"+testcards.Success[1:], 1), nil), http.StatusBadRequest, "invalid_text")
	pay := mustJSON(t, cardPayment(h.orderID(), tok))
	pay = bytes.Replace(pay, []byte(`"description"`), []byte("\"desc\xc0\xafription\""), 1)
	wantError(t, h.post(t, "/initPaymentHost2Host", pay), http.StatusBadRequest, "invalid_text")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_NullByteInField(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	f := cardFields(testcards.Success, testcards.CVV)
	f["card_holder"] = "Jane\x00Roe"
	wantError(t, h.col(t, merchantA, f, nil), http.StatusBadRequest, "invalid_text")
	f = cardFields(testcards.Success+"\x00", testcards.CVV)
	wantError(t, h.col(t, merchantA, f, nil), http.StatusBadRequest, "invalid_text")
	h.wantTokenKeys(t, 0)
}

func TestHostile_ByteOrderMark(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	bom := "\xef\xbb\xbf"
	wantError(t, h.col(t, merchantA, bom+string(mustJSON(t, cardFields(testcards.Success, testcards.CVV))), nil), http.StatusBadRequest, "invalid_json")
	wantError(t, h.post(t, "/initPaymentHost2Host", bom+string(mustJSON(t, cardPayment(h.orderID(), tok)))), http.StatusBadRequest, "invalid_json")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_DeeplyNestedJSON(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	deep := strings.Repeat("[", 11000) + strings.Repeat("]", 11000) // deeper than encoding/json allows
	wantError(t, h.col(t, merchantA, `{"card_number":`+deep+`}`, nil), http.StatusBadRequest, "invalid_json")
	wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, cardPayment(h.orderID(), tok), `"meta":`+deep)), http.StatusBadRequest, "invalid_json")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_UnsupportedMediaType(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	card := string(mustJSON(t, cardFields(testcards.Success, testcards.CVV)))
	for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json;;;", ""} {
		wantError(t, h.col(t, merchantA, card, headers{"Content-Type": ct}), http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	pay := mustJSON(t, cardPayment(h.orderID(), tok))
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", pay, headers{"Content-Type": ct}),
			http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_CaseVariantSecretFieldAlone(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tok2 := h.cardToken(t, testcards.Decline, testcards.CVV)
	// The body names the token for the card number only; a raw CVV rides beside it under
	// a key the policy does not name exactly, which an upstream reading keys in any case
	// would take for card_cvv.
	pay := cardPayment(h.orderID(), tok)
	delete(pay, "card_cvv")
	for _, extra := range []string{
		`"Card_CVV":"` + testcards.CVV + `"`, `"CARD_CVV":"` + testcards.CVV + `"`, `"card_Cvv":` + testcards.CVV,
		`"Card_CVV":""`, `"Card_CVV":null`, `"Apple_Pay_DPan":"` + testcards.DPANApple + `"`,
	} {
		wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, pay, extra)), http.StatusBadRequest, "raw_card_data")
	}
	wantError(t, h.post(t, "/initPaymentHost2Host", withRaw(t, pay, `"Card_CVV":"`+tok2+`"`)), http.StatusBadRequest, "token_not_allowed")
	// The same on the other card route that fills a CVV.
	wantError(t, h.post(t, "/authorize", withRaw(t, pay, `"cARD_cvv":"`+testcards.CVV+`"`)), http.StatusBadRequest, "raw_card_data")
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok, tok2)
}

// Linear time is shown by TestWalkObjectFoldsEachKeyOnce and measured by
// BenchmarkParseObjectManyFields; here: a duplicate after 7,000 keys is still found.
func TestHostile_ManyFieldsBodyFindsTheLastDuplicate(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var b strings.Builder
	b.WriteString(`{"order_id":"` + h.orderID() + `"`)
	for i := range 7000 { // about 56 KiB, under the forward limit
		b.WriteString(`,"` + strconv.FormatInt(int64(i), 36) + `":0`)
	}
	many := b.String() + "}"
	// 7,000 distinct keys, then one that folds onto "a".
	wantError(t, h.post(t, "/check", many[:len(many)-1]+`,"A":0}`), http.StatusBadRequest, "duplicate_field")
	h.post(t, "/check", many)
	h.wantUpstreamCalls(t, "/check", 1) // the sandbox answers 404 for the unknown order
}

func TestHostile_AmbiguousContentType(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	card := string(mustJSON(t, cardFields(testcards.Success, testcards.CVV)))
	pay := string(mustJSON(t, cardPayment(h.orderID(), tok)))
	collectAuth := []string{"Host: x", "Authorization: Bearer " + h.keys[merchantA][proxy.RolePublishable], "Origin: " + originA}
	forwardAuth := []string{"Host: x", "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth}
	for name, types := range map[string][]string{
		"two Content-Type headers":       {"application/json", "application/x-www-form-urlencoded"},
		"the same type twice":            {"application/json", "application/json"},
		"a charset other than UTF-8":     {"application/json; charset=utf-16"},
		"a parameter other than charset": {"application/json; boundary=x"},
	} {
		var ct []string
		for _, v := range types {
			ct = append(ct, "Content-Type: "+v)
		}
		for _, c := range []struct {
			addr, line, body string
			auth             []string
		}{
			{h.colAddr, "POST /v1/tokens HTTP/1.1", card, collectAuth},
			{h.fwdAddr, "POST /initPaymentHost2Host HTTP/1.1", pay, forwardAuth},
			{h.fwdAddr, "POST /check HTTP/1.1", `{"order_id":"x"}`, forwardAuth},
		} {
			hdrs := append(append(slices.Clone(c.auth), ct...), "Content-Length: "+strconv.Itoa(len(c.body)), "Connection: close")
			resps, _ := h.raw(t, c.addr, rawRequest(c.line, hdrs, c.body), 2*time.Second)
			if len(resps) != 1 {
				t.Fatalf("%s, %s: got answers %v, want one", name, c.line, statuses(resps))
			}
			wantError(t, resps[0], http.StatusUnsupportedMediaType, "ambiguous_content_type")
		}
	}
	// charset=utf-8 in any case is what browsers send: still accepted.
	wantStatus(t, h.col(t, merchantA, card, headers{"Content-Type": "application/json; charset=UTF-8"}), http.StatusCreated)
	h.wantUpstreamCalls(t, "", 0)
	h.wantCVVKept(t, tok)
}
