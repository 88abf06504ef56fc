package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chdproxy/chdproxy/card"
)

// containsRawPAN reports whether a JSON body carries a card number:
// in any string value or number, after JSON unescaping, a run of 13–19 digits (ASCII or
// any other Unicode decimal digits, optionally grouped by single spaces or dashes) that
// card.ParsePAN accepts as a whole — a known brand's prefix and length and a valid Luhn
// check digit.
//
// Why whole runs and not every 13–19-digit window (as log redaction does): this check
// refuses payments, and window-by-window Luhn refuses about two thirds of all 16-digit
// numeric order ids. Logs stay masked window by window whatever passes here.
func containsRawPAN(b []byte) bool {
	if !hasDigitRun(b, 13) && bytes.IndexByte(b, '\\') < 0 && isASCII(b) && !hasExponent(b) {
		return false // the common case: no long digit run, no escape, nothing but ASCII
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		t, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			return textHasPAN(string(b)) // not JSON after all: read it as text
		}
		switch v := t.(type) {
		case string:
			if textHasPAN(v) {
				return true
			}
		case json.Number:
			if textHasPAN(v.String()) {
				return true
			}
			// The same integer written in exponent or decimal form (4.012…e15, or with a
			// ".0" tail): a JSON reader upstream still sees the card number.
			if d, ok := wholeNumberDigits(v.String()); ok && textHasPAN(d) {
				return true
			}
		}
	}
}

// hasDigitRun is a cheap pre-check: n ASCII digits in a row, ignoring single separators.
func hasDigitRun(b []byte, n int) bool {
	run := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			run++
		case c == ' ' || c == '-':
		default:
			run = 0
		}
		if run >= n {
			return true
		}
	}
	return false
}

// hasExponent reports a JSON number in exponent form (a digit, e or E, an optional
// sign, a digit): such a number can stand for a long integer with few digits written.
func hasExponent(b []byte) bool {
	digit := func(i int) bool { return i >= 0 && i < len(b) && b[i] >= '0' && b[i] <= '9' }
	for i, c := range b {
		if (c == 'e' || c == 'E') && digit(i-1) && (digit(i+1) || (i+1 < len(b) && (b[i+1] == '+' || b[i+1] == '-') && digit(i+2))) {
			return true
		}
	}
	return false
}

// wholeNumberDigits returns the digits of the integer a JSON number denotes when it is
// written with a fraction or an exponent, is whole, and has 13 to 19 digits. Exponents
// are bounded, so a number like 1e999999999 costs nothing.
func wholeNumberDigits(num string) (string, bool) {
	s := strings.TrimPrefix(num, "-")
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e < -40 || e > 40 {
			return "", false
		}
		mant, exp = s[:i], e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if len(intPart)+len(frac) > 60 {
		return "", false
	}
	digits := intPart + frac
	point := len(intPart) + exp // the decimal point's position in digits
	switch {
	case point <= 0:
		return "", false
	case point >= len(digits):
		digits += strings.Repeat("0", point-len(digits))
	case strings.Trim(digits[point:], "0") != "":
		return "", false // not a whole number
	default:
		digits = digits[:point]
	}
	digits = strings.TrimLeft(digits, "0")
	if len(digits) < 13 || len(digits) > 19 {
		return "", false
	}
	return digits, true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// textHasPAN finds digit runs in s and asks card.ParsePAN about each.
func textHasPAN(s string) bool {
	var run []byte
	sep := false
	check := func() bool {
		ok := false
		if len(run) >= 13 && len(run) <= 19 {
			_, err := card.PANFromDigits(run)
			ok = err == nil
		}
		run, sep = run[:0], false
		return ok
	}
	for len(s) > 0 {
		r, w := utf8.DecodeRuneInString(s)
		s = s[w:]
		if d, ok := digitValue(r); ok {
			run = append(run, '0'+d)
			sep = false
			continue
		}
		if (r == ' ' || r == '-') && len(run) > 0 && !sep {
			sep = true
			continue
		}
		if check() {
			return true
		}
	}
	return check()
}

// digitValue maps any Unicode decimal digit (fullwidth, Arabic-Indic, …) to its value.
// Unicode lays decimal digits out in contiguous runs of whole 0–9 sequences.
func digitValue(r rune) (byte, bool) {
	if r >= '0' && r <= '9' {
		return byte(r - '0'), true
	}
	if r < 0x80 || !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	start := r
	for unicode.Is(unicode.Nd, start-1) {
		start--
	}
	return byte((r - start) % 10), true
}

// queryHasPAN checks every decoded key and value of a query string.
func queryHasPAN(raw string) bool {
	if raw == "" {
		return false
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return textHasPAN(raw)
	}
	for k, vs := range vals {
		if textHasPAN(k) {
			return true
		}
		for _, v := range vs {
			if textHasPAN(v) {
				return true
			}
		}
	}
	return false
}

// headersHavePAN checks the request headers that would be forwarded upstream.
func headersHavePAN(h http.Header) bool {
	for _, vs := range h {
		for _, v := range vs {
			if hasDigitRun([]byte(v), 13) || !isASCII([]byte(v)) {
				if textHasPAN(v) {
					return true
				}
			}
		}
	}
	return false
}
