package redact

import (
	"unicode"
	"unicode/utf8"
)

// This file is an independent, deliberately naive reference for the
// property the scanner must guarantee: no Luhn-valid window of 13 to 19
// digits, contiguous or separated by single spaces or dashes, in the raw
// text or in the text with JSON (\uXXXX) and percent (%XX) escapes decoded.
// It shares no code with scan.go.

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
	case r == ' ' || r == '-':
		return ref{sepRef}
	}
	return ref{otherRef}
}

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
			default:
				out = append(out, refRune(r))
				i += 6
			}
		case b[i] == '\\':
			out = append(out, ref{otherRef})
			i += 2
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

// refFindPAN returns the first Luhn-valid 13–19 digit window of the runs of
// v, as digits, or nil.
func refFindPAN(v []ref) []int {
	var runs [][]int
	var cur []int
	seps := 0
	for _, t := range v {
		switch {
		case t.v >= 0:
			if seps > 1 {
				runs, cur = append(runs, cur), nil
			}
			cur = append(cur, t.v)
			seps = 0
		case t.v == sepRef && len(cur) > 0:
			seps++
		default:
			runs, cur, seps = append(runs, cur), nil, 0
		}
	}
	runs = append(runs, cur)
	for _, run := range runs {
		for s := 0; s < len(run); s++ {
			for l := 13; l <= 19 && s+l <= len(run); l++ {
				if refLuhn(run[s : s+l]) {
					return run[s : s+l]
				}
			}
		}
	}
	return nil
}

// surviving returns a Luhn-valid window found in b in either view, or nil.
func surviving(b []byte) []int {
	if w := refFindPAN(refRaw(b)); w != nil {
		return w
	}
	return refFindPAN(refDecoded(b))
}
