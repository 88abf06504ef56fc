package redact

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chdproxy/chdproxy/card"
)

// This file is an independent, deliberately naive reference for the
// property the scanner must guarantee: no card number (card.PANFromDigits
// accepts it: brand prefix, length, Luhn) made of whole groups of a run of
// digits separated by single separators, in the raw text or in the text
// with JSON (\uXXXX, \/), percent (%XX) and HTML (&#NN;) escapes decoded.
// It shares no code with scan.go and detect.go.

// ref is one rune of a view: a digit (v >= 0), a separator (v == sepRef)
// or anything else (v == otherRef).
type ref struct{ v int }

const (
	sepRef   = -1
	otherRef = -2
)

// refDigitValue computes a Unicode digit's value by walking back to the
// start of its block of consecutive decimal digits.
func refDigitValue(r rune) int {
	start := r
	for unicode.IsDigit(start - 1) {
		start--
	}
	return int(r-start) % 10
}

func refRune(r rune) ref {
	switch {
	case unicode.IsDigit(r):
		return ref{refDigitValue(r)}
	case strings.ContainsRune(refSeps, r):
		return ref{sepRef}
	}
	return ref{otherRef}
}

// refSeps are the separators of a run, written out again.
const refSeps = " -+./_\u00a0\u00ad\u00b7\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u200c\u200d" +
	"\u2010\u2011\u2012\u2013\u2014\u2015\u2024\u2025\u2026\u2027\u202f\u2044\u205f\u2060\u2212\u2215\u3000\ufe63\ufeff\uff0d\uff0e\uff0f\uff3f"

func refRaw(b []byte) []ref {
	var out []ref
	for len(b) > 0 {
		r, w := utf8.DecodeRune(b)
		out = append(out, refRune(r))
		b = b[w:]
	}
	return out
}

func refIsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func refHex(s []byte) int {
	n := 0
	for _, c := range s {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n += int(c - '0')
		case c >= 'a' && c <= 'f':
			n += int(c-'a') + 10
		default:
			n += int(c-'A') + 10
		}
	}
	return n
}

func refDecoded(b []byte) []ref {
	var out []ref
	pct := func(i int) bool { return i+2 < len(b) && b[i] == '%' && refIsHex(b[i+1]) && refIsHex(b[i+2]) }
	u := func(i int) bool {
		if i+5 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return false
		}
		for _, c := range b[i+2 : i+6] {
			if !refIsHex(c) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(b); {
		switch {
		case b[i] == '%' && pct(i):
			x := refHex(b[i+1 : i+3])
			if x == '&' {
				r, n := refEntity(b[i+3:])
				out = append(out, r)
				i += 3 + n
				continue
			}
			if x < 0x80 {
				out = append(out, refRune(rune(x)))
				i += 3
				continue
			}
			var buf []byte
			for j := i; len(buf) < 4 && pct(j); j += 3 {
				buf = append(buf, byte(refHex(b[j+1:j+3])))
			}
			r, size := utf8.DecodeRune(buf)
			if r == utf8.RuneError {
				out = append(out, ref{otherRef})
				i += 3
				continue
			}
			out = append(out, refRune(r))
			i += 3 * size
		case b[i] == '%':
			out = append(out, ref{otherRef})
			i++
		case b[i] == '\\' && u(i):
			r := rune(refHex(b[i+2 : i+6]))
			switch {
			case r >= 0xd800 && r < 0xdc00 && u(i+6) && refHex(b[i+8:i+12]) >= 0xdc00 && refHex(b[i+8:i+12]) <= 0xdfff:
				lo := rune(refHex(b[i+8 : i+12]))
				out = append(out, refRune(0x10000+(r-0xd800)<<10+(lo-0xdc00)))
				i += 12
			case r >= 0xd800 && r <= 0xdfff:
				out = append(out, ref{otherRef})
				i += 6
			case r == '&':
				e, n := refEntity(b[i+6:])
				out = append(out, e)
				i += 6 + n
			default:
				out = append(out, refRune(r))
				i += 6
			}
		case b[i] == '\\' && i+1 < len(b) && b[i+1] == '/':
			out = append(out, ref{sepRef})
			i += 2
		case b[i] == '\\':
			out = append(out, ref{otherRef})
			i += 2
		case b[i] == '&':
			r, n := refEntity(b[i+1:])
			out = append(out, r)
			i += 1 + n
		default:
			r, w := utf8.DecodeRune(b[i:])
			out = append(out, refRune(r))
			i += w
		}
	}
	return out
}

func refLuhn(d []int) bool {
	sum := 0
	for i := range d {
		v := d[len(d)-1-i]
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// refEntity decodes the HTML character reference that follows an '&' at the
// start of b; it returns what it means and how many bytes after the '&' it
// takes.
func refEntity(b []byte) (ref, int) {
	s := "&" + string(b)
	for _, name := range []string{"nbsp", "ensp", "emsp", "thinsp", "numsp", "puncsp", "hairsp", "shy", "hyphen",
		"dash", "ndash", "minus", "period", "sol", "lowbar", "plus", "middot", "ZeroWidthSpace"} {
		if strings.HasPrefix(s, "&"+name+";") {
			return ref{sepRef}, len(name) + 1
		}
	}
	if !strings.HasPrefix(s, "&#") {
		return ref{otherRef}, 0
	}
	body, base := s[2:], 10
	if len(body) > 0 && (body[0] == 'x' || body[0] == 'X') {
		body, base = body[1:], 16
	}
	n := 0
	for n < len(body) && n < 8 && strings.ContainsRune("0123456789abcdefABCDEF"[:base+max(0, base-10)], rune(body[n])) {
		n++
	}
	v, err := strconv.ParseInt(body[:n], base, 64)
	if n == 0 || err != nil || v > unicode.MaxRune {
		return ref{otherRef}, 0
	}
	w := len(s) - len(body) + n
	if w < len(s) && s[w] == ';' {
		w++
	}
	return refRune(rune(v)), w - 1
}

// refFindPAN returns the first card number made of whole groups of a run
// of v, as digits, or nil.
func refFindPAN(v []ref) []int {
	var runs [][][]int // run → groups → digits
	var cur [][]int
	seps := 1
	for _, t := range v {
		switch {
		case t.v >= 0:
			if seps > 1 {
				runs, cur = append(runs, cur), nil
			}
			if seps > 0 {
				cur = append(cur, nil)
			}
			cur[len(cur)-1] = append(cur[len(cur)-1], t.v)
			seps = 0
		case t.v == sepRef && len(cur) > 0:
			seps++
		default:
			runs, cur, seps = append(runs, cur), nil, 1
		}
	}
	runs = append(runs, cur)
	for _, run := range runs {
		for s := range run {
			var d []int
			for e := s; e < len(run); e++ {
				d = append(d, run[e]...)
				if refIsPAN(d) {
					return d
				}
			}
		}
	}
	return nil
}

func refIsPAN(d []int) bool {
	if len(d) < 13 || len(d) > 19 {
		return false
	}
	b := make([]byte, len(d))
	for i, v := range d {
		b[i] = byte('0' + v)
	}
	_, err := card.PANFromDigits(b)
	return err == nil
}

// surviving returns a card number found in b in either view, or nil.
func surviving(b []byte) []int {
	if w := refFindPAN(refRaw(b)); w != nil {
		return w
	}
	return refFindPAN(refDecoded(b))
}
