package smartpay

import (
	"net/http"
	"time"
)

// paymentCall says which documented table a payment request is checked against.
type paymentCall int

const (
	callInitPayment paymentCall = iota
	callHostToHost
	callAuthorize
)

const maxOrderIDLen = 255

// validatePayment checks the fields shared by initPayment, initPaymentHost2Host
// and authorize against the documentation's tables.
func validatePayment(p *problems, f *paymentFields, call paymentCall) {
	p.require("account", f.Account)
	p.check("amount", f.Amount > 0)
	p.check("currency", validCurrency(f.Currency))
	p.require("order_id", f.OrderID)
	p.check("order_id", len(f.OrderID) <= maxOrderIDLen)
	if call != callInitPayment {
		p.require("merchant_site", f.MerchantSite)
	}
	p.require("customer_first_name", f.CustomerFirstName)
	p.require("customer_last_name", f.CustomerLastName)
	p.require("customer_address", f.CustomerAddress)
	p.require("customer_city", f.CustomerCity)
	p.require("customer_zip_code", string(f.CustomerZipCode))
	p.require("customer_country", f.CustomerCountry)
	p.require("customer_phone", f.CustomerPhone)
	p.require("customer_email", f.CustomerEmail)
	if call != callAuthorize { // authorize's table does not list it
		p.require("customer_ip_address", f.CustomerIPAddress)
	}
	p.url("callback_url", f.CallbackURL)
	p.url("success_url", f.SuccessURL)
	p.url("fail_url", f.FailURL)
	p.url("status_url", f.StatusURL)
}

// validateCard checks card fields: holder present, PAN 12–19 digits and
// Luhn-valid, month 1–12, year of 2 or 4 digits, CVV of 3 or 4 digits. An
// expiry in the past is not a validation error: the payment is declined.
func validateCard(p *problems, c *cardFields) {
	p.require("card_holder", c.CardHolder)
	p.check("card_holder", len(c.CardHolder) <= 255)
	p.check("card_number", validPAN(c.CardNumber))
	if _, _, ok := parseExpiry(c.CardExpMonth, "00"); !ok {
		p.add("card_exp_month")
	}
	if _, _, ok := parseExpiry("1", c.CardExpYear); !ok {
		p.add("card_exp_year")
	}
	p.check("card_cvv", validCVV(c.CardCVV))
}

// validateWallet checks a wallet payload and its network.
func validateWallet(p *problems, dpanField, dpan, networkField, network string) {
	p.check(dpanField, validDPAN(dpan))
	_, ok := canonicalNetwork(network)
	p.check(networkField, ok)
}

// validRecurExp accepts an ISO 8601 timestamp or an integer (the documentation
// types the field Long and shows an ISO 8601 example).
func validRecurExp(s string) bool {
	if s == "" || isInteger([]byte(s)) {
		return true
	}
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// newPayment starts a Payment transaction in status 1 from the shared fields.
func (s *Sandbox) newPayment(m *merchantState, f *paymentFields, method string) *txn {
	return &txn{
		id:          newID(),
		merchant:    m.key,
		orderID:     f.OrderID,
		typ:         typePayment,
		method:      method,
		account:     f.Account,
		currency:    f.Currency,
		amount:      f.Amount,
		status:      statusProcessing,
		recurrent:   f.Recurrent,
		firstName:   f.CustomerFirstName,
		lastName:    f.CustomerLastName,
		callbackURL: f.CallbackURL,
		successURL:  f.SuccessURL,
		failURL:     f.FailURL,
		created:     s.opts.Now(),
	}
}

// openPayment checks account, currency and order id uniqueness. s.mu held.
func (s *Sandbox) openPayment(m *merchantState, f *paymentFields) error {
	a, err := m.account(f.Account, AccountPayment)
	if err != nil {
		return err
	}
	if a.Currency != f.Currency {
		return &apiError{status: http.StatusBadRequest, code: codeCurrencyMismatch, msg: "currency does not match the account", fields: []string{"currency"}}
	}
	if m.orders[f.OrderID] != nil {
		return errDuplicateOrder
	}
	return nil
}

// payWithCard decides a card payment per the test-card table: the
// frictionless card succeeds at once, the challenge card waits on the
// challenge page, every other card and any expired card is declined.
// The PAN is used here and not kept. s.mu held.
func (s *Sandbox) payWithCard(t *txn, number, month, year string) {
	t.card = cardInfoFor(number)
	if m, y, _ := parseExpiry(month, year); expired(m, y, s.opts.Now()) {
		s.decline(t, declineCardExpired, nil)
		return
	}
	switch classify(number) {
	case classFrictionless:
		s.approve(t)
	case classChallenge:
		t.pending = pendingChallenge
	default:
		s.decline(t, declineGateNotFound, docCascade())
	}
}

// payWithWallet decides a wallet payment: Visa and Mastercard succeed
// (frictionless), other known networks are declined as unavailable. s.mu held.
func (s *Sandbox) payWithWallet(t *txn, network string) {
	n, _ := canonicalNetwork(network)
	t.card = walletCardInfo(n)
	if n == "Visa" || n == "Mastercard" {
		s.approve(t)
		return
	}
	s.decline(t, declineBrandUnavailable, []cascadeError{{GatePriority: 0, ErrorCategory: declineBrandUnavailable}})
}

const declinedMsg = "transaction declined"

// paymentResult is the answer to initPaymentHost2Host and authorize.
func (s *Sandbox) paymentResult(t *txn, base string) paymentResponse {
	resp := paymentResponse{OrderID: t.id, Status: t.status, Description: ""}
	switch {
	case t.pending == pendingChallenge:
		link := base + challengePrefix + t.id
		resp.FormURL, resp.ACSURL, resp.MD = ptr(link), ptr(link), ptr(t.id)
		resp.ResponseType = responseRedirect
	case t.status == statusSuccess:
		resp.ResponseType = responseSuccess
	case t.status == statusFail:
		resp.ResponseType = responseFail
		resp.Err, resp.Msg = ptr(t.errorMessage), ptr(declinedMsg)
	case t.authStatus == authorizeAuthorized:
		resp.ResponseType = responseAuthorized
	}
	if !t.ended.IsZero() {
		resp.EndDate = ptr(formatTime(t.ended))
	}
	return resp
}

// initPayment: POST /initPayment — a hosted payment form; the customer enters
// the card on the sandbox's form page.
func (s *Sandbox) initPayment(r *http.Request, merchant string) (any, error) {
	var req initPaymentRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	validatePayment(&p, &req.paymentFields, callInitPayment)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	if err := s.openPayment(m, &req.paymentFields); err != nil {
		return nil, err
	}
	t := s.newPayment(m, &req.paymentFields, methodCard)
	t.pending = pendingForm
	s.insert(m, t)
	return initPaymentResponse{
		Status:       statusProcessing,
		FormURL:      ptr(s.baseURL(r) + payFormPrefix + t.id),
		OrderID:      t.orderID,
		ResponseType: responseRedirect,
	}, nil
}

// initPaymentHost2Host: POST /initPaymentHost2Host — card or wallet data sent
// by the merchant.
func (s *Sandbox) initPaymentHost2Host(r *http.Request, merchant string) (any, error) {
	var req hostToHostRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	method := req.PaymentMethod
	if method == "" {
		method = methodCard
	}
	var p problems
	validatePayment(&p, &req.paymentFields, callHostToHost)
	switch method {
	case methodCard:
		validateCard(&p, &req.cardFields)
	case methodApplePay:
		validateWallet(&p, "apple_pay_dpan", req.ApplePayDPAN, "apple_pay_payment_method_network", req.ApplePayMethodNetwork)
	case methodGooglePay:
		validateWallet(&p, "google_pay_dpan", req.GooglePayDPAN, "google_pay_payment_method_network", req.GooglePayMethodNetwork)
	default:
		p.add("payment_method")
	}
	p.check("recur_freq", req.RecurFreq == nil || *req.RecurFreq > 0)
	p.check("recur_exp", validRecurExp(string(req.RecurExp)))
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	if err := s.openPayment(m, &req.paymentFields); err != nil {
		return nil, err
	}
	t := s.newPayment(m, &req.paymentFields, method)
	switch method {
	case methodCard:
		s.payWithCard(t, req.CardNumber, req.CardExpMonth, req.CardExpYear)
	case methodApplePay:
		s.payWithWallet(t, req.ApplePayMethodNetwork)
	case methodGooglePay:
		s.payWithWallet(t, req.GooglePayMethodNetwork)
	}
	s.insert(m, t)
	return s.paymentResult(t, s.baseURL(r)), nil
}

// authorize: POST /authorize — first step of authorize-capture, card only.
// Success leaves the order in status 1 with authorize_status "authorized".
func (s *Sandbox) authorize(r *http.Request, merchant string) (any, error) {
	var req authorizeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	validatePayment(&p, &req.paymentFields, callAuthorize)
	validateCard(&p, &req.cardFields)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	if err := s.openPayment(m, &req.paymentFields); err != nil {
		return nil, err
	}
	t := s.newPayment(m, &req.paymentFields, methodCard)
	t.authorize = true
	s.payWithCard(t, req.CardNumber, req.CardExpMonth, req.CardExpYear)
	s.insert(m, t)
	return s.paymentResult(t, s.baseURL(r)), nil
}

// check: POST /check — the order's current state. order_id may be the
// merchant's order id, the sandbox's transaction id, or a refund_id/payment_id.
func (s *Sandbox) check(r *http.Request, merchant string) (any, error) {
	var req checkRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.require("order_id", req.OrderID)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.lookup(s.merchants[merchant], req.OrderID)
	if t == nil {
		return nil, notFound("order")
	}
	return t.view(), nil
}

// authorized finds an authorized, not yet captured or cancelled order. s.mu held.
func (s *Sandbox) authorized(merchant, ref string) (*txn, error) {
	t := s.lookup(s.merchants[merchant], ref)
	if t == nil {
		return nil, notFound("order")
	}
	if !t.authorize || t.authStatus != authorizeAuthorized || t.status != statusProcessing {
		return nil, invalidState("order is not an authorized, uncaptured payment")
	}
	return t, nil
}

// capture: POST /capture — captures the whole authorized amount or a part of it.
func (s *Sandbox) capture(r *http.Request, merchant string) (any, error) {
	var req captureRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.require("order_id", req.OrderID)
	p.check("amount", req.Amount == nil || *req.Amount > 0)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.authorized(merchant, req.OrderID)
	if err != nil {
		return nil, err
	}
	amount := t.amount
	if req.Amount != nil {
		amount = int64(*req.Amount)
	}
	if amount > t.amount {
		return nil, &apiError{status: http.StatusBadRequest, code: codeAmountExceeds, msg: "amount exceeds the authorized amount", fields: []string{"amount"}}
	}
	t.captured = amount
	t.authStatus = authorizeCaptured
	t.status = statusSuccess
	t.ended = s.opts.Now()
	s.notify(t)
	return captureResponse{OrderID: t.id, Status: t.status}, nil
}

// cancel: POST /cancel — voids an authorization; the order ends in status -1.
func (s *Sandbox) cancel(r *http.Request, merchant string) (any, error) {
	var req cancelRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.require("order_id", req.OrderID)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.authorized(merchant, req.OrderID)
	if err != nil {
		return nil, err
	}
	t.authStatus = authorizeCancelled
	t.status = statusFail
	t.ended = s.opts.Now()
	s.notify(t)
	return cancelResponse{OrderID: t.id, Status: t.status}, nil
}

// refund: POST /refund — refunds part or all of a successful payment. Each
// refund is a Refund transaction in status 2 whose order_id is its refund_id.
func (s *Sandbox) refund(r *http.Request, merchant string) (any, error) {
	var req refundRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.require("order_id", req.OrderID)
	p.check("amount", req.Amount > 0)
	p.require("reason", req.Reason)
	p.url("callback_url", req.CallbackURL)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	parent := s.lookup(m, req.OrderID)
	if parent == nil {
		return nil, notFound("order")
	}
	if parent.typ != typePayment || parent.status != statusSuccess {
		return nil, invalidState("only a successful payment can be refunded")
	}
	if req.Amount > parent.charged()-parent.refunded {
		return nil, &apiError{status: http.StatusBadRequest, code: codeAmountExceeds, msg: "amount exceeds the refundable amount", fields: []string{"amount"}}
	}
	parent.refunded += req.Amount
	id := newUUID()
	now := s.opts.Now()
	t := &txn{
		id: newID(), alias: id, merchant: m.key, orderID: id, typ: typeRefund,
		method: parent.method, account: parent.account, currency: parent.currency,
		amount: req.Amount, status: statusSuccess, card: parent.card,
		firstName: parent.firstName, lastName: parent.lastName,
		callbackURL: req.CallbackURL, parentID: parent.id, created: now, ended: now,
	}
	s.insert(m, t)
	s.notify(t)
	return refundResponse{Success: true, RefundID: id, ParentTransaction: parent.id}, nil
}

var recurPeriods = map[string]bool{recurDaily: true, recurWeekly: true, recurMonthly: true, recurQuarterly: true, recurAnnually: true}

// recurrent: POST /recurrent — a merchant-initiated payment on the card of a
// successful payment made with recurrent=true. It succeeds at once and can in
// turn be a parent.
func (s *Sandbox) recurrent(r *http.Request, merchant string) (any, error) {
	var req recurrentRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.require("order_id", req.OrderID)
	p.check("order_id", len(req.OrderID) <= maxOrderIDLen)
	p.require("parent_order_id", req.ParentOrderID)
	p.check("amount", req.Amount > 0)
	p.require("purpose", req.Purpose)
	p.check("recur_period", req.RecurPeriod == "" || recurPeriods[req.RecurPeriod])
	p.url("callback_url", req.CallbackURL)
	if err := p.err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	parent := s.lookup(m, req.ParentOrderID)
	if parent == nil {
		return nil, notFound("parent order")
	}
	if parent.typ != typePayment || parent.status != statusSuccess || !parent.recurrent {
		return nil, invalidState("parent is not a successful recurrent payment")
	}
	if m.orders[req.OrderID] != nil {
		return nil, errDuplicateOrder
	}
	id := newUUID()
	now := s.opts.Now()
	t := &txn{
		id: newID(), alias: id, merchant: m.key, orderID: req.OrderID, typ: typePayment,
		method: parent.method, account: parent.account, currency: parent.currency,
		amount: req.Amount, status: statusSuccess, recurrent: true, card: parent.card,
		firstName: parent.firstName, lastName: parent.lastName,
		callbackURL: req.CallbackURL, parentID: parent.id, created: now, ended: now,
	}
	s.insert(m, t)
	s.notify(t)
	return recurrentResponse{Success: true, PaymentID: id}, nil
}
