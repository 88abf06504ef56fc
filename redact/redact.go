// Package redact removes card data and credentials from anything that
// leaves chdproxy: log lines, error and response bodies, stdin of
// `chdproxy redact`.
//
// A Redactor finds and masks:
//
//   - PANs (detect.go, the same detector as HasPAN): a whole digit run, or
//     whole groups of one, of 13 to 19 digits that a card brand issues at
//     that length (prefix table of card/brand.go) and that passes Luhn.
//     Groups are cut by single separators: space, dash, plus, dot, slash,
//     underscore, no-break and thin spaces, Unicode dashes and dots, and
//     zero-width characters. Digits are ASCII or any Unicode decimal digit
//     (fullwidth, Arabic-Indic …), plain, JSON-escaped (\u0034, \/),
//     percent-encoded (%34) or HTML references (&#52;, &#x34;, &nbsp;).
//     Masked digits become '*'; the last four stay, and the first six too
//     under MaskBINLast4. Never more. A masked bare JSON number is quoted
//     ("n":"************1111") so a JSON line stays JSON; nothing else is
//     ever quoted.
//   - values of sensitive fields (defaultFields: the CVV names and wallet
//     DPANs; extra Rules.Fields) in JSON ("cvc":"123", "cvc":123, also
//     inside escaped JSON strings), form and query strings (cvv=123&),
//     key=value or key: value text, XML elements (<cvv>123</cvv>, CDATA
//     included) and attributes (cvv="123"), and HTTP headers (Header,
//     X-Card-Cvc): replaced whole by [REDACTED];
//   - Authorization and Proxy-Authorization values (and Rules.Headers) in
//     header dumps, JSON and key=value text: replaced whole;
//   - chdproxy keys: sk_, pk_ and ak_ followed by at least 12 base62
//     characters become sk_[REDACTED] and so on. Token ids (tok_…) stay.
//
// Scrubbing is idempotent and returns its input untouched, without
// allocating, when there is nothing to redact.
//
// Precision: clean payment data comes out byte for byte. A Luhn-valid
// stretch inside a longer digit group (a 20-digit id), millisecond
// timestamps (prefix 1), IBANs, amounts and zero runs are not card numbers.
// Accepted false positives: a 13–19 digit number that a brand could have
// issued and that passes Luhn is masked whatever it means (one in ten of
// such ids); the forward listener refuses it in a request for the same
// reason.
package redact

import (
	"slices"
	"strings"
)

// PANMask says how many digits of a detected PAN stay visible.
type PANMask int

const (
	// MaskLast4 keeps the last four digits: ************1111.
	MaskLast4 PANMask = iota
	// MaskBINLast4 keeps the first six and the last four: 411111******1111.
	// This is the most PCI DSS allows to display.
	MaskBINLast4
)

// Rules configure a Redactor. The zero value is the safe default.
type Rules struct {
	PANMask PANMask
	// Fields are extra field names whose values are replaced whole, on top
	// of the CVV and wallet payload names (defaultFields). Matching ignores
	// case, '-', '_' and an "X-" prefix; a name matches the last segment of a dotted or
	// bracketed key (card.cvv, card[cvv]), so a name given as a path is cut
	// to its last segment.
	Fields []string
	// Headers are extra header names treated like Authorization: their value
	// runs to the end of the line in a header dump.
	Headers []string
}

// redacted replaces a field value or credential.
const redacted = "[REDACTED]"

// minKeyLen is the number of base62 characters after sk_, pk_ or ak_ from
// which the text is taken for a chdproxy key. Shorter ones (identifiers such
// as pk_id, or a logged key prefix) carry too little of a key to matter.
const minKeyLen = 12

// defaultFields are the field names whose values are redacted whole: the
// names card security codes go by (CVV2, CVC2, CID, CSC, CVN, CVD, CAV2 and
// the spellings APIs give them) and the wallet payloads. Matching ignores
// case, '-' and '_' (cardCvv, card-cvv and CARD_CVV are one name) and an
// "X-" prefix (the header X-Card-Cvc is card_cvc). "cid" is left out: it
// names correlation and content ids far more often than Amex codes.
var defaultFields = []string{
	"cvv", "cvc", "cvv2", "cvc2", "cvn", "cvn2", "csc", "cvd", "cav2",
	"security_code", "card_security_code", "card_verification_value", "card_verification_code",
	"card_cvv", "card_cvc", "card_cvv2", "card_cvc2", "card_csc", "card_cvn", "card_code",
	"cvv_code", "cvc_code", "cvv_number", "customer_card_cvv",
	"apple_pay_dpan", "google_pay_dpan", "dpan",
}

var defaultHeaders = []string{"authorization", "proxy-authorization"}

const (
	kindNone = iota
	kindField
	kindHeader
)

const maxNameLen = 64

type name struct {
	norm string // lower case, without '-', '_' and an "x-" prefix
	kind int
}

// Redactor scrubs bytes. It is safe for concurrent use.
type Redactor struct {
	keepBIN bool
	byLen   [maxNameLen + 1][]name
}

// New returns a Redactor for r. Unknown PANMask values mean MaskLast4.
func New(r Rules) *Redactor {
	rd := &Redactor{keepBIN: r.PANMask == MaskBINLast4}
	for _, n := range defaultFields {
		rd.add(n, kindField)
	}
	for _, n := range r.Fields {
		rd.add(n, kindField)
	}
	for _, n := range defaultHeaders {
		rd.add(n, kindHeader)
	}
	for _, n := range r.Headers {
		rd.add(n, kindHeader)
	}
	return rd
}

func normName(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, "]")
	if i := strings.LastIndexAny(s, ".["); i >= 0 {
		s = s[i+1:]
	}
	var buf [maxNameLen]byte
	if len(s) > maxNameLen {
		return ""
	}
	return string(fold(buf[:0], []byte(s)))
}

// fold appends the matching form of the name seg to dst: lower case,
// without '-' and '_', without an "x-" or "x_" prefix.
func fold(dst, seg []byte) []byte {
	if len(seg) > 2 && (seg[0] == 'x' || seg[0] == 'X') && (seg[1] == '-' || seg[1] == '_') {
		seg = seg[2:]
	}
	for _, c := range seg {
		switch {
		case c == '-' || c == '_':
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func (rd *Redactor) add(s string, kind int) {
	n := normName(s)
	if n == "" || len(n) > maxNameLen {
		return
	}
	for i, e := range rd.byLen[len(n)] {
		if e.norm == n {
			if kind > e.kind { // a header rule is the stronger one
				rd.byLen[len(n)][i].kind = kind
			}
			return
		}
	}
	rd.byLen[len(n)] = append(rd.byLen[len(n)], name{norm: n, kind: kind})
}

// lookup returns the kind of the name seg (already cut to its last segment).
func (rd *Redactor) lookup(seg []byte) int {
	if len(seg) > maxNameLen {
		return kindNone
	}
	var buf [maxNameLen]byte
	n := fold(buf[:0], seg)
	for _, e := range rd.byLen[len(n)] {
		if e.norm == string(n) {
			return e.kind
		}
	}
	return kindNone
}

// Scrub returns b with card data and credentials redacted. When there is
// nothing to redact it returns b itself and allocates nothing; otherwise it
// returns a new slice and leaves b unchanged.
func (rd *Redactor) Scrub(b []byte) []byte {
	out, masked := rd.scrubOnce(b)
	// Masking can regroup the digits it leaves visible (see scan.go): scan
	// the output again until no PAN is found. Each pass masks at least one
	// more digit, so this ends.
	for masked {
		out, masked = rd.scrubOnce(out)
	}
	return out
}

// scrubOnce is one pass of both views; masked reports a PAN found.
func (rd *Redactor) scrubOnce(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return b, false
	}
	var t tracker
	t.keepBIN, t.quoteJSON, t.b = rd.keepBIN, true, b
	if rd.scanRaw(b, &t) {
		var d tracker
		d.keepBIN = rd.keepBIN
		scanDecoded(b, &d)
		t.edits = append(t.edits, d.edits...)
		t.found = t.found || d.found
	}
	if len(t.edits) == 0 {
		return b, false
	}
	return apply(b, t.edits), t.found
}

// String is Scrub for strings; it returns s itself when nothing is found.
func (rd *Redactor) String(s string) string {
	b := []byte(s)
	out := rd.Scrub(b)
	if len(out) == len(b) && (len(b) == 0 || &out[0] == &b[0]) {
		return s
	}
	return string(out)
}

// Header returns the value to show for an HTTP header: [REDACTED] for
// Authorization, Proxy-Authorization, Rules.Headers and redacted field
// names (X-Card-Cvc is card_cvc), the scrubbed value otherwise.
func (rd *Redactor) Header(name, value string) string {
	n := normName(name)
	if n != "" && rd.lookup([]byte(n)) != kindNone {
		return redacted
	}
	return rd.String(value)
}

// rawPAN runs the raw view only (no fields, no keys) and reports whether
// the decoded view must be read too.
func rawPAN(b []byte, t *tracker) (needDecoded bool) {
	for i := 0; i < len(b) && !t.found; {
		switch class[b[i]] {
		case cDigit:
			t.digit(i, i+1, b[i]-'0')
			i++
		case cSep:
			t.sep()
			i++
		case cEsc:
			if t.state != 0 {
				t.brk()
			}
			if !needDecoded {
				if escapeMatters(b, i) {
					needDecoded = true
				}
			}
			i++
		case cHigh:
			k, v, w := highRune(b, i)
			t.feed(k, v, i, i+w)
			i += w
		default:
			if t.state != 0 {
				t.brk()
			}
			i++
		}
	}
	if t.found {
		return false
	}
	t.brk()
	return needDecoded
}

// apply builds the output from b and edits. Overlapping edits merge; a field
// edit wins over masks it overlaps.
func apply(b []byte, edits []edit) []byte {
	// By start; an insertion (start == end) goes before a mask at its place.
	slices.SortFunc(edits, func(x, y edit) int {
		if x.start != y.start {
			return x.start - y.start
		}
		return x.end - y.end
	})
	out := make([]byte, 0, len(b)+16)
	pos := 0
	for i := 0; i < len(edits); {
		e := edits[i]
		i++
		for i < len(edits) && edits[i].start < e.end {
			n := edits[i]
			if n.end > e.end {
				e.end = n.end
			}
			switch {
			case n.field && !e.field:
				e.repl, e.field, e.stars = n.repl, true, 0
			case n.stars > e.stars && !e.field:
				e.stars = n.stars
			}
			i++
		}
		out = append(out, b[pos:e.start]...)
		for k := 0; k < e.stars; k++ {
			out = append(out, '*')
		}
		out = append(out, e.repl...)
		pos = e.end
	}
	return append(out, b[pos:]...)
}
