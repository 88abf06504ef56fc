package card

import (
	"encoding/base64"
	"fmt"
	"log/slog"
)

// Bounds of a wallet payload, decoded. The smallest real Apple Pay or Google
// Pay payload is far above 16 bytes; 16 KiB is far above the largest.
const (
	minDPANBytes = 16
	maxDPANBytes = 16 << 10
)

// maxDPANText is the longest base64 text that can decode to maxDPANBytes
// (padded form); longer input is refused before decoding.
var maxDPANText = base64.StdEncoding.EncodedLen(maxDPANBytes)

// DPAN is a wallet payload (Apple Pay / Google Pay token data), kept as the
// base64 text it arrived in. The zero value is "no DPAN". It prints "[DPAN]"
// in every form; the text leaves only through Reveal.
type DPAN struct{ d *secret }

// ParseDPAN validates s as base64 and returns it unchanged.
//
// Accepted: the standard or the URL-safe alphabet (not both in one text),
// with or without '=' padding, no white space, decoding to 16 B..16 KiB.
// Errors (ErrDPAN) never contain the input.
func ParseDPAN(s string) (DPAN, error) {
	if len(s) == 0 || len(s) > maxDPANText {
		return DPAN{}, ErrDPAN
	}
	std, url, padded := false, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '+' || c == '/':
			std = true
		case c == '-' || c == '_':
			url = true
		case c == '=':
			padded = true
		default:
			// White space included: the decoder would skip \r and \n, and
			// the text is injected upstream exactly as received.
			return DPAN{}, ErrDPAN
		}
	}
	if std && url {
		return DPAN{}, ErrDPAN
	}
	enc := base64.StdEncoding
	if url {
		enc = base64.URLEncoding
	}
	if !padded {
		enc = enc.WithPadding(base64.NoPadding)
	}
	buf := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(buf, []byte(s))
	clear(buf)
	if err != nil || n < minDPANBytes || n > maxDPANBytes {
		return DPAN{}, ErrDPAN
	}
	return DPAN{d: secretOf(s)}, nil
}

// DPANFromBytes wraps b, the base64 text coming back from decryption, without
// validation; it copies b. Empty b gives the zero DPAN.
func DPANFromBytes(b []byte) DPAN {
	if len(b) == 0 {
		return DPAN{}
	}
	return DPAN{d: newSecret(b)}
}

// IsZero reports whether d holds no payload.
func (d DPAN) IsZero() bool { return d.d == nil }

// Reveal returns a fresh copy of the base64 text exactly as received (nil for
// the zero DPAN). Call it only at the Vault and injection boundaries.
func (d DPAN) Reveal() []byte { return d.d.reveal() }

// equal reports whether d and o hold the same text, in constant time for
// equal lengths.
func (d DPAN) equal(o DPAN) bool {
	if d.d == nil || o.d == nil {
		return d.d == o.d
	}
	return equalSecret(d.d, o.d)
}

// String returns "[DPAN]".
func (DPAN) String() string { return "[DPAN]" }

// GoString returns "[DPAN]", for %#v.
func (DPAN) GoString() string { return "[DPAN]" }

// Format writes "[DPAN]" for every verb.
func (DPAN) Format(f fmt.State, verb rune) { placeholder(f, verb, "[DPAN]") }

// MarshalJSON returns the JSON string "[DPAN]".
func (DPAN) MarshalJSON() ([]byte, error) { return []byte(`"[DPAN]"`), nil }

// MarshalText returns "[DPAN]".
func (DPAN) MarshalText() ([]byte, error) { return []byte("[DPAN]"), nil }

// LogValue returns "[DPAN]" for log/slog.
func (DPAN) LogValue() slog.Value { return slog.StringValue("[DPAN]") }
