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

// vaultDeadline bounds one request's work against Vault and Redis, whatever the
// timeouts of the Transit and the Redis client: a stuck dependency is a fast 504.
const vaultDeadline = 5 * time.Second

// vaultCall takes one of the in-flight slots towards Vault and Redis and gives the
// work a deadline of its own; done releases both.
func (d *deps) vaultCall(ctx context.Context) (_ context.Context, done func(), _ error) {
	release, err := d.Limiter.slot(ctx, d.Limiter.vault, errVaultBusy)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, vaultDeadline)
	return ctx, func() { cancel(); release() }, nil
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
	rt.Methods(http.MethodPost).Path("/v1/tokens").Name("tokenize").Handler(wrap(d, "collect", "tokenize",
		d.authenticated(collectCaller, d.Idempotency.middleware(d.Log, maxCollectBody, c.tokenize))))
	rt.Methods(http.MethodOptions).Path("/v1/tokens").Name("tokenize_preflight").Handler(wrap(d, "collect", "", c.preflight))
	return rt
}

type collect struct{ *deps }

// preflight answers CORS preflights. The browser sends no credentials here, so an origin
// passes if any merchant allows it; the real request is then checked against its own merchant.
func (c *collect) preflight(w http.ResponseWriter, r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" || !c.anyMerchantAllows(origin) {
		return errOriginNotAllowed
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *collect) anyMerchantAllows(origin string) bool {
	for _, m := range c.Merchants {
		if slices.Contains(m.Origins, origin) {
			return true
		}
	}
	return false
}

func (c *collect) tokenize(w http.ResponseWriter, r *http.Request, key Key) error {
	ri := info(r)
	w.Header().Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); origin != "" {
		// Requests without Origin come from servers and curl, not browsers; a browser
		// always sends it on a cross-origin POST.
		if !slices.Contains(c.Merchants[key.Merchant].Origins, origin) {
			return errOriginNotAllowed
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
	}
	f, err := readFields(w, r, collectFields)
	if err != nil {
		return err
	}
	ctx, done, err := c.vaultCall(r.Context())
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
	writeJSON(w, http.StatusCreated, meta)
	return nil
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
