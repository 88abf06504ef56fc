// Package policy reads, checks and explains chdproxy's policy: the one YAML
// file that names the upstreams, the routes on which card data may be
// injected (which token attribute goes into which JSON body field, for which
// token kinds), the routes that pass through unchanged, token lifetimes and
// redaction rules. deploy/policy.yaml is the default, embedded in the binary.
//
// Loading is strict: unknown keys, duplicate keys, wrong types, anchors and
// aliases are errors, and every problem is reported with its line. Linting
// adds the safety rules (https only, card data only to a card-data host, CVV
// only on payment routes, TTL caps, body fields only, exact paths, ...).
// Load, LoadDefault and WithUpstreams return a policy only when neither finds
// anything, so the proxy cannot start on a policy with a problem; LintFile
// lists every problem, for `chdproxy policy lint`.
//
// # Card data goes into JSON body fields only
//
// An inject entry names a top-level JSON body field, and the schema has no
// way to name a query parameter or a header. A policy written as if it had
// one is refused, not misread: a `location` key is an unknown key, and a
// field written "query:name" or "header:name" is not a valid field name.
//
// A *Policy is immutable once loaded and safe for concurrent use.
package policy

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/token"
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

// PAN masks for logs.
const (
	PANMaskLast4    = "last4"     // last four digits only
	PANMaskBINLast4 = "bin_last4" // first six (the BIN) and last four digits; never more
)

// MaxFileSize bounds the size of a policy file.
const MaxFileSize = 1 << 20

// Version is the only schema version this package reads.
const Version = 1

// attrOrder is the canonical order of attributes, for messages; attrKinds
// says which token kinds carry each attribute.
var (
	attrOrder = []string{AttrPAN, AttrExpMonth, AttrExpYear, AttrCVV, AttrHolder, AttrDPAN, AttrNetwork}
	attrKinds = map[string][]token.Kind{
		AttrPAN:      {token.Card},
		AttrExpMonth: {token.Card},
		AttrExpYear:  {token.Card},
		AttrCVV:      {token.Card},
		AttrHolder:   {token.Card},
		AttrDPAN:     {token.ApplePay, token.GooglePay},
		AttrNetwork:  {token.ApplePay, token.GooglePay},
	}
)

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
	broken []string       // paths that failed to decode; lint stays quiet below them
}

// Upstream is a host requests are forwarded to.
type Upstream struct {
	Name    string
	BaseURL string // scheme://host[:port][/prefix]; route paths are appended
	// CardData marks the host that may receive injected card data.
	CardData bool
	// Overridden is set when WithUpstreams replaced BaseURL (dev and tests).
	Overridden bool

	fileURL string // the file's base URL, kept when WithUpstreams replaces it
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
	AllowedKinds []token.Kind
	// PaymentMethodField, when set, names the body field whose value must be
	// the token kind's PaymentMethod (an absent field means "card").
	PaymentMethodField string
	// Inject lists the body fields that may receive token attributes, in
	// file order. A token in any other field must be refused.
	Inject []Injection
	// Acknowledge lists the deviations from the SmartPayments card fields
	// (NonstandardHost, NonstandardPath, NonstandardField) the policy's
	// author accepts on this route; Explain shows each one to the auditor.
	Acknowledge []string
}

// Injection says that top-level JSON body field Field receives token
// attribute Attribute for tokens of the given kinds.
type Injection struct {
	Field     string
	Attribute string       // pan|exp_month|exp_year|cvv|holder|dpan|network
	Kinds     []token.Kind // never empty after decoding: defaults to the route's kinds
}

// Accepts reports whether the route accepts tokens of kind.
func (r *Route) Accepts(kind token.Kind) bool { return slices.Contains(r.AllowedKinds, kind) }

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
func (r *Route) InjectionsFor(kind token.Kind) []Injection {
	var out []Injection
	for _, in := range r.Inject {
		if slices.Contains(in.Kinds, kind) {
			out = append(out, in)
		}
	}
	return out
}

// injectsCVV reports whether the route injects a CVV (and so consumes it).
func (r *Route) injectsCVV() bool {
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
	Path     string // matched exactly; a "{name}" segment matches one id segment (see PathParam)
	Upstream string
}

// TokenTTLs are token lifetimes.
type TokenTTLs struct {
	Card   time.Duration // card token record
	CVV    time.Duration // ≤ token.MaxOneTimeTTL
	Wallet time.Duration // ≤ token.MaxOneTimeTTL
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

// Upstream returns the upstream called name.
func (p *Policy) Upstream(name string) (Upstream, bool) {
	u, ok := p.Upstreams[name]
	return u, ok
}

// RedactRules returns the redactor rules the policy names: its PAN mask and
// its extra fields and headers. Every logger chdproxy builds takes its rules
// from here, so none can drift from the policy (or from its report). An
// unknown pan_mask, which lint refuses, gives the stricter last-four mask.
func (p *Policy) RedactRules() redact.Rules {
	mask := redact.MaskLast4
	if p.Logging.PANMask == PANMaskBINLast4 {
		mask = redact.MaskBINLast4
	}
	return redact.Rules{
		PANMask: mask,
		Fields:  slices.Clone(p.Redaction.Fields),
		Headers: slices.Clone(p.Redaction.Headers),
	}
}

// WithUpstreams returns a copy of p whose named upstreams have the given base
// URLs (`chdproxy dev` and tests point them at a local sandbox), linted with
// opts: the new URLs must pass the same rules as a file's. It fails on a name
// the policy does not define, and with an *InvalidError on any problem. Hash
// is unchanged; the upstreams are marked Overridden, which Explain reports.
func (p *Policy) WithUpstreams(baseURLs map[string]string, opts LintOptions) (*Policy, error) {
	names := sortedKeys(baseURLs)
	for _, name := range names {
		if _, ok := p.Upstreams[name]; !ok {
			return nil, fmt.Errorf("policy: no upstream named %q", name)
		}
	}
	q := p.clone()
	for _, name := range names {
		u := q.Upstreams[name]
		u.fileURL = u.fileBaseURL()
		u.BaseURL = baseURLs[name]
		u.Overridden = true
		q.Upstreams[name] = u
	}
	return valid(q, lint(q, opts))
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
		r.Acknowledge = slices.Clone(r.Acknowledge)
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

// valid returns p when there is no problem, otherwise an *InvalidError
// listing them all: a policy with any problem is never handed out.
func valid(p *Policy, probs []Problem) (*Policy, error) {
	if len(probs) > 0 {
		return nil, &InvalidError{Problems: probs}
	}
	return p, nil
}

// Load reads, decodes and lints a policy file. It returns the policy only
// when there is no problem at all; otherwise an *InvalidError listing every
// problem, or the error reading the file.
func Load(path string, opts LintOptions) (*Policy, error) {
	p, probs, err := LintFile(path, opts)
	if err != nil {
		return nil, err
	}
	return valid(p, probs)
}

// LoadDefault loads the embedded default policy (deploy/policy.yaml) with
// production lint rules, like Load.
func LoadDefault() (*Policy, error) {
	return valid(lintBytes(deploy.PolicyYAML, LintOptions{}))
}

// readFile reads at most MaxFileSize+1 bytes, enough for decode to notice an
// oversized file.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}
