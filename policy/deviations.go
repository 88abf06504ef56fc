package policy

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/chdproxy/chdproxy/token"
)

// Deviations from the SmartPayments card fields an injection route may
// acknowledge (its `acknowledge` list). Unacknowledged, each is a lint problem.
const (
	NonstandardHost  = "nonstandard_host"  // card data to a host other than chd-api.smartcore.pro
	NonstandardPath  = "nonstandard_path"  // on a path other than the three card-data calls
	NonstandardField = "nonstandard_field" // into a body field the documentation does not name for it
)

var deviationKinds = []string{NonstandardHost, NonstandardPath, NonstandardField}

// chdAPIBaseURL is the SmartPayments host for card data ("PCI DSS requests").
const chdAPIBaseURL = "https://chd-api.smartcore.pro"

// cardField is what the SmartPayments documentation puts into one body field.
type cardField struct {
	attr  string
	kinds []token.Kind
}

var (
	cardOnly   = []token.Kind{token.Card}
	cardFields = map[string]cardField{
		"card_number": {AttrPAN, cardOnly}, "card_exp_month": {AttrExpMonth, cardOnly},
		"card_exp_year": {AttrExpYear, cardOnly}, "card_cvv": {AttrCVV, cardOnly}, "card_holder": {AttrHolder, cardOnly},
	}
	// chdAPICardFields: the three calls that take card data and, for each,
	// the body fields that take it (shared/smartpayments-api.txt).
	chdAPICardFields = map[string]map[string]cardField{
		"/initPaymentHost2Host": withFields(cardFields, map[string]cardField{
			"apple_pay_dpan":                    {AttrDPAN, []token.Kind{token.ApplePay}},
			"apple_pay_payment_method_network":  {AttrNetwork, []token.Kind{token.ApplePay}},
			"google_pay_dpan":                   {AttrDPAN, []token.Kind{token.GooglePay}},
			"google_pay_payment_method_network": {AttrNetwork, []token.Kind{token.GooglePay}},
		}),
		"/authorize": cardFields,
		"/withdrawal/init": {
			"customer_card_number": {AttrPAN, cardOnly}, "customer_card_exp_month": {AttrExpMonth, cardOnly},
			"customer_card_exp_year": {AttrExpYear, cardOnly},
		},
	}
)

func withFields(a, b map[string]cardField) map[string]cardField {
	out := make(map[string]cardField, len(a)+len(b))
	for _, m := range []map[string]cardField{a, b} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Deviation is one way an injection route sends card data outside the
// SmartPayments card fields.
type Deviation struct {
	Kind    string // NonstandardHost, NonstandardPath or NonstandardField
	Route   string // the route's path
	Path    string // where in the policy, e.g. "routes[0].inject[2].field"
	Message string // what goes where, instead of what the documentation says
}

// deviations returns route i's deviations, and which kinds could be checked
// (values that failed to decode or are invalid are left to their own problem).
// The host is the policy file's own base URL, whatever WithUpstreams set.
func (p *Policy) deviations(i int) (devs []Deviation, checked map[string]bool) {
	r, rp := &p.Routes[i], item("routes", i)
	checked = map[string]bool{}
	if u, ok := p.Upstreams[r.Upstream]; ok && !p.quiet(child(child("upstreams", r.Upstream), "base_url")) && !p.quiet(child(rp, "upstream")) {
		checked[NonstandardHost] = true
		if base := u.fileBaseURL(); !chdAPIHost(base) {
			devs = append(devs, Deviation{NonstandardHost, r.Path, child(rp, "upstream"),
				fmt.Sprintf("card data goes to %s (upstream %q), not to %s, the SmartPayments card-data host", base, r.Upstream, chdAPIBaseURL)})
		}
	}
	if p.quiet(child(rp, "path")) || checkRoutePath(r.Path) != "" {
		return devs, checked
	}
	checked[NonstandardPath] = true
	doc, ok := chdAPICardFields[r.Path]
	if !ok {
		devs = append(devs, Deviation{NonstandardPath, r.Path, child(rp, "path"),
			fmt.Sprintf("%s is not a SmartPayments call that takes card data (%s)", r.Path, strings.Join(sortedKeys(chdAPICardFields), ", "))})
		return devs, checked
	}
	checked[NonstandardField] = true
	for j, in := range r.Inject {
		ip := item(child(rp, "inject"), j)
		if _, known := attrKinds[in.Attribute]; !known || !validField(in.Field) || p.quiet(ip) {
			continue
		}
		if msg := fieldDeviation(r.Path, doc, in); msg != "" {
			devs = append(devs, Deviation{NonstandardField, r.Path, child(ip, "field"), msg})
		}
	}
	return devs, checked
}

// fieldDeviation says how in differs from the documented fields of path, ""
// when the field is the one documented for its attribute and token kinds.
func fieldDeviation(path string, doc map[string]cardField, in Injection) string {
	if f, ok := doc[in.Field]; ok && f.attr == in.Attribute && !slices.ContainsFunc(in.Kinds, func(k token.Kind) bool { return !slices.Contains(f.kinds, k) }) {
		return ""
	}
	var want []string
	for name, f := range doc {
		if f.attr == in.Attribute && slices.ContainsFunc(in.Kinds, func(k token.Kind) bool { return slices.Contains(f.kinds, k) }) {
			want = append(want, name)
		}
	}
	sort.Strings(want)
	what := fmt.Sprintf("the %s of %s tokens", in.Attribute, joinKinds(in.Kinds))
	if len(want) == 0 {
		return fmt.Sprintf("%s into body field %q: SmartPayments %s takes no %s", what, in.Field, path, strings.TrimPrefix(what, "the "))
	}
	return fmt.Sprintf("%s into body field %q: SmartPayments %s takes it in %s only", what, in.Field, path, strings.Join(want, " or "))
}

// chdAPIHost reports whether base is the SmartPayments card-data host itself:
// https, default port, no path prefix.
func chdAPIHost(base string) bool {
	u, err := url.Parse(base)
	return err == nil && u.Scheme == "https" && strings.EqualFold(u.Host, "chd-api.smartcore.pro") && u.User == nil &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && !u.ForceQuery && u.Fragment == ""
}

// fileBaseURL is the base URL the policy file gives, before any override.
func (u Upstream) fileBaseURL() string {
	if u.Overridden {
		return u.fileURL
	}
	return u.BaseURL
}

// acknowledgements checks route i's acknowledge list and reports every
// deviation it does not acknowledge, and every entry with nothing to
// acknowledge (it would pre-approve the next change unseen).
func (l *linter) acknowledgements(i int) {
	r, ap := &l.p.Routes[i], child(item("routes", i), "acknowledge")
	acked := map[string]bool{}
	for j, a := range r.Acknowledge {
		switch {
		case !slices.Contains(deviationKinds, a):
			l.add(item(ap, j), "unknown deviation %q (known: %s)", a, strings.Join(deviationKinds, ", "))
		case acked[a]:
			l.add(item(ap, j), "%s is listed twice", a)
		}
		acked[a] = true
	}
	devs, checked := l.p.deviations(i)
	found := map[string]bool{}
	for _, d := range devs {
		found[d.Kind] = true
		if !acked[d.Kind] {
			l.add(d.Path, "%s; if intended, add %s to the route's acknowledge list", d.Message, d.Kind)
		}
	}
	for j, a := range r.Acknowledge {
		if checked[a] && !found[a] && slices.Index(r.Acknowledge, a) == j {
			l.add(item(ap, j), "nothing on this route is %s; remove it, so that it does not approve a later change unseen", a)
		}
	}
}
