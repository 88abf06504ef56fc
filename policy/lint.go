package policy

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chdproxy/chdproxy/token"
)

// Problem is one thing wrong with a policy.
type Problem struct {
	Line    int    // 1-based line in the policy file; 0 when unknown
	Path    string // where in the policy, e.g. "routes[1].inject[3].field"; "" for the whole file
	Message string
}

// String renders "line 12: routes[1].path: must start with '/'", leaving out
// the parts that are unknown. Callers may prefix the file name.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// LintOptions adjusts the safety rules.
type LintOptions struct {
	// Dev allows plain http upstreams on loopback (127.0.0.1, ::1,
	// localhost), as `chdproxy dev` uses. Nothing else is relaxed.
	Dev bool
}

// lintBytes decodes a policy and lints it, returning every schema and safety
// problem sorted by line. The policy is never nil; with problems it is only
// fit for reporting.
func lintBytes(b []byte, opts LintOptions) (*Policy, []Problem) {
	p, probs := decode(b)
	probs = append(probs, lint(p, opts)...)
	sortProblems(probs)
	return p, probs
}

// LintFile reads a policy file and lints it, for `chdproxy policy lint`: it
// returns every schema and safety problem sorted by line, and the policy,
// which with problems is only fit for reporting. The error is for reading the
// file only; problems in its content are in the slice.
func LintFile(path string, opts LintOptions) (*Policy, []Problem, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, nil, err
	}
	p, probs := lintBytes(b, opts)
	return p, probs, nil
}

// lint checks a decoded policy against the safety rules and returns every
// problem, sorted by line; none means valid and safe. Schema problems are
// decode's; lint stays quiet about values that failed to decode.
func lint(p *Policy, opts LintOptions) []Problem {
	l := &linter{p: p, opts: opts, names: map[string]string{}}
	if p.Version != Version {
		l.add("version", "unsupported version %d; this chdproxy reads version %d", p.Version, Version)
	}
	l.upstreams()
	l.routes()
	l.passthrough()
	l.tokens()
	l.logging()
	l.redaction()
	sortProblems(l.problems)
	return l.problems
}

type linter struct {
	p        *Policy
	opts     LintOptions
	problems []Problem
	names    map[string]string // route name → path of its first use
}

func (l *linter) add(path, format string, args ...any) {
	if l.p.quiet(path) {
		return
	}
	l.problems = append(l.problems, Problem{Line: l.p.lineOf(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

// quiet reports whether path is at or below a value that failed to decode.
func (p *Policy) quiet(path string) bool {
	for _, b := range p.broken {
		if b == "" || path == b ||
			(strings.HasPrefix(path, b) && (path[len(b)] == '.' || path[len(b)] == '[')) {
			return true
		}
	}
	return false
}

// lineOf returns the line of path, or of its nearest ancestor that has one.
func (p *Policy) lineOf(path string) int {
	for {
		if line, ok := p.lines[path]; ok {
			return line
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return p.lines[""]
		}
		path = path[:i]
	}
}

func sortProblems(probs []Problem) {
	sort.SliceStable(probs, func(i, j int) bool {
		a, b := probs[i].Line, probs[j].Line
		if a == 0 || b == 0 {
			return b == 0 && a != 0
		}
		return a < b
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (l *linter) upstreams() {
	for _, name := range sortedKeys(l.p.Upstreams) {
		u := l.p.Upstreams[name]
		up := child("upstreams", name)
		if !validName(name) {
			l.add(up, "upstream name %q: use a letter, then letters, digits, '-' or '_' (at most 64)", name)
		}
		l.baseURL(child(up, "base_url"), u.BaseURL)
	}
}

func (l *linter) baseURL(path, s string) {
	if s == "" {
		l.add(path, "base_url is empty")
		return
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		l.add(path, "base_url %q is not a valid URL", s)
		return
	}
	host := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		switch {
		case l.opts.Dev && isLoopback(host):
		case l.opts.Dev:
			l.add(path, "base_url %q uses plain http; dev allows http only to 127.0.0.1, ::1 or localhost", s)
		default:
			l.add(path, "base_url %q uses plain http; upstreams must use https (http only in dev, on loopback)", s)
		}
	default:
		l.add(path, "base_url %q must use https", s)
	}
	if host == "" {
		l.add(path, "base_url %q has no host", s)
	}
	if u.User != nil {
		l.add(path, "base_url must not carry credentials")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		l.add(path, "base_url %q must not have a query or fragment", s)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// name checks a route or passthrough name, unique across both lists.
func (l *linter) name(path, name string) {
	if name == "" {
		l.add(path, "name is empty")
		return
	}
	if !validName(name) {
		l.add(path, "name %q: use a letter, then letters, digits, '-' or '_' (at most 64)", name)
	}
	if first, dup := l.names[name]; dup {
		l.add(path, "duplicate route name %q (also %s)", name, first)
		return
	}
	l.names[name] = strings.TrimSuffix(path, ".name")
}

func (l *linter) routes() {
	paths := map[string]string{}
	for i := range l.p.Routes {
		r := &l.p.Routes[i]
		rp := item("routes", i)
		l.name(child(rp, "name"), r.Name)
		if r.Method != "POST" {
			l.add(child(rp, "method"), "injection routes accept POST only, got %q", r.Method)
		}
		l.uniquePath(rp, r.Path, paths, checkRoutePath)
		l.routeUpstream(child(rp, "upstream"), r.Upstream, true)

		kp := child(rp, "kinds")
		if len(r.AllowedKinds) == 0 {
			l.add(kp, "no token kinds; list at least one of %s", joinKinds(token.Kinds()))
		}
		l.kinds(kp, r.AllowedKinds, nil, nil)
		if f := r.PaymentMethodField; f != "" {
			if !validField(f) {
				l.add(child(rp, "payment_method_field"), "%q is not a top-level JSON key (a letter or '_', then letters, digits, '_' or '-')", f)
			}
		} else if len(r.AllowedKinds) > 1 {
			l.add(child(rp, "payment_method_field"), "a route accepting more than one token kind must name payment_method_field, so the request's payment method can be checked against the token's kind")
		}

		if len(r.Inject) == 0 {
			l.add(child(rp, "inject"), "no fields to inject; a route that injects nothing belongs under passthrough")
		}
		fields := map[string]string{}
		covered := map[token.Kind]bool{}
		for j, in := range r.Inject {
			ip := item(child(rp, "inject"), j)
			l.injection(r, rp, ip, in, fields, covered)
		}
		for _, k := range r.AllowedKinds {
			if k.Valid() && !covered[k] && len(r.Inject) > 0 {
				l.add(kp, "token kind %q is accepted but no field receives any of its attributes", k)
			}
		}
		l.acknowledgements(i)
	}
	for i := range l.p.Passthrough {
		t := &l.p.Passthrough[i]
		if first, ok := paths[t.Path]; ok && t.Path != "" {
			l.add(child(item("passthrough", i), "path"), "path %q is both an injection route (%s) and a passthrough route", t.Path, first)
		}
	}
}

func (l *linter) injection(r *Route, rp, ip string, in Injection, fields map[string]string, covered map[token.Kind]bool) {
	fp := child(ip, "field")
	switch {
	case in.Field == "":
		l.add(fp, "field is empty")
	case !validField(in.Field):
		l.add(fp, "%q is not a top-level JSON key (a letter or '_', then letters, digits, '_' or '-'); nested paths, wildcards and patterns are not supported", in.Field)
	}
	if in.Field != "" {
		if first, dup := fields[in.Field]; dup {
			l.add(fp, "field %q is mapped twice on this route (also %s)", in.Field, first)
		} else {
			fields[in.Field] = ip
		}
		if in.Field == r.PaymentMethodField {
			l.add(fp, "field %q is the route's payment_method_field and cannot receive card data", in.Field)
		}
	}

	ap := child(ip, "attribute")
	akinds, known := attrKinds[in.Attribute]
	if !known {
		l.add(ap, "unknown attribute %q (known: %s)", in.Attribute, strings.Join(attrOrder, ", "))
	}
	if in.Attribute == AttrCVV && !r.Payment && !l.p.quiet(child(rp, "payment")) {
		l.add(ap, "CVV may be injected only on a payment route (payment: true); this route never carries a CVV")
	}

	kp := child(ip, "kinds")
	// Without valid route kinds, the route's own problem says it all.
	routeKinds := len(r.AllowedKinds) > 0 && !l.p.quiet(child(rp, "kinds"))
	if len(in.Kinds) == 0 && routeKinds {
		l.add(kp, "no token kinds")
	}
	l.kinds(kp, in.Kinds, r.AllowedKinds, func(k token.Kind, kip string) {
		if !routeKinds {
			return
		}
		if !r.Accepts(k) {
			l.add(kip, "token kind %q is not accepted by this route (kinds: %s)", k, joinKinds(r.AllowedKinds))
			return
		}
		if known && !slices.Contains(akinds, k) {
			l.add(kip, "attribute %q does not exist for %s tokens (only for %s)", in.Attribute, k, joinKinds(akinds))
			return
		}
		if known {
			covered[k] = true
		}
	})
}

// kinds checks a list of kinds, calling each for every known, first-seen kind.
// Unknown kinds in skip are not reported again.
func (l *linter) kinds(path string, kinds, skip []token.Kind, each func(kind token.Kind, path string)) {
	seen := map[token.Kind]bool{}
	for i, k := range kinds {
		kp := item(path, i)
		if !k.Valid() {
			if !slices.Contains(skip, k) {
				l.add(kp, "unknown token kind %q (known: %s)", k, joinKinds(token.Kinds()))
			}
			continue
		}
		if seen[k] {
			l.add(kp, "token kind %q is listed twice", k)
			continue
		}
		seen[k] = true
		if each != nil {
			each(k, kp)
		}
	}
}

// joinKinds lists kinds for a message: "card, apple_pay".
func joinKinds(kinds []token.Kind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func (l *linter) routeUpstream(path, name string, inject bool) {
	if name == "" {
		l.add(path, "upstream is empty")
		return
	}
	u, ok := l.p.Upstreams[name]
	if !ok {
		l.add(path, "upstream %q is not defined under upstreams", name)
		return
	}
	if inject && !u.CardData && !l.p.quiet(child(child("upstreams", name), "card_data")) {
		l.add(path, "upstream %q is not a card-data host (card_data: true); card data may be injected only into requests to a card-data host", name)
	}
}

// uniquePath checks the path s of the route at rp with check, and that no other
// route in paths (path → route) has it; it adds s to paths.
func (l *linter) uniquePath(rp, s string, paths map[string]string, check func(string) string) {
	path := child(rp, "path")
	if msg := check(s); msg != "" {
		l.add(path, "%s", msg)
		return
	}
	if first, dup := paths[s]; dup {
		l.add(path, "path %q is already routed by %s", s, first)
		return
	}
	paths[s] = rp
}

const wildcardChars = "*{}()[]^$+?|\\:"

func checkRoutePath(s string) string {
	switch {
	case s == "":
		return "path is empty"
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("path %q must start with '/'", s)
	case strings.ContainsAny(s, wildcardChars):
		return fmt.Sprintf("path %q contains a wildcard or pattern; a route matches one exact path", s)
	case len(s) > 256:
		return "path is longer than 256 bytes"
	}
	for _, seg := range strings.Split(s[1:], "/") {
		switch seg {
		case "":
			return fmt.Sprintf("path %q has an empty segment or a trailing '/'", s)
		case ".", "..":
			return fmt.Sprintf("path %q has a dot segment", s)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
				return fmt.Sprintf("path %q: character %q is not allowed (letters, digits, '-', '.', '_', '~' and '/')", s, c)
			}
		}
	}
	return ""
}

// checkPassthroughPath is checkRoutePath for a passthrough route, which may also
// name whole segments as parameters ("/task/{taskId}"): the transaction-list task
// ids. The forward listener matches a parameter to one segment of ASCII letters,
// digits and '-' only, so it can carry neither a path of its own nor a token id.
func checkPassthroughPath(s string) string {
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		if name, ok := PathParam(seg); ok {
			segs[i] = name
		}
	}
	return checkRoutePath(strings.Join(segs, "/"))
}

// PathParam reports whether a path segment is a parameter, "{name}" with a name of
// 1 to 32 ASCII letters, and returns the name.
func PathParam(seg string) (string, bool) {
	inner, open := strings.CutPrefix(seg, "{")
	name, closed := strings.CutSuffix(inner, "}")
	if !open || !closed || len(name) == 0 || len(name) > 32 {
		return "", false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "", false
		}
	}
	return name, true
}

func (l *linter) passthrough() {
	paths := map[string]string{}
	for i := range l.p.Passthrough {
		t := &l.p.Passthrough[i]
		tp := item("passthrough", i)
		l.name(child(tp, "name"), t.Name)
		if t.Method != "POST" && t.Method != "GET" {
			l.add(child(tp, "method"), "passthrough routes accept POST or GET only, got %q", t.Method)
		}
		l.uniquePath(tp, t.Path, paths, checkPassthroughPath)
		l.routeUpstream(child(tp, "upstream"), t.Upstream, false)
	}
}

// MaxCardTTL caps a card token's lifetime. Every stored ciphertext is then at most
// this old, so a rotated-out transit key version stops being needed this long after
// the rotation even when no rewrap runs, and min_decryption_version can retire it:
// a cryptoperiod of one quarter (PCI DSS 3.6.4, 3.7.4).
const MaxCardTTL = 90 * 24 * time.Hour

func (l *linter) tokens() {
	t := l.p.Tokens
	l.ttl("tokens.card_ttl", t.Card, MaxCardTTL)
	l.ttl("tokens.cvv_ttl", t.CVV, token.MaxOneTimeTTL)
	l.ttl("tokens.wallet_ttl", t.Wallet, token.MaxOneTimeTTL)
}

func (l *linter) ttl(path string, d, max time.Duration) {
	switch {
	case d < time.Second:
		l.add(path, "%s is too short; lifetimes must be at least 1s", fmtDuration(d))
	case max > 0 && d > max:
		l.add(path, "%s is above the hard cap of %s", fmtDuration(d), fmtDuration(max))
	}
}

func (l *linter) logging() {
	switch m := l.p.Logging.PANMask; m {
	case PANMaskLast4, PANMaskBINLast4:
	default:
		l.add("logging.pan_mask", "pan_mask %q is not allowed; use %s or %s (never more than BIN and last four digits)", m, PANMaskLast4, PANMaskBINLast4)
	}
}

func (l *linter) redaction() {
	seen := map[string]string{}
	for i, f := range l.p.Redaction.Fields {
		fp := item("redaction.fields", i)
		if !validField(f) {
			l.add(fp, "%q is not a valid field name (a letter or '_', then letters, digits, '_' or '-')", f)
			continue
		}
		if first, dup := seen[f]; dup {
			l.add(fp, "field %q is listed twice (also %s)", f, first)
			continue
		}
		seen[f] = fp
	}
	seen = map[string]string{}
	for i, h := range l.p.Redaction.Headers {
		hp := item("redaction.headers", i)
		if !validHeader(h) {
			l.add(hp, "%q is not a valid header name", h)
			continue
		}
		k := strings.ToLower(h)
		if first, dup := seen[k]; dup {
			l.add(hp, "header %q is listed twice (also %s)", h, first)
			continue
		}
		seen[k] = hp
	}
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || !isLetter(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func validField(s string) bool {
	if s == "" || len(s) > 128 || !(isLetter(s[0]) || s[0] == '_') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func validHeader(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !isDigit(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// fmtDuration renders 24h, 10m, 1h30m, 45s rather than time's 24h0m0s.
func fmtDuration(d time.Duration) string {
	if d <= 0 || d%time.Second != 0 {
		return d.String()
	}
	var b strings.Builder
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}
