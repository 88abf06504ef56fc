package smartpay

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// This file holds the sandbox's own small card helpers (Luhn, masking, brand,
// expiry). They are deliberately independent of package card so that the
// sandbox validates what arrives on the wire by itself.

// cardClass is the sandbox's verdict on a card number, from the documentation's
// test-card tables.
type cardClass int

const (
	classDecline      cardClass = iota // every other card
	classFrictionless                  // payments: frictionless success; withdrawals: success
	classChallenge                     // payments: challenge flow; withdrawals: decline
)

// The test cards are recognised by their SHA-256 digest so that no PAN literal
// lives outside _test.go files: the frictionless card is BIN 401200 last4 3010,
// the challenge card BIN 400383 last4 4018 (both 16 digits).
var (
	frictionlessDigest = mustDigest("4888c478ca7f4aed3aeff8c80991a1e602bfb8dfe09c13138cb7562e33273a60")
	challengeDigest    = mustDigest("bb2e188a608de4b032797935f0d95c940516adbe1713984deb7e58fabd2073b9")
)

func mustDigest(h string) [sha256.Size]byte {
	var d [sha256.Size]byte
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(d) {
		panic("smartpay: bad test-card digest")
	}
	copy(d[:], b)
	return d
}

// classify tells which test card pan is. pan must already be valid.
func classify(pan string) cardClass {
	switch sha256.Sum256([]byte(pan)) {
	case frictionlessDigest:
		return classFrictionless
	case challengeDigest:
		return classChallenge
	}
	return classDecline
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// luhn reports whether the ASCII digit string s passes the Luhn check.
func luhn(s string) bool {
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
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

// validPAN: 12 to 19 ASCII digits, Luhn-valid. No separators are accepted.
func validPAN(s string) bool {
	return len(s) >= 12 && len(s) <= 19 && allDigits(s) && luhn(s)
}

// maskPAN keeps the first six and the last four digits ("401200******3010").
func maskPAN(pan string) string {
	if len(pan) < 12 {
		return strings.Repeat("*", len(pan))
	}
	return pan[:6] + strings.Repeat("*", len(pan)-10) + pan[len(pan)-4:]
}

// brandOf names the card scheme as check reports it ("VISA", "MASTERCARD", …).
func brandOf(pan string) string {
	p := func(n int) int { // numeric value of the first n digits
		v := 0
		for i := 0; i < n && i < len(pan); i++ {
			v = v*10 + int(pan[i]-'0')
		}
		return v
	}
	switch {
	case pan[0] == '4':
		return "VISA"
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720:
		return "MASTERCARD"
	case p(2) == 34 || p(2) == 37:
		return "AMEX"
	case p(4) >= 2200 && p(4) <= 2204:
		return "MIR"
	case p(4) == 6011 || p(2) == 65 || (p(3) >= 644 && p(3) <= 649):
		return "DISCOVER"
	case p(4) >= 3528 && p(4) <= 3589:
		return "JCB"
	case p(2) == 62:
		return "UNIONPAY"
	case p(2) == 36 || p(2) == 38 || p(2) == 39 || (p(3) >= 300 && p(3) <= 305):
		return "DINERS"
	case p(2) == 50 || (p(2) >= 56 && p(2) <= 69):
		return "MAESTRO"
	}
	return "UNKNOWN"
}

// The sandbox has no BIN database: every card is reported as issued in Spain,
// as in the documentation's examples.
const (
	sandboxCardCountry = "Spain"
	sandboxCardISO     = "ESP"
)

// cardInfoFor is the masked view of a valid PAN; the PAN itself is not kept.
func cardInfoFor(pan string) *cardInfo {
	return &cardInfo{
		Number:  maskPAN(pan),
		BIN:     pan[:6],
		Country: sandboxCardCountry,
		ISO:     sandboxCardISO,
		Type:    brandOf(pan),
	}
}

// walletCardInfo is what check reports for a wallet payment: only the network.
func walletCardInfo(network string) *cardInfo {
	return &cardInfo{Type: strings.ToUpper(network)}
}

// parseExpiry accepts a month "1".."12" (one or two digits) and a year of two
// or four digits.
func parseExpiry(month, year string) (m, y int, ok bool) {
	if len(month) < 1 || len(month) > 2 || !allDigits(month) {
		return 0, 0, false
	}
	for i := 0; i < len(month); i++ {
		m = m*10 + int(month[i]-'0')
	}
	if m < 1 || m > 12 {
		return 0, 0, false
	}
	if (len(year) != 2 && len(year) != 4) || !allDigits(year) {
		return 0, 0, false
	}
	for i := 0; i < len(year); i++ {
		y = y*10 + int(year[i]-'0')
	}
	if len(year) == 2 {
		y += 2000
	}
	return m, y, true
}

// expired reports whether a card valid through month m of year y has expired
// at now (cards are valid to the end of their expiry month).
func expired(m, y int, now time.Time) bool {
	now = now.UTC()
	return now.Year() > y || (now.Year() == y && int(now.Month()) > m)
}

func validCVV(s string) bool { return (len(s) == 3 || len(s) == 4) && allDigits(s) }

// walletNetworks are the networks the sandbox knows, by lower-case name.
var walletNetworks = map[string]string{
	"visa": "Visa", "mastercard": "Mastercard", "amex": "Amex", "discover": "Discover",
	"jcb": "JCB", "interac": "Interac", "maestro": "Maestro", "mir": "Mir",
	"unionpay": "UnionPay", "electron": "Electron", "elo": "Elo",
}

// canonicalNetwork returns the canonical spelling of a known network.
func canonicalNetwork(s string) (string, bool) {
	n, ok := walletNetworks[strings.ToLower(strings.TrimSpace(s))]
	return n, ok
}

// Bounds of a decoded wallet payload.
const (
	minDPANBytes = 16
	maxDPANBytes = 16 << 10
)

// validDPAN: standard or URL-safe base64, padded or not, decoding to 16 B..16 KiB.
func validDPAN(s string) bool {
	if s == "" || len(s) > base64.StdEncoding.EncodedLen(maxDPANBytes) {
		return false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return len(b) >= minDPANBytes && len(b) <= maxDPANBytes
		}
	}
	return false
}
