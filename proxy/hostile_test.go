package proxy_test

// The hostile-input suite (issue 5, item 7): one test per attack a payments
// security reviewer would try. Each asserts the status code and stable error
// code, and that no test card data reached a response, the logs, the audit
// trail or Redis (assertNoCardData). The harness is hostile_harness_test.go.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// ===========================================================================
// Oversized, malformed and ambiguous bodies

func TestHostile_OversizedBodyOnCollect(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	f := hxCard(hxPANVisa, hxCVV)
	f["card_holder"] = strings.Repeat("A", 40<<10)
	hxWantError(t, e.col(t, hxMerchantA, f, nil), http.StatusRequestEntityTooLarge, "body_too_large")
	// The same through the idempotency layer, which reads the body first.
	hxWantError(t, e.col(t, hxMerchantA, f, hxHeaders{"Idempotency-Key": "big-1"}), http.StatusRequestEntityTooLarge, "body_too_large")
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

func TestHostile_OversizedBodyOnForward(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	body := e.cardPayment(tok)
	body["purpose"] = strings.Repeat("x", 70<<10)
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusRequestEntityTooLarge, "body_too_large")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", body, hxHeaders{"Idempotency-Key": "big-2"}),
		http.StatusRequestEntityTooLarge, "body_too_large")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_MalformedJSON(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	hxWantError(t, e.col(t, hxMerchantA, `{"card_number":"`+hxPANVisa+`","card_exp_month":"12",,"card_exp_year":"2030"}`, nil),
		http.StatusBadRequest, "invalid_json")
	hxWantError(t, e.col(t, hxMerchantA, `{card_number:"`+hxPANVisa+`"}`, nil), http.StatusBadRequest, "invalid_json")
	hxWantError(t, e.col(t, hxMerchantA, `["`+hxPANVisa+`"]`, nil), http.StatusBadRequest, "invalid_json")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", `{"card_number":"`+tok+`" "card_cvv":"`+tok+`"}`), http.StatusBadRequest, "invalid_json")
	hxWantError(t, e.pay(t, "/check", `{"order_id":}`), http.StatusBadRequest, "invalid_json")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_TruncatedJSON(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	whole := string(hxJSON(t, hxCard(hxPANVisa, hxCVV)))
	for _, cut := range []int{1, len(whole) / 3, len(whole) / 2, len(whole) - 1} {
		hxWantError(t, e.col(t, hxMerchantA, whole[:cut], nil), http.StatusBadRequest, "invalid_json")
	}
	pay := string(hxJSON(t, e.cardPayment(tok)))
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", pay[:len(pay)-1]), http.StatusBadRequest, "invalid_json")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_TrailingGarbage(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	card := string(hxJSON(t, hxCard(hxPANVisa, hxCVV)))
	for _, tail := range []string{`{"card_number":"` + hxPANOther + `"}`, ` garbage`, `]`, "\x00"} {
		hxWantError(t, e.col(t, hxMerchantA, card+tail, nil), http.StatusBadRequest, "invalid_json")
	}
	pay := string(hxJSON(t, e.cardPayment(tok)))
	for _, tail := range []string{`{"amount":1}`, ` x`, `}`} {
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", pay+tail), http.StatusBadRequest, "invalid_json")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_DuplicateKeys(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	tok2 := e.tokenize(t, hxMerchantA, hxPANMC, hxCVV)
	// Which card_number would the vault keep, which would a log show?
	hxWantError(t, e.col(t, hxMerchantA, hxWithRaw(t, hxAny(hxCard(hxPANVisa, hxCVV)), `"card_number":"`+hxPANOther+`"`), nil),
		http.StatusBadRequest, "duplicate_field")
	form := "card_number=" + hxPANVisa + "&card_number=" + hxPANOther + "&card_exp_month=12&card_exp_year=2030"
	hxWantError(t, e.col(t, hxMerchantA, form, hxHeaders{"Content-Type": "application/x-www-form-urlencoded"}),
		http.StatusBadRequest, "duplicate_field")
	// Forward: the proxy must not read one card_cvv while the upstream reads another.
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), `"card_cvv":"`+tok2+`"`)),
		http.StatusBadRequest, "duplicate_field")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), `"card_number":"`+tok+`"`)),
		http.StatusBadRequest, "duplicate_field")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) || !e.hasCVV(t, hxMerchantA, tok2) {
		t.Error("a CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_CaseVariantKeys(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	tok2 := e.tokenize(t, hxMerchantA, hxPANMC, hxCVV)
	hxWantError(t, e.col(t, hxMerchantA, hxWithRaw(t, hxAny(hxCard(hxPANVisa, hxCVV)), `"Card_Number":"`+hxPANOther+`"`), nil),
		http.StatusBadRequest, "unknown_field")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), `"CARD_CVV":"`+tok2+`"`)),
		http.StatusBadRequest, "duplicate_field")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), `"Card_Number":"x"`)),
		http.StatusBadRequest, "duplicate_field")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_EscapedDuplicateKeys(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	tok2 := e.tokenize(t, hxMerchantA, hxPANMC, hxCVV)
	// "card\u005fnumber" is "card_number" once decoded.
	hxWantError(t, e.col(t, hxMerchantA, hxWithRaw(t, hxAny(hxCard(hxPANVisa, hxCVV)), `"card\u005fnumber":"`+hxPANOther+`"`), nil),
		http.StatusBadRequest, "duplicate_field")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), `"card\u005Fcvv":"`+tok2+`"`)),
		http.StatusBadRequest, "duplicate_field")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_UnknownFieldOnCollect(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	for _, extra := range []string{`"card_pin":"1234"`, `"__proto__":"x"`, `"constructor":"x"`, `"apple_pay_dpan":"` + hxDPANApple + `"`, `"":"x"`} {
		hxWantError(t, e.col(t, hxMerchantA, hxWithRaw(t, hxAny(hxCard(hxPANVisa, hxCVV)), extra), nil), http.StatusBadRequest, "unknown_field")
	}
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

func TestHostile_InvalidUTF8(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	f := string(hxJSON(t, hxCard(hxPANVisa, hxCVV)))
	hxWantError(t, e.col(t, hxMerchantA, strings.Replace(f, hxHolder, "Jane\xffRoe", 1), nil), http.StatusBadRequest, "invalid_text")
	// Overlong encodings of ASCII digits ("\xc0\xb4" is an overlong '4').
	hxWantError(t, e.col(t, hxMerchantA, strings.Replace(f, hxPANVisa, "\xc0\xb4012000000003010", 1), nil), http.StatusBadRequest, "invalid_text")
	pay := hxJSON(t, e.cardPayment(tok))
	pay = bytes.Replace(pay, []byte(`"description"`), []byte("\"desc\xc0\xafription\""), 1)
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", pay), http.StatusBadRequest, "invalid_text")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_NullByteInField(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	f := hxCard(hxPANVisa, hxCVV)
	f["card_holder"] = "Jane\x00Roe"
	hxWantError(t, e.col(t, hxMerchantA, f, nil), http.StatusBadRequest, "invalid_text")
	f = hxCard(hxPANVisa+"\x00", hxCVV)
	hxWantError(t, e.col(t, hxMerchantA, f, nil), http.StatusBadRequest, "invalid_text")
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

func TestHostile_ByteOrderMark(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	bom := "\xef\xbb\xbf"
	hxWantError(t, e.col(t, hxMerchantA, bom+string(hxJSON(t, hxCard(hxPANVisa, hxCVV))), nil), http.StatusBadRequest, "invalid_json")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", bom+string(hxJSON(t, e.cardPayment(tok)))), http.StatusBadRequest, "invalid_json")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_DeeplyNestedJSON(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	deep := strings.Repeat("[", 11000) + strings.Repeat("]", 11000) // deeper than encoding/json allows
	hxWantError(t, e.col(t, hxMerchantA, `{"card_number":`+deep+`}`, nil), http.StatusBadRequest, "invalid_json")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), `"meta":`+deep)), http.StatusBadRequest, "invalid_json")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_UnsupportedMediaType(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	card := string(hxJSON(t, hxCard(hxPANVisa, hxCVV)))
	for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json;;;", ""} {
		hxWantError(t, e.col(t, hxMerchantA, card, hxHeaders{"Content-Type": ct}), http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	pay := hxJSON(t, e.cardPayment(tok))
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", pay, hxHeaders{"Content-Type": ct}),
			http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

// ===========================================================================
// Card data in unexpected shapes and places

func TestHostile_PANAsJSONNumberOnCollect(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	hxWantError(t, e.col(t, hxMerchantA, `{"card_number":`+hxPANVisa+`,"card_exp_month":"12","card_exp_year":"2030"}`, nil),
		http.StatusBadRequest, "invalid_field_type")
	hxWantError(t, e.col(t, hxMerchantA, hxWithRaw(t, map[string]any{"card_number": hxPANVisa, "card_exp_month": "12", "card_exp_year": "2030"}, `"card_cvv":737`), nil),
		http.StatusBadRequest, "invalid_field_type")
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

func TestHostile_PANAsJSONNumberOnForward(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	for _, num := range []string{hxPANVisa, "4.012000000003010e15", "4012000000003010.0", "40120000000030100e-1"} {
		body := hxWithRaw(t, paymentBody(e.order(), map[string]any{"card_cvv": nil}), `"card_number":`+num)
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
		body = hxWithRaw(t, map[string]any{"order_id": e.order()}, `"ref":`+num)
		hxWantError(t, e.pay(t, "/check", body), http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_PANWithLetters(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	for _, pan := range []string{"4012OOOOOOOO3010", "4012000000003010x", "x4012000000003010", "4012 0000-0000 3010", "4012__0000000003010", "0x4012000000003010"} {
		r := e.col(t, hxMerchantA, hxCard(pan, hxCVV), nil)
		hxWantError(t, r, http.StatusBadRequest, "invalid_card_number")
		if bytes.Contains(r.body, []byte(pan)) {
			t.Errorf("the answer echoes the input %q", pan)
		}
	}
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t, "OOOOOOOO")
}

func TestHostile_FullwidthPANOnCollect(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	forms := hxPANForms(hxPANVisa)
	for _, f := range []string{"fullwidth digits", "Arabic-Indic form"} {
		hxWantError(t, e.col(t, hxMerchantA, hxCard(forms[f], hxCVV), nil), http.StatusBadRequest, "invalid_card_number")
	}
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

func TestHostile_FullwidthPANSmuggledInForward(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	forms := hxPANForms(hxPANMC)
	for _, f := range []string{"fullwidth digits", "Arabic-Indic form"} {
		body := e.cardPayment(tok)
		body["purpose"] = "gift card " + forms[f]
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
		hxWantError(t, e.pay(t, "/initPayment", paymentBody(e.order(), map[string]any{"purpose": forms[f]})), http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_PANHiddenInNestedObjects(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, nested := range []string{
		`"customer":{"billing":{"note":"card ` + hxPANMC + `"}}`,
		`"meta":{"` + hxPANMC + `":"as a key"}`,
		`"meta":{"a":{"b":{"c":{"d":"` + hxPANForms(hxPANMC)["grouped (dashes)"] + `"}}}}`,
	} {
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), nested)), http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_PANHiddenInArrays(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, arr := range []string{
		`"items":["a",1,["` + hxPANForms(hxPANMC)["grouped (spaces)"] + `"]]`,
		`"items":[{"sku":"x","pan":"` + hxPANAmex + `"}]`,
		`"items":[` + hxPANMC + `]`,
	} {
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), arr)), http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_PANHiddenInJSONEscapes(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	forms := hxPANForms(hxPANMC)
	for _, esc := range []string{forms["JSON \\u-escaped"], forms["JSON \\U-escaped"], `55\u0035\u00355555\u002d55554444`} {
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), `"note":"`+esc+`"`)), http.StatusBadRequest, "raw_card_data")
	}
	// A PAN escaped into the injectable field itself.
	body := hxWithRaw(t, paymentBody(e.order(), map[string]any{"card_cvv": tok}), `"card_number":"`+forms["JSON \\u-escaped"]+`"`)
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_PANInQueryString(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, q := range []string{"ref=" + hxPANMC, "ref=" + hxPANForms(hxPANMC)["percent-encoded"], hxPANMC + "=1", "a=1&ref=5555+5555+5555+4444"} {
		hxWantError(t, e.pay(t, "/initPaymentHost2Host?"+q, e.cardPayment(tok)), http.StatusBadRequest, "raw_card_data")
		hxWantError(t, e.pay(t, "/check?"+q, map[string]any{"order_id": e.order()}), http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_PANInPassthroughCall(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/check", map[string]any{"order_id": hxPANMC}},
		{"/refund", map[string]any{"order_id": e.order(), "amount": 100, "reason": "card " + hxPANForms(hxPANVisa)["grouped (spaces)"]}},
		{"/initPayment", paymentBody(e.order(), map[string]any{"card_number": hxPANVisa})},
		{"/withdrawal/tokenize-form", map[string]any{"account": "EUR-sandbox-payout", "order_id": e.order(), "note": hxPANAmex}},
	} {
		hxWantError(t, e.pay(t, c.path, c.body), http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_PANInRequestHeader(t *testing.T) {
	// Request headers other than chdproxy's own are forwarded upstream: a PAN
	// there would reach api-gateway (or chd-api) past every body check.
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, v := range []string{hxPANMC, hxPANForms(hxPANMC)["grouped (spaces)"], "ref=" + hxPANAmex} {
		hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/check", map[string]any{"order_id": e.order()}, hxHeaders{"X-Customer-Card": v}),
			http.StatusBadRequest, "raw_card_data")
		hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(tok), hxHeaders{"X-Customer-Card": v}),
			http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_PANInCompressedBody(t *testing.T) {
	// chdproxy does not inflate bodies: a gzip body cannot be checked, so it
	// must not be forwarded either.
	e := newHostileEnv(t, hxOptions{})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(hxJSON(t, paymentBody(e.order(), map[string]any{"card_number": hxPANVisa, "card_cvv": hxCVV})))
	zw.Close()
	for _, path := range []string{"/initPaymentHost2Host", "/initPayment"} {
		hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, path, buf.Bytes(), hxHeaders{"Content-Encoding": "gzip"}),
			http.StatusBadRequest, "invalid_text")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_RawCVVInCVVField(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	body := paymentBody(e.order(), map[string]any{"card_number": tok, "card_cvv": hxCVV})
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	body = paymentBody(e.order(), map[string]any{"card_number": tok, "card_cvv": hxCVVAmex})
	hxWantError(t, e.pay(t, "/authorize", body), http.StatusBadRequest, "raw_card_data")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_RawCVVAsNonStringInCVVField(t *testing.T) {
	// A CVV sent as a number, array or object in the CVV field is card data
	// in the clear as much as a string is.
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, v := range []string{hxCVV, `["` + hxCVV + `"]`, `{"v":"` + hxCVV + `"}`, `7.37e2`} {
		body := hxWithRaw(t, paymentBody(e.order(), map[string]any{"card_number": tok}), `"card_cvv":`+v)
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_RawWalletPayloadInForward(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	body := paymentBody(e.order(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": hxDPANApple, "apple_pay_payment_method_network": "Visa"})
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	body = paymentBody(e.order(), map[string]any{"payment_method": "googlePayDPan", "google_pay_dpan": hxDPANGoogle, "google_pay_payment_method_network": "Visa"})
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "raw_card_data")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_ErrorsNeverEchoInput(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	cases := []struct {
		field, value, code string
	}{
		{"card_exp_month", "13<script>alert(1)</script>", "invalid_exp_month"},
		{"card_exp_year", "20x0'--", "invalid_exp_year"},
		{"card_cvv", "73<b>", "invalid_cvv"},
		{"card_number", "4012000000003011", "invalid_card_checksum"},
		{"card_holder", "Robert'); DROP TABLE cards;--", "invalid_card_holder"},
		{"payment_method", "evil${jndi:ldap://x}", "invalid_payment_method"},
	}
	for _, c := range cases {
		f := hxCard(hxPANVisa, hxCVV)
		f[c.field] = c.value
		r := e.col(t, hxMerchantA, f, nil)
		hxWantError(t, r, http.StatusBadRequest, c.code)
		if bytes.Contains(r.body, []byte(c.value)) {
			t.Errorf("%s: the answer echoes the input", c.field)
		}
	}
	e.assertNoCardData(t, "<script>", "DROP TABLE", "jndi", "4012000000003011")
}

// ===========================================================================
// Log injection

func TestHostile_LogInjectionCRLFInHolderName(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	forged := `{"level":"error","msg":"forged entry","merchant":"merchant_beta"}`
	f := hxCard(hxPANVisa, hxCVV)
	f["card_holder"] = "Jane Roe\r\n" + forged
	hxWantError(t, e.col(t, hxMerchantA, f, nil), http.StatusBadRequest, "invalid_text")
	form := url.Values{"card_number": {hxPANVisa}, "card_exp_month": {"12"}, "card_exp_year": {"2030"}, "card_holder": {"Jane\n" + forged}}
	hxWantError(t, e.col(t, hxMerchantA, form.Encode(), hxHeaders{"Content-Type": "application/x-www-form-urlencoded"}),
		http.StatusBadRequest, "invalid_text")
	f["card_holder"] = "Jane\u2028Roe\u0085" + forged // Unicode line separators
	r := e.col(t, hxMerchantA, f, nil)
	if r.status != http.StatusBadRequest {
		t.Errorf("Unicode line separators in the holder name: got %d %q, want 400", r.status, r.code())
	}
	lines := e.waitRequestLines(t, 3)
	if len(lines) != 3 {
		t.Errorf("got %d access-log lines for 3 requests, want 3", len(lines))
	}
	for _, l := range e.logLines(t) {
		if l["msg"] == "forged entry" {
			t.Error("a request created a log line of its own")
		}
	}
	e.assertNoCardData(t, "forged entry")
}

func TestHostile_LogInjectionCRInRawHeader(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	for _, hdr := range []string{
		"X-Note: a\rX-Forged: 1",
		"X-Note: a\r\x00b",
		"X-Note: a\x1b[2Jb",
	} {
		req := hxRawRequest("POST /check HTTP/1.1", []string{
			"Host: x", "Proxy-Authorization: Bearer " + e.keys[hxMerchantA][proxy.RoleSecret], "Authorization: " + hxBasic,
			"Content-Type: application/json", hdr, "Content-Length: 2",
		}, "{}")
		resps, closed := e.raw(t, e.fwdAddr, req, 2*time.Second)
		if len(resps) != 1 || resps[0].status != http.StatusBadRequest || !closed {
			t.Errorf("%q: got %d answers (first %v), closed %v; want one 400 and the connection closed", hdr, len(resps), hxStatuses(resps), closed)
		}
	}
	if n := len(e.requestLines(t)); n != 0 {
		t.Errorf("got %d access-log lines, want 0: a malformed request reached a handler", n)
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t, "X-Forged")
}

func TestHostile_LogInjectionInIdempotencyKey(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	for _, k := range []string{"key\u2028{\"msg\":\"forged entry\"}", "key\tforged entry", strings.Repeat("k", 256), "key with spaces"} {
		hxWantError(t, e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), hxHeaders{"Idempotency-Key": k}), http.StatusBadRequest, "invalid_idempotency_key")
	}
	for _, l := range e.logLines(t) {
		if l["msg"] == "forged entry" {
			t.Error("a request created a log line of its own")
		}
	}
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t, "forged entry")
}

func TestHostile_LogInjectionEncodedCRLFInPath(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	inj := url.PathEscape("tok\r\n{\"level\":\"error\",\"msg\":\"forged entry\"}")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+inj, nil, nil), http.StatusNotFound, "token_not_found")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host"+url.PathEscape("\r\nforged entry"), map[string]any{}, nil),
		http.StatusNotFound, "not_found")
	lines := e.waitRequestLines(t, 2)
	if len(lines) != 2 {
		t.Errorf("got %d access-log lines for 2 requests, want 2", len(lines))
	}
	e.assertNoCardData(t, "forged entry")
}

// ===========================================================================
// Request smuggling and slow clients (raw TCP against the real server)

// hxSmuggled builds a valid, authenticated /check request that would reach
// the upstream if a server read it as a request of its own.
func (e *hxEnv) hxSmuggled() string {
	body := `{"order_id":"smuggled-order"}`
	return hxRawRequest("POST /check HTTP/1.1", []string{
		"Host: x", "Proxy-Authorization: Bearer " + e.keys[hxMerchantA][proxy.RoleSecret], "Authorization: " + hxBasic,
		"Content-Type: application/json", "Content-Length: " + strconv.Itoa(len(body)),
	}, body)
}

func TestHostile_SmugglingContentLengthAndTransferEncoding(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	inner := "0\r\n\r\n" + e.hxSmuggled()
	auth := []string{"Host: x", "Proxy-Authorization: Bearer " + e.keys[hxMerchantA][proxy.RoleSecret], "Authorization: " + hxBasic, "Content-Type: application/json"}
	for name, hdrs := range map[string][]string{
		"CL then TE": {"Content-Length: " + strconv.Itoa(len(inner)), "Transfer-Encoding: chunked"},
		"TE then CL": {"Transfer-Encoding: chunked", "Content-Length: " + strconv.Itoa(len(inner))},
	} {
		resps, closed := e.raw(t, e.fwdAddr, hxRawRequest("POST /check HTTP/1.1", append(slices.Clone(auth), hdrs...), inner), 2*time.Second)
		if len(resps) != 1 || !closed {
			t.Errorf("%s: got %d answers %v, closed %v; want one answer and the connection closed", name, len(resps), hxStatuses(resps), closed)
		}
		if len(resps) > 0 && (resps[0].status != http.StatusBadRequest || resps[0].code() != "transfer_encoding_not_allowed") {
			t.Errorf("%s: got %d %q, want 400 %q", name, resps[0].status, resps[0].code(), "transfer_encoding_not_allowed")
		}
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0 (a smuggled request was processed)", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_SmugglingTwoContentLengths(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	body := `{"order_id":"x"}` + e.hxSmuggled()
	req := hxRawRequest("POST /check HTTP/1.1", []string{
		"Host: x", "Proxy-Authorization: Bearer " + e.keys[hxMerchantA][proxy.RoleSecret], "Authorization: " + hxBasic,
		"Content-Type: application/json", "Content-Length: 16", "Content-Length: " + strconv.Itoa(len(body)),
	}, body)
	resps, closed := e.raw(t, e.fwdAddr, req, 2*time.Second)
	if len(resps) != 1 || resps[0].status != http.StatusBadRequest || !closed {
		t.Errorf("got %d answers %v, closed %v; want one 400 and the connection closed", len(resps), hxStatuses(resps), closed)
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_SmugglingObfuscatedTransferEncoding(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	inner := "0\r\n\r\n" + e.hxSmuggled()
	auth := []string{"Host: x", "Proxy-Authorization: Bearer " + e.keys[hxMerchantA][proxy.RoleSecret], "Authorization: " + hxBasic, "Content-Type: application/json"}
	for _, c := range []struct {
		te     string
		status int
		code   string // "" for net/http's own plain-text refusal
	}{
		{"Transfer-Encoding: xchunked", http.StatusNotImplemented, ""},
		{"Transfer-Encoding: chunked, identity", http.StatusNotImplemented, ""},
		{"Transfer-Encoding: gzip, chunked", http.StatusNotImplemented, ""},
		{"Transfer-Encoding : chunked", http.StatusBadRequest, ""},
		{"Transfer-Encoding:\tchunked", http.StatusBadRequest, "transfer_encoding_not_allowed"},
		{"transfer-encoding: CHUNKED", http.StatusBadRequest, "transfer_encoding_not_allowed"},
	} {
		req := hxRawRequest("POST /check HTTP/1.1", append(slices.Clone(auth), "Content-Length: "+strconv.Itoa(len(inner)), c.te), inner)
		resps, closed := e.raw(t, e.fwdAddr, req, 2*time.Second)
		if len(resps) != 1 || resps[0].status != c.status || resps[0].code() != c.code || !closed {
			t.Errorf("%q: got %d answers %v, closed %v; want one %d %q and the connection closed", c.te, len(resps), hxStatuses(resps), closed, c.status, c.code)
		}
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_SlowlorisHeaders(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	// ReadTimeout is long: only ReadHeaderTimeout can end this connection early.
	addr := e.serve(proxy.CollectHandler(e.deps), proxy.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 4 * time.Second, Write: 4 * time.Second, Idle: time.Second})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\n")
	stop := make(chan struct{})
	go func() { // one more header line every 50ms, never the blank line
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	close(stop)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept a connection whose headers never ended for 5s")
	}
	if elapsed > 2*time.Second {
		t.Errorf("connection closed after %s, want about ReadHeaderTimeout (300ms)", elapsed.Round(time.Millisecond))
	}
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408")) && !bytes.HasPrefix(got, []byte("HTTP/1.1 400")) {
		t.Errorf("got an answer %.40q, want none or a 408", got)
	}
	if n := len(e.requestLines(t)); n != 0 {
		t.Errorf("got %d access-log lines, want 0", n)
	}
	e.record(got)
	e.assertNoCardData(t)
}

func TestHostile_SlowBody(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	addr := e.serve(proxy.CollectHandler(e.deps), proxy.Timeouts{ReadHeader: time.Second, Read: 700 * time.Millisecond, Write: 3 * time.Second, Idle: time.Second})
	body := string(hxJSON(t, hxCard(hxPANVisa, hxCVV)))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		e.keys[hxMerchantA][proxy.RolePublishable], len(body)+200)
	stop := make(chan struct{})
	go func() { // the body a few bytes at a time, and never all of it
		for i := 0; i < len(body); i += 4 {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := io.WriteString(c, body[i:min(i+4, len(body))]); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(6 * time.Second))
	got, err := io.ReadAll(c)
	close(stop)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept reading a slow body for 6s")
	}
	if elapsed > 2500*time.Millisecond {
		t.Errorf("request ended after %s, want about ReadTimeout (700ms)", elapsed.Round(time.Millisecond))
	}
	e.record(got)
	if len(got) > 0 {
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 400")) || !bytes.Contains(got, []byte(`"body_unreadable"`)) {
			t.Errorf("got an answer %.60q, want none or 400 body_unreadable", got)
		}
	}
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	if n := e.transit.calls.Load(); n != 0 {
		t.Errorf("transit calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_HeaderTooLarge(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	big := strings.Repeat("A", 40<<10)
	r := e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), hxHeaders{"X-Big": big})
	hxWantStatus(t, r, http.StatusRequestHeaderFieldsTooLarge)
	r = e.fwd(t, hxMerchantA, http.MethodPost, "/check", map[string]any{"order_id": "x"}, hxHeaders{"Cookie": big})
	hxWantStatus(t, r, http.StatusRequestHeaderFieldsTooLarge)
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

// ===========================================================================
// Tokens: enumeration, other merchants, replay

func TestHostile_TokenEnumerationGivesUniform404s(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	bodies := map[string]int{}
	headerSets := map[string]int{}
	note := func(r *hxResp) {
		t.Helper()
		hxWantError(t, r, http.StatusNotFound, "token_not_found")
		bodies[string(r.body)]++
		var names []string
		for k := range r.header {
			names = append(names, k)
		}
		slices.Sort(names)
		headerSets[strings.Join(names, ",")]++
	}
	for range 40 {
		id := hxRandomTokenID(t, tok)
		note(e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil))
	}
	for range 10 {
		id := hxRandomTokenID(t, tok)
		note(e.fwd(t, hxMerchantA, http.MethodDelete, "/v1/tokens/"+id, nil, nil))
		note(e.do(t, http.MethodDelete, e.admin+"/v1/tokens/"+id, nil, hxHeaders{"Authorization": "Bearer " + e.keys[hxMerchantA][proxy.RoleAdmin]}))
	}
	malformed := []string{
		"tok_", "tok_x", tok[:len(tok)-1], tok + "A", strings.ToUpper(tok), "TOK_" + tok[4:], "tok_" + strings.Repeat("a", 300),
		tok[:10] + "-" + tok[11:], url.PathEscape("tok_' OR '1'='1"), url.PathEscape("tok_<script>"), url.PathEscape("tok_äöü"),
		"%00", "*", "tok_*", hxPANVisa, url.PathEscape(tok + "\x00"), "..;", "~",
	}
	for _, id := range malformed {
		note(e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil))
	}
	if len(bodies) != 1 {
		t.Errorf("got %d different 404 bodies for unknown and malformed ids, want 1: %v", len(bodies), bodies)
	}
	if len(headerSets) != 1 {
		t.Errorf("got %d different header sets, want 1: %v", len(headerSets), headerSets)
	}
	// And the real token still answers.
	hxWantStatus(t, e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil), http.StatusOK)
	e.assertNoCardData(t)
}

func TestHostile_CrossMerchantTokenMetadataAndDelete(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	unknown := e.fwd(t, hxMerchantB, http.MethodGet, "/v1/tokens/"+hxRandomTokenID(t, tok), nil, nil)
	hxWantError(t, unknown, http.StatusNotFound, "token_not_found")
	for _, r := range []*hxResp{
		e.fwd(t, hxMerchantB, http.MethodGet, "/v1/tokens/"+tok, nil, nil),
		e.fwd(t, hxMerchantB, http.MethodDelete, "/v1/tokens/"+tok, nil, nil),
		e.do(t, http.MethodDelete, e.admin+"/v1/tokens/"+tok, nil, hxHeaders{"Authorization": "Bearer " + e.keys[hxMerchantB][proxy.RoleAdmin]}),
	} {
		hxWantError(t, r, http.StatusNotFound, "token_not_found")
		if !bytes.Equal(r.body, unknown.body) {
			t.Errorf("another merchant's token: got body %q, want the unknown-token body %q", r.body, unknown.body)
		}
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("merchant B's requests touched merchant A's token")
	}
	e.assertNoCardData(t)
}

func TestHostile_CrossMerchantTokenInjection(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	unknown := e.fwd(t, hxMerchantB, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(hxRandomTokenID(t, tok)), nil)
	hxWantError(t, unknown, http.StatusNotFound, "token_not_found")
	for _, path := range []string{"/initPaymentHost2Host", "/authorize"} {
		r := e.fwd(t, hxMerchantB, http.MethodPost, path, e.cardPayment(tok), nil)
		hxWantError(t, r, http.StatusNotFound, "token_not_found")
		if !bytes.Equal(r.body, unknown.body) {
			t.Errorf("%s with another merchant's token: got %q, want the unknown-token body %q", path, r.body, unknown.body)
		}
	}
	wd := map[string]any{"account": "EUR-sandbox-payout", "order_id": e.order(), "amount": 100, "payment_method": "card", "customer_card_number": tok}
	hxWantError(t, e.fwd(t, hxMerchantB, http.MethodPost, "/withdrawal/init", wd, nil), http.StatusNotFound, "token_not_found")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("merchant B's request consumed merchant A's CVV")
	}
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusOK)
	e.assertNoCardData(t)
}

func TestHostile_CVVTokenReplay(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusOK)
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusConflict, "cvv_unavailable")
	hxWantError(t, e.pay(t, "/authorize", e.cardPayment(tok)), http.StatusConflict, "cvv_unavailable")
	if n := e.upstreamCalls(""); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_ConcurrentCVVDoubleSpend(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	const n = 12
	var wg sync.WaitGroup
	statuses := make([]string, n)
	for i := range n {
		body := hxJSON(t, e.cardPayment(tok))
		wg.Go(func() {
			r, err := e.fwdSend(hxMerchantA, http.MethodPost, "/initPaymentHost2Host", body, nil)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			statuses[i] = strconv.Itoa(r.status) + " " + r.code()
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count["200 "] != 1 || count["409 cvv_unavailable"] != n-1 {
		t.Errorf("got %v, want one 200 and %d × 409 cvv_unavailable", count, n-1)
	}
	if c := e.upstreamCalls(""); c != 1 {
		t.Errorf("upstream calls: got %d, want 1", c)
	}
	e.assertNoCardData(t)
}

func TestHostile_WalletTokenReplay(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenizeWallet(t, hxMerchantA, "applePayDPan", hxDPANApple)
	body := func() map[string]any {
		return paymentBody(e.order(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": tok})
	}
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", body()), http.StatusOK)
	r := e.pay(t, "/initPaymentHost2Host", body())
	if r.code() == "token_not_found" {
		hxWantError(t, r, http.StatusNotFound, "token_not_found")
	} else {
		hxWantError(t, r, http.StatusConflict, "wallet_token_consumed")
	}
	if n := e.upstreamCalls(""); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_TokenInFieldThePolicyDoesNotName(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, extra := range []string{`"purpose_ref":"` + tok + `"`, `"meta":{"card":"` + tok + `"}`, `"items":["` + tok + `"]`, `"note":"pay with ` + tok + ` now"`} {
		hxWantError(t, e.pay(t, "/initPaymentHost2Host", hxWithRaw(t, e.cardPayment(tok), extra)), http.StatusBadRequest, "token_not_allowed")
	}
	hxWantError(t, e.pay(t, "/refund", map[string]any{"order_id": e.order(), "amount": 100, "reason": tok}), http.StatusBadRequest, "token_not_allowed")
	hxWantError(t, e.pay(t, "/check?t="+tok, map[string]any{"order_id": e.order()}), http.StatusBadRequest, "token_not_allowed")
	// withdrawal/init takes no CVV: the CVV field there is not injectable.
	wd := map[string]any{"account": "EUR-sandbox-payout", "order_id": e.order(), "amount": 100, "payment_method": "card", "customer_card_number": tok, "card_cvv": tok}
	hxWantError(t, e.pay(t, "/withdrawal/init", wd), http.StatusBadRequest, "token_not_allowed")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_TwoTokensInOneRequest(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	tok2 := e.tokenize(t, hxMerchantA, hxPANMC, hxCVV)
	body := paymentBody(e.order(), map[string]any{"card_number": tok, "card_cvv": tok2})
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "token_mismatch")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) || !e.hasCVV(t, hxMerchantA, tok2) {
		t.Error("a CVV was consumed by a refused request")
	}
	e.assertNoCardData(t)
}

func TestHostile_PaymentMethodDoesNotMatchToken(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	wallet := e.tokenizeWallet(t, hxMerchantA, "applePayDPan", hxDPANApple)
	body := paymentBody(e.order(), map[string]any{"payment_method": "applePayDPan", "card_number": tok, "card_cvv": tok})
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "payment_method_mismatch")
	body = paymentBody(e.order(), map[string]any{"payment_method": "googlePayDPan", "apple_pay_dpan": wallet})
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusBadRequest, "payment_method_mismatch")
	// A wallet token on a card-only route.
	hxWantError(t, e.pay(t, "/authorize", paymentBody(e.order(), map[string]any{"card_number": wallet})), http.StatusBadRequest, "token_kind_not_allowed")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed by a refused request")
	}
	// The wallet token was not consumed either.
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", paymentBody(e.order(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": wallet})), http.StatusOK)
	e.assertNoCardData(t)
}

// ===========================================================================
// Keys and authentication

func TestHostile_PublishableKeyOnForward(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	pk := hxHeaders{"Proxy-Authorization": "Bearer " + e.keys[hxMerchantA][proxy.RolePublishable]}
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(tok), pk), http.StatusUnauthorized, "unauthorized")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+tok, nil, pk), http.StatusUnauthorized, "unauthorized")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodDelete, "/v1/tokens/"+tok, nil, pk), http.StatusUnauthorized, "unauthorized")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed")
	}
	e.assertNoCardData(t)
}

func TestHostile_SecretKeyOnCollect(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	sk := hxHeaders{"Authorization": "Bearer " + e.keys[hxMerchantA][proxy.RoleSecret]}
	hxWantError(t, e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), sk), http.StatusUnauthorized, "unauthorized")
	hxWantError(t, e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), hxHeaders{"Authorization": "Bearer " + e.keys[hxMerchantA][proxy.RoleAdmin]}),
		http.StatusUnauthorized, "unauthorized")
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

func TestHostile_AdminKeyOnForward(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	ak := hxHeaders{"Proxy-Authorization": "Bearer " + e.keys[hxMerchantA][proxy.RoleAdmin]}
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(tok), ak), http.StatusUnauthorized, "unauthorized")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/check", map[string]any{"order_id": "x"}, ak), http.StatusUnauthorized, "unauthorized")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_CollectAndForwardKeysOnAdmin(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, role := range []proxy.Role{proxy.RolePublishable, proxy.RoleSecret} {
		hdr := hxHeaders{"Authorization": "Bearer " + e.keys[hxMerchantA][role]}
		hxWantError(t, e.do(t, http.MethodDelete, e.admin+"/v1/tokens/"+tok, nil, hdr), http.StatusUnauthorized, "unauthorized")
		hxWantError(t, e.do(t, http.MethodGet, e.admin+"/v1/policy", nil, hdr), http.StatusUnauthorized, "unauthorized")
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the token was deleted")
	}
	e.assertNoCardData(t)
}

func TestHostile_MissingOrGarbageAuth(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	sk := e.keys[hxMerchantA][proxy.RoleSecret]
	values := []string{
		"", "Bearer", "Bearer ", "Bearer sk_", "Bearer sk_" + strings.Repeat("A", 32), "Bearer " + sk + "x", "Bearer " + sk[:len(sk)-1],
		"Bearer " + strings.ToUpper(sk), "Basic " + base64.StdEncoding.EncodeToString([]byte(sk+":")), "Token " + sk, sk,
		"Bearer " + strings.Repeat("k", 8<<10), "Bearer\t" + sk, "Bearer " + sk + "\u200b", "Bearer " + sk + ",Bearer " + sk,
	}
	var bodies = map[string]int{}
	for _, v := range values {
		r := e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(tok), hxHeaders{"Proxy-Authorization": v})
		hxWantError(t, r, http.StatusUnauthorized, "unauthorized")
		bodies[string(r.body)]++
	}
	// The secret key in the merchant's Authorization header is not chdproxy's credential.
	r := e.fwd(t, hxMerchantA, http.MethodPost, "/check", map[string]any{"order_id": "x"}, hxHeaders{"Proxy-Authorization": "", "Authorization": "Bearer " + sk})
	hxWantError(t, r, http.StatusUnauthorized, "unauthorized")
	bodies[string(r.body)]++
	// A publishable key in Proxy-Authorization is not the collect credential either.
	r = e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), hxHeaders{"Authorization": "", "Proxy-Authorization": "Bearer " + e.keys[hxMerchantA][proxy.RolePublishable]})
	hxWantError(t, r, http.StatusUnauthorized, "unauthorized")
	bodies[string(r.body)]++
	r = e.do(t, http.MethodGet, e.admin+"/v1/policy", nil, hxHeaders{"Authorization": "Bearer ak_" + strings.Repeat("0", 32)})
	hxWantError(t, r, http.StatusUnauthorized, "unauthorized")
	bodies[string(r.body)]++
	if len(bodies) != 1 {
		t.Errorf("got %d different 401 bodies, want 1", len(bodies))
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_KeysAreStoredOnlyAsDigests(t *testing.T) {
	ks := &proxy.Keys{}
	sec, err := ks.Generate(hxMerchantA, proxy.RoleSecret)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ks.Authenticate(sec, proxy.RoleSecret)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if key.ID != hxKeyID(sec) || strings.Contains(key.ID, sec[3:]) {
		t.Errorf("key id: got %q, want %q (role prefix and digest prefix, nothing of the secret)", key.ID, hxKeyID(sec))
	}
	secretForms := []string{sec, sec[3:], hex.EncodeToString([]byte(sec)), base64.StdEncoding.EncodeToString([]byte(sec))}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for _, v := range []any{key, &key, ks, *ks, []proxy.Key{key}, struct{ K proxy.Key }{key}} {
			out := fmt.Sprintf(verb, v)
			for _, s := range secretForms {
				if strings.Contains(out, s) {
					t.Errorf("fmt %s of %T shows the secret", verb, v)
				}
			}
		}
	}
	if b, _ := json.Marshal(key); bytes.Contains(b, []byte(sec[3:])) {
		t.Error("the JSON of a Key shows the secret")
	}
	// A configuration holds digests: a raw secret is refused, and the error
	// does not repeat it.
	other := &proxy.Keys{}
	if err := other.Add(hxMerchantA, proxy.RoleSecret, sec); err == nil || strings.Contains(err.Error(), sec[3:]) {
		t.Errorf("Add with a raw secret: got %v, want an error that does not show it", err)
	}
	if err := other.Add(hxMerchantA, proxy.RoleSecret, proxy.KeyDigest(sec)); err != nil {
		t.Fatalf("Add with a digest: %v", err)
	}
	if _, err := other.Authenticate(sec, proxy.RoleSecret); err != nil {
		t.Errorf("a key added by digest does not authenticate: %v", err)
	}
	if _, err := other.Authenticate(proxy.KeyDigest(sec), proxy.RoleSecret); err == nil {
		t.Error("the digest itself authenticates as the key")
	}
	if _, err := other.Authenticate(sec, proxy.RolePublishable); err == nil {
		t.Error("a secret key authenticates for the publishable role")
	}
	// Two keys per role for rotation, not three.
	if _, err := other.Generate(hxMerchantA, proxy.RoleSecret); err != nil {
		t.Errorf("second key for rotation: %v", err)
	}
	if _, err := other.Generate(hxMerchantA, proxy.RoleSecret); err == nil {
		t.Error("a third secret key was accepted")
	}
	// Through the listeners: logs and audit name the key id, never the key.
	e := newHostileEnv(t, hxOptions{})
	e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+hxRandomTokenID(t, "tok_"+strings.Repeat("a", 22)), nil, nil)
	e.waitAudit(t, func(r []map[string]any) bool { return len(r) >= 2 })
	var all []string
	for _, m := range e.keys {
		for _, s := range m {
			all = append(all, s[3:])
		}
	}
	if !bytes.Contains(e.logs.Bytes(), []byte(hxKeyID(e.keys[hxMerchantA][proxy.RoleSecret]))) {
		t.Error("the access log does not name the key id")
	}
	e.assertNoCardData(t, all...)
}

// ===========================================================================
// Idempotency

func TestHostile_IdempotentReplayMakesNoSecondUpstreamCall(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	body := hxJSON(t, e.cardPayment(tok))
	idem := hxHeaders{"Idempotency-Key": "pay-once-1"}
	first := e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
	hxWantStatus(t, first, http.StatusOK)
	second := e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", body, idem)
	hxWantStatus(t, second, http.StatusOK)
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("replayed answer differs:\n got %s\nwant %s", second.body, first.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Error("the replay is not marked Idempotent-Replayed")
	}
	if n := e.upstreamCalls("/initPaymentHost2Host"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_IdempotencyKeyReusedWithAnotherBody(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	idem := hxHeaders{"Idempotency-Key": "pay-once-2"}
	hxWantStatus(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(tok), idem), http.StatusOK)
	other := e.cardPayment(tok)
	other["amount"] = 999999
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", other, idem), http.StatusConflict, "idempotency_key_reused")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPost, "/authorize", e.cardPayment(tok), idem), http.StatusConflict, "idempotency_key_reused")
	if n := e.upstreamCalls(""); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_IdempotencyConcurrentDuplicates(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	body := hxJSON(t, e.cardPayment(tok))
	const n = 20
	var wg sync.WaitGroup
	resps := make([]*hxResp, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := e.fwdSend(hxMerchantA, http.MethodPost, "/initPaymentHost2Host", body, hxHeaders{"Idempotency-Key": "pay-once-concurrent"})
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resps[i] = r
		})
	}
	close(start)
	wg.Wait()
	for i, r := range resps {
		if r == nil {
			continue
		}
		if r.status != http.StatusOK || !bytes.Equal(r.body, resps[0].body) {
			t.Errorf("request %d: got %d %q, want 200 and the first answer", i, r.status, r.code())
		}
	}
	if c := e.upstreamCalls("/initPaymentHost2Host"); c != 1 {
		t.Errorf("upstream calls: got %d, want exactly 1", c)
	}
	e.assertNoCardData(t)
}

func TestHostile_IdempotencyKeyOfAnotherMerchant(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	body := hxJSON(t, e.cardPayment(tok))
	idem := hxHeaders{"Idempotency-Key": "shared-key"}
	hxWantStatus(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", body, idem), http.StatusOK)
	// Merchant B replays A's request with A's key: it must not get A's stored answer.
	r := e.fwd(t, hxMerchantB, http.MethodPost, "/initPaymentHost2Host", body, idem)
	hxWantError(t, r, http.StatusNotFound, "token_not_found")
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Error("merchant B got merchant A's stored answer")
	}
	if n := e.upstreamCalls(""); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_IdempotentTokenizeReplay(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	idem := hxHeaders{"Idempotency-Key": "tokenize-once"}
	first := e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), idem)
	hxWantStatus(t, first, http.StatusCreated)
	second := e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), idem)
	hxWantStatus(t, second, http.StatusCreated)
	if first.json(t)["token"] != second.json(t)["token"] {
		t.Error("a replayed tokenize made a second token")
	}
	hxWantError(t, e.col(t, hxMerchantA, hxCard(hxPANMC, hxCVV), idem), http.StatusConflict, "idempotency_key_reused")
	if k := e.recKeys(); len(k) != 2 { // one record and its CVV
		t.Errorf("got %d token keys in Redis, want 2", len(k))
	}
	e.assertNoCardData(t) // the stored answer (base64 in Redis) is read too
}

// ===========================================================================
// SSRF, Host header, absolute-form targets, CONNECT

func TestHostile_SSRFViaCallbackURL(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	evil := hxStartListener(t)
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	cb := "http://" + evil.addr() + "/callback"
	body := e.cardPayment(tok)
	for _, f := range []string{"callback_url", "success_url", "fail_url", "status_url"} {
		body[f] = cb
	}
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", body), http.StatusOK)
	hxWantStatus(t, e.pay(t, "/refund", map[string]any{"order_id": body["order_id"], "amount": 1000, "reason": "r", "callback_url": cb}), http.StatusOK)
	got := e.sandbox.Received("/initPaymentHost2Host")
	if len(got) != 1 || !bytes.Contains(got[0].Body, []byte(`"callback_url":"`+cb+`"`)) {
		t.Error("callback_url did not reach the upstream untouched")
	}
	evil.assertNoConnection(t)
	e.assertNoCardData(t)
}

func TestHostile_SSRFViaHostHeader(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	evil := hxStartListener(t)
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	hdr := hxHeaders{"Host": evil.addr(), "X-Forwarded-Host": evil.addr(), "X-Original-URL": "http://" + evil.addr() + "/", "Forwarded": "host=" + evil.addr()}
	hxWantStatus(t, e.fwd(t, hxMerchantA, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(tok), hdr), http.StatusOK)
	if n := e.upstreamCalls("/initPaymentHost2Host"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	evil.assertNoConnection(t)
	e.assertNoCardData(t)
}

func TestHostile_SSRFViaAbsoluteFormTarget(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	evil := hxStartListener(t)
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	body := string(hxJSON(t, e.cardPayment(tok)))
	req := hxRawRequest("POST http://"+evil.addr()+"/initPaymentHost2Host HTTP/1.1", []string{
		"Host: " + evil.addr(), "Proxy-Authorization: Bearer " + e.keys[hxMerchantA][proxy.RoleSecret], "Authorization: " + hxBasic,
		"Content-Type: application/json", "Content-Length: " + strconv.Itoa(len(body)), "Connection: close",
	}, body)
	resps, _ := e.raw(t, e.fwdAddr, req, 5*time.Second)
	if len(resps) != 1 || resps[0].status != http.StatusOK {
		t.Fatalf("got %v, want one 200 from the policy's upstream", hxStatuses(resps))
	}
	if n := e.upstreamCalls("/initPaymentHost2Host"); n != 1 {
		t.Errorf("upstream calls: got %d, want 1", n)
	}
	evil.assertNoConnection(t)
	e.assertNoCardData(t)
}

func TestHostile_CONNECTRefused(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	evil := hxStartListener(t)
	auth := []string{"Proxy-Authorization: Bearer " + e.keys[hxMerchantA][proxy.RoleSecret], "Connection: close"}
	for _, c := range []struct {
		target string
		status int
		code   string
	}{
		{evil.addr(), http.StatusNotFound, "not_found"},
		{"/initPaymentHost2Host", http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		req := hxRawRequest("CONNECT "+c.target+" HTTP/1.1", append([]string{"Host: " + evil.addr()}, auth...), "")
		resps, _ := e.raw(t, e.fwdAddr, req, 3*time.Second)
		if len(resps) != 1 || resps[0].status != c.status || resps[0].code() != c.code {
			t.Errorf("CONNECT %s: got %v, want %d %q", c.target, hxStatuses(resps), c.status, c.code)
		}
	}
	for _, srv := range []string{e.colAddr, e.admAddr} {
		resps, _ := e.raw(t, srv, hxRawRequest("CONNECT "+evil.addr()+" HTTP/1.1", []string{"Host: " + evil.addr(), "Connection: close"}, ""), 3*time.Second)
		if len(resps) != 1 || resps[0].status != http.StatusNotFound {
			t.Errorf("CONNECT on another listener: got %v, want 404", hxStatuses(resps))
		}
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	evil.assertNoConnection(t)
	e.assertNoCardData(t)
}

func TestHostile_NonCanonicalPaths(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/initPaymentHost2Host/", http.StatusNotFound},
		{"/INITPAYMENTHOST2HOST", http.StatusNotFound},
		{"/initPaymentHost2Host;x=1", http.StatusNotFound},
		{"/initPaymentHost2Host%2F", http.StatusNotFound},
		{"/check/../initPaymentHost2Host", http.StatusNotFound},
		{"//initPaymentHost2Host", http.StatusNotFound},
		{"/./initPaymentHost2Host", http.StatusNotFound},
	} {
		r := e.pay(t, c.path, e.cardPayment(tok))
		if r.status != c.status {
			t.Errorf("%s: got %d %q, want %d", c.path, r.status, r.code(), c.status)
		}
		if r.status == http.StatusNotFound && r.code() != "not_found" {
			t.Errorf("%s: got code %q, want %q", c.path, r.code(), "not_found")
		}
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was consumed")
	}
	e.assertNoCardData(t)
}

func TestHostile_UnknownRoutesAndMethods(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	for _, p := range []string{"/.env", "/debug/pprof/", "/metrics", "/v1/tokens", "/admin", "/aggregation-service/public/transaction/excel"} {
		hxWantError(t, e.fwd(t, hxMerchantA, http.MethodGet, p, nil, nil), http.StatusNotFound, "not_found")
	}
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPatch, "/initPaymentHost2Host", map[string]any{}, nil), http.StatusMethodNotAllowed, "method_not_allowed")
	hxWantError(t, e.fwd(t, hxMerchantA, http.MethodPut, "/check", map[string]any{}, nil), http.StatusMethodNotAllowed, "method_not_allowed")
	hxWantError(t, e.do(t, http.MethodGet, e.collect+"/v1/tokens", nil, nil), http.StatusMethodNotAllowed, "method_not_allowed")
	recs := e.waitAudit(t, func(r []map[string]any) bool { return len(r) >= 9 })
	probes := 0
	for _, r := range recs {
		if r["event"] == "unknown_route" && r["outcome"] == "denied" {
			probes++
		}
	}
	if probes != 9 {
		t.Errorf("got %d unknown_route audit records, want 9: probing is an access attempt", probes)
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t)
}

// ===========================================================================
// CORS

func TestHostile_CORSFromUnknownOrigin(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	r := e.do(t, http.MethodOptions, e.collect+"/v1/tokens", nil, hxHeaders{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	hxWantError(t, r, http.StatusForbidden, "origin_not_allowed")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("a preflight from an unknown origin was allowed")
	}
	r = e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), hxHeaders{"Origin": "null"})
	hxWantError(t, r, http.StatusForbidden, "origin_not_allowed")
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

func TestHostile_CORSOriginOfAnotherMerchant(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	// Merchant B's page using merchant A's publishable key.
	r := e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), hxHeaders{"Origin": hxOriginB})
	hxWantError(t, r, http.StatusForbidden, "origin_not_allowed")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the answer allows merchant B's origin")
	}
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t)
}

// ===========================================================================
// Limits

func TestHostile_RateLimit(t *testing.T) {
	e := newHostileEnv(t, hxOptions{limits: proxy.Limits{PerKeyRate: 0.2, PerKeyBurst: 2, Upstream: 16, Vault: 16, SlotWait: time.Second}})
	id := hxRandomTokenID(t, "tok_"+strings.Repeat("a", 22))
	for range 2 {
		hxWantError(t, e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil), http.StatusNotFound, "token_not_found")
	}
	r := e.fwd(t, hxMerchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil)
	hxWantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After: got %q, want whole seconds ≥ 1", r.header.Get("Retry-After"))
	}
	// Limits are per key: merchant B is not affected.
	hxWantError(t, e.fwd(t, hxMerchantB, http.MethodGet, "/v1/tokens/"+id, nil, nil), http.StatusNotFound, "token_not_found")
	// A rate-limited tokenize stores nothing.
	for range 2 {
		hxWantStatus(t, e.col(t, hxMerchantB, hxCard(hxPANVisa, hxCVV), nil), http.StatusCreated)
	}
	hxWantError(t, e.col(t, hxMerchantB, hxCard(hxPANVisa, hxCVV), nil), http.StatusTooManyRequests, "rate_limited")
	if k := e.recKeys(); len(k) != 4 {
		t.Errorf("got %d token keys in Redis, want 4 (two tokens with CVV)", len(k))
	}
	e.assertNoCardData(t)
}

// ===========================================================================
// Dependencies failing: Vault, Redis, the upstream, the audit sink

func TestHostile_VaultUnavailable(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	before := e.recKeys()
	e.transit.setFail(vault.ErrUnavailable)
	r := e.col(t, hxMerchantA, hxCard(hxPANMC, hxCVV), nil)
	hxWantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	hxWantFast(t, r, time.Second)
	if r.header.Get("Retry-After") == "" {
		t.Error("a 503 without Retry-After")
	}
	r = e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	hxWantFast(t, r, time.Second)
	hxWantError(t, e.do(t, http.MethodGet, e.admin+"/readyz", nil, nil), http.StatusServiceUnavailable, "vault_unavailable")
	if got := e.recKeys(); !slices.Equal(got, before) {
		t.Errorf("Redis keys changed while Vault was down: got %v, want %v", got, before)
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.transit.setFail(nil)
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Fatal("the CVV was lost to the outage")
	}
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusOK)
	e.assertNoCardData(t)
}

func TestHostile_VaultSealed(t *testing.T) {
	vs := testenv.Vault(t)
	tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: vs.Addr, Token: vs.Token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.EnsureKeys(context.Background()); err != nil {
		t.Fatalf("EnsureKeys: %v", err)
	}
	e := newHostileEnv(t, hxOptions{transit: tr})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	before := e.recKeys()
	if err := vs.Seal(); err != nil {
		t.Fatalf("seal: %v", err)
	}
	r := e.col(t, hxMerchantA, hxCard(hxPANMC, hxCVV), nil)
	hxWantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	hxWantFast(t, r, 2*time.Second)
	r = e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	hxWantFast(t, r, 2*time.Second)
	hxWantError(t, e.do(t, http.MethodGet, e.admin+"/readyz", nil, nil), http.StatusServiceUnavailable, "vault_unavailable")
	if got := e.recKeys(); !slices.Equal(got, before) {
		t.Errorf("Redis keys changed while Vault was sealed: got %v, want %v", got, before)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Error("the CVV was lost to the outage")
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.assertNoCardData(t, vs.Token)
}

func TestHostile_VaultSlowOnTokenize(t *testing.T) {
	// The production transit client against a Vault that accepts connections
	// and never answers.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: hang.URL, Token: "hostile-test-token", Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := newHostileEnv(t, hxOptions{transit: tr})
	r := e.col(t, hxMerchantA, hxCard(hxPANVisa, hxCVV), nil)
	hxWantError(t, r, http.StatusGatewayTimeout, "vault_timeout")
	hxWantFast(t, r, 2*time.Second)
	if k := e.recKeys(); len(k) != 0 {
		t.Errorf("got %d token keys in Redis, want 0", len(k))
	}
	e.assertNoCardData(t, "hostile-test-token")
}

func TestHostile_VaultSlowOnDetokenize(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	e.transit.setHang(400 * time.Millisecond)
	r := e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantError(t, r, http.StatusGatewayTimeout, "vault_timeout")
	hxWantFast(t, r, 2*time.Second)
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	e.transit.setHang(0)
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Fatal("the CVV was lost to the slow Vault")
	}
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusOK)
	e.assertNoCardData(t)
}

func TestHostile_RedisGone(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	before := e.recKeys()
	e.closeRedis()
	r := e.col(t, hxMerchantA, hxCard(hxPANMC, hxCVV), nil)
	hxWantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	hxWantFast(t, r, 2*time.Second)
	r = e.col(t, hxMerchantA, hxCard(hxPANMC, hxCVV), hxHeaders{"Idempotency-Key": "during-outage"})
	hxWantError(t, r, http.StatusServiceUnavailable, "idempotency_unavailable")
	hxWantFast(t, r, 2*time.Second)
	r = e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantError(t, r, http.StatusServiceUnavailable, "vault_unavailable")
	hxWantFast(t, r, 2*time.Second)
	hxWantError(t, e.do(t, http.MethodGet, e.admin+"/readyz", nil, nil), http.StatusServiceUnavailable, "vault_unavailable")
	e.restartRedis(t)
	if got := e.recKeys(); !slices.Equal(got, before) {
		t.Errorf("after the outage Redis holds %v, want only %v: a failed request left a record", got, before)
	}
	for _, k := range e.mr.Keys() {
		if strings.Contains(k, "idem") {
			t.Errorf("an idempotency record was left behind: %s", k)
		}
	}
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0", n)
	}
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Fatal("the CVV was lost to the outage")
	}
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusOK)
	e.assertNoCardData(t)
}

// hxRecordingUpstream counts the requests that arrived by path and answers
// with answer (or hangs until the client gives up when answer is nil).
type hxRecordingUpstream struct {
	mu      sync.Mutex
	got     map[string]int
	bodies  [][]byte
	release chan struct{}
	answer  func(w http.ResponseWriter, r *http.Request)
}

func (u *hxRecordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	if u.got == nil {
		u.got = map[string]int{}
	}
	u.got[r.URL.Path]++
	u.bodies = append(u.bodies, b)
	u.mu.Unlock()
	if u.answer != nil {
		u.answer(w, r)
		return
	}
	select {
	case <-u.release:
	case <-r.Context().Done():
	}
}

func (u *hxRecordingUpstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if path == "" {
		n := 0
		for _, c := range u.got {
			n += c
		}
		return n
	}
	return u.got[path]
}

func TestHostile_UpstreamTimesOutAfterTheRequestWasSent(t *testing.T) {
	up := &hxRecordingUpstream{release: make(chan struct{})}
	e := newHostileEnv(t, hxOptions{upstream: up, responseTimeout: 400 * time.Millisecond})
	t.Cleanup(func() { close(up.release) })
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	r := e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantError(t, r, http.StatusGatewayTimeout, "upstream_timeout")
	hxWantFast(t, r, 3*time.Second)
	time.Sleep(500 * time.Millisecond) // room for a retry, if there were one
	if n := up.count("/initPaymentHost2Host"); n != 1 {
		t.Errorf("the upstream saw %d requests, want exactly 1 (no retry after sending)", n)
	}
	// The CVV went out with that request; it cannot be sent a second time.
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusConflict, "cvv_unavailable")
	if n := up.count(""); n != 1 {
		t.Errorf("the upstream saw %d requests, want 1", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_UpstreamDropsConnectionAfterTheRequestWasSent(t *testing.T) {
	var calls atomic.Int64
	up := &hxRecordingUpstream{answer: func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 { // the first call keeps the connection for the payment
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"status":2}`)
			return
		}
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}}
	e := newHostileEnv(t, hxOptions{upstream: up})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	hxWantStatus(t, e.pay(t, "/check", map[string]any{"order_id": e.order()}), http.StatusOK)
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusBadGateway, "upstream_result_unknown")
	time.Sleep(300 * time.Millisecond)
	if n := up.count("/initPaymentHost2Host"); n != 1 {
		t.Errorf("the upstream saw %d payment requests, want exactly 1 (a reused connection must not be retried)", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_UpstreamRedirectNotFollowed(t *testing.T) {
	evil := &hxRecordingUpstream{answer: func(w http.ResponseWriter, r *http.Request) {}}
	evilSrv := hxStartTLS(t, evil, nil)
	up := &hxRecordingUpstream{answer: func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evilSrv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}}
	e := newHostileEnv(t, hxOptions{upstream: up})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	r := e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantStatus(t, r, http.StatusTemporaryRedirect)
	r = e.pay(t, "/check", map[string]any{"order_id": e.order()})
	hxWantStatus(t, r, http.StatusTemporaryRedirect)
	if n := up.count(""); n != 2 {
		t.Errorf("the upstream saw %d requests, want 2", n)
	}
	if n := evil.count(""); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_UpstreamAnswerWithCardDataIsRedacted(t *testing.T) {
	forms := hxPANForms(hxPANVisa)
	up := &hxRecordingUpstream{answer: func(w http.ResponseWriter, r *http.Request) {
		ct := map[string]string{"json": "application/json", "html": "text/html", "bin": "application/octet-stream", "none": "", "weird": "application/x-custom"}[r.URL.Query().Get("ct")]
		if r.URL.Query().Get("ct") == "" {
			ct = "application/json"
		}
		w.Header()["Content-Type"] = []string{ct}
		w.Header().Set("X-Debug-Card", hxPANVisa)
		w.Header().Set("Location", "https://example.com/receipt?pan="+hxPANMC)
		fmt.Fprintf(w, `{"card":{"number":"%s","grouped":"%s","num":%s,"esc":"%s","wide":"%s"},"card_cvv":"%s","echo":{"card_number":"%s","cvv":%s}}`,
			hxPANVisa, forms["grouped (spaces)"], hxPANMC, forms["JSON \\u-escaped"], forms["fullwidth digits"], hxCVV, hxPANAmex, hxCVVAmex)
	}}
	e := newHostileEnv(t, hxOptions{upstream: up})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusOK)
	for _, ct := range []string{"json", "html", "bin", "none", "weird"} {
		hxWantStatus(t, e.pay(t, "/check?ct="+ct, map[string]any{"order_id": e.order()}), http.StatusOK)
	}
	e.assertNoCardData(t)
}

func TestHostile_EgressUpstreamNameResolvingToAnInternalAddress(t *testing.T) {
	name := hxHostname()
	if name == "" {
		t.Skip("no host name other than localhost resolves to loopback here")
	}
	up := &hxRecordingUpstream{answer: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }}
	e := newHostileEnv(t, hxOptions{upstream: up, upstreamBase: func(u string) string { return strings.Replace(u, "127.0.0.1", name, 1) }})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	hxWantError(t, e.pay(t, "/check", map[string]any{"order_id": e.order()}), http.StatusBadGateway, "egress_denied")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusBadGateway, "egress_denied")
	if n := up.count(""); n != 0 {
		t.Errorf("the upstream got %d requests through %s, want 0", n, name)
	}
	e.assertNoCardData(t)
}

func TestHostile_EgressOnlyToPolicyHosts(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	evil := hxStartListener(t)
	for _, u := range []string{"https://" + evil.addr() + "/", "http://" + evil.addr() + "/", "https://169.254.169.254/latest/meta-data/"} {
		resp, err := e.client.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s through the upstream client succeeded, want an egress refusal", u)
			continue
		}
		if !strings.Contains(err.Error(), "not allowed by the policy") {
			t.Errorf("GET %s: got %v, want the egress refusal", u, err)
		}
	}
	if tr, ok := e.client.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Error("the upstream client may use a proxy from the environment")
	}
	if e.client.CheckRedirect == nil {
		t.Error("the upstream client follows redirects")
	}
	evil.assertNoConnection(t)
	e.assertNoCardData(t)
}

func TestHostile_EgressUntrustedUpstreamCertificate(t *testing.T) {
	up := &hxRecordingUpstream{answer: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }}
	e := newHostileEnv(t, hxOptions{upstream: up, upstreamTLS: &tls.Config{}}) // httptest's own certificate
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	hxWantError(t, e.pay(t, "/check", map[string]any{"order_id": e.order()}), http.StatusBadGateway, "upstream_unavailable")
	hxWantError(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusBadGateway, "upstream_unavailable")
	if n := up.count(""); n != 0 {
		t.Errorf("the upstream got %d requests over unverified TLS, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_EgressRefusesTLSBelow12(t *testing.T) {
	up := &hxRecordingUpstream{answer: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }}
	cfg := &tls.Config{Certificates: []tls.Certificate{serverCert(t)}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	e := newHostileEnv(t, hxOptions{upstream: up, upstreamTLS: cfg})
	hxWantError(t, e.pay(t, "/check", map[string]any{"order_id": e.order()}), http.StatusBadGateway, "upstream_unavailable")
	if n := up.count(""); n != 0 {
		t.Errorf("the upstream got %d requests over TLS 1.1, want 0", n)
	}
	e.assertNoCardData(t)
}

func TestHostile_AuditFailsClosed(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	e.auditor.fail.Store(true)
	r := e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantError(t, r, http.StatusServiceUnavailable, "audit_unavailable")
	wd := map[string]any{"account": "EUR-sandbox-payout", "order_id": e.order(), "amount": 100, "payment_method": "card", "customer_card_number": tok}
	hxWantError(t, e.pay(t, "/withdrawal/init", wd), http.StatusServiceUnavailable, "audit_unavailable")
	if n := e.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls without an audit record: got %d, want 0", n)
	}
	e.auditor.fail.Store(false)
	if !e.hasCVV(t, hxMerchantA, tok) {
		t.Fatal("the CVV was consumed although the detokenization was refused")
	}
	hxWantStatus(t, e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok)), http.StatusOK)
	if !bytes.Contains(e.logs.Bytes(), []byte("detokenization refused")) {
		t.Error("the refusal is not in the log")
	}
	e.assertNoCardData(t)
}

func TestHostile_AuditTrailOfAFullPaymentFlow(t *testing.T) {
	e := newHostileEnv(t, hxOptions{})
	tok := e.tokenize(t, hxMerchantA, hxPANVisa, hxCVV)
	body := e.cardPayment(tok)
	pay := e.pay(t, "/initPaymentHost2Host", body)
	hxWantStatus(t, pay, http.StatusOK)
	check := e.pay(t, "/check", map[string]any{"order_id": body["order_id"]})
	hxWantStatus(t, check, http.StatusOK)
	denied := e.fwd(t, hxMerchantB, http.MethodPost, "/initPaymentHost2Host", e.cardPayment(tok), nil)
	hxWantError(t, denied, http.StatusNotFound, "token_not_found")
	replay := e.pay(t, "/initPaymentHost2Host", e.cardPayment(tok))
	hxWantError(t, replay, http.StatusConflict, "cvv_unavailable")
	del := e.fwd(t, hxMerchantA, http.MethodDelete, "/v1/tokens/"+tok, nil, nil)
	hxWantStatus(t, del, http.StatusNoContent)

	recs := e.waitAudit(t, func(r []map[string]any) bool { return len(r) >= 8 })
	upHost := hxHostPort(t, e.upstream.URL)
	pk, skA, skB := hxKeyID(e.keys[hxMerchantA][proxy.RolePublishable]), hxKeyID(e.keys[hxMerchantA][proxy.RoleSecret]), hxKeyID(e.keys[hxMerchantB][proxy.RoleSecret])
	for i, r := range recs {
		ts, _ := r["time"].(string)
		if tt, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(tt) > time.Minute {
			t.Errorf("record %d: time %q is not a recent UTC time", i, ts)
		}
		if r["policy_hash"] != e.pol.Hash || r["request_id"] == "" || r["request_id"] == nil || r["source_ip"] != "127.0.0.1" || r["listener"] == nil {
			t.Errorf("record %d lacks policy hash, request id, source ip or listener: %v", i, r)
		}
	}
	want := []struct {
		name  string
		match map[string]any
	}{
		{"tokenize", map[string]any{"event": "tokenize", "outcome": "success", "status": 201.0, "listener": "collect", "route": "tokenize", "merchant": hxMerchantA, "key_id": pk, "token": tok}},
		{"detokenize attempt", map[string]any{"event": "detokenize", "outcome": "attempt", "listener": "forward", "route": "initPaymentHost2Host", "merchant": hxMerchantA, "key_id": skA, "token": tok, "upstream_host": upHost, "request_id": pay.header.Get("X-Request-Id")}},
		{"inject success", map[string]any{"event": "inject", "outcome": "success", "status": 200.0, "route": "initPaymentHost2Host", "merchant": hxMerchantA, "key_id": skA, "token": tok, "upstream_host": upHost, "upstream_status": 200.0, "request_id": pay.header.Get("X-Request-Id")}},
		{"passthrough check", map[string]any{"event": "passthrough", "outcome": "success", "status": 200.0, "route": "check", "merchant": hxMerchantA, "key_id": skA, "upstream_host": upHost, "upstream_status": 200.0, "request_id": check.header.Get("X-Request-Id")}},
		{"denied other merchant", map[string]any{"event": "inject", "outcome": "denied", "status": 404.0, "code": "token_not_found", "merchant": hxMerchantB, "key_id": skB, "token": tok, "request_id": denied.header.Get("X-Request-Id")}},
		{"denied replay", map[string]any{"event": "inject", "outcome": "denied", "status": 409.0, "code": "cvv_unavailable", "merchant": hxMerchantA, "token": tok, "request_id": replay.header.Get("X-Request-Id")}},
		{"delete", map[string]any{"event": "delete", "outcome": "success", "status": 204.0, "route": "token_delete", "merchant": hxMerchantA, "token": tok}},
	}
	for _, w := range want {
		found := false
		for _, r := range recs {
			ok := true
			for k, v := range w.match {
				if r[k] != v {
					ok = false
					break
				}
			}
			if ok {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no audit record for %s: want fields %v", w.name, w.match)
		}
	}
	for _, r := range recs {
		if r["event"] == "detokenize" && r["merchant"] == hxMerchantB {
			t.Error("a detokenization attempt was recorded for the other merchant's refused request: it never got that far")
		}
	}
	var secrets []string
	for _, m := range e.keys {
		for _, s := range m {
			secrets = append(secrets, s[3:])
		}
	}
	e.assertNoCardData(t, secrets...)
}

// ===========================================================================

// hxAny converts collect fields for hxWithRaw.
func hxAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// hxStatuses lists the statuses of raw answers for failure messages.
func hxStatuses(rs []*hxRawResp) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strconv.Itoa(r.status)+" "+r.code())
	}
	return out
}
