package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
)

// The order every payment is for.
const (
	amountCents = 1000
	currency    = "EUR"
	amountText  = "10.00 EUR"
)

// Shapes of what the backend accepts or shows. tokenID: anything else (a card
// number above all) is refused before the backend sends it anywhere.
var (
	tokenID   = regexp.MustCompile(`^tok_[0-9A-Za-z]{16,64}$`)
	lastFour  = regexp.MustCompile(`^[0-9]{4}$`)
	codeShape = regexp.MustCompile(`^[A-Za-z_]{1,64}$`)
)

// result is a payment's outcome as the page shows it: no card data, only the
// token's brand and last four digits.
type result struct {
	Status   string     `json:"status"` // success | declined | failed | redirect | pending
	Title    string     `json:"title"`
	Detail   string     `json:"detail"`
	Redirect string     `json:"redirect,omitempty"` // the sandbox's challenge page
	Saved    *savedCard `json:"saved,omitempty"`
}

// MarshalJSON of savedCard leaves the token id on the server.
func (c savedCard) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Brand string `json:"brand"`
		Last4 string `json:"last4"`
	}{c.Brand, c.Last4})
}

// Label is how the page names the card: "Visa •••• 3010".
func (c savedCard) Label() string {
	brand := c.Brand
	if brand != "" {
		brand = strings.ToUpper(brand[:1]) + brand[1:]
	}
	return brand + " •••• " + c.Last4
}

// apiError is a refusal of the demo backend, with a stable code.
type apiError struct {
	status int
	code   string
}

func (e *apiError) Error() string { return e.code }

var (
	errForbidden = &apiError{http.StatusForbidden, "origin_not_allowed"}
	errBadInput  = &apiError{http.StatusBadRequest, "invalid_request"}
	errNoCard    = &apiError{http.StatusNotFound, "no_saved_card"}
	errUpstream  = &apiError{http.StatusBadGateway, "payment_unavailable"}
)

// api wraps a JSON route: same-origin calls only (the page's own fetch), a small
// body, one error shape.
func (d *Demo) api(h func(r *http.Request, customer string, body map[string]string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		out, err := d.serveAPI(w, r, h)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				d.cfg.Log.WithError(err).Warn("demo: backend call failed")
				ae = errUpstream
			}
			w.WriteHeader(ae.status)
			out = map[string]any{"error": map[string]string{"code": ae.code}}
		}
		_ = json.NewEncoder(w).Encode(out)
	}
}

func (d *Demo) serveAPI(w http.ResponseWriter, r *http.Request, h func(*http.Request, string, map[string]string) (any, error)) (any, error) {
	if r.Header.Get("Origin") != d.cfg.Origin {
		return nil, errForbidden
	}
	c, err := r.Cookie(customerCookie)
	if err != nil {
		return nil, errForbidden
	}
	body := map[string]string{}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return nil, errBadInput
	}
	return h(r, c.Value, body)
}

// pay is the first payment: the page sends only the token tokenize() gave it;
// the backend reads its metadata (for the receipt), pays, and keeps the card on file.
func (d *Demo) pay(r *http.Request, customer string, body map[string]string) (any, error) {
	tok := body["token"]
	if !tokenID.MatchString(tok) {
		return nil, errBadInput
	}
	var meta struct {
		Card struct {
			Brand string `json:"brand"`
			Last4 string `json:"last4"`
		} `json:"card"`
	}
	status, err := d.forward(r.Context(), http.MethodGet, "/v1/tokens/"+tok, nil, &meta)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK || !lastFour.MatchString(meta.Card.Last4) || !codeShape.MatchString(meta.Card.Brand) {
		return nil, errBadInput // not this merchant's card token
	}
	return d.charge(r, customer, savedCard{Token: tok, Brand: meta.Card.Brand, Last4: meta.Card.Last4})
}

// cvvSession asks chdproxy for a one-shot CVV session of the saved card: the
// page mounts the CVV-only field with it and never needs the token id.
func (d *Demo) cvvSession(r *http.Request, customer string, _ map[string]string) (any, error) {
	c, ok := d.savedCard(customer)
	if !ok {
		return nil, errNoCard
	}
	var out struct {
		Session string `json:"session"`
	}
	status, err := d.forward(r.Context(), http.MethodPost, "/v1/tokens/"+c.Token+"/cvv-sessions", struct{}{}, &out)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated || !strings.HasPrefix(out.Session, "cvs_") {
		return nil, fmt.Errorf("demo: cvv-sessions answered %d", status)
	}
	return map[string]string{"session": out.Session}, nil
}

// payAgain pays with the saved card once the CVV frame attached a fresh CVV.
func (d *Demo) payAgain(r *http.Request, customer string, _ map[string]string) (any, error) {
	c, ok := d.savedCard(customer)
	if !ok {
		return nil, errNoCard
	}
	return d.charge(r, customer, c)
}

// charge sends initPaymentHost2Host through the forward listener with the token
// in place of the card number and CVV (chdproxy fills expiry and holder).
func (d *Demo) charge(r *http.Request, customer string, c savedCard) (*result, error) {
	order := "demo-" + randomID(8)
	back := d.cfg.Origin + "/return?order=" + order
	req := map[string]any{
		"payment_method": "card", "account": d.cfg.Account, "amount": amountCents, "currency": currency,
		"order_id": order, "merchant_site": d.cfg.Origin, "success_url": back, "fail_url": back,
		"customer_first_name": "Jane", "customer_last_name": "Shopper", "customer_address": "1 Demo Street",
		"customer_city": "London", "customer_zip_code": "121165", "customer_country": "GB",
		"customer_phone": "+442079460612", "customer_email": "jane@example.com", "customer_ip_address": clientIP(r),
		"card_number": c.Token, "card_cvv": c.Token,
	}
	var ans struct {
		Status       int             `json:"status"`
		ResponseType string          `json:"responseType"`
		FormURL      *string         `json:"form_url"`
		Err          *string         `json:"err"`
		Error        json.RawMessage `json:"error"` // chdproxy's own refusal
	}
	status, err := d.forward(r.Context(), http.MethodPost, "/initPaymentHost2Host", req, &ans)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusOK && ans.Status == 2:
		d.save(customer, c)
		return &result{Status: "success", Title: "Payment successful", Detail: c.Label() + " paid " + amountText + ".", Saved: &c}, nil
	case status == http.StatusOK && ans.Status == 1 && ans.FormURL != nil:
		if _, err := originOf(*ans.FormURL); err != nil {
			return nil, errors.New("demo: the challenge URL is not an http(s) URL")
		}
		d.remember(order, pendingOrder{customer: customer, card: c})
		return &result{Status: "redirect", Title: "3-D Secure", Detail: "Your bank asks you to confirm the payment.", Redirect: *ans.FormURL}, nil
	case status == http.StatusOK:
		return &result{Status: "declined", Title: "Payment declined", Detail: c.Label() + ": " + shown(ans.Err) + "."}, nil
	}
	return &result{Status: "failed", Title: "Payment failed", Detail: "chdproxy answered " + refusalCode(ans.Error, status) + "."}, nil
}

// returned is where the sandbox sends the shopper after the challenge. The
// query names the order only: its outcome is asked of SmartPayments (/check).
func (d *Demo) returned(w http.ResponseWriter, r *http.Request) {
	customer := d.customer(w, r)
	order := r.URL.Query().Get("order")
	p, ok := d.takePending(order)
	if !ok {
		d.render(w, customer, &result{Status: "failed", Title: "Unknown order", Detail: "This order is not waiting for a challenge."})
		return
	}
	var ans struct {
		Status       int     `json:"status"`
		ErrorMessage *string `json:"errorMessage"`
	}
	status, err := d.forward(r.Context(), http.MethodPost, "/check", map[string]string{"order_id": order}, &ans)
	switch {
	case err != nil || status != http.StatusOK:
		d.render(w, customer, &result{Status: "failed", Title: "Payment status unknown", Detail: "Please check the order later."})
	case ans.Status == 2:
		d.save(p.customer, p.card)
		d.render(w, customer, &result{Status: "success", Title: "Payment successful", Detail: p.card.Label() + " paid " + amountText + " after 3-D Secure."})
	case ans.Status == -1:
		d.render(w, customer, &result{Status: "declined", Title: "Payment declined", Detail: p.card.Label() + ": " + shown(ans.ErrorMessage) + "."})
	default:
		d.render(w, customer, &result{Status: "pending", Title: "Payment pending", Detail: "The payment is still being processed."})
	}
}

func (d *Demo) remember(order string, p pendingOrder) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) < maxEntries {
		d.pending[order] = p
	}
}

func (d *Demo) takePending(order string) (pendingOrder, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pending[order]
	delete(d.pending, order)
	return p, ok
}

// forward sends body (JSON, when not nil) to path on the forward listener with the
// secret key and the merchant's own SmartPayments credentials, and decodes the
// answer into out.
func (d *Demo) forward(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.cfg.ForwardURL+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Proxy-Authorization", "Bearer "+d.cfg.SecretKey)
	req.Header.Set("Authorization", d.cfg.UpstreamAuth)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, errors.New("demo: the forward listener did not answer") // its text would name the URL
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	return resp.StatusCode, nil
}

// refusalCode is the stable code of a chdproxy error answer, else the status.
func refusalCode(raw json.RawMessage, status int) string {
	var e struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(raw, &e) == nil && codeShape.MatchString(e.Code) {
		return e.Code
	}
	return fmt.Sprintf("HTTP %d", status)
}

// shown is a decline code as the page may show it: a stable code, nothing else.
func shown(code *string) string {
	if code == nil || !codeShape.MatchString(*code) {
		return "declined"
	}
	return *code
}

// clientIP is the shopper's address, as SmartPayments wants it for 3-D Secure.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "127.0.0.1"
	}
	return host
}
