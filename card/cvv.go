package card

import (
	"fmt"
	"log/slog"
)

// CVV is a card security code (CVV2/CVC2/CID): sensitive authentication data
// that must not outlive authorisation. The zero value is "no CVV". It prints
// "[CVV]" in every form; the digits leave only through Reveal.
type CVV struct{ d *secret }

// ParseCVV validates s as the security code of a card of brand b: exactly 4
// ASCII digits for Amex, exactly 3 for every other brand (including "").
// The digits are kept as given, leading zeros included. Errors (ErrCVV)
// never contain the input.
func ParseCVV(s string, b Brand) (CVV, error) {
	want := 3
	if b == Amex {
		want = 4
	}
	if len(s) != want {
		return CVV{}, ErrCVV
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return CVV{}, ErrCVV
		}
	}
	return CVV{d: secretOf(s)}, nil
}

// CVVFromBytes wraps b, a CVV coming back from decryption, without
// validation; it copies b, so the caller may wipe it. Empty b gives the zero
// CVV.
func CVVFromBytes(b []byte) CVV {
	if len(b) == 0 {
		return CVV{}
	}
	return CVV{d: newSecret(b)}
}

// IsZero reports whether c holds no CVV.
func (c CVV) IsZero() bool { return c.d == nil }

// Reveal returns a fresh copy of the digits (nil for the zero CVV); the
// caller may wipe it. Call it only at the Vault and injection boundaries.
func (c CVV) Reveal() []byte { return c.d.reveal() }

// equal reports whether c and o hold the same digits, in constant time.
func (c CVV) equal(o CVV) bool {
	if c.d == nil || o.d == nil {
		return c.d == o.d
	}
	return equalSecret(c.d, o.d)
}

// String returns "[CVV]".
func (CVV) String() string { return "[CVV]" }

// GoString returns "[CVV]", for %#v.
func (CVV) GoString() string { return "[CVV]" }

// Format writes "[CVV]" for every verb.
func (CVV) Format(f fmt.State, verb rune) { placeholder(f, verb, "[CVV]") }

// MarshalJSON returns the JSON string "[CVV]".
func (CVV) MarshalJSON() ([]byte, error) { return []byte(`"[CVV]"`), nil }

// MarshalText returns "[CVV]".
func (CVV) MarshalText() ([]byte, error) { return []byte("[CVV]"), nil }

// LogValue returns "[CVV]" for log/slog.
func (CVV) LogValue() slog.Value { return slog.StringValue("[CVV]") }
