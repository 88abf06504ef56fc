package smartpay

import (
	"net/http"
	"time"
)

// Pending steps a processing transaction waits for.
const (
	pendingNone      = ""
	pendingForm      = "form"      // initPayment: the customer has not submitted the payment form
	pendingChallenge = "challenge" // 3-D Secure challenge not yet answered
	pendingTokenize  = "tokenize"  // withdrawal tokenize-form not yet submitted
)

// txn is one transaction. It never holds a PAN, CVV or wallet payload: only
// the masked card and the sandbox's verdict on it.
type txn struct {
	id       string // sandbox transaction id (24 hex digits)
	alias    string // refund_id or payment_id (UUID), when the call hands one out
	merchant string
	orderID  string // merchant order_id (refund_id for refunds)
	typ      string // typePayment, typeWithdrawal, typeRefund or typeTokenization
	method   string
	account  string
	currency string

	amount   int64 // requested (authorized) amount, cents
	captured int64 // captured amount of an authorize-capture payment
	refunded int64 // sum of refunds of this payment

	status     status
	authorize  bool   // created by /authorize
	authStatus string // AuthorizeAuthorized, AuthorizeCaptured, AuthorizeCancelled or ""
	recurrent  bool
	pending    string

	card         *cardInfo
	class        cardClass // tokenization: verdict for later withdrawals
	cardExpired  bool      // tokenization: the card's expiry had passed
	errorMessage string
	cascade      []cascadeError

	firstName, lastName string
	callbackURL         string
	successURL, failURL string
	parentID            string

	created, ended time.Time
}

// charged is the amount the transaction moved: the captured amount of a
// captured authorization, else the amount.
func (t *txn) charged() int64 {
	if t.authStatus == authorizeCaptured {
		return t.captured
	}
	return t.amount
}

// view is the check response (and callback body) for t.
func (t *txn) view() checkResponse {
	v := checkResponse{
		OrderID:   t.orderID,
		Status:    t.status,
		Amount:    t.charged(),
		Type:      t.typ,
		FirstName: t.firstName,
		LastName:  t.lastName,
	}
	if t.card != nil {
		c := *t.card
		v.Card = &c
	}
	if t.errorMessage != "" {
		v.ErrorMessage = ptr(t.errorMessage)
		v.CascadeErrors = append([]cascadeError(nil), t.cascade...)
	}
	if !t.ended.IsZero() {
		v.EndDate = ptr(formatTime(t.ended))
	}
	if t.authStatus != "" {
		v.AuthorizeStatus = ptr(t.authStatus)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// formatTime renders times as the documentation does: "2023-07-04T13:22:07.087Z".
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// docCascade is the cascade of a declined payment, as in the documentation.
func docCascade() []cascadeError {
	return []cascadeError{
		{GatePriority: 0, ErrorCategory: declineAntifraudRules},
		{GatePriority: 1, ErrorCategory: declineGateSkipped},
		{GatePriority: 2, ErrorCategory: declineBrandUnavailable},
	}
}

// The helpers below run with s.mu held.

// insert registers t under its order id, its id and its alias.
func (s *Sandbox) insert(m *merchantState, t *txn) {
	m.orders[t.orderID] = t
	s.byID[t.id] = t
	if t.alias != "" {
		s.byID[t.alias] = t
	}
}

// lookup finds a merchant's transaction by order_id, transaction id or alias.
// Another merchant's transaction is not found.
func (s *Sandbox) lookup(m *merchantState, ref string) *txn {
	if t := m.orders[ref]; t != nil {
		return t
	}
	if t := s.byID[ref]; t != nil && t.merchant == m.key {
		return t
	}
	return nil
}

// account returns the merchant's account name of type typ.
func (m *merchantState) account(name string, typ AccountType) (*Account, error) {
	a := m.accounts[name]
	if a == nil {
		return nil, &apiError{status: http.StatusBadRequest, code: codeAccountNotFound, msg: "account not found for this merchant", fields: []string{"account"}}
	}
	if a.Type != typ {
		return nil, &apiError{status: http.StatusBadRequest, code: codeAccountType, msg: "account is not a " + string(typ) + " account", fields: []string{"account"}}
	}
	return a, nil
}

// approve moves t to its success state: status 2, or authorized (status 1)
// for an authorization.
func (s *Sandbox) approve(t *txn) {
	t.pending = pendingNone
	if t.authorize {
		t.authStatus = authorizeAuthorized
	} else {
		t.status = statusSuccess
		t.ended = s.opts.Now()
	}
	s.notify(t)
}

// decline moves t to status -1 with reason code.
func (s *Sandbox) decline(t *txn, code string, cascade []cascadeError) {
	t.pending = pendingNone
	t.status = statusFail
	t.errorMessage = code
	t.cascade = cascade
	t.ended = s.opts.Now()
	s.notify(t)
}
