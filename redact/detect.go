package redact

// This file holds what makes a digit sequence a PAN, shared by the log and
// response scrubber (Scrub) and the forward listener's refusal of raw card
// data (HasPAN): one detector for both directions.
//
// A candidate is a whole run, or whole groups of it: digits joined by single
// separators (space, dash, dot, slash, underscore, plus and their Unicode
// and invisible look-alikes) form a run, and the separators cut it into
// groups. A candidate is one or more consecutive groups holding 13 to 19
// digits; it is a PAN when a card brand issues its prefix at that length and
// its Luhn check digit is right. So:
//
//   - a Luhn-valid 13–19 digit stretch inside a longer group (a 20-digit id)
//     is not a PAN: digits are never cut out of the middle of a number;
//   - a PAN next to other numbers is found whatever its grouping
//     ("ref 12 4111 1111 1111 1111", "4111.1111.1111.1111 / 0612");
//   - the brand check keeps millisecond timestamps (prefix 1), zero runs and
//     most ids apart from card numbers; it mirrors card/brand.go, which this
//     package may not import (brand_test.go compares the two).

// issuer is a brand's 6-digit prefix range and the lengths it issues.
type issuer struct {
	lo, hi  int
	lengths uint32 // bit n: n digits
}

func lenBits(lo, hi int) uint32 {
	var m uint32
	for n := lo; n <= hi; n++ {
		m |= 1 << n
	}
	return m
}

// issuers is checked in order; the first range holding the prefix decides,
// as in card/brand.go (Discover and UnionPay before Maestro's catch-all 6).
var issuers = []issuer{
	{400000, 499999, 1<<13 | 1<<16 | 1<<19}, // Visa
	{220000, 220499, lenBits(16, 19)},       // Mir
	{222100, 272099, 1 << 16},               // Mastercard
	{510000, 559999, 1 << 16},               // Mastercard
	{340000, 349999, 1 << 15},               // Amex
	{370000, 379999, 1 << 15},               // Amex
	{352800, 358999, lenBits(16, 19)},       // JCB
	{300000, 305999, lenBits(14, 19)},       // Diners
	{360000, 369999, lenBits(14, 19)},       // Diners
	{380000, 399999, lenBits(14, 19)},       // Diners
	{601100, 601199, lenBits(16, 19)},       // Discover
	{622126, 622925, lenBits(16, 19)},       // Discover
	{644000, 659999, lenBits(16, 19)},       // Discover
	{620000, 629999, lenBits(16, 19)},       // UnionPay
	{500000, 509999, lenBits(12, 19)},       // Maestro
	{560000, 589999, lenBits(12, 19)},       // Maestro
	{600000, 699999, lenBits(12, 19)},       // Maestro
}

// issued reports whether a brand issues PANs of n digits starting with the
// 6-digit prefix p.
func issued(p, n int) bool {
	for i := range issuers {
		if r := &issuers[i]; p >= r.lo && p <= r.hi {
			return r.lengths&(1<<n) != 0
		}
	}
	return false
}

// HasPAN reports whether b holds a card number in any form Scrub masks:
// ASCII or Unicode digits, grouped by any separator Scrub knows, raw or
// JSON-escaped, percent-encoded or written as HTML character references.
// Field names are not considered. The forward listener refuses a request
// for which it is true; Scrub masks exactly what it finds.
func HasPAN(b []byte) bool {
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

// groupEnd checks the candidates that end with the group just closed: the
// last 1, 2, … groups of the run while they hold at most 19 digits.
func (t *tracker) groupEnd() {
	e := t.n - 1
	sum, pos := 0, e // Luhn sum of digits pos+1..e
	for g := t.ng - 1; g >= 0 && g > t.ng-ringSize; g-- {
		s := t.gStart[g&ringMask]
		if t.n-s > maxPAN {
			return
		}
		for ; pos >= s; pos-- {
			v := t.val[pos&ringMask]
			if (e-pos)&1 == 1 {
				v = luhnDouble[v]
			}
			sum += int(v)
		}
		if n := t.n - s; n >= minPAN && sum%10 == 0 && issued(t.prefix(s), n) {
			t.found, t.runMasked = true, true
			if t.stop {
				return
			}
			t.maskCandidate(s, e)
		}
	}
}

// prefix returns the first six digits from digit index s as a number.
func (t *tracker) prefix(s int) int {
	p := 0
	for k := s; k < s+6; k++ {
		p = p*10 + int(t.val[k&ringMask])
	}
	return p
}

// maskCandidate marks digits s..e masked but the last four (and the first
// six under MaskBINLast4).
func (t *tracker) maskCandidate(s, e int) {
	if t.keepBIN {
		s += 6
	}
	for p := s; p <= e-4; p++ {
		t.mask[p&ringMask] = true
	}
}
