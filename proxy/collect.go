package proxy

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/token"
	"github.com/chdproxy/chdproxy/vault"
)

// defaultVaultTimeout bounds one request's work against Vault and Redis when
// Config.VaultTimeout is zero, whatever the timeouts of the Transit and the Redis
// client: a stuck dependency is a fast 504.
const defaultVaultTimeout = 5 * time.Second

// vaultCall takes one of the in-flight slots towards Vault and Redis and gives the
// work a deadline of its own; done releases both.
func (d *deps) vaultCall(ctx context.Context) (_ context.Context, done func(), _ error) {
	release, err := d.Limiter.slot(ctx, d.Limiter.vault, errVaultBusy)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.vaultBound)
	return ctx, func() { cancel(); release() }, nil
}

// attemptedVaultCall writes the request's attempt record, then takes a Vault slot
// as vaultCall does: what every operation that writes token records does first.
func (d *deps) attemptedVaultCall(r *http.Request) (_ context.Context, done func(), _ error) {
	if err := d.attempt(r); err != nil {
		return nil, nil, err
	}
	return d.vaultCall(r.Context())
}

// maxCollectBody bounds a tokenize request: a wallet payload of 16 KiB as base64 plus fields.
const maxCollectBody = 32 << 10

// collectFields are the only fields POST /v1/tokens accepts (SmartPayments names).
var collectFields = map[string]bool{
	"payment_method": true,
	"card_number":    true, "card_exp_month": true, "card_exp_year": true, "card_cvv": true, "card_holder": true,
	"apple_pay_dpan": true, "apple_pay_payment_method_network": true,
	"google_pay_dpan": true, "google_pay_payment_method_network": true,
}

// collectHandler serves the collect listener: POST /v1/tokens for browser checkouts.
func collectHandler(d *deps) http.Handler {
	rt := newRouter(d, "collect")
	c := &collect{d}
	rt.Methods(http.MethodPost).Path("/v1/tokens").Name("tokenize").Handler(wrap(d, "collect", "tokenize", c.cors(
		d.authenticated(collectCaller, c.ownOrigin(d.tokenizeIdempotency(c.tokenize))))))
	rt.Methods(http.MethodOptions).Path("/v1/tokens").Name("tokenize_preflight").Handler(wrap(d, "collect", "",
		c.cors(d.clientLimited(c.preflight))))
	mountHosted(d, rt, c)
	return rt
}

type collect struct{ *deps }

// cors lets a page on any merchant's registered origin read every collect answer,
// errors included (a 401, a 429 and its Retry-After, a 5xx), so the checkout can tell
// the shopper what happened. Whether the origin is the key's own merchant's is checked
// before anything succeeds (ownOrigin).
func (c *collect) cors(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" && c.anyMerchantAllows(r, origin) {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
		}
		return h(w, r)
	}
}

// ownOrigin refuses a browser request from an origin the key's merchant did not
// register, in front of the idempotency layer so that a replay is checked too. The
// refusal is not readable by that page: it is another merchant's, or a misconfiguration.
// Requests without Origin come from servers and curl; a browser always sends it on a
// cross-origin POST. The hosted-field frames post from the listener's own origin
// (fromOwnFrame, hosted.go).
func (c *collect) ownOrigin(h keyedFunc) keyedFunc {
	return func(w http.ResponseWriter, r *http.Request, key Key) error {
		if origin := r.Header.Get("Origin"); origin != "" && !fromOwnFrame(r, origin) && !slices.Contains(c.directory(r).merchants[key.Merchant].Origins, origin) {
			w.Header().Del("Access-Control-Allow-Origin")
			w.Header().Del("Access-Control-Expose-Headers")
			return errOriginNotAllowed
		}
		return h(w, r, key)
	}
}

// preflight answers CORS preflights (cors sets the origin). The browser sends no
// credentials here, so an origin passes if any merchant allows it; the real request is
// then checked against its own merchant.
func (c *collect) preflight(w http.ResponseWriter, r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin == "" || !c.anyMerchantAllows(r, origin) {
		return errOriginNotAllowed
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *collect) anyMerchantAllows(r *http.Request, origin string) bool {
	for _, m := range c.directory(r).merchants {
		if slices.Contains(m.Origins, origin) {
			return true
		}
	}
	return false
}

func (c *collect) tokenize(w http.ResponseWriter, r *http.Request, key Key) error {
	ri := info(r)
	f, err := readFields(w, r, collectFields)
	if err != nil {
		return err
	}
	ctx, done, err := c.attemptedVaultCall(r)
	if err != nil {
		return err
	}
	defer done()
	var meta vault.Metadata
	switch method := f["payment_method"]; method {
	case "", "card":
		in, err := parseCardFields(f, c.now())
		if err != nil {
			return err
		}
		meta, err = c.Vault.TokenizeCard(ctx, key.Merchant, in)
		if err != nil {
			return err
		}
	case "applePayDPan", "googlePayDPan":
		in, err := parseWalletFields(f, method)
		if err != nil {
			return err
		}
		meta, err = c.Vault.TokenizeWallet(ctx, key.Merchant, in)
		if err != nil {
			return err
		}
	default:
		return errPaymentMethod
	}
	ri.token = meta.Token
	writeJSON(w, http.StatusCreated, viewOf(meta))
	return nil
}

// tokenView is all any caller sees of a token, pk_ and sk_ alike: never its
// fingerprints. Next to the BIN and last 4, with the public pk_ to have any guess
// fingerprinted, a fingerprint is a PAN oracle (docs/pci/threat-model.md, T22).
// Fields are listed here, not taken from vault.Metadata, so nothing added there
// reaches an answer by itself.
type tokenView struct {
	Token        string       `json:"token"`
	Kind         token.Kind   `json:"kind"`
	Card         *cardView    `json:"card,omitempty"`
	Network      card.Network `json:"network,omitempty"`
	ExpiresAt    time.Time    `json:"expires_at"`
	HasCVV       bool         `json:"has_cvv"`
	CVVExpiresAt *time.Time   `json:"cvv_expires_at,omitempty"`
}

// cardView is what may be shown of a card (PCI DSS 3.4.1: first 6, last 4).
type cardView struct {
	BIN      string     `json:"bin"`
	Last4    string     `json:"last4"`
	Brand    card.Brand `json:"brand"`
	ExpMonth string     `json:"exp_month"`
	ExpYear  string     `json:"exp_year"`
}

// tokenDetails is GET /v1/tokens/{id}'s answer: the view and when the token was made.
type tokenDetails struct {
	tokenView
	CreatedAt time.Time `json:"created_at"`
}

func viewOf(m vault.Metadata) tokenView {
	v := tokenView{Token: m.Token, Kind: m.Kind, Network: m.Network, ExpiresAt: m.ExpiresAt, HasCVV: m.HasCVV, CVVExpiresAt: m.CVVExpiresAt}
	if m.Card != nil {
		// A record written before BINs were cut to 6 digits still shows 6.
		v.Card = &cardView{BIN: m.Card.BIN[:min(6, len(m.Card.BIN))], Last4: m.Card.Last4, Brand: m.Card.Brand, ExpMonth: m.Card.ExpMonth, ExpYear: m.Card.ExpYear}
	}
	return v
}

// parseCardFields validates the card fields; wallet fields beside them are refused.
func parseCardFields(f map[string]string, now time.Time) (vault.CardInput, error) {
	var in vault.CardInput
	for k := range f {
		if strings.HasPrefix(k, "apple_pay_") || strings.HasPrefix(k, "google_pay_") {
			return in, errUnknownField
		}
	}
	if f["card_number"] == "" || f["card_exp_month"] == "" || f["card_exp_year"] == "" {
		return in, errMissingField
	}
	var err error
	if in.PAN, err = card.ParsePAN(f["card_number"]); err != nil {
		return in, err
	}
	if in.Expiry, err = card.ParseExpiry(f["card_exp_month"], f["card_exp_year"], now); err != nil {
		return in, err
	}
	if v, ok := f["card_cvv"]; ok {
		if in.CVV, err = card.ParseCVV(v, in.PAN.Brand()); err != nil {
			return in, err
		}
	}
	if v, ok := f["card_holder"]; ok {
		if in.Holder, err = card.ParseHolder(v); err != nil {
			return in, err
		}
	}
	return in, nil
}

// parseWalletFields validates an Apple Pay or Google Pay payload; only its own two fields
// (and payment_method) may be present.
func parseWalletFields(f map[string]string, method string) (vault.WalletInput, error) {
	in := vault.WalletInput{Kind: token.ApplePay}
	prefix := "apple_pay_"
	if method == "googlePayDPan" {
		in.Kind, prefix = token.GooglePay, "google_pay_"
	}
	for k := range f {
		if k != "payment_method" && k != prefix+"dpan" && k != prefix+"payment_method_network" {
			return in, errUnknownField
		}
	}
	dpan, network := f[prefix+"dpan"], f[prefix+"payment_method_network"]
	if dpan == "" || network == "" {
		return in, errMissingField
	}
	var err error
	if in.DPAN, err = card.ParseDPAN(dpan); err != nil {
		return in, err
	}
	if in.Network, err = card.ParseNetwork(network); err != nil {
		return in, err
	}
	return in, nil
}
