package proxy_test

// Hostile-input suite (see hostile_body_test.go): upstream answers that try to
// carry card data past the response scrubber: compressed, in UTF-16, under
// other CVV names, in XML or headers, with other separators; and clean
// SmartPayments answers, which must pass byte for byte.

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/encoding/unicode"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

// cardAnswer is an upstream answer full of card data.
func cardAnswer() string {
	p := testcards.Success
	return `{"order_id":"o-1","card":{"number":"` + p + `","dotted":"` + p[:4] + "." + p[4:8] + "." + p[8:12] + "." + p[12:] + `"},` +
		`"cvc":"` + testcards.CVV + `","card_security_code":"` + testcards.CVV + `","CSC":` + testcards.CVV + `,` +
		`"xml":"<cvv>` + testcards.CVV + `</cvv>"}`
}

// encodedUpstream answers every call with cardAnswer encoded as the query says.
func encodedUpstream(t *testing.T) *fakeUpstream {
	return &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		body := []byte(cardAnswer())
		ct := "application/json"
		var buf bytes.Buffer
		switch enc := r.URL.Query().Get("enc"); enc {
		case "gzip":
			zw := gzip.NewWriter(&buf)
			zw.Write(body)
			zw.Close()
			w.Header().Set("Content-Encoding", "gzip")
			body = buf.Bytes()
		case "deflate": // zlib-wrapped, as HTTP says
			zw := zlib.NewWriter(&buf)
			zw.Write(body)
			zw.Close()
			w.Header().Set("Content-Encoding", "deflate")
			body = buf.Bytes()
		case "rawdeflate": // what some servers send instead
			zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
			zw.Write(body)
			zw.Close()
			w.Header().Set("Content-Encoding", "deflate")
			body = buf.Bytes()
		case "br":
			w.Header().Set("Content-Encoding", "br")
		case "utf16le", "utf16bom":
			e := unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM)
			ct += "; charset=utf-16le"
			if enc == "utf16bom" {
				e, ct = unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), "application/json; charset=UTF-16"
			}
			body, _ = e.NewEncoder().Bytes(body)
		case "utf16undeclared":
			body, _ = unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM).NewEncoder().Bytes(body)
		case "utf32":
			ct += "; charset=utf-32"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Card-Cvc", testcards.CVV)
		w.Header().Set("X-Card", testcards.Success[:4]+"."+testcards.Success[4:])
		w.Write(body)
	}}
}

// readable is what a merchant's client reads from r: the body decoded as its
// headers say, so a leak cannot hide behind an encoding the proxy relayed.
func readable(t *testing.T, r *response) string {
	t.Helper()
	b := r.body
	switch r.header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("the answer says gzip and is not: %v", err)
		}
		var out bytes.Buffer
		out.ReadFrom(zr)
		b = out.Bytes()
	case "deflate":
		var out bytes.Buffer
		if zr, err := zlib.NewReader(bytes.NewReader(b)); err == nil {
			out.ReadFrom(zr)
		} else {
			out.ReadFrom(flate.NewReader(bytes.NewReader(b)))
		}
		b = out.Bytes()
	}
	if strings.Contains(strings.ToLower(r.header.Get("Content-Type")), "utf-16") || bytes.IndexByte(b, 0) >= 0 {
		b, _ = unicode.UTF16(unicode.BigEndian, unicode.UseBOM).NewDecoder().Bytes(b)
		if bytes.IndexByte(b, 0) >= 0 || !bytes.Contains(b, []byte("order_id")) {
			b, _ = unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewDecoder().Bytes(r.body)
		}
	}
	return string(b)
}

func wantNoCardData(t *testing.T, r *response) {
	t.Helper()
	text := readable(t, r)
	for _, h := range []string{"X-Card-Cvc", "X-Card"} {
		text += "\n" + h + ": " + r.header.Get(h)
	}
	p := testcards.Success
	for _, leak := range []string{p, p[:4] + "." + p[4:8], `"` + testcards.CVV + `"`, ":" + testcards.CVV, ">" + testcards.CVV, ": " + testcards.CVV} {
		if strings.Contains(text, leak) {
			t.Errorf("the merchant can read card data (%q) in:\n%s", leak, text)
		}
	}
}

func TestHostile_ScrubCompressedAndUTF16Answers(t *testing.T) {
	up := encodedUpstream(t)
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, enc := range []string{"", "gzip", "deflate", "rawdeflate", "utf16le", "utf16bom"} {
		for _, r := range []*response{
			h.post(t, "/check?enc="+enc, map[string]any{"order_id": h.orderID()}),
			h.post(t, "/initPaymentHost2Host?enc="+enc, cardPayment(h.orderID(), tok)),
		} {
			wantStatus(t, r, http.StatusOK)
			wantNoCardData(t, r)
			text := readable(t, r)
			if !strings.Contains(text, `"order_id":"o-1"`) || !strings.Contains(text, "[REDACTED]") || !strings.Contains(text, "****.****.****."+testcards.Success[12:]) {
				t.Errorf("enc %q: got %q, want the answer with its card data masked", enc, text)
			}
			if enc == "gzip" || strings.HasSuffix(enc, "deflate") {
				if ce := r.header.Get("Content-Encoding"); ce != "" {
					t.Errorf("enc %q: Content-Encoding %q relayed on a decoded body", enc, ce)
				}
			}
		}
		tok = h.cardToken(t, testcards.Success, testcards.CVV)
	}
}

func TestHostile_ScrubRefusesUnreadableAnswers(t *testing.T) {
	up := encodedUpstream(t)
	h := newHarness(t, harnessOptions{upstream: up})
	for _, enc := range []string{"br", "utf32", "utf16undeclared"} {
		r := h.post(t, "/check?enc="+enc, map[string]any{"order_id": h.orderID()})
		wantError(t, r, http.StatusBadGateway, "upstream_response_unreadable")
		wantNoCardData(t, r)
	}
}

func TestHostile_ScrubAsksUpstreamForIdentity(t *testing.T) {
	var got []string
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Accept-Encoding"))
		w.Write([]byte(`{"status":1}`))
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": h.orderID()}, headers{"Accept-Encoding": "gzip, br"})
	if len(got) != 1 || got[0] != "identity" {
		t.Errorf("upstream saw Accept-Encoding %q, want identity", got)
	}
}

// TestHostile_ScrubKeepsCleanAnswers: the documentation's answers, and clean
// data that used to be masked (the timestamp pair, 20-digit ids, IBANs, bare
// numbers), reach the merchant byte for byte.
func TestHostile_ScrubKeepsCleanAnswers(t *testing.T) {
	files, _ := filepath.Glob("../redact/testdata/smartpayments/response-*.json")
	if len(files) < 10 {
		t.Fatalf("found %d corpus answers, want the documentation's", len(files))
	}
	answers := map[string][]byte{
		"extra": []byte(`{"dateFrom": 1674507600000, "dateTo": 1679678900200, "id": 12345678901234567890, ` +
			`"iban": "DE89 3704 0044 0532 0130 00", "amount": 1000, "ts": 1715002345678}`),
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		answers[filepath.Base(f)] = b
	}
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(answers[r.URL.Query().Get("f")])
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	for name, want := range answers {
		r := h.post(t, "/check?f="+name, map[string]any{"order_id": h.orderID()})
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, want) {
			t.Errorf("%s: got\n%s\nwant\n%s", name, r.body, want)
		}
	}
}

// TestHostile_ScrubSameDetectorBothDirections: a PAN spelled with other
// separators or as HTML references is refused from the merchant and masked
// from upstream: one detector on both sides.
func TestHostile_ScrubSameDetectorBothDirections(t *testing.T) {
	p := testcards.Decline
	spellings := []string{
		p[:4] + "." + p[4:8] + "." + p[8:12] + "." + p[12:],
		p[:4] + "/" + p[4:8] + "_" + p[8:12] + "\u00a0" + p[12:],
		p[:4] + "\u2009" + p[4:8] + "\u202f" + p[8:12] + "\u200b" + p[12:],
		"&#" + strconv.Itoa(int(p[0])) + ";" + p[1:],
		p[:4] + "&nbsp;" + p[4:],
	}
	var answer string
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(answer))
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	for _, s := range spellings {
		wantError(t, h.post(t, "/check", map[string]any{"order_id": h.orderID(), "purpose": "card " + s}),
			http.StatusBadRequest, "raw_card_data")
		answer = `{"note":"card ` + s + `"}`
		r := h.post(t, "/check", map[string]any{"order_id": h.orderID()})
		wantStatus(t, r, http.StatusOK)
		if !strings.HasSuffix(string(r.body), p[12:]+`"}`) || bytes.Equal(r.body, []byte(answer)) {
			t.Errorf("got %s, want %s masked", r.body, answer)
		}
	}
	if n := up.arrivals("/check"); n != len(spellings) {
		t.Errorf("upstream calls: got %d, want %d (the refused ones never leave)", n, len(spellings))
	}
}
