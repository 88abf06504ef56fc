package proxy

// Injection as a plan, in three pure steps that know nothing of HTTP:
//
//  1. referencedToken: which one token the body names, before the vault is read;
//  2. planInjection: once the token's kind is known, which fields receive which of
//     its attributes, and whether its CVV is asked for (and so consumed);
//  3. plan.apply: the body with those fields filled from the decrypted secret.
//
// forward.detokenize runs them around the vault calls and the audit record.

import (
	"bytes"
	"slices"
	"strings"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/token"
	"github.com/chdproxy/chdproxy/vault"
)

// plan is what one request injects.
type plan struct {
	token string
	cvv   bool   // a CVV field names the token: the CVV is injected and consumed
	fills []fill // in the route's order
}

// fill is one body field that receives one token attribute.
type fill struct {
	field string
	attr  string
	add   bool // absent from the body: appended
}

// referencedToken returns the one token id the body names, or "" when it names none.
// Every token must sit in a field the route may fill; secrets must be token ids.
func referencedToken(body []byte, fields []jsonField, route *policy.Route) (string, error) {
	tok := ""
	for _, fl := range fields {
		inj, injectable := route.Field(fl.key)
		if fl.isString && vault.ValidTokenID(fl.str) {
			if !injectable {
				return "", errTokenNotAllowed
			}
			if tok != "" && tok != fl.str {
				return "", errTokenMismatch
			}
			tok = fl.str
			continue
		}
		if !injectable && secretVariant(route, fl.key) {
			return "", errRawCardData // "Card_CVV": an upstream that reads keys in any case would use it
		}
		if injectable && fl.isString && fl.str != "" && secretAttribute(inj.Attribute) {
			return "", errRawCardData // a CVV or wallet payload sent in the clear
		}
		if injectable && !fl.isString && secretAttribute(inj.Attribute) && string(body[fl.start:fl.end]) != "null" &&
			!containsToken(body[fl.start:fl.end]) {
			return "", errRawCardData // a CVV (or PAN) sent as a JSON number
		}
		if containsToken(body[fl.start:fl.end]) {
			return "", errTokenNotAllowed // a token nested or embedded where nothing is injected
		}
	}
	return tok, nil
}

// planInjection checks a token of kind against the route and the body and says what
// to fill. Fields the policy fills for kind are filled when they hold the token id or
// are empty, and added when absent; a plain value the merchant sent is kept. The CVV
// is planned only when its field names the token.
func planInjection(route *policy.Route, fields []jsonField, tok string, kind token.Kind) (plan, error) {
	if !route.Accepts(kind) {
		return plan{}, errKindNotAllowed
	}
	if err := checkPaymentMethod(fields, route, kind); err != nil {
		return plan{}, err
	}
	injections := route.InjectionsFor(kind)
	for _, fl := range fields {
		if fl.isString && fl.str == tok && !slices.ContainsFunc(injections, func(in policy.Injection) bool { return in.Field == fl.key }) {
			return plan{}, errTokenNotAllowed // a field the policy fills only for other kinds of token
		}
	}
	p := plan{token: tok}
	for _, in := range injections {
		if in.Attribute == policy.AttrCVV && fieldValue(fields, in.Field) == tok {
			p.cvv = true
		}
	}
	for _, in := range injections {
		present, cur := hasField(fields, in.Field), fieldValue(fields, in.Field)
		if in.Attribute == policy.AttrCVV && !p.cvv {
			continue // no CVV asked for: it stays for a later payment
		}
		if present && cur != tok && cur != "" {
			continue // a plain non-secret value the merchant chose to send (secrets were refused above)
		}
		p.fills = append(p.fills, fill{field: in.Field, attr: in.Attribute, add: !present})
	}
	return p, nil
}

// apply returns body with the plan's fields filled from sec. The caller wipes it.
func (p plan) apply(body []byte, fields []jsonField, sec *vault.Secret) []byte {
	set, add := map[string][]byte{}, []string(nil)
	for _, fl := range p.fills {
		v := attribute(sec, fl.attr)
		if v == nil {
			continue // an attribute the token does not have (no holder, no CVV)
		}
		set[fl.field] = v
		if fl.add {
			add = append(add, fl.field)
		}
	}
	out := splice(body, fields, set, add)
	for _, v := range set {
		wipe(v)
	}
	return out
}

func secretAttribute(a string) bool {
	return a == policy.AttrPAN || a == policy.AttrCVV || a == policy.AttrDPAN
}

// secretVariant reports whether key is a case variant of a field the route fills
// with a PAN, CVV or DPAN. Such a field is refused whatever it holds: the proxy
// neither fills nor checks it, and SmartPayments may read it as the real one.
func secretVariant(route *policy.Route, key string) bool {
	return slices.ContainsFunc(route.Inject, func(in policy.Injection) bool {
		return secretAttribute(in.Attribute) && strings.EqualFold(in.Field, key)
	})
}

// checkPaymentMethod refuses a payment_method that does not match the token's kind.
// SmartPayments reads an absent payment_method as "card".
func checkPaymentMethod(fields []jsonField, route *policy.Route, kind token.Kind) error {
	if route.PaymentMethodField == "" {
		return nil
	}
	got := token.Card.PaymentMethod()
	if hasField(fields, route.PaymentMethodField) {
		got = fieldValue(fields, route.PaymentMethodField)
	}
	if got != kind.PaymentMethod() {
		return errMethodMismatch
	}
	return nil
}

// attribute returns a fresh copy of one token attribute, or nil when the token has
// none; the caller wipes it.
func attribute(s *vault.Secret, attr string) []byte {
	switch attr {
	case policy.AttrPAN:
		return s.PAN.Reveal()
	case policy.AttrCVV:
		if s.CVV.IsZero() {
			return nil
		}
		return s.CVV.Reveal()
	case policy.AttrExpMonth:
		return []byte(s.Expiry.MonthString())
	case policy.AttrExpYear:
		return []byte(s.Expiry.Year2()) // as in the SmartPayments examples: "25"
	case policy.AttrHolder:
		if s.Holder.IsZero() {
			return nil
		}
		return []byte(s.Holder.Reveal())
	case policy.AttrDPAN:
		return s.DPAN.Reveal()
	case policy.AttrNetwork:
		return []byte(s.Network)
	}
	return nil
}

func hasField(fields []jsonField, name string) bool {
	return slices.ContainsFunc(fields, func(f jsonField) bool { return f.key == name })
}

func fieldValue(fields []jsonField, name string) string {
	for _, f := range fields {
		if f.key == name {
			return f.str
		}
	}
	return ""
}

// containsToken reports whether b holds something shaped like a token id.
func containsToken(b []byte) bool {
	for i := bytes.Index(b, []byte("tok_")); i >= 0; {
		end := i + 4
		for end < len(b) && isBase62(b[end]) {
			end++
		}
		if vault.ValidTokenID(string(b[i:end])) {
			return true
		}
		next := bytes.Index(b[end:], []byte("tok_"))
		if next < 0 {
			break
		}
		i = end + next
	}
	return false
}

func isBase62(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func wipe(b []byte) { clear(b) }
