package smartpay

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestBasicAuthIsRequiredOnEveryAPIPath(t *testing.T) {
	e := newEnv(t, Options{})
	paths := []struct{ method, path string }{
		{http.MethodPost, "/initPaymentHost2Host"},
		{http.MethodPost, "/authorize"},
		{http.MethodPost, "/withdrawal/init"},
		{http.MethodPost, "/initPayment"},
		{http.MethodPost, "/check"},
		{http.MethodPost, "/refund"},
		{http.MethodPost, "/recurrent"},
		{http.MethodPost, "/capture"},
		{http.MethodPost, "/cancel"},
		{http.MethodPost, "/withdrawal/tokenize-form"},
		{http.MethodPost, "/withdrawal/balance/get"},
		{http.MethodPost, exportPath},
		{http.MethodGet, exportPath + "/task/abc"},
		{http.MethodGet, exportPath + "/task/abc/result"},
	}
	auths := []struct{ name, header string }{
		{"no Authorization header", ""},
		{"a wrong secret", basic(DefaultMerchantKey, "wrong")},
		{"an unknown merchant key", basic("nobody", DefaultMerchantSecret)},
		{"a Bearer scheme", "Bearer " + DefaultMerchantSecret},
		{"malformed base64", "Basic %%%"},
		{"no colon in the credentials", "Basic dGVzdA=="},
	}
	for _, p := range paths {
		for _, a := range auths {
			t.Run(p.path+" refuses "+a.name, func(t *testing.T) {
				resp := e.doResp(p.method, p.path, a.header, "application/json", `{}`)
				defer resp.Body.Close()
				var er errorResponse
				_ = json.NewDecoder(resp.Body).Decode(&er)
				if resp.StatusCode != http.StatusUnauthorized || er.Err != codeUnauthorized {
					t.Errorf("got %d %q, want 401 %q", resp.StatusCode, er.Err, codeUnauthorized)
				}
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
					t.Errorf("got WWW-Authenticate %q, want a Basic challenge", got)
				}
			})
		}
	}
	t.Run("the documentation's example credentials are accepted", func(t *testing.T) {
		// "Authorization: Basic dGVzdDpxd2VydHk=" in every curl example.
		status, b := e.do(http.MethodPost, "/withdrawal/balance/get", "Basic dGVzdDpxd2VydHk=", map[string]any{"account": defaultPayoutAccount})
		if status != http.StatusOK {
			t.Errorf("got %d %s, want 200", status, b)
		}
	})
}

func TestRequestsMustBeJSON(t *testing.T) {
	e := newEnv(t, Options{})
	body := `{"account":"` + defaultPayoutAccount + `"}`
	cases := []struct {
		name, contentType string
		want              int
	}{
		{"application/json is accepted", "application/json", http.StatusOK},
		{"a charset parameter is accepted", "application/json; charset=utf-8", http.StatusOK},
		{"text/plain is refused", "text/plain", http.StatusUnsupportedMediaType},
		{"a form is refused", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"a missing content type is refused", "", http.StatusUnsupportedMediaType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.doResp(http.MethodPost, "/withdrawal/balance/get", defaultAuth, c.contentType, body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("got %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}

func TestMalformedBodiesAreRefusedWithoutEchoingThem(t *testing.T) {
	e := newEnv(t, Options{})
	cases := []struct {
		name, body, code string
		fields           []string
	}{
		{"truncated JSON", `{"order_id":`, codeInvalidJSON, nil},
		{"an array", `[]`, codeInvalidJSON, nil},
		{"trailing data", `{"order_id":"a"} {}`, codeInvalidJSON, nil},
		{"a wrongly typed field is named", `{"order_id":"a","amount":"` + panDecline + `"}`, codeValidation, []string{"amount"}},
		{"a boolean zip code is named", `{"customer_zip_code":true}`, codeValidation, []string{"customer_zip_code"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, b := e.do(http.MethodPost, "/initPaymentHost2Host", defaultAuth, c.body)
			var er errorResponse
			if err := json.Unmarshal(b, &er); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
			if status != http.StatusBadRequest || er.Err != c.code {
				t.Errorf("got %d %q, want 400 %q", status, er.Err, c.code)
			}
			if fmt.Sprint(er.Fields) != fmt.Sprint(c.fields) {
				t.Errorf("got fields %v, want %v", er.Fields, c.fields)
			}
			if strings.Contains(string(b), panDecline) {
				t.Errorf("error body echoes the input")
			}
		})
	}
}

func TestUnknownPathsAndMethodsAnswerJSON(t *testing.T) {
	e := newEnv(t, Options{})
	for _, c := range []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"an unknown path is 404", http.MethodPost, "/nope", http.StatusNotFound, codeNotFound},
		{"GET on a POST endpoint is 405", http.MethodGet, "/check", http.StatusMethodNotAllowed, codeMethodNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, b := e.do(c.method, c.path, defaultAuth, nil)
			var er errorResponse
			_ = json.Unmarshal(b, &er)
			if status != c.status || er.Err != c.code {
				t.Errorf("got %d %q, want %d %q", status, er.Err, c.status, c.code)
			}
		})
	}
}

func TestBodiesAboveTheLimitAreRefused(t *testing.T) {
	e := newEnv(t, Options{})
	big := `{"order_id":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	status, _ := e.do(http.MethodPost, "/check", defaultAuth, big)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d, want 413", status)
	}
}

func TestReceivedRecordsWhatArrived(t *testing.T) {
	e := newEnv(t, Options{})
	e.post("/initPaymentHost2Host", cardPayment("rec-1", panFrictionless), nil)
	e.post("/check", map[string]any{"order_id": "rec-1"}, nil)

	got := e.sb.Received("/initPaymentHost2Host")
	if len(got) != 1 {
		t.Fatalf("got %d recorded requests, want 1", len(got))
	}
	r := got[0]
	if r.Method != http.MethodPost || r.Path != "/initPaymentHost2Host" {
		t.Errorf("got %s %s, want POST /initPaymentHost2Host", r.Method, r.Path)
	}
	if !strings.Contains(string(r.Body), `"card_number":"`+panFrictionless+`"`) || !strings.Contains(string(r.Body), `"card_cvv":"`+testCVV+`"`) {
		t.Errorf("recorded body does not hold the real PAN and CVV")
	}
	if r.Header.Get("Authorization") != defaultAuth {
		t.Errorf("got Authorization %q, want %q", r.Header.Get("Authorization"), defaultAuth)
	}
	if n := len(e.sb.Received("")); n != 2 {
		t.Errorf("got %d requests in all, want 2", n)
	}
	r.Body[0] = 'X' // a copy: the sandbox's record is untouched
	if e.sb.Received("/initPaymentHost2Host")[0].Body[0] != '{' {
		t.Errorf("Received returned the sandbox's own buffer")
	}

	e.sb.reset()
	if n := len(e.sb.Received("")); n != 0 {
		t.Errorf("after reset got %d recorded requests, want 0", n)
	}
	e.refuse("/check", map[string]any{"order_id": "rec-1"}, http.StatusNotFound, codeOrderNotFound)
}

func TestRecordingIsBoundedAndCanBeOff(t *testing.T) {
	t.Run("only the newest MaxRecorded are kept", func(t *testing.T) {
		e := newEnv(t, Options{MaxRecorded: 3})
		for i := range 5 {
			e.do(http.MethodPost, "/check", defaultAuth, map[string]any{"order_id": fmt.Sprint("o", i)})
		}
		got := e.sb.Received("/check")
		if len(got) != 3 || !strings.Contains(string(got[0].Body), `"o2"`) {
			t.Errorf("got %d records starting %s, want 3 starting with o2", len(got), got[0].Body)
		}
	})
	t.Run("DisableRecording keeps nothing", func(t *testing.T) {
		e := newEnv(t, Options{DisableRecording: true})
		e.post("/initPaymentHost2Host", cardPayment("norec", panFrictionless), nil)
		if n := len(e.sb.Received("")); n != 0 {
			t.Errorf("got %d records, want 0", n)
		}
	})
}

func TestOptionsValidateListsEveryProblem(t *testing.T) {
	o := Options{
		BaseURL: "ftp://x",
		Merchants: []Merchant{
			{Key: "a:b", Secret: "", Accounts: []Account{{Name: "x", Type: "bogus", Currency: "eur", Balance: -1}}},
			{Key: "m", Secret: "s", Accounts: []Account{{Name: "x", Type: AccountPayment, Currency: "EUR"}, {Name: "x", Type: AccountPayout, Currency: "EUR"}}},
			{Key: "m", Secret: "s"},
		},
	}
	err := o.validate()
	if err == nil {
		t.Fatal("got nil, want problems")
	}
	for _, want := range []string{"merchants[0]: key", "merchants[0]: secret", "type must be", "currency must be", "balances must not", "merchants[1].accounts[1]: name", "merchants[2]: duplicate key", "base URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\"s\"") {
		t.Errorf("validation error names a secret")
	}
	defer func() {
		if recover() == nil {
			t.Errorf("NewSandbox accepted invalid options")
		}
	}()
	NewSandbox(o)
}

func TestResetRestoresConfiguredBalances(t *testing.T) {
	e := newEnv(t, Options{})
	e.post("/withdrawal/init", withdrawal("w-reset", panFrictionless, 5000), nil)
	var b balanceResponse
	e.post("/withdrawal/balance/get", map[string]any{"account": defaultPayoutAccount}, &b)
	if b.Balance != defaultPayoutBalance-5000 {
		t.Fatalf("got balance %d, want %d", b.Balance, defaultPayoutBalance-5000)
	}
	e.sb.reset()
	e.post("/withdrawal/balance/get", map[string]any{"account": defaultPayoutAccount}, &b)
	if b.Balance != defaultPayoutBalance {
		t.Errorf("after reset got balance %d, want %d", b.Balance, defaultPayoutBalance)
	}
}

func TestCardCarryingValuesNeverPrintTheirData(t *testing.T) {
	var h2h hostToHostRequest
	h2h.OrderID = "o-1"
	h2h.CardNumber, h2h.CardCVV, h2h.CardHolder = panFrictionless, testCVV, "John Doe"
	h2h.ApplePayDPAN = examplePayload
	var auth authorizeRequest
	auth.CardNumber, auth.CardCVV = panChallenge, testCVV
	wd := withdrawalRequest{OrderID: "w-1", CustomerCardNumber: panDecline}
	rec := Received{Method: "POST", Path: "/x", Body: []byte(`{"card_number":"` + panMastercard + `"}`)}
	m := Merchant{Key: "k", Secret: "topsecret-value"}
	values := []any{
		h2h, &h2h, auth, wd, h2h.cardFields, h2h.walletFields, rec, m,
		struct{ Req hostToHostRequest }{h2h},
		struct{ C cardFields }{h2h.cardFields},
		[]Received{rec},
	}
	secrets := append(append([]string(nil), testPANs...), testCVV, examplePayload, "topsecret-value", "John Doe")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		for _, v := range values {
			out := fmt.Sprintf(verb, v)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s of %T leaks card data or a secret: %s", verb, v, out)
				}
			}
		}
	}
}
