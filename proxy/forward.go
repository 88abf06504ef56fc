package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"

	"github.com/gorilla/mux"

	"github.com/chdproxy/chdproxy/policy"
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

// forwardHandler serves the forward listener: the SmartPayments paths the policy names,
// with token ids where card data would be, and token metadata and delete.
func forwardHandler(d *deps) http.Handler {
	rt := newRouter(d, "forward")
	f := &forward{d}
	keyed := func(event string, h keyedFunc) http.Handler {
		return wrap(d, "forward", event, d.authenticated(forwardCaller, h))
	}
	for i := range d.Policy.Routes {
		route := &d.Policy.Routes[i]
		rt.Methods(http.MethodPost).Path(route.Path).Name(route.Name).Handler(keyed("inject",
			d.Idempotency.middleware(d.Log, maxForwardBody, func(w http.ResponseWriter, r *http.Request, key Key) error {
				return f.inject(w, r, key, route)
			})))
	}
	for i := range d.Policy.Passthrough {
		pt := &d.Policy.Passthrough[i]
		rt.Methods(pt.Method).Path(muxPath(pt.Path)).Name(pt.Name).Handler(keyed("passthrough",
			d.Idempotency.middleware(d.Log, maxForwardBody, func(w http.ResponseWriter, r *http.Request, _ Key) error {
				return f.passthrough(w, r, pt)
			})))
	}
	rt.Methods(http.MethodGet).Path("/v1/tokens/{id}").Name("token_metadata").Handler(keyed("metadata", f.metadata))
	rt.Methods(http.MethodDelete).Path("/v1/tokens/{id}").Name("token_delete").Handler(keyed("delete", d.deleteToken))
	return rt
}

type forward struct{ *deps }

// readJSONBody reads a bounded JSON body and refuses raw card data anywhere in it,
// in the query string, the headers and the path (a path parameter) too.
func (f *forward) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if queryHasPAN(r.URL.RawQuery) || headersHavePAN(r.Header) || queryHasPAN(r.URL.Path) {
		return nil, errRawCardData
	}
	if r.Method == http.MethodGet {
		return nil, nil
	}
	mt, err := mediaType(r)
	if err != nil {
		return nil, err
	}
	if mt != "application/json" {
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
	if err := f.attemptTo(r, up); err != nil {
		return err
	}
	return f.send(w, r, up, passthroughPath(r, pt), body)
}

// pathParamPattern is what a "{name}" segment of a passthrough path matches: an id,
// never a '/', a '.', a '%' or a token id (which needs '_').
const pathParamPattern = "[A-Za-z0-9-]{1,64}"

// muxPath turns a policy path into a mux template: each parameter segment gets
// pathParamPattern.
func muxPath(path string) string {
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if name, ok := policy.PathParam(seg); ok {
			segs[i] = "{" + name + ":" + pathParamPattern + "}"
		}
	}
	return strings.Join(segs, "/")
}

// passthroughPath is the upstream path of a passthrough call: the policy's, with its
// parameters as the request matched them.
func passthroughPath(r *http.Request, pt *policy.Passthrough) string {
	if !strings.Contains(pt.Path, "{") {
		return pt.Path
	}
	return r.URL.Path // matched segment by segment against muxPath(pt.Path)
}

// attemptTo records, durably, that the request is about to be forwarded to up.
func (f *forward) attemptTo(r *http.Request, up policy.Upstream) error {
	info(r).upstreamHost = up.Host()
	return f.attempt(r)
}

// inject fills the card data of one token into the fields the policy names for the
// route (plan.go says which), then forwards the request to the route's card-data
// upstream. A request that names no token is forwarded as it is (for example a
// withdrawal with payment_method "token").
func (f *forward) inject(w http.ResponseWriter, r *http.Request, key Key, route *policy.Route) error {
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
	tok, err := referencedToken(body, fields, route)
	if err != nil {
		return err
	}
	up, _ := f.Policy.Upstream(route.Upstream)
	if tok == "" {
		if err := f.attemptTo(r, up); err != nil {
			return err
		}
		return f.send(w, r, up, route.Path, body)
	}
	info(r).token = tok
	out, err := f.detokenize(r, key.Merchant, route, body, fields, tok, up)
	if err != nil {
		return err
	}
	defer wipe(out)
	info(r).injected = true
	return f.send(w, r, up, route.Path, out)
}

// detokenize reads the token's record once, plans the injection from its kind, and
// decrypts while the audit record that must precede any use of card data is made
// durable. It returns the body with the plan applied; the caller wipes it.
func (f *forward) detokenize(r *http.Request, merchant string, route *policy.Route, body []byte, fields []jsonField, tok string, up policy.Upstream) ([]byte, error) {
	ctx, done, err := f.vaultCall(r.Context())
	if err != nil {
		return nil, err
	}
	defer done()
	rec, err := f.Vault.Lookup(ctx, merchant, tok)
	if err != nil {
		return nil, err
	}
	p, err := planInjection(route, fields, tok, rec.Meta().Kind)
	if err != nil {
		return nil, err
	}
	dec, err := f.Vault.Decrypt(ctx, rec, p.cvv)
	if err != nil {
		return nil, err
	}
	// Fail closed: no record of the access, no access.
	attempt := auditRecord(r, "forward", "detokenize")
	attempt.Outcome, attempt.UpstreamHost = "attempt", up.Host()
	if err := f.Audit.Write(attempt); err != nil {
		dec.Discard()
		f.Log.WithField("request_id", info(r).id).WithError(err).Error("audit write failed; detokenization refused")
		return nil, errAuditUnavailable
	}
	sec, err := dec.Reveal()
	if err != nil {
		return nil, err
	}
	return p.apply(body, fields, sec), nil
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
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true); info(r).sent.Store(true) },
	})
	out, err := http.NewRequestWithContext(ctx, r.Method, target, rd)
	if err != nil {
		return err
	}
	out.GetBody = nil // never replayable
	copyRequestHeaders(out.Header, r.Header)
	// Explicit, so the Transport neither asks for gzip nor decodes it behind our back:
	// whatever comes is decoded and scanned in scrubAnswer, or refused.
	out.Header.Set("Accept-Encoding", "identity")
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
	// Whatever its content type says: no route of the policy answers in binary.
	if rb, err = scrubAnswer(f.Redactor, resp.Header, rb); err != nil {
		return err
	}
	copyHeaders(w.Header(), resp.Header)
	for name, vs := range w.Header() {
		for i, v := range vs {
			vs[i] = f.Redactor.Header(name, v) // headers are part of the answer: X-Card-Cvc, a PAN in one
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

func (f *forward) metadata(w http.ResponseWriter, r *http.Request, key Key) error {
	id := mux.Vars(r)["id"]
	if !vault.ValidTokenID(id) {
		return errTokenNotFound
	}
	info(r).token = id
	if err := f.attempt(r); err != nil {
		return err
	}
	ctx, done, err := f.vaultCall(r.Context())
	if err != nil {
		return err
	}
	defer done()
	meta, err := f.Vault.Metadata(ctx, key.Merchant, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenDetails{viewOf(meta), meta.CreatedAt})
	return nil
}
