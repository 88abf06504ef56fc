package card

import "time"

// maxYearsAhead bounds how far in the future an expiry year may lie; issuers
// stay well below it, and it catches typos such as "2252".
const maxYearsAhead = 20

// Expiry is a card's expiry month. It is not secret. Year has 4 digits.
// A card is valid through the last day of its expiry month.
type Expiry struct{ Month, Year int }

// ParseExpiry validates an expiry month and year as typed at checkout.
//
// month is "1".."12" or "01".."12" (ASCII digits only). year is 2 digits,
// read as 20YY, or 4 digits from 2000 on. The expiry must not be before now's
// calendar month, in now's location (ErrExpired), and not more than 20 years
// after now's year (ErrExpYear). A malformed month gives ErrExpMonth, a
// malformed year ErrExpYear; the month is checked first. Errors never
// contain the input.
func ParseExpiry(month, year string, now time.Time) (Expiry, error) {
	m, ok := digitsValue(month, 1, 2)
	if !ok || m < 1 || m > 12 {
		return Expiry{}, ErrExpMonth
	}
	var y int
	switch len(year) {
	case 2:
		v, ok := digitsValue(year, 2, 2)
		if !ok {
			return Expiry{}, ErrExpYear
		}
		y = 2000 + v
	case 4:
		v, ok := digitsValue(year, 4, 4)
		if !ok || v < 2000 {
			return Expiry{}, ErrExpYear
		}
		y = v
	default:
		return Expiry{}, ErrExpYear
	}
	e := Expiry{Month: m, Year: y}
	if y > now.Year()+maxYearsAhead {
		return Expiry{}, ErrExpYear
	}
	if e.expired(now) {
		return Expiry{}, ErrExpired
	}
	return e, nil
}

// digitsValue reads s, minLen..maxLen ASCII digits, as a number. It stands in
// for strconv, whose errors echo their input and which accepts signs.
func digitsValue(s string, minLen, maxLen int) (int, bool) {
	if len(s) < minLen || len(s) > maxLen {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// isZero reports whether e is the zero Expiry.
func (e Expiry) isZero() bool { return e == Expiry{} }

// expired reports whether the card has expired at now: now is after the last
// day of the expiry month, in now's location.
func (e Expiry) expired(now time.Time) bool {
	ny, nm := now.Year(), int(now.Month())
	return e.Year < ny || (e.Year == ny && e.Month < nm)
}

// MonthString returns the month as 2 digits, e.g. "02".
func (e Expiry) MonthString() string { return pad(e.Month, 2) }

// YearString returns the year as 4 digits, e.g. "2025".
func (e Expiry) YearString() string { return pad(e.Year, 4) }

// Year2 returns the last 2 digits of the year, e.g. "25".
func (e Expiry) Year2() string { return pad(e.Year%100, 2) }

// pad formats a non-negative v as exactly n digits, keeping the low ones.
func pad(v, n int) string {
	if v < 0 {
		v = -v
	}
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b)
}
