package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/chdproxy/chdproxy/redact"
)

// containsRawPAN reports whether a JSON body carries a card number: redact.HasPAN,
// the detector that also scrubs every answer and log line, finds one in the body
// (any value or key, JSON-escaped, percent-encoded, Unicode digits, any grouping),
// or a JSON number written with a fraction or an exponent denotes one (4.012…e15).
//
// HasPAN checks whole runs and whole groups only, with the brand's prefix and
// length and Luhn: checking every 13–19-digit window would refuse about two thirds
// of all 16-digit numeric order ids.
func containsRawPAN(b []byte) bool {
	if redact.HasPAN(b) {
		return true
	}
	if !hasExponent(b) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		t, err := dec.Token()
		if err != nil {
			return false // EOF, or not JSON: HasPAN has read it as text
		}
		if v, ok := t.(json.Number); ok {
			if d, ok := wholeNumberDigits(v.String()); ok && redact.HasPAN([]byte(d)) {
				return true
			}
		}
	}
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

// queryHasPAN checks a raw query string, keys and values, encoded or not.
func queryHasPAN(raw string) bool {
	return raw != "" && redact.HasPAN([]byte(raw))
}

// headersHavePAN checks the request headers that would be forwarded upstream.
func headersHavePAN(h http.Header) bool {
	for _, vs := range h {
		for _, v := range vs {
			if redact.HasPAN([]byte(v)) {
				return true
			}
		}
	}
	return false
}
