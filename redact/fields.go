package redact

import "unicode/utf8"

// This file holds the raw pass: the raw view of the PAN detector plus the
// field-name rules and chdproxy key detection, in the same loop.

var (
	isNameChar [256]bool // characters of a field name: A-Z a-z 0-9 _ - . [ ]
	isWordChar [256]bool // A-Z a-z 0-9 _
	isBase62   [256]bool // A-Z a-z 0-9
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		isBase62[c] = alnum
		isWordChar[c] = alnum || b == '_'
		isNameChar[c] = alnum || b == '_' || b == '-' || b == '.' || b == '[' || b == ']'
	}
}

// highRune classifies the multi-byte rune at b[i] for the raw view.
func highRune(b []byte, i int) (kind int, v uint8, w int) {
	r, w := utf8.DecodeRune(b[i:])
	kind, v = classifyRune(r)
	return kind, v, w
}

// scanRaw runs the raw view over b, adds field and key edits to t.edits and
// reports whether the decoded view must be read too.
func (rd *Redactor) scanRaw(b []byte, t *tracker) (needDecoded bool) {
	for i := 0; i < len(b); {
		switch class[b[i]] {
		case cOther:
			if t.state != 0 {
				t.brk()
			}
			i++
			for i < len(b) && class[b[i]] == cOther {
				i++
			}
		case cDigit:
			if t.state == 0 {
				if j := shortRun(b, i); j > i {
					i = j // fewer than 13 digits: nothing to check
					continue
				}
			}
			t.digit(i, i+1, b[i]-'0')
			i++
		case cSep:
			if b[i] == '_' && t.state == 0 {
				if next := key(b, i, t); next > i {
					i = next
					continue
				}
			}
			t.sep()
			i++
		case cDelim:
			if t.state != 0 {
				t.brk()
			}
			if next := rd.field(b, i, t); next > i {
				i = next
				continue
			}
			i++
		case cTag:
			if t.state != 0 {
				t.brk()
			}
			if next := rd.element(b, i, t); next > i {
				i = next
				continue
			}
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
		default: // cHigh
			k, v, w := highRune(b, i)
			t.feed(k, v, i, i+w)
			i += w
		}
	}
	t.brk()
	return needDecoded
}

// shortRun looks at the run of ASCII digits and single separators that
// starts at b[i]. When it holds fewer than 13 digits and certainly ends
// there (no multi-byte rune, which may be a Unicode digit, continues it),
// shortRun returns its end; else i.
func shortRun(b []byte, i int) int {
	j, d := i, 0
	for {
		for j < len(b) && class[b[j]] == cDigit {
			j++
			d++
		}
		if d >= minPAN {
			return i
		}
		if j+1 < len(b) && class[b[j]] == cSep {
			switch class[b[j+1]] {
			case cDigit:
				j++
				continue
			case cHigh:
				return i
			}
		}
		if j < len(b) && class[b[j]] == cHigh {
			return i
		}
		return j
	}
}

// key handles b[i] == '_'. When "sk", "pk" or "ak" precedes it at a word
// boundary and at least minKeyLen base62 characters follow, the characters
// are replaced and the index after them is returned; else i.
func key(b []byte, i int, t *tracker) int {
	if i < 2 || b[i-1] != 'k' {
		return i
	}
	switch b[i-2] {
	case 's', 'p', 'a':
	default:
		return i
	}
	if s := i - 2; s > 0 && isWordChar[b[s-1]] && !escapedLetter(b, s-1) {
		return i
	}
	j := i + 1
	for j < len(b) && isBase62[b[j]] {
		j++
	}
	if j-(i+1) < minKeyLen {
		return i
	}
	t.edits = append(t.edits, edit{start: i + 1, end: j, repl: redacted, field: true})
	return j
}

// escapedLetter reports whether b[p] is the letter of a backslash escape
// such as \n or \t (inside a JSON string), so not part of the next word.
func escapedLetter(b []byte, p int) bool {
	switch b[p] {
	case 'n', 'r', 't', 'b', 'f':
	default:
		return false
	}
	k := 0
	for q := p - 1; q >= 0 && b[q] == '\\'; q-- {
		k++
	}
	return k%2 == 1
}

// element handles b[i] == '<'. When an XML start tag of a redacted name
// (<cvv>, <ns:card_cvv type="x">) opens there, it adds an edit replacing
// the element's text (up to the next '<', or a whole CDATA section) and
// returns the index after it; else i. Attributes (cvv="123") are fields.
func (rd *Redactor) element(b []byte, i int, t *tracker) int {
	s := i + 1
	e := s
	for e < len(b) && (isNameChar[b[e]] || b[e] == ':') && b[e] != '[' && b[e] != ']' {
		e++
	}
	ss := s
	for k := s; k < e; k++ {
		if b[k] == ':' {
			ss = k + 1 // namespace prefix
		}
	}
	if ss >= e || e >= len(b) || rd.lookup(b[ss:e]) == kindNone {
		return i
	}
	gt := tagEnd(b, e)
	if gt < 0 || b[gt-1] == '/' {
		return i
	}
	v := gt + 1
	end := v
	if rest := b[v:]; len(rest) >= 9 && equal(rest[:9], "<![CDATA[") {
		for end = v + 9; end+2 < len(b) && !equal(b[end:end+3], "]]>"); end++ {
		}
		end = min(end+3, len(b))
	} else {
		for end < len(b) && b[end] != '<' {
			end++
		}
	}
	if end > v {
		t.replace(b, v, end, redacted)
	}
	return end
}

// tagEnd returns the index of the '>' closing the tag whose name ends at
// b[e], skipping quoted attribute values; -1 when the tag does not close
// on the line.
func tagEnd(b []byte, e int) int {
	var quote byte
	for p := e; p < len(b); p++ {
		c := b[p]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return p
		case c == '<' || c == '\n':
			return -1
		}
	}
	return -1
}

// field handles b[i] == ':' or '='. When the name before it is a redacted
// name, it adds an edit replacing the value and returns the index at which
// scanning resumes (after the value, or at its closing quote); else i.
func (rd *Redactor) field(b []byte, i int, t *tracker) int {
	n, ok := nameBefore(b, i)
	if !ok {
		return i
	}
	ss, se := n.lastSegment(b)
	if ss >= se {
		return i
	}
	kind := rd.lookup(b[ss:se])
	if kind == kindNone {
		return i
	}
	return redactValue(b, i, n, kind, t)
}

// fieldName is the name before a ':' or '=': b[start:end].
type fieldName struct {
	start, end int
	cut        int  // the last '.' or '[' of the name, or -1
	quoted     bool // a JSON string
	qk         int  // backslashes before the name's quotes
}

// nameBefore reads [spaces] ["] name ["] before the delimiter b[i].
func nameBefore(b []byte, i int) (fieldName, bool) {
	var n fieldName
	j := i - 1
	for j >= 0 && (b[j] == ' ' || b[j] == '\t') {
		j--
	}
	if j >= 0 && b[j] == '"' {
		n.quoted = true
		j--
		for j >= 0 && b[j] == '\\' {
			n.qk++
			j--
		}
	}
	n.end, n.cut = j+1, -1
	for j >= 0 && isNameChar[b[j]] {
		if n.cut < 0 && (b[j] == '.' || b[j] == '[') && b[j+1] != ']' {
			n.cut = j
		}
		j--
	}
	n.start = j + 1
	if n.start == n.end {
		return n, false
	}
	if n.quoted {
		if j < 0 || b[j] != '"' {
			return n, false
		}
	} else if n.start > 0 && b[n.start-1] == '\\' && escapedLetter(b, n.start) {
		n.start++ // "...\r\nAuthorization: ..." inside a JSON string
	}
	return n, true
}

// lastSegment returns the bounds of the name's last segment: card.cvv,
// card[cvv] → cvv.
func (n fieldName) lastSegment(b []byte) (start, end int) {
	end = n.end
	for end > n.start && b[end-1] == ']' {
		end--
	}
	start = n.start
	if n.cut >= n.start {
		start = n.cut + 1
	}
	return start, end
}

// redactValue replaces the value after the delimiter b[i] of the field n of
// the given kind, and returns the index at which scanning resumes; i when
// there is no value.
func redactValue(b []byte, i int, n fieldName, kind int, t *tracker) int {
	v := i + 1
	for v < len(b) && (b[v] == ' ' || b[v] == '\t') {
		v++
	}
	if v >= len(b) {
		return i
	}
	// A quoted string, possibly inside an escaped JSON string (\"…\").
	k := 0
	for v+k < len(b) && b[v+k] == '\\' {
		k++
	}
	if v+k < len(b) && b[v+k] == '"' {
		cs := v + k + 1
		ce, next := stringEnd(b, cs, k)
		if ce > cs {
			t.replace(b, cs, ce, redacted)
		}
		return next
	}
	repl := redacted
	if n.quoted {
		repl = quotedRedacted(n.qk)
	}
	if b[v] == '[' || b[v] == '{' {
		e := bracketEnd(b, v, n.qk)
		t.replace(b, v, e, repl)
		return e
	}
	e := bareValueEnd(b, i, v, n.quoted, kind)
	if e == v {
		return i
	}
	if n.quoted && (equal(b[v:e], "null") || equal(b[v:e], "true") || equal(b[v:e], "false")) {
		return e
	}
	t.replace(b, v, e, repl)
	return e
}

// bareValueEnd returns the end of the unquoted value at b[v] after the
// delimiter b[i].
func bareValueEnd(b []byte, i, v int, quoted bool, kind int) int {
	if kind == kindHeader && !quoted && b[i] == ':' {
		// Header dump: to the end of the line (or of the enclosing string).
		e := valueEnd(b, v, isLineEnd)
		for e > v && (b[e-1] == ' ' || b[e-1] == '\t') {
			e--
		}
		return e
	}
	e := bareEnd(b, v)
	if kind == kindHeader && e+1 < len(b) && b[e] == ' ' && isScheme(b[v:e]) {
		// authorization=Bearer xyz: the scheme and its credentials.
		if e2 := bareEnd(b, e+1); e2 > e+1 {
			e = e2
		}
	}
	return e
}

// replace adds a field edit replacing b[s:e] whole by repl, unless it
// already reads repl (scrubbing is idempotent).
func (t *tracker) replace(b []byte, s, e int, repl string) {
	if !equal(b[s:e], repl) {
		t.edits = append(t.edits, edit{start: s, end: e, repl: repl, field: true})
	}
}

// isBareEnd reports whether c ends an unquoted value.
func isBareEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '&', ';', ',', '"', '\\', ')', ']', '}', '#':
		return true
	}
	return false
}

// isLineEnd reports whether c ends a header value: the end of the line, or
// of the JSON string holding the header dump (a quote, or "\r\n" escaped).
func isLineEnd(c byte) bool {
	return c == '\n' || c == '\r' || c == '"' || c == '\\'
}

// valueEnd returns the end of the unquoted value at b[v]: the first byte
// for which isEnd holds. A \uXXXX escape never ends a value: it may be an
// escaped digit that masking turns into '*', and the value must not change
// extent when scrubbed again.
func valueEnd(b []byte, v int, isEnd func(byte) bool) int {
	e := v
	for e < len(b) {
		if b[e] == '\\' {
			if _, ok := u4(b, e); ok {
				e += 6
				continue
			}
		}
		if isEnd(b[e]) {
			break
		}
		e++
	}
	return e
}

func bareEnd(b []byte, v int) int { return valueEnd(b, v, isBareEnd) }

// isScheme reports whether s looks like an HTTP auth scheme (Basic, Bearer…).
func isScheme(s []byte) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// closesString reports whether the quote at b[p] closes a string opened by
// k backslashes and a quote. At nesting depth d (k = 2^d-1) the closing quote
// is preceded by r backslashes with r mod 2(k+1) == k; other counts mean an
// escaped quote inside the string. The run is not counted before from.
func closesString(b []byte, p, from, k int) bool {
	r := 0
	for q := p - 1; q >= from && b[q] == '\\'; q-- {
		r++
	}
	return r%(2*k+2) == k
}

// stringEnd finds the end of a string whose content starts at cs and which
// was opened by k backslashes and a quote. It returns the end of the content
// and the index to resume scanning at. An unterminated string runs to the
// end of the line.
func stringEnd(b []byte, cs, k int) (ce, next int) {
	for p := cs; p < len(b); p++ {
		switch b[p] {
		case '"':
			if closesString(b, p, cs, k) {
				return p - k, p
			}
		case '\n', '\r':
			return p, p
		}
	}
	return len(b), len(b)
}

// bracketEnd returns the index after the bracket ([…] or {…}) opened at
// b[v], skipping brackets inside strings; an unbalanced bracket runs to the
// end of b. k is the escape depth of the strings (as for closesString).
func bracketEnd(b []byte, v, k int) int {
	depth, inString := 0, false
	for p := v; p < len(b); p++ {
		switch b[p] {
		case '"':
			if closesString(b, p, v, k) {
				inString = !inString
			}
		case '[', '{':
			if !inString {
				depth++
			}
		case ']', '}':
			if !inString {
				depth--
				if depth == 0 {
					return p + 1
				}
			}
		}
	}
	return len(b)
}

// quotedRedacted is "[REDACTED]" as a JSON string at escape depth k.
func quotedRedacted(k int) string {
	switch k {
	case 0:
		return `"` + redacted + `"`
	case 1:
		return `\"` + redacted + `\"`
	}
	q := make([]byte, 0, 2*k+2+len(redacted))
	for n := 0; n < k; n++ {
		q = append(q, '\\')
	}
	q = append(q, '"')
	q = append(q, redacted...)
	for n := 0; n < k; n++ {
		q = append(q, '\\')
	}
	return string(append(q, '"'))
}

func equal(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if b[i] != s[i] {
			return false
		}
	}
	return true
}
