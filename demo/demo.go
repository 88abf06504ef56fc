// Package demo is the merchant checkout `chdproxy dev` serves at checkout_url: a
// shop page on its own origin that mounts chdproxy's hosted card fields with
// collect.js, and a tiny merchant backend on that same origin that pays through
// the forward listener with the token it receives.
//
// It shows what a merchant builds, and nothing more privileged: the page never
// holds card data (the inputs live in frames on the collect origin) and never
// sees the secret key; the backend receives token ids only and keeps the shopper's
// saved card (token, brand, last4) on the server, keyed by an opaque cookie.
//
// Routes (all on the demo origin):
//
//	GET  /                      the checkout page
//	GET  /static/{file}         its script and stylesheet (no inline script: strict CSP)
//	POST /api/pay               {token} → pays; {status, title, detail, redirect?, saved?}
//	GET  /return?order=ID       where the 3-D Secure challenge sends the shopper back
//	POST /api/saved/cvv-session a CVV session for the saved card → {session}
//	POST /api/saved/pay         pays again with the saved card (after the CVV frame)
package demo

import (
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

// Config is what the demo needs to know; dev fills it from what it started.
type Config struct {
	Origin         string // the page's own origin, exactly as registered for the pk_ (http://localhost:3000)
	CollectURL     string // the collect listener: collect.js and the hosted fields
	ForwardURL     string // the forward listener the backend pays through
	PublishableKey string // goes into the page
	SecretKey      string // stays in the backend
	// UpstreamAuth is the merchant's own SmartPayments Authorization header
	// (Basic …), forwarded upstream untouched by chdproxy.
	UpstreamAuth string
	Account      string // the SmartPayments payment account (EUR-sandbox)
	// ScriptPath is collect.js's path on the collect listener and Integrity its
	// Subresource Integrity value ("sha384-…"); with Integrity empty the tag has none.
	ScriptPath string
	Integrity  string
	Log        *logrus.Logger // the redacting logger
	Client     *http.Client   // towards the forward listener; nil: one with a 30s timeout
}

// Demo is the checkout's handler.
type Demo struct {
	cfg     Config
	collect string // origin of the collect listener
	client  *http.Client
	mux     *http.ServeMux
	mu      sync.Mutex
	saved   map[string]savedCard    // by customer cookie: the card on file
	pending map[string]pendingOrder // by order id: payments waiting for the challenge
}

// savedCard is the shopper's card on file: a token id and its harmless metadata.
type savedCard struct {
	Token, Brand, Last4 string
}

// pendingOrder is a payment sent through the 3-D Secure challenge.
type pendingOrder struct {
	customer string
	card     savedCard
}

// maxEntries bounds each in-memory map: the demo runs on one machine for one developer.
const maxEntries = 10000

// New checks cfg and returns the checkout handler.
func New(cfg Config) (*Demo, error) {
	var errs []error
	collect, err := originOf(cfg.CollectURL)
	if err != nil {
		errs = append(errs, fmt.Errorf("demo: CollectURL: %w", err))
	}
	if o, err := originOf(cfg.Origin); err != nil || o != cfg.Origin {
		errs = append(errs, errors.New("demo: Origin must be a bare http(s) origin"))
	}
	if _, err := originOf(cfg.ForwardURL); err != nil {
		errs = append(errs, fmt.Errorf("demo: ForwardURL: %w", err))
	}
	if !strings.HasPrefix(cfg.PublishableKey, "pk_") || !strings.HasPrefix(cfg.SecretKey, "sk_") || cfg.Log == nil {
		errs = append(errs, errors.New("demo: a pk_ key, an sk_ key and a logger are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.ScriptPath == "" {
		cfg.ScriptPath = "/collect.js"
	}
	d := &Demo{cfg: cfg, collect: collect, client: cfg.Client, saved: map[string]savedCard{}, pending: map[string]pendingOrder{}}
	if d.client == nil {
		d.client = &http.Client{Timeout: 30 * time.Second}
	}
	static, _ := fs.Sub(assets, "assets/static")
	d.mux = http.NewServeMux()
	d.mux.HandleFunc("GET /{$}", d.index)
	d.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	d.mux.HandleFunc("GET /return", d.returned)
	d.mux.HandleFunc("POST /api/pay", d.api(d.pay))
	d.mux.HandleFunc("POST /api/saved/cvv-session", d.api(d.cvvSession))
	d.mux.HandleFunc("POST /api/saved/pay", d.api(d.payAgain))
	return d, nil
}

// ServeHTTP serves every route with the page's security headers.
func (d *Demo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", d.csp())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	d.mux.ServeHTTP(w, r)
}

// csp lets the page run its own script and collect.js, frame only the collect
// origin, and talk only to its own backend: the card never passes through it.
func (d *Demo) csp() string {
	return "default-src 'none'; script-src 'self' " + d.collect + "; frame-src " + d.collect +
		"; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}

// view is what the page template shows.
type view struct {
	Key, CollectOrigin, Script, Integrity string
	Outcome                               *result
	Saved                                 *savedCard
}

func (d *Demo) index(w http.ResponseWriter, r *http.Request) {
	d.render(w, d.customer(w, r), nil)
}

func (d *Demo) render(w http.ResponseWriter, customer string, outcome *result) {
	v := view{Key: d.cfg.PublishableKey, CollectOrigin: d.collect, Script: d.collect + d.cfg.ScriptPath, Integrity: d.cfg.Integrity, Outcome: outcome}
	if c, ok := d.savedCard(customer); ok {
		v.Saved = &c
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, v); err != nil {
		d.cfg.Log.WithError(err).Warn("demo: rendering the checkout page")
	}
}

// customerCookie names the shopper; the saved card stays on the server.
const customerCookie = "demo_customer"

// customer returns the shopper's id, setting a new cookie when there is none.
func (d *Demo) customer(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(customerCookie); err == nil && len(c.Value) == 32 {
		return c.Value
	}
	id := randomID(16)
	http.SetCookie(w, &http.Cookie{Name: customerCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return id
}

func (d *Demo) savedCard(customer string) (savedCard, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.saved[customer]
	return c, ok
}

func (d *Demo) save(customer string, c savedCard) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.saved[customer]; ok || len(d.saved) < maxEntries {
		d.saved[customer] = c
	}
}

// originOf is the scheme://host[:port] of an absolute http(s) URL.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", errors.New("not an absolute http(s) URL")
	}
	return u.Scheme + "://" + u.Host, nil
}

// randomID is n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}
