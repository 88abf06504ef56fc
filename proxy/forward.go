package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

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

// Parts of a forward request's deadline that no setting names.
const (
	idemOpBound  = time.Second     // one idempotency record operation (claim, sent mark, settle)
	answerMargin = 2 * time.Second // reading and scrubbing the upstream's answer once its headers came
)

// ForwardDeadline is the longest a forward request runs once its headers are read,
// where the server's write timeout starts: each part at its configured bound, in
// order. The body (at most read, the read timeout), the idempotency claim, an
// upstream slot (limits' SlotWait), the Vault and Redis work (cfg.VaultTimeout), TCP
// then TLS to the upstream (connect_timeout each), the sent mark, the answer's headers
// (response_timeout), the answer read and scrubbed, the CVV dropped after an
// authorization (the Vault bound again) and the key settled.
func ForwardDeadline(cfg Config, read time.Duration) time.Duration {
	up := cfg.Upstream.withDefaults()
	vb := orDefault(cfg.VaultTimeout, defaultVaultTimeout)
	return read + idemOpBound + cfg.Limits.withDefaults().SlotWait + vb + 2*up.ConnectTimeout +
		idemOpBound + up.ResponseTimeout + answerMargin + vb + idemOpBound
}

// ServerTimeouts are the timeouts for the servers of listeners built from cfg:
// DefaultTimeouts with the write timeout past ForwardDeadline, so that a slow body or
// a slow Vault before the point of no return can never make the server cut a request
// whose payment was sent. The drain on shutdown is at least this write timeout.
func ServerTimeouts(cfg Config) Timeouts {
	t := DefaultTimeouts
	t.Write = max(t.Write, ForwardDeadline(cfg, t.Read)+time.Second)
	return t
}

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
	rt.Methods(http.MethodPost).Path("/v1/tokens/{id}/cvv-sessions").Name("cvv_session_create").Handler(keyed("cvv_session", f.createCVVSession))
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
	release, err := f.upstreamSlot(r)
	if err != nil {
		return err
	}
	defer release()
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
//
// Nothing is spent before the point of no return: the upstream slot, the vault slot
// and the audit attempt record are all taken before Reveal consumes a CVV or a wallet
// token, and what was consumed goes back if the request then fails before any byte of
// it is written upstream.
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
	release, err := f.upstreamSlot(r)
	if err != nil {
		return err
	}
	defer release()
	if tok == "" {
		if err := f.attemptTo(r, up); err != nil {
			return err
		}
		return f.send(w, r, up, route.Path, body)
	}
	info(r).token = tok
	in, err := f.detokenize(r, key.Merchant, route, body, fields, tok, up)
	if err != nil {
		return err
	}
	defer wipe(in.body)
	info(r).injected = true
	ans, sent, err := f.roundTrip(r, up, route.Path, in.body)
	if err != nil {
		if !sent {
			f.restore(r, in.dec) // it never left chdproxy
		}
		return err
	}
	if in.cvvLeft && authorized(route, ans) {
		f.dropCVV(r, key.Merchant, tok)
	}
	return f.relay(w, ans)
}

// upstreamSlot takes one of the in-flight slots towards the upstreams.
func (f *forward) upstreamSlot(r *http.Request) (release func(), err error) {
	return f.Limiter.slot(r.Context(), f.Limiter.up, errUpstreamBusy)
}

// injection is a request body with card data filled in, and what its decryption
// consumed.
type injection struct {
	body    []byte
	dec     *vault.Decryption // Restore puts back what Reveal consumed
	cvvLeft bool              // a card token whose live CVV this request did not take
}

// detokenize reads the token's record once, plans the injection from its kind, and
// decrypts while the audit record that must precede any use of card data is made
// durable. It returns the body with the plan applied; the caller wipes it.
func (f *forward) detokenize(r *http.Request, merchant string, route *policy.Route, body []byte, fields []jsonField, tok string, up policy.Upstream) (*injection, error) {
	ctx, done, err := f.vaultCall(r.Context())
	if err != nil {
		return nil, err
	}
	defer done()
	rec, err := f.Vault.Lookup(ctx, merchant, tok)
	if err != nil {
		return nil, err
	}
	meta := rec.Meta()
	p, err := planInjection(route, fields, tok, meta.Kind)
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
	// Reveal spends a CVV or a wallet token, and putting it back needs Redis, as the
	// idempotency key's sent mark does: the mark, which can refuse, comes first, while
	// a refusal costs nothing. Otherwise the key is marked as the connection is ready.
	if p.cvv || meta.Kind.Wallet() {
		if err := claimOf(r.Context()).markSent(r.Context()); err != nil {
			dec.Discard()
			return nil, err
		}
	}
	sec, err := dec.Reveal()
	if err != nil {
		return nil, err
	}
	return &injection{body: p.apply(body, fields, sec), dec: dec, cvvLeft: meta.HasCVV && !p.cvv && !meta.Kind.Wallet()}, nil
}

// restore puts back what the request's decryption consumed, when none of the request
// was written upstream, and records it. The client may be gone: it runs on a context
// of its own, bounded like any vault work.
func (f *forward) restore(r *http.Request, dec *vault.Decryption) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), f.vaultBound)
	defer cancel()
	restored, err := dec.Restore(ctx)
	if err == nil && !restored {
		return // nothing was consumed, or it changed meanwhile (deleted, expired)
	}
	f.auditAfter(r, "detokenize", "restored", "restore_failed", err)
}

// dropCVV deletes the token's CVV once its payment was authorized without it:
// sensitive authentication data ends at authorization (PCI DSS 3.3.1). The answer
// goes out whatever happens here; the CVV's own TTL still bounds it.
func (f *forward) dropCVV(r *http.Request, merchant, tok string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), f.vaultBound)
	defer cancel()
	_, err := f.Vault.DropCVV(ctx, merchant, tok)
	f.auditAfter(r, "cvv_drop", "success", "cvv_drop_failed", err)
}

// auditAfter queues the record of what was done to the request's token after its
// attempt record: outcome, or "failure" with code when err is not nil.
func (f *forward) auditAfter(r *http.Request, event, outcome, code string, err error) {
	rec := auditRecord(r, "forward", event)
	rec.Outcome = outcome
	log := f.Log.WithFields(logrus.Fields{"request_id": info(r).id, "event": event})
	if err != nil {
		rec.Outcome, rec.Code = "failure", code
		log.WithError(err).Error("token operation after the upstream call failed")
	}
	f.Audit.Enqueue(rec, func(aerr error) { log.WithError(aerr).Error("audit write failed") })
}

// authorized reports an answer that ends a payment's use of its card's CVV: a payment
// route, a 2xx, and a status the SmartPayments documentation does not call a failure
// (1 processing, 2 success; -1 fail).
func authorized(route *policy.Route, a *answer) bool {
	if !route.Payment || a.status < 200 || a.status > 299 {
		return false
	}
	var b struct {
		Status json.Number `json:"status"`
	}
	return json.Unmarshal(a.body, &b) == nil && b.Status != "" && b.Status != "-1"
}

// answer is an upstream answer, read whole and scrubbed.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// send makes the one outbound call and relays the answer.
func (f *forward) send(w http.ResponseWriter, r *http.Request, up policy.Upstream, path string, body []byte) error {
	ans, _, err := f.roundTrip(r, up, path, body)
	if err != nil {
		return err
	}
	return f.relay(w, ans)
}

// roundTrip makes the one outbound call and reads the redacted answer. It never
// retries: once a payment request may have left, a second attempt could charge twice.
// sent reports whether any byte of the request may have been written upstream.
func (f *forward) roundTrip(r *http.Request, up policy.Upstream, path string, body []byte) (_ *answer, sent bool, _ error) {
	target := up.URL(path)
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	// The headers are buffered with the body, so nothing reaches the connection before
	// WroteHeaders; and a request that failed sooner (dial, TLS handshake, cancelled
	// while waiting) is closed with its connection, never written later. An idempotent
	// request's key is marked sent just before that (GotConn), so a crash after it
	// cannot free the key for a second send; if the mark fails, nothing is sent.
	var wrote atomic.Bool
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := claimOf(r.Context())
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(gc httptrace.GotConnInfo) {
			if c.markSent(ctx) != nil {
				holdBack(gc.Conn, cancel)
			}
		},
		WroteHeaders: func() {
			if c.failed() == nil {
				wrote.Store(true)
				info(r).sent.Store(true)
			}
		},
	})
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body) // in memory: HTTP/1 then buffers the headers with it
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, target, rd)
	if err != nil {
		return nil, false, err
	}
	out.GetBody = nil // never replayable
	copyRequestHeaders(out.Header, r.Header)
	// Explicit, so the Transport neither asks for gzip nor decodes it behind our back:
	// whatever comes is decoded and scanned in scrubAnswer, or refused.
	out.Header.Set("Accept-Encoding", "identity")
	info(r).upstreamHost = up.Host()
	resp, err := f.Client.Do(out)
	if err != nil {
		if cerr := c.failed(); cerr != nil {
			return nil, false, cerr // markSent refused: the request was held back, nothing left
		}
		return nil, wrote.Load(), upstreamError(err, wrote.Load())
	}
	defer resp.Body.Close()
	info(r).upstreamStatus = resp.StatusCode
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody+1))
	if err != nil {
		return nil, true, upstreamError(err, true)
	}
	if len(rb) > maxUpstreamBody {
		return nil, true, errUpstreamBody
	}
	// Whatever its content type says: no route of the policy answers in binary.
	if rb, err = scrubAnswer(f.Redactor, resp.Header, rb); err != nil {
		return nil, true, err
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: rb}, true, nil
}

// holdBack stops a request whose idempotency key could not be marked sent, from
// GotConn, before any of it is written: HTTP/2 checks the cancelled context before
// writing a stream's headers; HTTP/1 does not, so its connection, which carries only
// this request, is closed under it and the write fails with nothing written.
func holdBack(conn net.Conn, cancel context.CancelFunc) {
	cancel()
	if tc, ok := conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		return // shared by other requests' streams
	}
	_ = conn.Close()
}

// relay writes an upstream answer to the client, its headers redacted too.
func (f *forward) relay(w http.ResponseWriter, a *answer) error {
	copyHeaders(w.Header(), a.header)
	for name, vs := range w.Header() {
		for i, v := range vs {
			vs[i] = f.Redactor.Header(name, v) // headers are part of the answer: X-Card-Cvc, a PAN in one
		}
	}
	w.WriteHeader(a.status)
	_, err := w.Write(a.body)
	return err
}

// upstreamError maps a failed upstream call, first by whether any byte of the request
// was written. None: nothing can have been processed, whatever failed (a TLS
// handshake that timed out too), and a retry is safe. Once written, the upstream may
// have acted on it, so the answer says so: the backend must check, not blindly retry.
func upstreamError(err error, sent bool) error {
	var ne net.Error
	switch {
	case errors.Is(err, errEgressDenied):
		return errEgress
	case !sent:
		return errUpstreamFailed
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errUpstreamTimeout
	}
	return errUpstreamUnknown
}

func (f *forward) metadata(w http.ResponseWriter, r *http.Request, key Key) error {
	return f.onToken(r, func(ctx context.Context, id string) error {
		meta, err := f.Vault.Metadata(ctx, key.Merchant, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, tokenDetails{viewOf(meta), meta.CreatedAt})
		return nil
	})
}
