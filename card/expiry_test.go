package card

import (
	"errors"
	"testing"
	"time"
)

// expiryNow is the clock of the expiry tables: mid-June 2025.
var expiryNow = time.Date(2025, time.June, 15, 12, 0, 0, 0, time.UTC)

type expiryCase struct {
	name        string
	month, year string
	want        Expiry
	err         error
}

// expiryCases are the ParseExpiry table (at expiryNow); they also seed
// FuzzParseExpiry.
var expiryCases = []expiryCase{
	{name: "the current month with a 4-digit year is valid", month: "06", year: "2025", want: Expiry{6, 2025}},
	{name: "a 1-digit month and a 2-digit year are valid", month: "6", year: "25", want: Expiry{6, 2025}},
	{name: "December next year is valid", month: "12", year: "2026", want: Expiry{12, 2026}},
	{name: "January is valid as 01", month: "01", year: "30", want: Expiry{1, 2030}},
	{name: "January is valid as 1", month: "1", year: "2030", want: Expiry{1, 2030}},
	{name: "20 years ahead is valid", month: "12", year: "2045", want: Expiry{12, 2045}},
	{name: "20 years ahead as 2 digits is valid", month: "12", year: "45", want: Expiry{12, 2045}},

	{name: "last month is expired", month: "05", year: "2025", err: ErrExpired},
	{name: "last year is expired", month: "12", year: "24", err: ErrExpired},
	{name: "a year long past is expired", month: "01", year: "2001", err: ErrExpired},
	{name: "21 years ahead is an invalid year", month: "01", year: "2046", err: ErrExpYear},
	{name: "21 years ahead as 2 digits is an invalid year", month: "01", year: "46", err: ErrExpYear},
	{name: "a year before 2000 is an invalid year", month: "01", year: "1999", err: ErrExpYear},
	{name: "a 3-digit year is invalid", month: "01", year: "225", err: ErrExpYear},
	{name: "a 5-digit year is invalid", month: "01", year: "20256", err: ErrExpYear},
	{name: "a 1-digit year is invalid", month: "01", year: "5", err: ErrExpYear},
	{name: "an empty year is invalid", month: "01", year: "", err: ErrExpYear},
	{name: "a negative year is invalid", month: "01", year: "-25", err: ErrExpYear},
	{name: "a signed year is invalid", month: "01", year: "+2030", err: ErrExpYear},
	{name: "a year with a space is invalid", month: "01", year: " 30", err: ErrExpYear},
	{name: "fullwidth year digits are invalid", month: "01", year: "３０", err: ErrExpYear},
	{name: "Arabic-Indic year digits are invalid", month: "01", year: "٣٠", err: ErrExpYear},

	{name: "month 0 is invalid", month: "0", year: "2030", err: ErrExpMonth},
	{name: "month 00 is invalid", month: "00", year: "2030", err: ErrExpMonth},
	{name: "month 13 is invalid", month: "13", year: "2030", err: ErrExpMonth},
	{name: "a 3-digit month is invalid", month: "012", year: "2030", err: ErrExpMonth},
	{name: "an empty month is invalid", month: "", year: "2030", err: ErrExpMonth},
	{name: "a signed month is invalid", month: "+1", year: "2030", err: ErrExpMonth},
	{name: "a negative month is invalid", month: "-1", year: "2030", err: ErrExpMonth},
	{name: "a month with a space is invalid", month: " 1", year: "2030", err: ErrExpMonth},
	{name: "a month name is invalid", month: "Jan", year: "2030", err: ErrExpMonth},
	{name: "a fullwidth month is invalid", month: "１", year: "2030", err: ErrExpMonth},
	{name: "a bad month is reported before a bad year", month: "13", year: "x", err: ErrExpMonth},
}

func TestParseExpiry(t *testing.T) {
	for _, tc := range expiryCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseExpiry(tc.month, tc.year, expiryNow)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestExpiryIsValidThroughTheLastDayOfItsMonth(t *testing.T) {
	lastMoment := time.Date(2025, time.June, 30, 23, 59, 59, 999999999, time.UTC)
	if _, err := ParseExpiry("06", "2025", lastMoment); err != nil {
		t.Fatalf("on the last day of the month: got %v, want valid", err)
	}
	nextMonth := lastMoment.Add(time.Nanosecond)
	if _, err := ParseExpiry("06", "2025", nextMonth); !errors.Is(err, ErrExpired) {
		t.Fatalf("on the first day of the next month: got %v, want %v", err, ErrExpired)
	}
	// Across a year boundary.
	newYear := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
	if _, err := ParseExpiry("12", "25", newYear); !errors.Is(err, ErrExpired) {
		t.Fatalf("12/25 on 2026-01-01: got %v, want %v", err, ErrExpired)
	}
	if _, err := ParseExpiry("1", "26", newYear); err != nil {
		t.Fatalf("01/26 on 2026-01-01: got %v, want valid", err)
	}
}

func TestExpiryStrings(t *testing.T) {
	e := Expiry{Month: 2, Year: 2025}
	for _, c := range []struct{ name, got, want string }{
		{"MonthString", e.MonthString(), "02"},
		{"YearString", e.YearString(), "2025"},
		{"Year2", e.Year2(), "25"},
		{"Year2 of 2030", Expiry{Month: 12, Year: 2030}.Year2(), "30"},
		{"MonthString of 12", Expiry{Month: 12, Year: 2030}.MonthString(), "12"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if !(Expiry{}).isZero() || e.isZero() {
		t.Error("isZero must hold for the zero Expiry only")
	}
	if !e.expired(expiryNow) || (Expiry{6, 2025}).expired(expiryNow) {
		t.Error("expired must agree with ParseExpiry")
	}
}
