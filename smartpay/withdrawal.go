package smartpay

import (
	"net/http"
)

// tokenizeForm: POST /withdrawal/tokenize-form — a page on which the customer
// enters the card that later withdrawals (payment_method "token") pay out to.
// The order is a Tokenization transaction in status 1 until the form is
// submitted, then 2.
func (s *Sandbox) tokenizeForm(r *http.Request, merchant string) (any, error) {
	var req TokenizeFormRequest
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
	a, err := m.account(req.Account, AccountPayout)
	if err != nil {
		return nil, err
	}
	if m.orders[req.OrderID] != nil {
		return nil, errDuplicateOrder
	}
	t := &txn{
		id: newID(), merchant: m.key, orderID: req.OrderID, typ: TypeTokenization,
		method: MethodCard, account: a.Name, currency: a.Currency, status: StatusProcessing,
		pending: pendingTokenize, callbackURL: req.CallbackURL,
		successURL: req.SuccessURL, failURL: req.FailURL, created: s.opts.Now(),
	}
	s.insert(m, t)
	return TokenizeFormResponse{
		FormURL:      ptr(s.baseURL(r) + tokenizePrefix + t.id),
		OrderID:      t.id,
		Status:       StatusProcessing,
		ResponseType: ResponseRedirect,
	}, nil
}

// withdrawalInit: POST /withdrawal/init — a payout to a card (customer_card_number)
// or to a card tokenized by a tokenize-form order. The frictionless test card
// succeeds at once (status 2) and lowers the account balance by amount; any
// other card, an expired card, or an amount above the balance fails (status -1)
// and leaves the balance alone.
func (s *Sandbox) withdrawalInit(r *http.Request, merchant string) (any, error) {
	var req WithdrawalRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	method := req.PaymentMethod
	if method == "" {
		method = MethodCard
	}
	var p problems
	p.require("account", req.Account)
	p.check("amount", req.Amount > 0)
	p.require("order_id", req.OrderID)
	p.check("order_id", len(req.OrderID) <= maxOrderIDLen)
	switch method {
	case MethodCard:
		p.check("customer_card_number", validPAN(req.CustomerCardNumber))
	case MethodToken:
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
	if err := p.err(); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	a, err := m.account(req.Account, AccountPayout)
	if err != nil {
		return nil, err
	}
	if m.orders[req.OrderID] != nil {
		return nil, errDuplicateOrder
	}
	t := &txn{
		id: newID(), merchant: m.key, orderID: req.OrderID, typ: TypeWithdrawal,
		method: method, account: a.Name, currency: a.Currency, amount: req.Amount,
		status: StatusProcessing, firstName: req.CustomerFirstName, lastName: req.CustomerLastName,
		callbackURL: req.CallbackURL, created: s.opts.Now(),
	}
	var class cardClass
	var cardExpired bool
	switch method {
	case MethodCard:
		t.card = cardInfoFor(req.CustomerCardNumber)
		class = classify(req.CustomerCardNumber)
	case MethodToken:
		tok := s.lookup(m, req.TokenizeTransactionOrderID)
		if tok == nil || tok.typ != TypeTokenization {
			return nil, notFound("tokenization order")
		}
		if tok.status != StatusSuccess {
			return nil, &apiError{status: http.StatusConflict, code: CodeTokenizeNotComplete, msg: "the tokenization form has not been completed"}
		}
		c := *tok.card
		t.card, class, cardExpired = &c, tok.class, tok.cardExpired
		t.parentID = tok.id
	}
	if req.CustomerCardExpMonth != "" && req.CustomerCardExpYear != "" {
		mo, y, _ := parseExpiry(req.CustomerCardExpMonth, req.CustomerCardExpYear)
		cardExpired = cardExpired || expired(mo, y, s.opts.Now())
	}
	s.insert(m, t)
	switch {
	case cardExpired:
		s.decline(t, DeclineCardExpired, nil)
	case class != classFrictionless:
		s.decline(t, DeclineWithdrawal, []CascadeError{{GatePriority: 0, ErrorCategory: DeclineWithdrawal}})
	case a.Balance < req.Amount:
		s.decline(t, DeclineInsufficientFunds, nil)
	default:
		a.Balance -= req.Amount
		s.approve(t)
	}
	resp := WithdrawalResponse{OrderID: t.orderID, Status: t.status}
	if t.card != nil {
		c := *t.card
		resp.Card = &c
	}
	if t.status == StatusFail {
		resp.Err, resp.Msg = ptr(t.errorMessage), ptr(declinedMsg)
	}
	return resp, nil
}

// balance: POST /withdrawal/balance/get — a payout account's balances in cents.
func (s *Sandbox) balance(r *http.Request, merchant string) (any, error) {
	var req BalanceRequest
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
	return BalanceResponse{Balance: a.Balance, HoldBalance: a.HoldBalance, RollingBalance: a.RollingBalance}, nil
}
