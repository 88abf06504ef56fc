package proxy

import (
	"net/http"
	"testing"
)

func TestContainsRawPAN(t *testing.T) {
	cases := []struct {
		name string
		body string
		want bool
	}{
		{"a PAN in a field is found", `{"x":"4012000000003010"}`, true},
		{"a PAN grouped by spaces is found", `{"x":"4012 0000 0000 3010"}`, true},
		{"a PAN grouped by dashes is found", `{"x":"4012-0000-0000-3010"}`, true},
		{"a PAN as a JSON number is found", `{"x":4012000000003010}`, true},
		{"a PAN nested in arrays and objects is found", `{"a":[{"b":{"c":"pay 5555555555554444 now"}}]}`, true},
		{"a PAN written with JSON escapes is found", `{"x":"\u0034\u00301\u0032000000003010"}`, true},
		{"a PAN in fullwidth digits is found", `{"x":"４０１２００００００００３０１０"}`, true},
		{"a PAN in Arabic-Indic digits is found", `{"x":"٤٠١٢٠٠٠٠٠٠٠٠٣٠١٠"}`, true},
		{"a PAN as a key is found", `{"4012000000003010":"x"}`, true},
		{"an order id survives", `{"order_id":"sandboxId_1015","amount":1000}`, false},
		{"a phone number survives", `{"customer_phone":"+442079460612"}`, false},
		{"a Luhn-invalid 16-digit id survives", `{"order_id":"4012000000003011"}`, false},
		{"a masked card survives", `{"number":"401200******3010"}`, false},
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
	for q, want := range map[string]bool{
		"card=4012000000003010":         true,
		"card=%34%30%31%32000000003010": true,
		"card=4012+0000+0000+3010":      true,
		"order_id=abc&amount=1000":      false,
		"":                              false,
	} {
		if got := queryHasPAN(q); got != want {
			t.Errorf("query %q: got %v, want %v", q, got, want)
		}
	}
}

func FuzzContainsRawPAN(f *testing.F) {
	f.Add([]byte(`{"x":"4012000000003010"}`))
	f.Add([]byte(`{"x":[1,2,{"y":"\u0034"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		containsRawPAN(b) // must not panic
		if textHasPAN(string(b)) && !containsRawPAN(append(append([]byte(`{"x":`), quote(b)...), '}')) {
			t.Fatalf("a PAN in the text was not found once the text sat in a JSON string")
		}
	})
}

func quote(b []byte) []byte { return appendJSONString(nil, b) }

func TestHeadersHavePAN(t *testing.T) {
	for name, c := range map[string]struct {
		h    http.Header
		want bool
	}{
		"a PAN in a custom header is found":    {http.Header{"X-Card": {"4012 0000 0000 3010"}}, true},
		"a fullwidth PAN in a header is found": {http.Header{"X-Note": {"４０１２００００００００３０１０"}}, true},
		"ordinary headers survive":             {http.Header{"Authorization": {"Basic dGVzdDpxd2VydHk="}, "X-Request-Id": {"1700000000000"}}, false},
	} {
		if got := headersHavePAN(c.h); got != c.want {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
}
