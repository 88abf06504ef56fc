package proxy

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/token"
	"github.com/chdproxy/chdproxy/vault"
)

// The injection plan is table-tested here without a server or a vault.

const (
	planTok   = "tok_AAAAAAAAAAAAAAAAAAAAAA"
	planOther = "tok_BBBBBBBBBBBBBBBBBBBBBB"
)

func defaultRoute(t *testing.T, path string) *policy.Route {
	t.Helper()
	pol, err := policy.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for i := range pol.Routes {
		if pol.Routes[i].Path == path {
			return &pol.Routes[i]
		}
	}
	t.Fatalf("the default policy has no route %s", path)
	return nil
}

func mustFields(t *testing.T, body string) []jsonField {
	t.Helper()
	fields, err := parseObject([]byte(body))
	if err != nil {
		t.Fatalf("parseObject(%s): %v", body, err)
	}
	return fields
}

func TestPlanInjection(t *testing.T) {
	cases := []struct {
		name    string
		path    string
		kind    token.Kind
		body    string
		want    []fill
		wantCVV bool
		err     error
	}{
		{
			name: "a card token with its CVV asked for fills every card field and adds the absent ones",
			path: "/initPaymentHost2Host", kind: token.Card,
			body:    `{"card_number":"` + planTok + `","card_cvv":"` + planTok + `","amount":100}`,
			wantCVV: true,
			want: []fill{{"card_number", "pan", false}, {"card_exp_month", "exp_month", true}, {"card_exp_year", "exp_year", true},
				{"card_cvv", "cvv", false}, {"card_holder", "holder", true}},
		},
		{
			name: "without the token in card_cvv the CVV is neither filled nor consumed",
			path: "/initPaymentHost2Host", kind: token.Card,
			body: `{"card_number":"` + planTok + `"}`,
			want: []fill{{"card_number", "pan", false}, {"card_exp_month", "exp_month", true}, {"card_exp_year", "exp_year", true},
				{"card_holder", "holder", true}},
		},
		{
			name: "a plain holder the merchant sent is kept and empty fields are filled",
			path: "/authorize", kind: token.Card,
			body: `{"card_number":"` + planTok + `","card_holder":"Someone Else","card_exp_month":""}`,
			want: []fill{{"card_number", "pan", false}, {"card_exp_month", "exp_month", false}, {"card_exp_year", "exp_year", true}},
		},
		{
			name: "an Apple Pay token fills its DPAN and network",
			path: "/initPaymentHost2Host", kind: token.ApplePay,
			body: `{"payment_method":"applePayDPan","apple_pay_dpan":"` + planTok + `"}`,
			want: []fill{{"apple_pay_dpan", "dpan", false}, {"apple_pay_payment_method_network", "network", true}},
		},
		{
			name: "a withdrawal fills the customer card fields",
			path: "/withdrawal/init", kind: token.Card,
			body: `{"payment_method":"card","customer_card_number":"` + planTok + `"}`,
			want: []fill{{"customer_card_number", "pan", false}, {"customer_card_exp_month", "exp_month", true}, {"customer_card_exp_year", "exp_year", true}},
		},
		{
			name: "a wallet token under payment_method card is refused",
			path: "/initPaymentHost2Host", kind: token.GooglePay,
			body: `{"payment_method":"card","google_pay_dpan":"` + planTok + `"}`,
			err:  errMethodMismatch,
		},
		{
			name: "an absent payment_method means card",
			path: "/initPaymentHost2Host", kind: token.ApplePay,
			body: `{"apple_pay_dpan":"` + planTok + `"}`,
			err:  errMethodMismatch,
		},
		{
			name: "a route that takes card tokens only refuses a wallet token",
			path: "/authorize", kind: token.ApplePay,
			body: `{"card_number":"` + planTok + `"}`,
			err:  errKindNotAllowed,
		},
		{
			name: "a card token in a wallet field is refused",
			path: "/initPaymentHost2Host", kind: token.Card,
			body: `{"apple_pay_dpan":"` + planTok + `"}`,
			err:  errTokenNotAllowed,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := planInjection(defaultRoute(t, c.path), mustFields(t, c.body), planTok, c.kind)
			if !errors.Is(err, c.err) {
				t.Fatalf("got error %v, want %v", err, c.err)
			}
			if c.err != nil {
				return
			}
			if p.cvv != c.wantCVV || !slices.Equal(p.fills, c.want) {
				t.Errorf("got cvv=%v fills %v, want cvv=%v fills %v", p.cvv, p.fills, c.wantCVV, c.want)
			}
		})
	}
}

func TestReferencedToken(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string
		err  error
	}{
		{"no token: nothing to inject", `{"card_number":"","amount":100}`, "", nil},
		{"one token in two fields", `{"card_number":"` + planTok + `","card_cvv":"` + planTok + `"}`, planTok, nil},
		{"a null CVV is no card data", `{"card_number":"` + planTok + `","card_cvv":null}`, planTok, nil},
		{"two tokens", `{"card_number":"` + planTok + `","card_cvv":"` + planOther + `"}`, "", errTokenMismatch},
		{"a token in a field the route does not fill", `{"description":"` + planTok + `"}`, "", errTokenNotAllowed},
		{"a token nested in an object", `{"meta":{"x":"` + planTok + `"}}`, "", errTokenNotAllowed},
		{"a raw CVV string", `{"card_number":"` + planTok + `","card_cvv":"123"}`, "", errRawCardData},
		{"a raw CVV number", `{"card_number":"` + planTok + `","card_cvv":123}`, "", errRawCardData},
		{"a raw wallet payload", `{"apple_pay_dpan":"eyJhIjoiYiJ9"}`, "", errRawCardData},
	}
	route := defaultRoute(t, "/initPaymentHost2Host")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := referencedToken([]byte(c.body), mustFields(t, c.body), route)
			if got != c.want || !errors.Is(err, c.err) {
				t.Errorf("got %q, %v; want %q, %v", got, err, c.want, c.err)
			}
		})
	}
}

func TestPlanApplyFillsOnlyWhatThePlanSays(t *testing.T) {
	pan, err := card.ParsePAN(testcards.Success)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := card.ParseExpiry(testcards.ExpMonth, testcards.ExpYear, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sec := &vault.Secret{Kind: token.Card, PAN: pan, Expiry: exp} // no holder, no CVV
	body := `{"card_number":"` + planTok + `","amount":100,"card_holder":""}`
	fields := mustFields(t, body)
	p, err := planInjection(defaultRoute(t, "/authorize"), fields, planTok, token.Card)
	if err != nil {
		t.Fatal(err)
	}
	got := string(p.apply([]byte(body), fields, sec))
	want := `{"card_number":"` + testcards.Success + `","amount":100,"card_holder":"","card_exp_month":"` + testcards.ExpMonth +
		`","card_exp_year":"` + testcards.ExpYearShort + `"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
