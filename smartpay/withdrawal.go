package smartpay

import (
	"net/http"
)

// tokenizeForm: POST /withdrawal/tokenize-form — a page on which the customer
// enters the card that later withdrawals (payment_method "token") pay out to.
// The order is a Tokenization transaction in status 1 until the form is
// submitted, then 2.
func (s *Sandbox) tokenizeForm(r *http.Request, merchant string) (any, error) {
	var req tokenizeFormRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.require("account", req.Account)
	p.require("order_id", req.OrderID)
	p.check("order_id", len(req.OrderID) <= maxOrderIDLen)
	p.url("callback_url", req.CallbackURL)
	p.url("success_url", req.SuccessURL)
	p.url("fail_url", req.FailURL)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	t, _, err := s.openPayout(m, req.Account, req.OrderID, typeTokenization)
	if err != nil {
		return nil, err
	}
	t.method, t.pending = methodCard, pendingTokenize
	t.callbackURL, t.successURL, t.failURL = req.CallbackURL, req.SuccessURL, req.FailURL
	s.insert(m, t)
	return tokenizeFormResponse{
		FormURL:      ptr(s.baseURL(r) + tokenizePrefix + t.id),
		OrderID:      t.id,
		Status:       statusProcessing,
		ResponseType: responseRedirect,
	}, nil
}

// withdrawalInit: POST /withdrawal/init — a payout to a card (customer_card_number)
// or to a card tokenized by a tokenize-form order. The frictionless test card
// succeeds at once (status 2) and lowers the account balance by amount; any
// other card, an expired card, or an amount above the balance fails (status -1)
// and leaves the balance alone.
func (s *Sandbox) withdrawalInit(r *http.Request, merchant string) (any, error) {
	var req withdrawalRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	method := req.PaymentMethod
	if method == "" {
		method = methodCard
	}
	if err := validateWithdrawal(&req, method); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	t, a, err := s.openPayout(m, req.Account, req.OrderID, typeWithdrawal)
	if err != nil {
		return nil, err
	}
	t.method, t.amount, t.callbackURL = method, req.Amount, req.CallbackURL
	t.firstName, t.lastName = req.CustomerFirstName, req.CustomerLastName
	class, cardExpired, err := s.withdrawalCard(m, t, &req)
	if err != nil {
		return nil, err
	}
	s.insert(m, t)
	s.settleWithdrawal(t, a, class, cardExpired)
	return withdrawalResult(t), nil
}

// openPayout starts a transaction of type typ, in status 1, on the
// merchant's payout account, refusing an order_id already used. s.mu held.
func (s *Sandbox) openPayout(m *merchantState, account, orderID, typ string) (*txn, *Account, error) {
	a, err := m.account(account, AccountPayout)
	if err != nil {
		return nil, nil, err
	}
	if m.orders[orderID] != nil {
		return nil, nil, errDuplicateOrder
	}
	t := &txn{
		id: newID(), merchant: m.key, orderID: orderID, typ: typ, account: a.Name,
		currency: a.Currency, status: statusProcessing, created: s.opts.Now(),
	}
	return t, a, nil
}

// validateWithdrawal checks a withdrawal/init request paying out by method.
// The expiry fields are optional, each checked when given.
func validateWithdrawal(req *withdrawalRequest, method string) error {
	var p problems
	p.require("account", req.Account)
	p.check("amount", req.Amount > 0)
	p.require("order_id", req.OrderID)
	p.check("order_id", len(req.OrderID) <= maxOrderIDLen)
	switch method {
	case methodCard:
		p.check("customer_card_number", validPAN(req.CustomerCardNumber))
	case methodToken:
		p.require("tokenize_transaction_order_id", req.TokenizeTransactionOrderID)
	default:
		p.add("payment_method")
	}
	if req.CustomerCardExpMonth != "" {
		if _, _, ok := parseExpiry(req.CustomerCardExpMonth, "00"); !ok {
			p.add("customer_card_exp_month")
		}
	}
	if req.CustomerCardExpYear != "" {
		if _, _, ok := parseExpiry("1", req.CustomerCardExpYear); !ok {
			p.add("customer_card_exp_year")
		}
	}
	p.url("callback_url", req.CallbackURL)
	return p.err()
}

// withdrawalCard gives t the masked card it pays out to, from the request or
// from the completed tokenization it names, and returns the sandbox's verdict
// on that card. An expiry in the request counts along with the
// tokenization's. s.mu held.
func (s *Sandbox) withdrawalCard(m *merchantState, t *txn, req *withdrawalRequest) (class cardClass, cardExpired bool, err error) {
	switch t.method {
	case methodCard:
		t.card = cardInfoFor(req.CustomerCardNumber)
		class = classify(req.CustomerCardNumber)
	case methodToken:
		tok := s.lookup(m, req.TokenizeTransactionOrderID)
		if tok == nil || tok.typ != typeTokenization {
			return 0, false, notFound("tokenization order")
		}
		if tok.status != statusSuccess {
			return 0, false, &apiError{status: http.StatusConflict, code: codeTokenizeNotComplete, msg: "the tokenization form has not been completed"}
		}
		c := *tok.card
		t.card, class, cardExpired = &c, tok.class, tok.cardExpired
		t.parentID = tok.id
	}
	if req.CustomerCardExpMonth != "" && req.CustomerCardExpYear != "" {
		mo, y, _ := parseExpiry(req.CustomerCardExpMonth, req.CustomerCardExpYear)
		cardExpired = cardExpired || expired(mo, y, s.opts.Now())
	}
	return class, cardExpired, nil
}

// settleWithdrawal decides t at once: only the frictionless card, unexpired,
// with the amount within the balance, succeeds and pays from the balance.
// s.mu held.
func (s *Sandbox) settleWithdrawal(t *txn, a *Account, class cardClass, cardExpired bool) {
	switch {
	case cardExpired:
		s.decline(t, declineCardExpired, nil)
	case class != classFrictionless:
		s.decline(t, declineWithdrawal, []cascadeError{{GatePriority: 0, ErrorCategory: declineWithdrawal}})
	case a.Balance < t.amount:
		s.decline(t, declineInsufficientFunds, nil)
	default:
		a.Balance -= t.amount
		s.approve(t)
	}
}

// withdrawalResult is the answer to withdrawal/init for the settled t.
func withdrawalResult(t *txn) withdrawalResponse {
	resp := withdrawalResponse{OrderID: t.orderID, Status: t.status}
	if t.card != nil {
		c := *t.card
		resp.Card = &c
	}
	if t.status == statusFail {
		resp.Err, resp.Msg = ptr(t.errorMessage), ptr(declinedMsg)
	}
	return resp
}

// balance: POST /withdrawal/balance/get — a payout account's balances in cents.
func (s *Sandbox) balance(r *http.Request, merchant string) (any, error) {
	var req balanceRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.require("account", req.Account)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.merchants[merchant].account(req.Account, AccountPayout)
	if err != nil {
		return nil, err
	}
	return balanceResponse{Balance: a.Balance, HoldBalance: a.HoldBalance, RollingBalance: a.RollingBalance}, nil
}
