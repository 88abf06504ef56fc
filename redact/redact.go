// Package redact removes card data and credentials from anything that
// leaves chdproxy: log lines, error and response bodies, stdin of
// `chdproxy redact`.
//
// A Redactor finds and masks:
//
//   - PANs: 13 to 19 digits, contiguous or grouped by single spaces, dashes
//     or '+', that pass the Luhn check; ASCII or any Unicode decimal digit
//     (fullwidth, Arabic-Indic, Devanagari …), plain, JSON-escaped (\u0034)
//     or percent-encoded (%34). Every 13–19 digit window of a longer run is
//     checked too, so extra leading or trailing digits do not hide a PAN.
//     Masked digits become '*'; the last four stay, and the first six too
//     under MaskBINLast4. Never more. A masked bare JSON number is quoted
//     ("ts":"*********5678") so a JSON line stays JSON.
//   - values of sensitive fields (CVV, wallet DPAN, extra Rules.Fields) in
//     JSON ("cvv":"123", "cvv":123, also inside escaped JSON strings),
//     form and query strings (cvv=123&), and key=value or key: value text:
//     replaced whole by [REDACTED];
//   - Authorization and Proxy-Authorization values (and Rules.Headers) in
//     header dumps, JSON and key=value text: replaced whole;
//   - chdproxy keys: sk_, pk_ and ak_ followed by at least 12 base62
//     characters become sk_[REDACTED] and so on. Token ids (tok_…) stay.
//
// Scrubbing is idempotent and returns its input untouched, without
// allocating, when there is nothing to redact.
//
// Accepted false positives: any digit run with a Luhn-valid 13–19 digit
// window is masked whatever it means. A 13-digit Unix-millisecond timestamp
// is masked about one time in ten, a 19-digit nanosecond timestamp most of
// the time; log RFC 3339 times instead. A run of 13 or more zeros passes
// Luhn and is masked.
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
	// of the CVV and wallet payload names. Matching ignores case and treats
	// '-' and '_' alike; a name matches the last segment of a dotted or
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

var defaultFields = []string{
	"card_cvv", "cvv", "cvc", "cvv2", "cvc2", "security_code",
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
	norm string // lower case, '-' as '_'
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
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		sb.WriteByte(foldName(s[i]))
	}
	return sb.String()
}

func foldName(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '-':
		return '_'
	}
	return c
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
next:
	for _, e := range rd.byLen[len(seg)] {
		for i := 0; i < len(seg); i++ {
			if foldName(seg[i]) != e.norm[i] {
				continue next
			}
		}
		return e.kind
	}
	return kindNone
}

// Scrub returns b with card data and credentials redacted. When there is
// nothing to redact it returns b itself and allocates nothing; otherwise it
// returns a new slice and leaves b unchanged.
func (rd *Redactor) Scrub(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	var t tracker
	t.keepBIN, t.quoteJSON, t.b = rd.keepBIN, true, b
	if rd.scanRaw(b, &t) {
		var d tracker
		d.keepBIN = rd.keepBIN
		scanDecoded(b, &d)
		t.edits = append(t.edits, d.edits...)
	}
	if len(t.edits) == 0 {
		return b
	}
	return apply(b, t.edits)
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

// containsPAN reports whether b holds a Luhn-valid run of 13–19 digits in
// any of the forms Scrub masks (grouped, Unicode digits, JSON-escaped,
// percent-encoded). Field names are not considered.
func (rd *Redactor) containsPAN(b []byte) bool {
	t := tracker{stop: true}
	needDecoded := rawPAN(b, &t)
	if t.found {
		return true
	}
	if needDecoded {
		d := tracker{stop: true}
		scanDecoded(b, &d)
		return d.found
	}
	return false
}

// header returns the value to log for an HTTP header: [REDACTED] for
// Authorization, Proxy-Authorization, Rules.Headers and redacted field
// names, the scrubbed value otherwise.
func (rd *Redactor) header(name, value string) string {
	n := normName(name)
	if n != "" && rd.lookup([]byte(n)) != kindNone {
		return redacted
	}
	return rd.String(value)
}

// rawPAN runs the raw view only (no fields, no keys) and reports whether
// the decoded view must be read too.
func rawPAN(b []byte, t *tracker) (needDecoded bool) {
	for i := 0; i < len(b); {
		switch class[b[i]] {
		case cDigit:
			t.digit(i, i+1, b[i]-'0')
			if t.found {
				return false
			}
			i++
		case cSep:
			t.sep()
			i++
		case cEsc:
			if t.state != 0 {
				t.brk()
			}
			if !needDecoded {
				if k, _, _ := decodeEscape(b, i); k != tkBreak {
					needDecoded = true
				}
			}
			i++
		case cHigh:
			k, v, w := highRune(b, i)
			t.feed(k, v, i, i+w)
			if t.found {
				return false
			}
			i += w
		default:
			if t.state != 0 {
				t.brk()
			}
			i++
		}
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
