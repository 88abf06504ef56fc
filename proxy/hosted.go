package proxy

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/hosted"
	"github.com/chdproxy/chdproxy/vault"
)

// Hosted fields and CVV re-collection (package hosted serves the SDK and frames).
//
//	collect  GET  /collect.js, /collect/v1/…        collect.js, its types, the field frames
//	collect  POST /v1/cvv                           {session, cvv}: attach a fresh CVV (pk_)
//	forward  POST /v1/tokens/{id}/cvv-sessions      open a CVV session for a card token (sk_)

// cvvFields are the only fields POST /v1/cvv accepts.
var cvvFields = map[string]bool{"session": true, "cvv": true}

var (
	errCVVSessionNotFound = newError(http.StatusNotFound, "cvv_session_not_found", "the CVV session does not exist, was already used or has expired")
	errNotCardToken       = newError(http.StatusConflict, "token_not_card", "only a card token takes a security code")
)

// mountHosted adds the hosted-field routes and POST /v1/cvv to the collect router.
// The SDK, its assets and the frames are served without the per-client limit, which
// is the shopper's budget of tokenize attempts: one checkout page load fetches four
// of them.
func mountHosted(d *deps, rt *mux.Router, c *collect) {
	for _, h := range hosted.Routes(d.frameOrigins) {
		handler := h.Handler
		// Path before Methods: a GET route whose method matches must not clear the
		// method mismatch another route found (mux's order), or 405s turn into 404s.
		rt.Path(h.Path).Methods(h.Method).Name(h.Name).Handler(wrap(d, "collect", "", func(w http.ResponseWriter, r *http.Request) error {
			handler.ServeHTTP(w, r)
			return nil
		}))
	}
	rt.Methods(http.MethodPost).Path("/v1/cvv").Name("cvv_attach").Handler(wrap(d, "collect", "cvv_attach", c.cors(
		d.authenticated(collectCaller, c.ownOrigin(c.attachCVV)))))
	rt.Methods(http.MethodOptions).Path("/v1/cvv").Name("cvv_attach_preflight").Handler(wrap(d, "collect", "",
		c.cors(d.clientLimited(c.preflight))))
}

// frameOrigins is hosted.Lookup over the keys and merchants in force.
func (d *deps) frameOrigins(pk string) ([]string, bool) {
	dir := d.dir.Load()
	key, err := dir.keys.Authenticate(pk, RolePublishable)
	if err != nil {
		return nil, false
	}
	return dir.merchants[key.Merchant].Origins, true
}

// fromOwnFrame reports a browser request that a page on the collect listener's own
// origin made (a hosted-field frame posting the card it holds). The browser sets
// both Sec-Fetch-Site and Origin and no page can forge either, so another site's
// page never passes; a non-browser client could send both, but it can already
// send no Origin at all, which is allowed. Origin's host must be the Host the
// request was sent to; its scheme is not compared with ours, since TLS may end at
// a load balancer in front of the listener.
func fromOwnFrame(r *http.Request, origin string) bool {
	if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Host != r.Host || u.User != nil || u.Path != "" || u.RawQuery != "" {
		return false
	}
	return u.Scheme == "https" || (u.Scheme == "http" && r.TLS == nil)
}

// cvvAttached is POST /v1/cvv's answer: which token took the CVV, until when.
type cvvAttached struct {
	Token        string     `json:"token"`
	CVV          string     `json:"cvv"` // "attached"
	CVVExpiresAt *time.Time `json:"cvv_expires_at,omitempty"`
}

// attachCVV redeems a CVV session: the CVV is attached to the session's card token
// like a tokenize-time CVV. The shopper's page never learns the token from us
// before; the answer names it, as tokenize's does.
func (c *collect) attachCVV(w http.ResponseWriter, r *http.Request, key Key) error {
	f, err := readFields(w, r, cvvFields)
	if err != nil {
		return err
	}
	if f["session"] == "" || f["cvv"] == "" {
		return errMissingField
	}
	// The length is checked against the token's brand in the vault; here only the form.
	brand := card.Brand("")
	if len(f["cvv"]) == 4 {
		brand = card.Amex
	}
	cvv, err := card.ParseCVV(f["cvv"], brand)
	if err != nil {
		return err
	}
	if !vault.ValidCVVSessionID(f["session"]) {
		return errCVVSessionNotFound
	}
	ctx, done, err := c.attemptedVaultCall(r)
	if err != nil {
		return err
	}
	defer done()
	meta, err := c.Vault.RedeemCVVSession(ctx, key.Merchant, f["session"], cvv)
	if err != nil {
		return err
	}
	info(r).token = meta.Token
	writeJSON(w, http.StatusOK, cvvAttached{Token: meta.Token, CVV: "attached", CVVExpiresAt: meta.CVVExpiresAt})
	return nil
}

// cvvSessionView is POST /v1/tokens/{id}/cvv-sessions's answer.
type cvvSessionView struct {
	Session   string    `json:"session"`
	ExpiresAt time.Time `json:"expires_at"`
}

// createCVVSession opens a single-use CVV session for one of the caller's card
// tokens, for its checkout page to mount the CVV frame with. Another merchant's
// token answers as an unknown one; a wallet token is refused as not a card.
func (f *forward) createCVVSession(w http.ResponseWriter, r *http.Request, key Key) error {
	return f.onToken(r, func(ctx context.Context, id string) error {
		s, err := f.Vault.NewCVVSession(ctx, key.Merchant, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, cvvSessionView{Session: s.ID, ExpiresAt: s.ExpiresAt})
		return nil
	})
}
