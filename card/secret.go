package card

import (
	"crypto/subtle"
	"fmt"
	"io"
	"strings"
)

// secret is sensitive text. The types of this package hold it as *secret, a
// pointer in an unexported field, so that fmt cannot reach it:
//
//   - fmt calls no methods on unexported fields; it prints a nested pointer
//     as an address;
//   - for a verb a pointer does not support (%s, %q, %t, ...), fmt's error
//     path prints the pointer again as if at top level, where a pointer to a
//     struct, array, slice or map is printed WITH its contents. A pointer to
//     a string is printed as an address. So secret must stay a string type:
//     making it a struct or []byte would leak under "%s" of a struct holding
//     a PAN in an unexported field (TestNothingPrintsCardData catches that).
//
// A string is also immutable, so a value that shares it stays unchanged.
type secret string

// newSecret copies b, so a caller that wipes or reuses its buffer does not
// change the value.
func newSecret(b []byte) *secret {
	s := secret(b)
	return &s
}

// secretOf copies s, so the value does not keep a larger input (a whole
// request body) alive.
func secretOf(s string) *secret {
	c := secret(strings.Clone(s))
	return &c
}

// reveal returns a fresh copy of the bytes, or nil for a nil secret.
func (s *secret) reveal() []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

// equalSecret compares two non-nil secrets in constant time for equal
// lengths.
func equalSecret(a, b *secret) bool {
	return subtle.ConstantTimeCompare([]byte(*a), []byte(*b)) == 1
}

// placeholder writes p for every verb; %q quotes it. Width, precision and
// flags are ignored: nothing about the value, not even its length, leaks.
func placeholder(f fmt.State, verb rune, p string) {
	if verb == 'q' {
		io.WriteString(f, `"`+p+`"`)
		return
	}
	io.WriteString(f, p)
}
