// Package policy reads, checks and explains chdproxy's policy: the one YAML
// file that names the upstreams, the routes on which card data may be
// injected (which token attribute goes into which JSON body field, for which
// token kinds), the routes that pass through unchanged, token lifetimes and
// redaction rules. deploy/policy.yaml is the default, embedded in the binary.
//
// Loading is strict: unknown keys, duplicate keys, wrong types, anchors and
// aliases are errors, and every problem is reported with its line. Lint adds
// the safety rules (https only, card data only to a card-data host, CVV only
// on payment routes, TTL caps, body fields only, exact paths, ...). Parse and
// Load return a policy only when both find nothing; the proxy must refuse to
// start otherwise.
//
// # Injection locations
//
// Card data is only ever written into top-level JSON body fields. The schema
// can nevertheless express other locations, so that a mistaken policy is
// rejected loudly rather than misread: an inject entry may carry
// `location: query` or `location: header`, or write its field as
// "query:name" / "header:name" (a "body:" prefix is the same as no prefix).
// Injection.Location holds the result ("body" by default); Lint reports any
// location other than "body".
//
// A *Policy is immutable once loaded and safe for concurrent use.
package policy

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chdproxy/chdproxy/deploy"
)

// Token kinds.
const (
	KindCard      = "card"
	KindApplePay  = "apple_pay"
	KindGooglePay = "google_pay"
)

// Token attributes an injection can write.
const (
	AttrPAN      = "pan"       // card
	AttrExpMonth = "exp_month" // card
	AttrExpYear  = "exp_year"  // card
	AttrCVV      = "cvv"       // card; payment routes only; consumed at injection
	AttrHolder   = "holder"    // card
	AttrDPAN     = "dpan"      // apple_pay, google_pay; consumed at injection
	AttrNetwork  = "network"   // apple_pay, google_pay
)

// Injection locations. Only LocationBody passes Lint.
const (
	LocationBody   = "body"
	LocationQuery  = "query"
	LocationHeader = "header"
)

// PAN masks for logs.
const (
	PANMaskLast4    = "last4"     // last four digits only
	PANMaskBINLast4 = "bin_last4" // BIN and last four digits; never more
)

// Hard caps on the lifetimes of one-time secrets.
const (
	MaxCVVTTL    = 60 * time.Minute
	MaxWalletTTL = 60 * time.Minute
)

// MaxFileSize bounds the size of a policy file.
const MaxFileSize = 1 << 20

// Version is the only schema version this package reads.
const Version = 1

// kindsOrder is the canonical order of kinds; attrKinds says which kinds
// carry each attribute.
var (
	kindsOrder = []string{KindCard, KindApplePay, KindGooglePay}
	attrOrder  = []string{AttrPAN, AttrExpMonth, AttrExpYear, AttrCVV, AttrHolder, AttrDPAN, AttrNetwork}
	attrKinds  = map[string][]string{
		AttrPAN:      {KindCard},
		AttrExpMonth: {KindCard},
		AttrExpYear:  {KindCard},
		AttrCVV:      {KindCard},
		AttrHolder:   {KindCard},
		AttrDPAN:     {KindApplePay, KindGooglePay},
		AttrNetwork:  {KindApplePay, KindGooglePay},
	}
	paymentMethods = map[string]string{
		KindCard:      "card",
		KindApplePay:  "applePayDPan",
		KindGooglePay: "googlePayDPan",
	}
)

// Kinds returns the token kinds in canonical order.
func Kinds() []string { return slices.Clone(kindsOrder) }

// Attributes returns the token attributes in canonical order.
func Attributes() []string { return slices.Clone(attrOrder) }

// AttributeKinds returns the token kinds that carry attr, or nil for an
// unknown attribute.
func AttributeKinds(attr string) []string { return slices.Clone(attrKinds[attr]) }

// PaymentMethod returns the SmartPayments payment_method value that matches a
// token kind ("card", "applePayDPan", "googlePayDPan"), or "" for an unknown
// kind. SmartPayments treats an absent payment_method as "card".
func PaymentMethod(kind string) string { return paymentMethods[kind] }

// Policy is a loaded policy.
type Policy struct {
	Version     int
	Upstreams   map[string]Upstream // by name
	Routes      []Route             // injection routes, in file order
	Passthrough []Passthrough       // in file order
	Tokens      TokenTTLs
	Logging     Logging
	Redaction   Redaction
	// Hash is the lowercase hex SHA-256 of the policy file's bytes. It stays
	// that of the file when WithUpstreams overrides base URLs.
	Hash string

	lines  map[string]int // problem path → line, from decoding
	broken []string       // paths that failed to decode; Lint stays quiet below them
}

// Upstream is a host requests are forwarded to.
type Upstream struct {
	Name    string
	BaseURL string // scheme://host[:port][/prefix]; route paths are appended
	// CardData marks the host that may receive injected card data.
	CardData bool
	// Overridden is set when WithUpstreams replaced BaseURL (dev and tests).
	Overridden bool
}

// URL returns the upstream URL for a route path: the base URL without a
// trailing slash, followed by path.
func (u Upstream) URL(path string) string {
	return strings.TrimSuffix(u.BaseURL, "/") + path
}

// Host returns the host[:port] of the base URL, or "" when it does not parse.
func (u Upstream) Host() string {
	pu, err := url.Parse(u.BaseURL)
	if err != nil {
		return ""
	}
	return pu.Host
}

// Route is an injection route.
type Route struct {
	Name     string
	Method   string // always POST in a valid policy
	Path     string // matched exactly
	Upstream string // name of a card-data upstream
	// Payment marks a payment route, the only kind of route that may receive
	// a CVV.
	Payment bool
	// AllowedKinds are the token kinds the route accepts.
	AllowedKinds []string
	// PaymentMethodField, when set, names the body field whose value must be
	// PaymentMethod(kind) for the token's kind (an absent field means "card").
	PaymentMethodField string
	// Inject lists the body fields that may receive token attributes, in
	// file order. A token in any other field must be refused.
	Inject []Injection
}

// Injection says that body field Field receives token attribute Attribute
// for tokens of the given kinds.
type Injection struct {
	Field     string
	Location  string   // "body" in a valid policy
	Attribute string   // pan|exp_month|exp_year|cvv|holder|dpan|network
	Kinds     []string // never empty after decoding: defaults to the route's kinds
}

// Accepts reports whether the route accepts tokens of kind.
func (r *Route) Accepts(kind string) bool { return slices.Contains(r.AllowedKinds, kind) }

// Field returns the injection for a body field, if the route names it.
func (r *Route) Field(name string) (Injection, bool) {
	for _, in := range r.Inject {
		if in.Field == name {
			return in, true
		}
	}
	return Injection{}, false
}

// InjectionsFor returns the injections that apply to tokens of kind, in file
// order.
func (r *Route) InjectionsFor(kind string) []Injection {
	var out []Injection
	for _, in := range r.Inject {
		if slices.Contains(in.Kinds, kind) {
			out = append(out, in)
		}
	}
	return out
}

// InjectsCVV reports whether the route injects a CVV (and so consumes it).
func (r *Route) InjectsCVV() bool {
	for _, in := range r.Inject {
		if in.Attribute == AttrCVV {
			return true
		}
	}
	return false
}

// Passthrough is a route forwarded unchanged.
type Passthrough struct {
	Name     string
	Method   string // POST (default) or GET
	Path     string // matched exactly
	Upstream string
}

// TokenTTLs are token lifetimes.
type TokenTTLs struct {
	Card   time.Duration // card token record
	CVV    time.Duration // ≤ MaxCVVTTL
	Wallet time.Duration // ≤ MaxWalletTTL
}

// Logging configures log masking.
type Logging struct {
	PANMask string // PANMaskLast4 or PANMaskBINLast4
}

// Redaction lists extra field names and headers whose values are replaced
// whole, on top of the redactor's built-in rules.
type Redaction struct {
	Fields  []string
	Headers []string
}

// InjectRoute returns the injection route whose path is exactly path (no
// normalisation: pass the request's URL path as received). The route belongs
// to p; do not modify it.
func (p *Policy) InjectRoute(path string) (*Route, bool) {
	for i := range p.Routes {
		if p.Routes[i].Path == path {
			return &p.Routes[i], true
		}
	}
	return nil, false
}

// PassthroughRoute returns the passthrough route whose path is exactly path,
// matched like InjectRoute.
func (p *Policy) PassthroughRoute(path string) (*Passthrough, bool) {
	for i := range p.Passthrough {
		if p.Passthrough[i].Path == path {
			return &p.Passthrough[i], true
		}
	}
	return nil, false
}

// Upstream returns the upstream called name.
func (p *Policy) Upstream(name string) (Upstream, bool) {
	u, ok := p.Upstreams[name]
	return u, ok
}

// WithUpstreams returns a copy of p whose named upstreams have the given base
// URLs (`chdproxy dev` and tests point them at a local sandbox). It fails on
// a name the policy does not define. The copy is not checked: call
// Validate(LintOptions{Dev: true}) on it. Hash is unchanged; the upstreams
// are marked Overridden, which Explain reports.
func (p *Policy) WithUpstreams(baseURLs map[string]string) (*Policy, error) {
	names := make([]string, 0, len(baseURLs))
	for name := range baseURLs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := p.Upstreams[name]; !ok {
			return nil, fmt.Errorf("policy: no upstream named %q", name)
		}
	}
	q := p.clone()
	for _, name := range names {
		u := q.Upstreams[name]
		u.BaseURL = baseURLs[name]
		u.Overridden = true
		q.Upstreams[name] = u
	}
	return q, nil
}

// Validate runs Lint and returns an *InvalidError listing every problem, or
// nil when there is none.
func (p *Policy) Validate(opts LintOptions) error {
	if probs := Lint(p, opts); len(probs) > 0 {
		return &InvalidError{Problems: probs}
	}
	return nil
}

func (p *Policy) clone() *Policy {
	q := *p
	q.Upstreams = make(map[string]Upstream, len(p.Upstreams))
	for k, v := range p.Upstreams {
		q.Upstreams[k] = v
	}
	q.Routes = make([]Route, len(p.Routes))
	for i, r := range p.Routes {
		r.AllowedKinds = slices.Clone(r.AllowedKinds)
		r.Inject = slices.Clone(r.Inject)
		for j := range r.Inject {
			r.Inject[j].Kinds = slices.Clone(r.Inject[j].Kinds)
		}
		q.Routes[i] = r
	}
	q.Passthrough = slices.Clone(p.Passthrough)
	q.Redaction.Fields = slices.Clone(p.Redaction.Fields)
	q.Redaction.Headers = slices.Clone(p.Redaction.Headers)
	// lines and broken are never modified after decoding; sharing is safe.
	return &q
}

// InvalidError is returned for a policy with problems.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy: %d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for i, pr := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(pr.String())
	}
	return b.String()
}

// Parse decodes and lints a policy. It returns the policy only when there is
// no problem at all; otherwise an *InvalidError listing every problem.
func Parse(b []byte, opts LintOptions) (*Policy, error) {
	p, probs := LintBytes(b, opts)
	if len(probs) > 0 {
		return nil, &InvalidError{Problems: probs}
	}
	return p, nil
}

// Load reads, decodes and lints a policy file, like Parse.
func Load(path string, opts LintOptions) (*Policy, error) {
	p, probs, err := LintFile(path, opts)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, &InvalidError{Problems: probs}
	}
	return p, nil
}

// LoadDefault parses the embedded default policy (deploy/policy.yaml) with
// production lint rules.
func LoadDefault() (*Policy, error) {
	return Parse(deploy.PolicyYAML, LintOptions{})
}

// Default returns the embedded default policy. It never panics: it returns
// nil if the embedded policy is invalid, which this package's tests rule out;
// use LoadDefault to see the error.
func Default() *Policy {
	p, err := LoadDefault()
	if err != nil {
		return nil
	}
	return p
}

// readFile reads at most MaxFileSize+1 bytes, enough for Decode to notice an
// oversized file.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}
