package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync/atomic"

	"github.com/gorilla/mux"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/vault"
)

// Forward listener errors.
var (
	errRawCardData     = newError(http.StatusBadRequest, "raw_card_data", "request contains card data; send token ids instead")
	errTokenNotAllowed = newError(http.StatusBadRequest, "token_not_allowed", "a token appears in a field or route where the policy allows none")
	errTokenMismatch   = newError(http.StatusBadRequest, "token_mismatch", "all token fields of one request must hold the same token")
	errKindNotAllowed  = newError(http.StatusBadRequest, "token_kind_not_allowed", "this route does not accept this kind of token")
	errMethodMismatch  = newError(http.StatusBadRequest, "payment_method_mismatch", "payment_method does not match the token's kind")
	errUpstreamTimeout = newError(http.StatusGatewayTimeout, "upstream_timeout", "the upstream did not answer in time; the request may have been processed: check its status before retrying")
	errUpstreamUnknown = newError(http.StatusBadGateway, "upstream_result_unknown", "the connection failed after the request was sent; it may have been processed: check its status before retrying")
	errUpstreamFailed  = newError(http.StatusBadGateway, "upstream_unavailable", "the upstream could not be reached; nothing was sent")
	errEgress          = newError(http.StatusBadGateway, "egress_denied", "the upstream host is not allowed by the policy")
	errUpstreamBody    = newError(http.StatusBadGateway, "upstream_response_too_large", "the upstream response is too large")
)

const (
	maxForwardBody  = 64 << 10 // SmartPayments requests are a few KiB
	maxUpstreamBody = 4 << 20  // the largest answer is the transaction-list xlsx
)

// ForwardDeps is what the forward listener needs beyond the shared Deps.
type ForwardDeps struct {
	Deps
	Policy   *policy.Policy
	Redactor *redact.Redactor
	Client   *http.Client // from NewUpstreamClient
}

// ForwardHandler serves the forward listener: the SmartPayments paths the policy names,
// with token ids where card data would be, and token metadata and delete.
func ForwardHandler(d ForwardDeps) http.Handler {
	rt := newRouter(d.Deps, "forward")
	f := &forward{d}
	for i := range d.Policy.Routes {
		route := &d.Policy.Routes[i]
		rt.Methods(http.MethodPost).Path(route.Path).Name(route.Name).Handler(wrap(d.Deps, "forward", "inject",
			d.Idempotency.middleware(d.Deps, "Proxy-Authorization", RoleSecret, maxForwardBody,
				func(w http.ResponseWriter, r *http.Request) error { return f.inject(w, r, route) })))
	}
	for i := range d.Policy.Passthrough {
		pt := &d.Policy.Passthrough[i]
		rt.Methods(pt.Method).Path(pt.Path).Name(pt.Name).Handler(wrap(d.Deps, "forward", "passthrough",
			d.Idempotency.middleware(d.Deps, "Proxy-Authorization", RoleSecret, maxForwardBody,
				func(w http.ResponseWriter, r *http.Request) error { return f.passthrough(w, r, pt) })))
	}
	rt.Methods(http.MethodGet).Path("/v1/tokens/{id}").Name("token_metadata").Handler(wrap(d.Deps, "forward", "metadata", f.metadata))
	rt.Methods(http.MethodDelete).Path("/v1/tokens/{id}").Name("token_delete").Handler(wrap(d.Deps, "forward", "delete", f.delete))
	return rt
}

type forward struct{ ForwardDeps }

func (f *forward) authenticate(r *http.Request) (Key, error) {
	return f.Deps.authenticate(r, "Proxy-Authorization", RoleSecret)
}

// readJSONBody reads a bounded JSON body and refuses raw card data anywhere in it,
// in the query string too.
func (f *forward) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if queryHasPAN(r.URL.RawQuery) || headersHavePAN(r.Header) {
		return nil, errRawCardData
	}
	if r.Method == http.MethodGet {
		return nil, nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, errUnsupportedMedia
	}
	body, err := readBody(w, r, maxForwardBody)
	if err != nil {
		return nil, err
	}
	if containsRawPAN(body) {
		return nil, errRawCardData
	}
	return body, nil
}

// passthrough forwards a call that carries no card data, unchanged.
func (f *forward) passthrough(w http.ResponseWriter, r *http.Request, pt *policy.Passthrough) error {
	if _, err := f.authenticate(r); err != nil {
		return err
	}
	body, err := f.readJSONBody(w, r)
	if err != nil {
		return err
	}
	if body != nil {
		if _, err := parseObject(body); err != nil {
			return err
		}
	}
	if containsToken(body) || containsToken([]byte(r.URL.RawQuery)) {
		return errTokenNotAllowed
	}
	up, _ := f.Policy.Upstream(pt.Upstream)
	return f.send(w, r, up, pt.Path, body)
}

// inject fills the card data of one token into the fields the policy names for the
// route, then forwards the request to the route's card-data upstream.
//
// Rules: every token in the body must sit in a field the route may fill, and all of
// them must be the same token. Fields the policy fills from the token's kind are
// replaced when they hold the token id or are empty, and added when absent; PAN, CVV and DPAN fields
// can only ever hold a token id. The CVV is injected (and consumed) only when its field
// names the token. A request that names no token is forwarded as it is (for example
// a withdrawal with payment_method "token").
func (f *forward) inject(w http.ResponseWriter, r *http.Request, route *policy.Route) error {
	key, err := f.authenticate(r)
	if err != nil {
		return err
	}
	body, err := f.readJSONBody(w, r)
	if err != nil {
		return err
	}
	fields, err := parseObject(body)
	if err != nil {
		return err
	}
	if containsToken([]byte(r.URL.RawQuery)) {
		return errTokenNotAllowed // tokens go in the fields the policy names, never in the query
	}
	token, err := referencedToken(body, fields, route)
	if err != nil {
		return err
	}
	up, _ := f.Policy.Upstream(route.Upstream)
	if token == "" {
		return f.send(w, r, up, route.Path, body)
	}
	info(r).token = token

	sec, injections, wantCVV, err := f.detokenize(r, key.Merchant, route, fields, token, up)
	if err != nil {
		return err
	}
	set, add := map[string][]byte{}, []string(nil)
	for _, inj := range injections {
		present := hasField(fields, inj.Field)
		if inj.Attribute == policy.AttrCVV && !wantCVV {
			continue
		}
		if cur := fieldValue(fields, inj.Field); present && cur != token && cur != "" {
			continue // a plain non-secret value the merchant chose to send (checked above for secrets)
		}
		v := attribute(sec, inj.Attribute)
		if v == nil {
			continue
		}
		set[inj.Field] = v
		if !present {
			add = append(add, inj.Field)
		}
	}
	out := splice(body, fields, set, add)
	for _, v := range set {
		wipe(v)
	}
	defer wipe(out)
	return f.send(w, r, up, route.Path, out)
}

// detokenize checks the token against the route and the body, then decrypts the token
// while writing the audit record that must exist before its card data is used. It
// returns the route's injections for the token's kind and whether the CVV was asked for
// (and so consumed).
func (f *forward) detokenize(r *http.Request, merchant string, route *policy.Route, fields []jsonField, token string, up policy.Upstream) (*vault.Secret, []policy.Injection, bool, error) {
	ctx, done, err := f.vaultCall(r.Context())
	if err != nil {
		return nil, nil, false, err
	}
	defer done()
	var (
		injections []policy.Injection
		wantCVV    bool
		attempt    AuditRecord
	)
	// One read of the token: the checks run on its metadata before anything is decrypted.
	sec, err := f.Vault.DetokenizeIf(ctx, merchant, token, func(meta vault.Metadata) (bool, error) {
		kind := string(meta.Kind)
		if !route.Accepts(kind) {
			return false, errKindNotAllowed
		}
		if err := checkPaymentMethod(fields, route, kind); err != nil {
			return false, err
		}
		injections = route.InjectionsFor(kind)
		for _, fl := range fields {
			if fl.isString && fl.str == token && !slices.ContainsFunc(injections, func(in policy.Injection) bool { return in.Field == fl.key }) {
				return false, errTokenNotAllowed // a field the policy fills only for other kinds of token
			}
		}
		for _, inj := range injections {
			if inj.Attribute == policy.AttrCVV && fieldValue(fields, inj.Field) == token {
				wantCVV = true
			}
		}
		attempt = auditRecord(r, "forward", "detokenize")
		attempt.Outcome, attempt.UpstreamHost = "attempt", up.Host()
		return wantCVV, nil
	}, func() error {
		// Fail closed: no record of the access, no access. Vault decrypts meanwhile;
		// the card data is used only once this record is durable.
		if err := f.Audit.Write(attempt); err != nil {
			f.Log.WithField("request_id", info(r).id).WithError(err).Error("audit write failed; detokenization refused")
			return errAuditUnavailable
		}
		return nil
	})
	return sec, injections, wantCVV, err
}

// referencedToken returns the one token id the body names, or "" when it names none.
func referencedToken(body []byte, fields []jsonField, route *policy.Route) (string, error) {
	token := ""
	for _, fl := range fields {
		inj, injectable := route.Field(fl.key)
		if fl.isString && vault.ValidTokenID(fl.str) {
			if !injectable {
				return "", errTokenNotAllowed
			}
			if token != "" && token != fl.str {
				return "", errTokenMismatch
			}
			token = fl.str
			continue
		}
		if injectable && fl.isString && fl.str != "" && secretAttribute(inj.Attribute) {
			return "", errRawCardData // a CVV or wallet payload sent in the clear
		}
		if injectable && !fl.isString && secretAttribute(inj.Attribute) && string(body[fl.start:fl.end]) != "null" &&
			!containsToken(body[fl.start:fl.end]) {
			return "", errRawCardData // a CVV (or PAN) sent as a JSON number
		}
		if containsToken(body[fl.start:fl.end]) {
			return "", errTokenNotAllowed // a token nested or embedded where nothing is injected
		}
	}
	return token, nil
}

func secretAttribute(a string) bool {
	return a == policy.AttrPAN || a == policy.AttrCVV || a == policy.AttrDPAN
}

// checkPaymentMethod refuses a payment_method that does not match the token's kind.
// SmartPayments reads an absent payment_method as "card".
func checkPaymentMethod(fields []jsonField, route *policy.Route, kind string) error {
	if route.PaymentMethodField == "" {
		return nil
	}
	got := "card"
	if hasField(fields, route.PaymentMethodField) {
		got = fieldValue(fields, route.PaymentMethodField)
	}
	if got != policy.PaymentMethod(kind) {
		return errMethodMismatch
	}
	return nil
}

// attribute returns a fresh copy of one token attribute; the caller wipes it.
func attribute(s *vault.Secret, attr string) []byte {
	switch attr {
	case policy.AttrPAN:
		return s.PAN.Reveal()
	case policy.AttrCVV:
		if s.CVV.IsZero() {
			return nil
		}
		return s.CVV.Reveal()
	case policy.AttrExpMonth:
		return []byte(s.Expiry.MonthString())
	case policy.AttrExpYear:
		return []byte(s.Expiry.Year2()) // as in the SmartPayments examples: "25"
	case policy.AttrHolder:
		if s.Holder.IsZero() {
			return nil
		}
		return []byte(s.Holder.Reveal())
	case policy.AttrDPAN:
		return s.DPAN.Reveal()
	case policy.AttrNetwork:
		return []byte(s.Network)
	}
	return nil
}

func hasField(fields []jsonField, name string) bool {
	for _, f := range fields {
		if f.key == name {
			return true
		}
	}
	return false
}

func fieldValue(fields []jsonField, name string) string {
	for _, f := range fields {
		if f.key == name {
			return f.str
		}
	}
	return ""
}

// containsToken reports whether b holds something shaped like a token id.
func containsToken(b []byte) bool {
	for i := bytes.Index(b, []byte("tok_")); i >= 0; {
		end := i + 4
		for end < len(b) && isBase62(b[end]) {
			end++
		}
		if vault.ValidTokenID(string(b[i:end])) {
			return true
		}
		next := bytes.Index(b[end:], []byte("tok_"))
		if next < 0 {
			break
		}
		i = end + next
	}
	return false
}

func isBase62(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// send makes the one outbound call and relays the redacted answer. It never retries:
// once a payment request may have left, a second attempt could charge twice.
func (f *forward) send(w http.ResponseWriter, r *http.Request, up policy.Upstream, path string, body []byte) error {
	target := up.URL(path)
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var wrote atomic.Bool // once the request is written, a failure leaves its outcome unknown
	ctx := httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	out, err := http.NewRequestWithContext(ctx, r.Method, target, rd)
	if err != nil {
		return err
	}
	out.GetBody = nil // never replayable
	copyHeaders(out.Header, r.Header)
	info(r).upstreamHost = up.Host()
	release, err := f.Limiter.slot(r.Context(), f.Limiter.up, errUpstreamBusy)
	if err != nil {
		return err
	}
	defer release()
	resp, err := f.Client.Do(out)
	if err != nil {
		return upstreamError(err, wrote.Load())
	}
	defer resp.Body.Close()
	info(r).upstreamStatus = resp.StatusCode
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody+1))
	if err != nil {
		return upstreamError(err, true)
	}
	if len(rb) > maxUpstreamBody {
		return errUpstreamBody
	}
	rb = f.Redactor.Scrub(rb) // whatever its content type says: no route of the policy answers in binary
	copyHeaders(w.Header(), resp.Header)
	for _, vs := range w.Header() {
		for i, v := range vs {
			vs[i] = f.Redactor.String(v) // headers are part of the answer: a PAN in one is masked too
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, err = w.Write(rb)
	return err
}

// upstreamError maps a failed upstream call. Once the request was written the upstream
// may have acted on it, so the answer says so: the backend must check, not blindly retry.
func upstreamError(err error, sent bool) error {
	var ne net.Error
	switch {
	case errors.Is(err, errEgressDenied):
		return errEgress
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errUpstreamTimeout
	case sent:
		return errUpstreamUnknown
	}
	return errUpstreamFailed
}

func (f *forward) metadata(w http.ResponseWriter, r *http.Request) error {
	key, err := f.authenticate(r)
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	if !vault.ValidTokenID(id) {
		return errTokenNotFound
	}
	info(r).token = id
	ctx, done, err := f.vaultCall(r.Context())
	if err != nil {
		return err
	}
	defer done()
	meta, err := f.Vault.Metadata(ctx, key.Merchant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, meta)
	return nil
}

func (f *forward) delete(w http.ResponseWriter, r *http.Request) error {
	key, err := f.authenticate(r)
	if err != nil {
		return err
	}
	return f.deleteTokenOf(w, r, key.Merchant)
}
