package smartpay

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// Browser pages the sandbox links to. They are not behind Basic auth: like the
// real hosted pages they are reached through an unguessable id.
const (
	payFormPrefix    = "/sandbox/pay/"
	challengePrefix  = "/sandbox/challenge/"
	tokenizePrefix   = "/sandbox/tokenize/"
	payFormPath      = payFormPrefix + "{id}"
	challengePath    = challengePrefix + "{id}"
	tokenizePagePath = tokenizePrefix + "{id}"
)

// Form values of the challenge page.
const (
	challengeSuccess = "success"
	challengeFail    = "fail"
)

type pageData struct {
	Kind     string // "pay", "challenge", "tokenize", "result"
	Title    string
	Message  string
	OrderID  string
	Amount   string
	Problems []string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · SmartPayments sandbox</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto}label{display:block;margin:.5em 0}button{margin:.5em .5em 0 0}</style>
</head><body>
<h1>{{.Title}}</h1>
{{if .OrderID}}<p>Order <code>{{.OrderID}}</code>{{if .Amount}}: {{.Amount}}{{end}}</p>{{end}}
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Problems}}<p role="alert">Please correct: {{range $i, $f := .Problems}}{{if $i}}, {{end}}{{$f}}{{end}}</p>{{end}}
{{if eq .Kind "pay"}}<form method="post" autocomplete="off">
<label>Card holder <input name="card_holder" required></label>
<label>Card number <input name="card_number" inputmode="numeric" required></label>
<label>Expiry month <input name="card_exp_month" size="2" required></label>
<label>Expiry year <input name="card_exp_year" size="4" required></label>
<label>CVV <input name="card_cvv" size="4" inputmode="numeric" required></label>
<button type="submit">Pay</button></form>{{end}}
{{if eq .Kind "tokenize"}}<form method="post" autocomplete="off">
<label>Card number <input name="card_number" inputmode="numeric" required></label>
<label>Expiry month <input name="card_exp_month" size="2"></label>
<label>Expiry year <input name="card_exp_year" size="4"></label>
<button type="submit">Save card</button></form>{{end}}
{{if eq .Kind "challenge"}}<p>3-D Secure test challenge: choose the outcome.</p>
<form method="post"><button name="decision" value="success" type="submit">Authenticate (success)</button>
<button name="decision" value="fail" type="submit">Fail authentication</button></form>{{end}}
</body></html>
`))

func renderPage(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, d)
}

func formatAmount(cents int64, currency string) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, currency)
}

// pageTxn finds the transaction of a page by its id, if it waits for step.
// s.mu held.
func (s *Sandbox) pageTxn(r *http.Request, step string) (*txn, *pageData) {
	t := s.byID[mux.Vars(r)["id"]]
	if t == nil || t.id != mux.Vars(r)["id"] {
		return nil, &pageData{Kind: "result", Title: "Not found", Message: "There is no such order."}
	}
	if t.pending != step {
		return nil, &pageData{Kind: "result", Title: "Already completed", OrderID: t.orderID, Message: "This order no longer waits for this step."}
	}
	return t, nil
}

// outcome is what a page shows, or where it sends the browser, after a step.
type outcome struct {
	redirect string
	page     pageData
	status   int
}

// finished describes t after its last step: a redirect to success_url or
// fail_url when the merchant gave one, else a result page. s.mu held.
func finished(t *txn, base string) outcome {
	if t.pending == pendingChallenge {
		return outcome{redirect: base + challengePrefix + t.id}
	}
	ok := t.status == statusSuccess || t.authStatus == authorizeAuthorized
	target, title, msg := t.failURL, "Payment failed", "The transaction was declined."
	if ok {
		target, title, msg = t.successURL, "Payment successful", "The transaction succeeded."
	}
	if t.typ == typeTokenization {
		title, msg = "Card saved", "The card can now receive withdrawals."
	}
	if target != "" {
		return outcome{redirect: target}
	}
	return outcome{status: http.StatusOK, page: pageData{Kind: "result", Title: title, OrderID: t.orderID, Message: msg}}
}

func (s *Sandbox) respond(w http.ResponseWriter, r *http.Request, o outcome) {
	s.flush()
	if o.redirect != "" {
		http.Redirect(w, r, o.redirect, http.StatusSeeOther)
		return
	}
	renderPage(w, o.status, o.page)
}

// compactDigits drops the spaces and dashes a person types into a card number.
func compactDigits(s string) string {
	return strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(s))
}

// payForm: GET shows the hosted payment form of an initPayment order; POST
// takes the card and decides the payment as initPaymentHost2Host would.
func (s *Sandbox) payForm(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
	}
	s.mu.Lock()
	t, bad := s.pageTxn(r, pendingForm)
	if bad != nil {
		s.mu.Unlock()
		renderPage(w, http.StatusNotFound, *bad)
		return
	}
	d := pageData{Kind: "pay", Title: "Payment", OrderID: t.orderID, Amount: formatAmount(t.amount, t.currency)}
	if r.Method == http.MethodGet {
		s.mu.Unlock()
		renderPage(w, http.StatusOK, d)
		return
	}
	c := cardFields{
		CardHolder:   strings.TrimSpace(r.PostForm.Get("card_holder")),
		CardNumber:   compactDigits(r.PostForm.Get("card_number")),
		CardExpMonth: strings.TrimSpace(r.PostForm.Get("card_exp_month")),
		CardExpYear:  strings.TrimSpace(r.PostForm.Get("card_exp_year")),
		CardCVV:      strings.TrimSpace(r.PostForm.Get("card_cvv")),
	}
	var p problems
	validateCard(&p, &c)
	if len(p) > 0 {
		s.mu.Unlock()
		d.Problems = p
		renderPage(w, http.StatusBadRequest, d)
		return
	}
	t.pending = pendingNone
	s.payWithCard(t, c.CardNumber, c.CardExpMonth, c.CardExpYear)
	o := finished(t, s.baseURL(r))
	s.mu.Unlock()
	s.respond(w, r, o)
}

// challenge: GET shows the 3-D Secure test challenge with a success and a
// fail button; POST decision=success|fail settles the order.
func (s *Sandbox) challenge(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
	}
	s.mu.Lock()
	t, bad := s.pageTxn(r, pendingChallenge)
	if bad != nil {
		s.mu.Unlock()
		renderPage(w, http.StatusNotFound, *bad)
		return
	}
	d := pageData{Kind: "challenge", Title: "3-D Secure", OrderID: t.orderID, Amount: formatAmount(t.amount, t.currency)}
	if r.Method == http.MethodGet {
		s.mu.Unlock()
		renderPage(w, http.StatusOK, d)
		return
	}
	switch r.PostForm.Get("decision") {
	case challengeSuccess:
		s.approve(t)
	case challengeFail:
		s.decline(t, decline3DSFailed, nil)
	default:
		s.mu.Unlock()
		d.Problems = []string{"decision"}
		renderPage(w, http.StatusBadRequest, d)
		return
	}
	o := finished(t, s.baseURL(r))
	s.mu.Unlock()
	s.respond(w, r, o)
}

// tokenizePage: GET shows the withdrawal tokenization form; POST stores the
// masked card and the sandbox's verdict on it (never the PAN) and completes
// the Tokenization order (status 2).
func (s *Sandbox) tokenizePage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
	}
	s.mu.Lock()
	t, bad := s.pageTxn(r, pendingTokenize)
	if bad != nil {
		s.mu.Unlock()
		renderPage(w, http.StatusNotFound, *bad)
		return
	}
	d := pageData{Kind: "tokenize", Title: "Withdrawal card", OrderID: t.orderID}
	if r.Method == http.MethodGet {
		s.mu.Unlock()
		renderPage(w, http.StatusOK, d)
		return
	}
	number := compactDigits(r.PostForm.Get("card_number"))
	month := strings.TrimSpace(r.PostForm.Get("card_exp_month"))
	year := strings.TrimSpace(r.PostForm.Get("card_exp_year"))
	var p problems
	p.check("card_number", validPAN(number))
	if month != "" || year != "" {
		if _, _, ok := parseExpiry(month, "00"); !ok {
			p.add("card_exp_month")
		}
		if _, _, ok := parseExpiry("1", year); !ok {
			p.add("card_exp_year")
		}
	}
	if len(p) > 0 {
		s.mu.Unlock()
		d.Problems = p
		renderPage(w, http.StatusBadRequest, d)
		return
	}
	t.card = cardInfoFor(number)
	t.class = classify(number)
	if month != "" {
		mo, y, _ := parseExpiry(month, year)
		t.cardExpired = expired(mo, y, s.opts.Now())
	}
	t.pending = pendingNone
	t.status = statusSuccess
	t.ended = s.opts.Now()
	s.notify(t)
	o := finished(t, s.baseURL(r))
	s.mu.Unlock()
	s.respond(w, r, o)
}
