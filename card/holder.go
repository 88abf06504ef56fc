package card

import (
	"fmt"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxHolderRunes bounds a holder name; schemes print at most 26 characters
// on a card, 64 leaves room for full names typed at checkout.
const maxHolderRunes = 64

// Holder is a cardholder name. The zero value is "no holder". It prints
// "[HOLDER]" in every form; the name leaves only through Reveal.
type Holder struct{ d *secret }

// ParseHolder validates a cardholder name and returns it trimmed of
// surrounding white space.
//
// Accepted: valid UTF-8, 1..64 runes after trimming, made of Unicode letters,
// combining marks, space separators, and the punctuation names use: ' ’ - .
// At least one letter is required. Digits are refused outright: a PAN pasted
// into the name field must never be stored as a name (this also covers "any
// 4+ digits"). Control and format characters are refused. Errors (ErrHolder)
// never contain the input.
func ParseHolder(s string) (Holder, error) {
	if !utf8.ValidString(s) {
		return Holder{}, ErrHolder
	}
	s = strings.TrimSpace(s)
	if s == "" || utf8.RuneCountInString(s) > maxHolderRunes {
		return Holder{}, ErrHolder
	}
	letters := 0
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			letters++
		case unicode.IsMark(r), unicode.Is(unicode.Zs, r):
		case r == '\'', r == '\u2019', r == '-', r == '.':
		default:
			return Holder{}, ErrHolder
		}
	}
	if letters == 0 {
		return Holder{}, ErrHolder
	}
	return Holder{d: secretOf(s)}, nil
}

// HolderFromBytes wraps b, a holder name coming back from decryption,
// without validation; it copies b. Empty b gives the zero Holder.
func HolderFromBytes(b []byte) Holder {
	if len(b) == 0 {
		return Holder{}
	}
	return Holder{d: newSecret(b)}
}

// IsZero reports whether h holds no name.
func (h Holder) IsZero() bool { return h.d == nil }

// Reveal returns the name ("" for the zero Holder).
func (h Holder) Reveal() string {
	if h.d == nil {
		return ""
	}
	return string(*h.d)
}

// String returns "[HOLDER]".
func (Holder) String() string { return "[HOLDER]" }

// GoString returns "[HOLDER]", for %#v.
func (Holder) GoString() string { return "[HOLDER]" }

// Format writes "[HOLDER]" for every verb.
func (Holder) Format(f fmt.State, verb rune) { placeholder(f, verb, "[HOLDER]") }

// MarshalJSON returns the JSON string "[HOLDER]".
func (Holder) MarshalJSON() ([]byte, error) { return []byte(`"[HOLDER]"`), nil }

// MarshalText returns "[HOLDER]".
func (Holder) MarshalText() ([]byte, error) { return []byte("[HOLDER]"), nil }

// LogValue returns "[HOLDER]" for log/slog.
func (Holder) LogValue() slog.Value { return slog.StringValue("[HOLDER]") }
