package smartpay

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func (e *env) balance() balanceResponse {
	e.t.Helper()
	var b balanceResponse
	e.post("/withdrawal/balance/get", map[string]any{"account": defaultPayoutAccount}, &b)
	return b
}

func TestWithdrawalInit(t *testing.T) {
	cases := []struct {
		name    string
		body    map[string]any
		status  status
		err     string
		balance int64 // after the call
	}{
		{"the success test card is paid out and lowers the balance", withdrawal("w1", panFrictionless, 10000), statusSuccess, "", defaultPayoutBalance - 10000},
		{"payment_method defaults to card", with(withdrawal("w2", panFrictionless, 5000), "payment_method", nil), statusSuccess, "", defaultPayoutBalance - 15000},
		{"any other card fails and leaves the balance", withdrawal("w3", panDecline, 10000), statusFail, declineWithdrawal, defaultPayoutBalance - 15000},
		{"the payment challenge card fails for withdrawals", withdrawal("w4", panChallenge, 10000), statusFail, declineWithdrawal, defaultPayoutBalance - 15000},
		{"an amount above the balance fails", withdrawal("w5", panFrictionless, defaultPayoutBalance), statusFail, declineInsufficientFunds, defaultPayoutBalance - 15000},
		{"an expired card fails", with(withdrawal("w6", panFrictionless, 100), "customer_card_exp_month", "01", "customer_card_exp_year", "26"), statusFail, declineCardExpired, defaultPayoutBalance - 15000},
		{"a valid expiry is accepted", with(withdrawal("w7", panFrictionless, 100), "customer_card_exp_month", "3", "customer_card_exp_year", "2026"), statusSuccess, "", defaultPayoutBalance - 15100},
		{"the whole remaining balance can be paid out", withdrawal("w8", panFrictionless, defaultPayoutBalance-15100), statusSuccess, "", 0},
		{"then nothing more", withdrawal("w9", panFrictionless, 1), statusFail, declineInsufficientFunds, 0},
	}
	e := newEnv(t, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp withdrawalResponse
			e.post("/withdrawal/init", c.body, &resp)
			if resp.OrderID != c.body["order_id"] || resp.Status != c.status || deref(resp.Err) != deref(ptrOrNil(c.err)) {
				t.Errorf("got %s %d %q, want %s %d %q", resp.OrderID, resp.Status, deref(resp.Err), c.body["order_id"], c.status, c.err)
			}
			if resp.Card == nil || resp.Card.Number != maskPAN(c.body["customer_card_number"].(string)) || resp.Card.Country != "Spain" {
				t.Errorf("got card %+v, want the masked card", resp.Card)
			}
			chk := e.checkOrder(c.body["order_id"].(string))
			if chk.Type != typeWithdrawal || chk.Status != c.status || chk.FirstName != "John" || chk.EndDate == nil {
				t.Errorf("check: got %+v", chk)
			}
			if b := e.balance(); b.Balance != c.balance || b.HoldBalance != 0 || b.RollingBalance != 0 {
				t.Errorf("got balance %+v, want %d/0/0", b, c.balance)
			}
		})
	}

	refusals := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"a card withdrawal without customer_card_number", with(withdrawal("wv1", panFrictionless, 1), "customer_card_number", nil), "customer_card_number"},
		{"a card number failing Luhn", with(withdrawal("wv2", panFrictionless, 1), "customer_card_number", "4012000000003011"), "customer_card_number"},
		{"a token withdrawal without tokenize_transaction_order_id", with(withdrawal("wv3", panFrictionless, 1), "payment_method", methodToken, "customer_card_number", nil), "tokenize_transaction_order_id"},
		{"an unknown payment_method", with(withdrawal("wv4", panFrictionless, 1), "payment_method", "iban"), "payment_method"},
		{"a zero amount", with(withdrawal("wv5", panFrictionless, 0)), "amount"},
		{"no account", with(withdrawal("wv6", panFrictionless, 1), "account", nil), "account"},
		{"no order_id", with(withdrawal("wv7", panFrictionless, 1), "order_id", nil), "order_id"},
		{"month 13", with(withdrawal("wv8", panFrictionless, 1), "customer_card_exp_month", "13"), "customer_card_exp_month"},
		{"an ftp callback_url", with(withdrawal("wv9", panFrictionless, 1), "callback_url", "ftp://site.com/cb"), "callback_url"},
	}
	for _, c := range refusals {
		t.Run(c.name+" is refused", func(t *testing.T) {
			er := e.refuse("/withdrawal/init", c.body, http.StatusBadRequest, codeValidation)
			if len(er.Fields) != 1 || er.Fields[0] != c.field {
				t.Errorf("got %v, want [%s]", er.Fields, c.field)
			}
		})
	}
	t.Run("the documentation's example body with a numeric zip code is accepted", func(t *testing.T) {
		var resp withdrawalResponse
		e.post("/withdrawal/init", with(withdrawal("w-doc", panDecline, 10000), "customer_zip_code", 121165, "callback_url", "https://site.com/callback"), &resp)
		if resp.Status != statusFail {
			t.Errorf("got %d, want -1 for a card other than the success card", resp.Status)
		}
	})
}

func TestWithdrawalToATokenizedCard(t *testing.T) {
	e := newEnv(t, Options{})
	form := func(order string) (tokenizeFormResponse, string) {
		t.Helper()
		var resp tokenizeFormResponse
		e.post("/withdrawal/tokenize-form", map[string]any{
			"account": defaultPayoutAccount, "order_id": order,
			"callback_url": "https://site.com/callback", "success_url": "https://site.com/success", "fail_url": "https://site.com/fail",
		}, &resp)
		u, err := url.Parse(deref(resp.FormURL))
		if err != nil || resp.Status != statusProcessing || resp.ResponseType != responseRedirect || !strings.HasPrefix(u.Path, tokenizePrefix) || len(resp.OrderID) != 24 {
			t.Fatalf("got %+v, want status 1 REDIRECT to the tokenize page", resp)
		}
		return resp, u.Path
	}
	token := func(order, tokenOrder string, amount int64) map[string]any {
		return with(withdrawal(order, "", amount), "payment_method", methodToken, "customer_card_number", nil, "tokenize_transaction_order_id", tokenOrder)
	}

	_, path := form("tok-1")
	t.Run("before the form is completed a token withdrawal is refused", func(t *testing.T) {
		e.refuse("/withdrawal/init", token("tw-0", "tok-1", 100), http.StatusConflict, codeTokenizeNotComplete)
		if c := e.checkOrder("tok-1"); c.Status != statusProcessing || c.Type != typeTokenization {
			t.Errorf("got %d %q, want 1 Tokenization", c.Status, c.Type)
		}
	})
	t.Run("the form page asks for the card", func(t *testing.T) {
		resp := e.doResp(http.MethodGet, path, "", "", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("got %d, want 200", resp.StatusCode)
		}
	})
	t.Run("an invalid card is refused on the page", func(t *testing.T) {
		if r := e.submit(path, url.Values{"card_number": {"1234"}}); r.StatusCode != http.StatusBadRequest {
			t.Errorf("got %d, want 400", r.StatusCode)
		}
	})
	t.Run("submitting the success card completes the tokenization", func(t *testing.T) {
		r := e.submit(path, url.Values{"card_number": {panFrictionless}, "card_exp_month": {"12"}, "card_exp_year": {"30"}})
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "https://site.com/success" {
			t.Errorf("got %d %q, want 303 to success_url", r.StatusCode, r.Header.Get("Location"))
		}
		c := e.checkOrder("tok-1")
		if c.Status != statusSuccess || c.Card == nil || c.Card.Number != "401200******3010" {
			t.Errorf("got %d %+v, want 2 with the masked card", c.Status, c.Card)
		}
	})
	t.Run("a withdrawal to the tokenized card succeeds", func(t *testing.T) {
		var resp withdrawalResponse
		e.post("/withdrawal/init", token("tw-1", "tok-1", 2500), &resp)
		if resp.Status != statusSuccess || resp.Card.Number != "401200******3010" {
			t.Errorf("got %d %+v, want 2 on the tokenized card", resp.Status, resp.Card)
		}
		if b := e.balance(); b.Balance != defaultPayoutBalance-2500 {
			t.Errorf("got balance %d, want %d", b.Balance, defaultPayoutBalance-2500)
		}
	})
	t.Run("a withdrawal to another tokenized card fails", func(t *testing.T) {
		_, p2 := form("tok-2")
		e.submit(p2, url.Values{"card_number": {panDecline}})
		var resp withdrawalResponse
		e.post("/withdrawal/init", token("tw-2", "tok-2", 100), &resp)
		if resp.Status != statusFail || deref(resp.Err) != declineWithdrawal {
			t.Errorf("got %d %q, want -1 %s", resp.Status, deref(resp.Err), declineWithdrawal)
		}
	})
	t.Run("the form's transaction id works as tokenize_transaction_order_id", func(t *testing.T) {
		resp, p3 := form("tok-3")
		e.submit(p3, url.Values{"card_number": {panFrictionless}})
		e.post("/withdrawal/init", token("tw-3", resp.OrderID, 100), nil)
	})
	t.Run("a payment order is no tokenization", func(t *testing.T) {
		e.post("/initPaymentHost2Host", cardPayment("pay-x", panFrictionless), nil)
		e.refuse("/withdrawal/init", token("tw-4", "pay-x", 100), http.StatusNotFound, codeOrderNotFound)
	})
	t.Run("the form cannot be submitted twice", func(t *testing.T) {
		if r := e.submit(path, url.Values{"card_number": {panDecline}}); r.StatusCode != http.StatusNotFound {
			t.Errorf("got %d, want 404", r.StatusCode)
		}
	})
	t.Run("tokenize-form validates its fields", func(t *testing.T) {
		er := e.refuse("/withdrawal/tokenize-form", map[string]any{"success_url": "nope"}, http.StatusBadRequest, codeValidation)
		if strings.Join(er.Fields, ",") != "account,order_id,success_url" {
			t.Errorf("got %v, want [account order_id success_url]", er.Fields)
		}
	})
}

func TestBalanceNeedsAnAccount(t *testing.T) {
	e := newEnv(t, Options{})
	e.refuse("/withdrawal/balance/get", map[string]any{}, http.StatusBadRequest, codeValidation)
	if b := e.balance(); b.Balance != defaultPayoutBalance {
		t.Errorf("got %d, want the default %d", b.Balance, defaultPayoutBalance)
	}
}

func TestConfiguredAccountsAndBalances(t *testing.T) {
	e := newEnv(t, Options{Merchants: []Merchant{{
		Key: "m1", Secret: "s1",
		Accounts: []Account{{Name: "GBP-out", Type: AccountPayout, Currency: "GBP", Balance: 50, HoldBalance: 7, RollingBalance: 3}},
	}}})
	status, b := e.do(http.MethodPost, "/withdrawal/balance/get", basic("m1", "s1"), map[string]any{"account": "GBP-out"})
	if status != http.StatusOK || strings.TrimSpace(string(b)) != `{"balance":50,"holdBalance":7,"rollingBalance":3}` {
		t.Errorf("got %d %s", status, b)
	}
	if status, _ := e.do(http.MethodPost, "/withdrawal/balance/get", defaultAuth, map[string]any{"account": "GBP-out"}); status != http.StatusUnauthorized {
		t.Errorf("the default merchant still exists alongside configured ones: got %d", status)
	}
}
