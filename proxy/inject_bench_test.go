package proxy

import (
	"bytes"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/policy"
)

// h2hRoute is the default policy's initPaymentHost2Host route.
func h2hRoute(tb testing.TB) *policy.Route {
	tb.Helper()
	pol, err := policy.LoadDefault()
	if err != nil {
		tb.Fatal(err)
	}
	for i := range pol.Routes {
		if pol.Routes[i].Path == "/initPaymentHost2Host" {
			return &pol.Routes[i]
		}
	}
	tb.Fatal("the default policy has no initPaymentHost2Host route")
	return nil
}

// benchToken stands for the token a merchant backend sends.
const benchToken = "tok_4fH8sK2pLq9ZxT7vWm3Rb1"

// benchH2HBody is a typical initPaymentHost2Host request as a backend sends it
// to the forward listener: the README's, with the token in the card fields.
var benchH2HBody = []byte(`{"payment_method":"card","account":"EUR-sandbox","amount":1000,"currency":"EUR",` +
	`"order_id":"bench-100045873","merchant_site":"https://merchant.site",` +
	`"customer_first_name":"John","customer_last_name":"Doe","customer_address":"10 Downing Street",` +
	`"customer_city":"London","customer_zip_code":"121165","customer_country":"GB",` +
	`"customer_phone":"+442079460612","customer_email":"john@example.com","customer_ip_address":"127.0.0.1",` +
	`"card_number":"` + benchToken + `","card_cvv":"` + benchToken + `"}`)

// BenchmarkInject measures the injector's body work on the forward path, without
// I/O: parse the body into top-level fields, find the one token it references and
// check every field against the route, then splice the card data in (number and CVV
// replaced, expiry and holder added).
func BenchmarkInject(b *testing.B) {
	route := h2hRoute(b)
	// What detokenization yields; inject builds a fresh set per request.
	values := map[string]string{
		"card_number": testcards.Success, "card_cvv": testcards.CVV,
		"card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYearShort, "card_holder": testcards.Holder,
	}
	add := []string{"card_exp_month", "card_exp_year", "card_holder"}
	b.SetBytes(int64(len(benchH2HBody)))
	b.ReportAllocs()
	for b.Loop() {
		fields, err := parseObject(benchH2HBody)
		if err != nil {
			b.Fatal(err)
		}
		token, err := referencedToken(benchH2HBody, fields, route)
		if err != nil || token != benchToken {
			b.Fatalf("got token %q, %v", token, err)
		}
		set := make(map[string][]byte, len(values))
		for k, v := range values {
			set[k] = []byte(v)
		}
		out := splice(benchH2HBody, fields, set, add)
		if !bytes.Contains(out, []byte(`"card_holder":"`+testcards.Holder+`"`)) {
			b.Fatalf("splice lost a field: %s", out)
		}
		wipe(out)
	}
}

// The benchmark's body must be what the forward path accepts, or it measures
// nothing: one token, referenced from the card number and CVV fields.
func TestBenchmarkInjectBodyIsAccepted(t *testing.T) {
	route := h2hRoute(t)
	fields, err := parseObject(benchH2HBody)
	if err != nil {
		t.Fatal(err)
	}
	if token, err := referencedToken(benchH2HBody, fields, route); err != nil || token != benchToken {
		t.Fatalf("got token %q, %v; want %q", token, err, benchToken)
	}
}
