package card

import (
	"fmt"
	"log/slog"
)

// minPANLen and maxPANLen bound every brand's PAN length.
const (
	minPANLen = 12
	maxPANLen = 19
)

// PAN is a validated primary account number. The zero value is "no PAN".
// It prints "[PAN]" in every form (fmt verbs, JSON, text, slog); the digits
// leave only through Reveal. A PAN is immutable and safe to share.
type PAN struct{ d *secret }

// ParsePAN validates a card number as typed by a cardholder and returns it.
//
// Accepted: ASCII digits 0-9, optionally grouped by single spaces or by
// single dashes between digits (one kind of separator per number; no
// leading, trailing or doubled separators). Checks, in order, each with its
// own error: format (ErrNumberFormat, also for empty input), 12..19 digits
// (ErrNumberLength), a supported brand prefix (ErrBrandUnknown), a length that
// brand issues (ErrNumberLength), the Luhn check digit (ErrNumberChecksum).
// Errors never contain the input.
func ParsePAN(s string) (PAN, error) {
	var buf [maxPANLen]byte
	n := 0
	var sep byte // the separator in use, 0 until the first one
	prevDigit := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n < len(buf) {
				buf[n] = c
			}
			n++
			prevDigit = true
		case c == ' ' || c == '-':
			// A separator sits between two digits: after one here, before
			// one next (checked by the next iteration or the end).
			if !prevDigit || (sep != 0 && c != sep) {
				return PAN{}, ErrNumberFormat
			}
			sep = c
			prevDigit = false
		default:
			// Non-ASCII bytes (fullwidth or Arabic-Indic digits, any UTF-8)
			// land here too.
			return PAN{}, ErrNumberFormat
		}
	}
	if !prevDigit { // empty, or a trailing separator
		return PAN{}, ErrNumberFormat
	}
	if n > len(buf) {
		return PAN{}, ErrNumberLength
	}
	p, err := validatePAN(buf[:n])
	clear(buf[:]) // best effort: leave no digits in this stack frame
	return p, err
}

// PANFromDigits validates b, a bare run of ASCII digits (no separators), as
// ParsePAN does, and returns a PAN holding a copy of it. It is meant for
// digits coming back from decryption; the caller may wipe b afterwards.
func PANFromDigits(b []byte) (PAN, error) {
	if len(b) == 0 {
		return PAN{}, ErrNumberFormat
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return PAN{}, ErrNumberFormat
		}
	}
	return validatePAN(b)
}

// validatePAN checks length, brand and Luhn of ASCII digits and copies them.
func validatePAN(d []byte) (PAN, error) {
	if len(d) < minPANLen || len(d) > maxPANLen {
		return PAN{}, ErrNumberLength
	}
	r := lookupIIN(d)
	if r == nil {
		return PAN{}, ErrBrandUnknown
	}
	if r.lengths&(1<<len(d)) == 0 {
		return PAN{}, ErrNumberLength
	}
	if !luhn(d) {
		return PAN{}, ErrNumberChecksum
	}
	return PAN{d: newSecret(d)}, nil
}

// IsZero reports whether p holds no PAN.
func (p PAN) IsZero() bool { return p.d == nil }

// Reveal returns a fresh copy of the digits (nil for the zero PAN); the
// caller may wipe it. Call it only at the Vault and injection boundaries.
func (p PAN) Reveal() []byte { return p.d.reveal() }

// equal reports whether p and q hold the same digits, in constant time for
// equal lengths. Two zero PANs are equal.
func (p PAN) equal(q PAN) bool {
	if p.d == nil || q.d == nil {
		return p.d == q.d
	}
	return equalSecret(p.d, q.d)
}

// Brand returns the card brand ("" for the zero PAN).
func (p PAN) Brand() Brand {
	if p.d == nil {
		return ""
	}
	if r := lookupIIN(*p.d); r != nil {
		return r.brand
	}
	return ""
}

// numDigits returns the number of digits (0 for the zero PAN).
func (p PAN) numDigits() int {
	if p.d == nil {
		return 0
	}
	return len(*p.d)
}

// BIN returns the first 6 digits ("" for the zero PAN): PCI DSS allows them to be
// stored and shown in the clear with the last 4. Never 8: with 8 and the last 4 of a
// 16-digit PAN only 4 digits, 1,000 Luhn candidates, would remain unknown.
func (p PAN) BIN() string {
	if p.d == nil {
		return ""
	}
	return string((*p.d)[:6])
}

// Last4 returns the last 4 digits ("" for the zero PAN).
func (p PAN) Last4() string {
	if p.d == nil {
		return ""
	}
	return string((*p.d)[len(*p.d)-4:])
}

// String returns "[PAN]".
func (PAN) String() string { return "[PAN]" }

// GoString returns "[PAN]", for %#v.
func (PAN) GoString() string { return "[PAN]" }

// Format writes "[PAN]" for every verb, so no flag or verb reaches the digits.
func (PAN) Format(f fmt.State, verb rune) { placeholder(f, verb, "[PAN]") }

// MarshalJSON returns the JSON string "[PAN]".
func (PAN) MarshalJSON() ([]byte, error) { return []byte(`"[PAN]"`), nil }

// MarshalText returns "[PAN]" (used for map keys, XML, some loggers).
func (PAN) MarshalText() ([]byte, error) { return []byte("[PAN]"), nil }

// LogValue returns "[PAN]" for log/slog.
func (PAN) LogValue() slog.Value { return slog.StringValue("[PAN]") }

// luhn reports whether digits, ASCII 0-9 only, end in a correct Luhn (mod 10)
// check digit. It is false for empty input or any non-digit byte.
func luhn(digits []byte) bool {
	if len(digits) == 0 {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// mask returns the PAN with every digit but the last 4 replaced by '*', and
// with the first 6 kept too when keepBIN: "401200******3010" or
// "************3010": never more than first 6 / last 4. The zero PAN masks to "".
func mask(pan PAN, keepBIN bool) string {
	if pan.d == nil {
		return ""
	}
	d := *pan.d
	out := make([]byte, len(d))
	for i := range out {
		out[i] = '*'
	}
	if keepBIN {
		copy(out, d[:6])
	}
	copy(out[len(d)-4:], d[len(d)-4:])
	return string(out)
}
