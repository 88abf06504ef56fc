package vault

import "io"

const (
	tokenPrefix = "tok_"
	// tokenRandLen base62 characters carry 22·log2(62) ≈ 131 bits.
	tokenRandLen = 22
	tokenLen     = len(tokenPrefix) + tokenRandLen

	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

	// maxDigitRun: a token id never holds more consecutive digits than
	// this, so no part of it can be taken for a PAN (13–19 digits) by a
	// detector or a person. It costs ~1e-10 of the ids, nothing of their
	// entropy worth counting.
	maxDigitRun = 12

	maxMerchantLen = 64
)

// newTokenID returns "tok_" + 22 base62 characters from crypto/rand, drawn
// uniformly (bytes ≥ 248 are rejected), never holding a run of more than
// maxDigitRun digits.
func newTokenID(r io.Reader) (string, error) {
	var out [tokenLen]byte
	copy(out[:], tokenPrefix)
	var buf [48]byte
	for {
		n := len(tokenPrefix)
		for n < tokenLen {
			if _, err := io.ReadFull(r, buf[:]); err != nil {
				return "", err
			}
			for _, b := range buf {
				if b >= 248 { // 248 = 4·62: keep the draw uniform
					continue
				}
				out[n] = base62[b%62]
				n++
				if n == tokenLen {
					break
				}
			}
		}
		if digitRun(out[len(tokenPrefix):]) <= maxDigitRun {
			return string(out[:]), nil
		}
	}
}

func digitRun(b []byte) int {
	longest, run := 0, 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// ValidTokenID reports whether s has the shape of a token id: "tok_" and 22
// base62 characters. It says nothing about whether the token exists.
func ValidTokenID(s string) bool {
	if len(s) != tokenLen || s[:len(tokenPrefix)] != tokenPrefix {
		return false
	}
	for i := len(tokenPrefix); i < len(s); i++ {
		if !isBase62(s[i]) {
			return false
		}
	}
	return true
}

func isBase62(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// ValidMerchantID reports whether s can name a merchant in the vault (see
// validMerchantID), so configuration can be checked before anything starts.
func ValidMerchantID(s string) bool { return validMerchantID(s) }

// validMerchantID reports whether s can name a merchant in the vault: 1–64
// characters of A–Z, a–z, 0–9, '_', '-', '.'. The merchant id is part of
// Redis keys and of the transit derivation context, so it must hold no
// separator (':', NUL), hash-tag brace or glob character.
func validMerchantID(s string) bool {
	if len(s) == 0 || len(s) > maxMerchantLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isBase62(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
