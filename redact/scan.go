package redact

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// This file holds the PAN detector: a hand-written single-pass scanner, no
// regexp. It reads the input twice at most, as two "views":
//
//   - the raw view: ASCII digits and Unicode decimal digits (any unicode.Nd
//     rune, e.g. fullwidth ０-９, Arabic-Indic, Devanagari), as a reader or
//     grep sees them;
//   - the decoded view: the same, plus JSON escapes (\u0034, and surrogate
//     pairs) and percent-encoding (%34, and %EF%BC%94 for a UTF-8 digit)
//     decoded, as a JSON or URL decoder sees them.
//
// The decoded view is read only when the raw pass met an escape that decodes
// to a digit or a separator, so clean lines cost one pass.
//
// In each view a run is a sequence of digits in which two consecutive digits
// are adjacent or separated by exactly one separator (isSepRune), raw or
// encoded (%20, \u002e, &nbsp; …). detect.go says which groups of a run
// are checked and what makes one a PAN. Each PAN found has its digits masked
// except the last four (and the first six under MaskBINLast4).
//
// Masking turns digits into '*', which is neither a digit nor a separator,
// so it can leave visible digits in new groupings (the BIN kept and the
// groups before it); Scrub scans its output again until nothing is found,
// which makes it idempotent.

const (
	minPAN = 13
	maxPAN = 19

	ringSize = 32 // power of two > maxPAN: the digits a window can still reach
	ringMask = ringSize - 1
)

// token kinds of both views
const (
	tkBreak = iota
	tkDigit
	tkSep
)

// luhnDouble[d] is the Luhn value of a doubled digit d.
var luhnDouble = [10]uint8{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}

// edit replaces b[start:end]: by stars '*' for masked digits (consecutive
// masked digits share one edit), else by repl. A field edit (a value
// replaced whole) wins over masks it overlaps. start == end inserts repl.
type edit struct {
	start, end int
	stars      int
	repl       string
	field      bool
}

// tracker follows the digit run of one view and records which digits of it
// belong to a Luhn-valid window.
type tracker struct {
	keepBIN bool
	stop    bool // stop at the first valid window (containsPAN)
	found   bool

	state int // 0 no run, 1 just after a digit, 2 just after digit+separator
	n     int // digits in the current run

	// For the raw view: a masked run that is a bare JSON number gets quoted,
	// so a JSON line stays JSON ("ts":*********5678 is not).
	quoteJSON bool
	b         []byte
	runStart  int  // byte offset of the run's first digit
	lastEnd   int  // byte offset after the run's last digit
	runPlain  bool // ASCII digits only, no separator
	runMasked bool

	ng     int           // groups in the current run
	gStart [ringSize]int // digit index at which each recent group starts
	start  [ringSize]int
	end    [ringSize]int
	val    [ringSize]uint8
	mask   [ringSize]bool

	edits []edit
}

func (t *tracker) digit(start, end int, v uint8) {
	switch t.state {
	case 0:
		if t.n > 0 {
			t.flush()
		}
		t.runStart, t.runPlain, t.runMasked = start, true, false
		t.ng = 0
		fallthrough
	case 2:
		t.gStart[t.ng&ringMask] = t.n
		t.ng++
	}
	if start != t.lastEnd && t.n > 0 && !t.decimalPoint(start) {
		t.runPlain = false
	}
	if end-start != 1 {
		t.runPlain = false
	}
	t.lastEnd = end
	idx := t.n & ringMask
	if t.n >= ringSize && t.mask[idx] {
		// The oldest digit leaves the ring; no candidate can reach it any more.
		t.addMask(t.start[idx], t.end[idx])
	}
	t.start[idx], t.end[idx], t.val[idx], t.mask[idx] = start, end, v, false
	t.n++
	t.state = 1
}

// addMask masks the digit token b[start:end], extending the previous edit
// when it masks the token just before (a long run of digits costs one edit,
// not one per digit).
func (t *tracker) addMask(start, end int) {
	if n := len(t.edits); n > 0 {
		if last := &t.edits[n-1]; last.stars > 0 && last.end == start {
			last.end = end
			last.stars++
			return
		}
	}
	t.edits = append(t.edits, edit{start: start, end: end, stars: 1})
}

func (t *tracker) sep() {
	switch t.state {
	case 1:
		t.groupEnd()
		t.state = 2
	case 2:
		t.brk()
	}
}

func (t *tracker) brk() {
	if t.state == 1 {
		t.groupEnd()
	}
	t.state = 0
	if t.n > 0 {
		t.flush()
	}
}

// flush ends the run and emits its masked digits.
func (t *tracker) flush() {
	if !t.runMasked {
		t.n = 0
		return
	}
	from := t.n - ringSize
	if from < 0 {
		from = 0
	}
	for k := from; k < t.n; k++ {
		idx := k & ringMask
		if t.mask[idx] {
			t.mask[idx] = false
			t.addMask(t.start[idx], t.end[idx])
		}
	}
	t.n = 0
	if t.quoteJSON && t.runMasked && t.runPlain {
		t.quoteNumber()
	}
}

// decimalPoint reports whether the one byte before the digit at start is
// the '.' of a JSON number.
func (t *tracker) decimalPoint(start int) bool {
	return t.b != nil && start == t.lastEnd+1 && t.b[t.lastEnd] == '.'
}

// quoteNumber quotes the run just masked when it is a bare JSON number: a
// value after ':' ',' or '[', optionally negative, with an optional
// fraction or exponent, followed by ',' '}' ']', a space or the end.
func (t *tracker) quoteNumber() {
	b := t.b
	p := t.runStart
	if p > 0 && b[p-1] == '-' {
		p--
	}
	q := p - 1
	for q >= 0 && (b[q] == ' ' || b[q] == '\t' || b[q] == '\r' || b[q] == '\n') {
		q--
	}
	if q < 0 || (b[q] != ':' && b[q] != ',' && b[q] != '[') {
		return
	}
	x := t.lastEnd
	for x < len(b) && (b[x] >= '0' && b[x] <= '9' || b[x] == '.' || b[x] == 'e' || b[x] == 'E' || b[x] == '+' || b[x] == '-') {
		x++
	}
	if x < len(b) {
		switch b[x] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
		default:
			return
		}
	}
	t.edits = append(t.edits, edit{start: p, end: p, repl: `"`}, edit{start: x, end: x, repl: `"`})
}

func (t *tracker) feed(kind int, v uint8, start, end int) {
	switch kind {
	case tkDigit:
		t.digit(start, end, v)
	case tkSep:
		t.sep()
	default:
		if t.state != 0 {
			t.brk()
		}
	}
}

// byte classes of the raw pass
const (
	cOther = iota // breaks a run
	cDigit        // 0-9
	cSep          // ASCII separators: space - + . / _
	cDelim        // ':' '=': a field name may end here
	cEsc          // '%' '\\' '&': the decoded view may differ
	cTag          // '<': an XML element may start here
	cHigh         // first byte of a multi-byte rune
)

var class [256]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		class[c] = cDigit
	}
	for _, c := range " -+./_" {
		class[c] = cSep
	}
	class[':'], class['='] = cDelim, cDelim
	class['<'] = cTag
	class['%'], class['\\'], class['&'] = cEsc, cEsc, cEsc
	for c := 0x80; c < 0x100; c++ {
		class[c] = cHigh
	}
	buildDigitZeros()
}

// isSepRune reports the runes accepted between two digit groups: ASCII
// space, dash, plus, dot, slash and underscore, the Unicode spaces, dashes,
// dots and slashes that look like them, and invisible format characters
// (a zero-width space between digits hides nothing from a reader).
func isSepRune(r rune) bool {
	switch {
	case r < 0x80:
		return r == ' ' || r == '-' || r == '+' || r == '.' || r == '/' || r == '_'
	case r >= '\u2000' && r <= '\u200d', // en quad … zero-width joiner
		r >= '\u2010' && r <= '\u2015', // hyphen … horizontal bar
		r >= '\u2024' && r <= '\u2027': // one dot leader … hyphenation point
		return true
	}
	switch r {
	case '\u00a0', // no-break space
		'\u00ad', // soft hyphen
		'\u00b7', // middle dot
		'\u202f', // narrow no-break space
		'\u2044', // fraction slash
		'\u205f', // medium mathematical space
		'\u2060', // word joiner
		'\u2212', // minus sign
		'\u2215', // division slash
		'\u3000', // ideographic space
		'\ufe63', // small hyphen-minus
		'\ufeff', // zero-width no-break space
		'\uff0d', // fullwidth hyphen-minus
		'\uff0e', // fullwidth full stop
		'\uff0f', // fullwidth solidus
		'\uff3f': // fullwidth low line
		return true
	}
	return false
}

// digitZeros holds the code point of every Unicode "zero" beyond ASCII.
// Unicode guarantees that decimal digits (Nd) come in contiguous runs of ten,
// 0 through 9, so a digit's value is its distance to the zero before it.
var digitZeros []rune

func buildDigitZeros() {
	prev := rune(-2)
	var zero rune
	for _, rg := range unicode.Nd.R16 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			addDigitRune(r, &prev, &zero)
		}
	}
	for _, rg := range unicode.Nd.R32 {
		for r := rune(rg.Lo); r <= rune(rg.Hi); r += rune(rg.Stride) {
			addDigitRune(r, &prev, &zero)
		}
	}
}

func addDigitRune(r rune, prev, zero *rune) {
	if r < 0x80 {
		return
	}
	if r != *prev+1 || r-*zero == 10 {
		*zero = r
		digitZeros = append(digitZeros, r)
	}
	*prev = r
}

// classifyRune returns the token kind of a rune and, for a digit, its value.
func classifyRune(r rune) (int, uint8) {
	if r >= '0' && r <= '9' {
		return tkDigit, uint8(r - '0')
	}
	if r < 0x0660 { // below the first non-ASCII decimal digit (Arabic-Indic zero)
		if isSepRune(r) {
			return tkSep, 0
		}
		return tkBreak, 0
	}
	if unicode.Is(unicode.Nd, r) {
		i := sort.Search(len(digitZeros), func(i int) bool { return digitZeros[i] > r }) - 1
		if i >= 0 && r-digitZeros[i] < 10 {
			return tkDigit, uint8(r - digitZeros[i])
		}
		return tkBreak, 0
	}
	if isSepRune(r) {
		return tkSep, 0
	}
	return tkBreak, 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// pctByte decodes "%XX" at b[i].
func pctByte(b []byte, i int) (byte, bool) {
	if i+2 >= len(b) || b[i] != '%' {
		return 0, false
	}
	h, ok1 := unhex(b[i+1])
	l, ok2 := unhex(b[i+2])
	return h<<4 | l, ok1 && ok2
}

// u4 decodes the four hex digits of "\uXXXX" at b[i].
func u4(b []byte, i int) (rune, bool) {
	if i+5 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[i+2 : i+6] {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// decodeEscape reads the escape that starts at b[i] ('%' or '\\') in the
// decoded view. It returns the token kind, a digit's value and the width.
//
//   - "%XX": one byte; a byte >= 0x80 starts a UTF-8 rune that must be
//     completed by further "%XX" escapes, else the escape is a break of width 3.
//     A '%' not followed by two hex digits is a break of width 1.
//   - "\uXXXX": a rune (a surrogate pair takes 12 bytes), "\/" a separator;
//     any other backslash escape ("\\", "\"", "\n" …) is a break of width 2;
//   - "&#52;", "&#x34;", "&nbsp;" …: an HTML character reference (decodeEntity).
func decodeEscape(b []byte, i int) (kind int, v uint8, w int) {
	if b[i] == '%' {
		x, ok := pctByte(b, i)
		if !ok {
			return tkBreak, 0, 1
		}
		if x == '&' {
			return decodeEntity(b, i, i+3)
		}
		if x < 0x80 {
			k, v := classifyRune(rune(x))
			return k, v, 3
		}
		var n int
		switch {
		case x >= 0xc2 && x <= 0xdf:
			n = 2
		case x >= 0xe0 && x <= 0xef:
			n = 3
		case x >= 0xf0 && x <= 0xf4:
			n = 4
		default:
			return tkBreak, 0, 3
		}
		var buf [4]byte
		buf[0] = x
		for k := 1; k < n; k++ {
			c, ok := pctByte(b, i+3*k)
			if !ok {
				return tkBreak, 0, 3
			}
			buf[k] = c
		}
		r, size := utf8.DecodeRune(buf[:n])
		if r == utf8.RuneError || size != n {
			return tkBreak, 0, 3
		}
		k, v := classifyRune(r)
		return k, v, 3 * n
	}
	if b[i] == '&' {
		return decodeEntity(b, i, i+1)
	}
	// backslash
	if i+1 >= len(b) {
		return tkBreak, 0, 1
	}
	if b[i+1] == '/' { // JSON's escaped solidus
		return tkSep, 0, 2
	}
	if b[i+1] != 'u' {
		return tkBreak, 0, 2
	}
	r, ok := u4(b, i)
	if !ok {
		return tkBreak, 0, 2
	}
	w = 6
	if utf16IsSurrogate(r) {
		if r >= 0xdc00 {
			return tkBreak, 0, 6
		}
		lo, ok := u4(b, i+6)
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return tkBreak, 0, 6
		}
		r = (r-0xd800)<<10 | (lo - 0xdc00) + 0x10000
		w = 12
	}
	if r == '&' {
		return decodeEntity(b, i, i+6)
	}
	k, v := classifyRune(r)
	return k, v, w
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }

// scanDecoded runs the decoded view over b.
func scanDecoded(b []byte, t *tracker) {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			t.digit(i, i+1, c-'0')
			i++
		case class[c] == cSep:
			t.sep()
			i++
		case class[c] == cEsc:
			k, v, w := decodeEscape(b, i)
			t.feed(k, v, i, i+w)
			i += w
		case c >= 0x80:
			r, w := utf8.DecodeRune(b[i:])
			k, v := classifyRune(r)
			t.feed(k, v, i, i+w)
			i += w
		default:
			if t.state != 0 {
				t.brk()
			}
			i++
		}
		if t.stop && t.found {
			return
		}
	}
	t.brk()
}

// entities are the named HTML character references of separators.
var entities = map[string]bool{
	"nbsp": true, "ensp": true, "emsp": true, "thinsp": true, "numsp": true, "puncsp": true,
	"hairsp": true, "shy": true, "hyphen": true, "dash": true, "ndash": true, "minus": true,
	"period": true, "sol": true, "lowbar": true, "plus": true, "middot": true, "ZeroWidthSpace": true,
}

// decodeEntity reads the HTML character reference whose '&' (raw, %26 or
// \u0026) is b[i:j]: "&#DDDD;" or "&#xHHHH;" (the ';' optional, as browsers
// read them) or a named one from entities. Anything else is a break of the
// width of the '&'.
func decodeEntity(b []byte, i, j int) (kind int, v uint8, w int) {
	amp := j - i
	if j < len(b) && b[j] == '#' {
		j++
		base := rune(10)
		if j < len(b) && (b[j] == 'x' || b[j] == 'X') {
			base, j = 16, j+1
		}
		var r rune
		k := j
		for ; k < len(b) && k-j < 8; k++ {
			d, ok := unhex(b[k])
			if !ok || rune(d) >= base {
				break
			}
			if r = r*base + rune(d); r > unicode.MaxRune {
				return tkBreak, 0, amp
			}
		}
		if k == j {
			return tkBreak, 0, amp
		}
		if k < len(b) && b[k] == ';' {
			k++
		}
		kind, v = classifyRune(r)
		return kind, v, k - i
	}
	k := j
	for k < len(b) && k-j < 16 && (b[k] >= 'a' && b[k] <= 'z' || b[k] >= 'A' && b[k] <= 'Z') {
		k++
	}
	if k < len(b) && b[k] == ';' && entities[string(b[j:k])] {
		return tkSep, 0, k + 1 - i
	}
	return tkBreak, 0, amp
}

// escapeMatters reports whether the escape at b[i] makes the decoded view
// differ from the raw one for digits: it decodes to a digit or separator,
// or it swallows one ("\0" before a PAN ends the run in the decoded view).
func escapeMatters(b []byte, i int) bool {
	k, _, w := decodeEscape(b, i)
	if k != tkBreak {
		return true
	}
	for _, c := range b[i+1 : i+w] {
		if class[c] == cDigit || class[c] == cSep {
			return true
		}
	}
	return false
}
