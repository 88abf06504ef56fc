package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/redact"
)

func TestContainsRawPAN(t *testing.T) {
	pan := testcards.Success
	forms := testcards.Spellings(pan)
	cases := []struct {
		name string
		body string
		want bool
	}{
		{"a PAN in a field is found", `{"x":"` + pan + `"}`, true},
		{"a PAN grouped by spaces is found", `{"x":"` + forms["grouped (spaces)"] + `"}`, true},
		{"a PAN grouped by dashes is found", `{"x":"` + forms["grouped (dashes)"] + `"}`, true},
		{"a PAN as a JSON number is found", `{"x":` + pan + `}`, true},
		{"a PAN nested in arrays and objects is found", `{"a":[{"b":{"c":"pay ` + testcards.Decline + ` now"}}]}`, true},
		{"a PAN written with JSON escapes is found", `{"x":"` + forms["JSON \\u-escaped"] + `"}`, true},
		{"a PAN partly written with JSON escapes is found", `{"x":"` + forms["JSON \\u-escaped"][:12] + pan[2:] + `"}`, true},
		{"a PAN in fullwidth digits is found", `{"x":"` + forms["fullwidth digits"] + `"}`, true},
		{"a PAN in Arabic-Indic digits is found", `{"x":"` + forms["Arabic-Indic form"] + `"}`, true},
		{"a PAN as a key is found", `{"` + pan + `":"x"}`, true},
		{"an order id survives", `{"order_id":"sandboxId_1015","amount":1000}`, false},
		{"a phone number survives", `{"customer_phone":"+442079460612"}`, false},
		{"a Luhn-invalid 16-digit id survives", `{"order_id":"` + testcards.BadLuhn + `"}`, false},
		{"a masked card survives", `{"number":"` + pan[:6] + "******" + pan[len(pan)-4:] + `"}`, false},
		{"a token id survives", `{"card_number":"tok_X3NLCUWyFz74usPURrmAE5"}`, false},
		{"a timestamp survives", `{"recur_exp":"2023-12-13T14:00:53.421Z"}`, false},
	}
	for _, c := range cases {
		if got := containsRawPAN([]byte(c.body)); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestQueryHasPAN(t *testing.T) {
	pan := testcards.Success
	forms := testcards.Spellings(pan)
	for q, want := range map[string]bool{
		"card=" + pan: true,
		"card=" + forms["percent-encoded"][:12] + pan[4:]:                 true,
		"card=" + strings.ReplaceAll(forms["grouped (spaces)"], " ", "+"): true,
		"order_id=abc&amount=1000":                                        false,
		"":                                                                false,
	} {
		if got := queryHasPAN(q); got != want {
			t.Errorf("query %q: got %v, want %v", q, got, want)
		}
	}
}

func FuzzContainsRawPAN(f *testing.F) {
	f.Add([]byte(`{"x":"` + testcards.Success + `"}`))
	f.Add([]byte(`{"x":[1,2,{"y":"\u0034"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		containsRawPAN(b) // must not panic
		if redact.HasPAN(b) && !containsRawPAN(append(append([]byte(`{"x":`), quote(b)...), '}')) {
			t.Fatalf("a PAN in the text was not found once the text sat in a JSON string")
		}
	})
}

func quote(b []byte) []byte { return appendJSONString(nil, b) }

func TestHeadersHavePAN(t *testing.T) {
	forms := testcards.Spellings(testcards.Success)
	for name, c := range map[string]struct {
		h    http.Header
		want bool
	}{
		"a PAN in a custom header is found":    {http.Header{"X-Card": {forms["grouped (spaces)"]}}, true},
		"a fullwidth PAN in a header is found": {http.Header{"X-Note": {forms["fullwidth digits"]}}, true},
		"ordinary headers survive":             {http.Header{"Authorization": {testcards.BasicAuth}, "X-Request-Id": {"1700000000000"}}, false},
	} {
		if got := headersHavePAN(c.h); got != c.want {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
}
