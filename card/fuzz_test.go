package card

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// allVerbs prints v with every verb the leak test uses.
func allVerbs(v any) string {
	return fmt.Sprintf("%v %+v %#v %s %q %x %X %d", v, v, v, v, v, v, v, v)
}

// checkErr asserts err is one of this package's sentinels and carries no
// digit at all, so it cannot echo any digit-run of the input.
func checkErr(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error of type %T, want *card.Error", err)
	}
	if strings.ContainsAny(err.Error()+e.Code(), "0123456789") {
		t.Fatalf("error %q (%s) has digits", err.Error(), e.Code())
	}
}

// checkPrints asserts every printed form of v is exactly its placeholder.
func checkPrints(t *testing.T, v any, placeholder string) {
	t.Helper()
	p := placeholder
	want := strings.Join([]string{p, p, p, p, `"` + p + `"`, p, p, p}, " ")
	if got := allVerbs(v); got != want {
		t.Fatalf("printed as %q, want %q", got, want)
	}
	if b, err := json.Marshal(v); err != nil || string(b) != `"`+p+`"` {
		t.Fatalf("JSON: got %s (%v), want %q", b, err, `"`+p+`"`)
	}
}

var (
	spaceGrouped = regexp.MustCompile(`^[0-9]+( [0-9]+)*$`)
	dashGrouped  = regexp.MustCompile(`^[0-9]+(-[0-9]+)*$`)
)

func FuzzParsePAN(f *testing.F) {
	for _, tc := range panCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePAN(s)
		checkPrints(t, p, "[PAN]")
		if err != nil {
			checkErr(t, err)
			if !p.IsZero() {
				t.Fatal("got a PAN with an error")
			}
			// A well-formed number whose digits are a valid PAN must parse.
			if spaceGrouped.MatchString(s) || dashGrouped.MatchString(s) {
				digits := strings.NewReplacer(" ", "", "-", "").Replace(s)
				if _, err2 := PANFromDigits([]byte(digits)); err2 == nil {
					t.Fatalf("ParsePAN refused (%v) what PANFromDigits accepts", err)
				} else if !errors.Is(err, err2) {
					t.Fatalf("ParsePAN said %v, PANFromDigits %v", err, err2)
				}
			}
			return
		}
		if !spaceGrouped.MatchString(s) && !dashGrouped.MatchString(s) {
			t.Fatal("accepted input that is not digit groups with one kind of single separator")
		}
		d := p.Reveal()
		if len(d) < 12 || len(d) > 19 {
			t.Fatalf("got %d digits, want 12..19", len(d))
		}
		for _, c := range d {
			if c < '0' || c > '9' {
				t.Fatal("got a non-ASCII-digit byte")
			}
		}
		if !luhn(d) {
			t.Fatal("got a PAN that fails Luhn")
		}
		if string(d) != strings.NewReplacer(" ", "", "-", "").Replace(s) {
			t.Fatal("digits differ from the input without separators")
		}
		if p.Brand() == "" {
			t.Fatal("got a PAN with no brand")
		}
		q, err := PANFromDigits(d)
		if err != nil || !q.equal(p) || q.Brand() != p.Brand() {
			t.Fatalf("PANFromDigits disagrees: %v", err)
		}
		if !strings.HasPrefix(string(d), p.BIN()) || !strings.HasSuffix(string(d), p.Last4()) {
			t.Fatal("BIN or Last4 is not part of the PAN")
		}
		m := mask(p, true)
		if len(m) != len(d) || m[:6] != p.BIN() || m[len(m)-4:] != p.Last4() ||
			strings.Trim(m[6:len(m)-4], "*") != "" {
			t.Fatal("mask shows more than first 6 and last 4")
		}
	})
}

func FuzzParseExpiry(f *testing.F) {
	for _, tc := range expiryCases {
		f.Add(tc.month, tc.year, expiryNow.Unix())
	}
	f.Add("12", "2099", int64(0))
	f.Add("1", "00", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	f.Fuzz(func(t *testing.T, month, year string, unix int64) {
		now := time.Unix(unix, 0).UTC()
		e, err := ParseExpiry(month, year, now)
		if err != nil {
			checkErr(t, err)
			if !e.isZero() {
				t.Fatal("got an Expiry with an error")
			}
			return
		}
		if e.Month < 1 || e.Month > 12 {
			t.Fatalf("got month %d", e.Month)
		}
		if e.Year < 2000 || e.Year > now.Year()+20 {
			t.Fatalf("got year %d at %d", e.Year, now.Year())
		}
		if e.expired(now) {
			t.Fatal("accepted an expired card")
		}
		again, err := ParseExpiry(e.MonthString(), e.YearString(), now)
		if err != nil || again != e {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, e)
		}
		if e.Year < 2100 {
			again, err = ParseExpiry(e.MonthString(), e.Year2(), now)
			if err != nil || again != e {
				t.Fatalf("2-digit round trip: got %+v, %v; want %+v", again, err, e)
			}
		}
	})
}

func FuzzParseDPAN(f *testing.F) {
	for _, tc := range dpanCases {
		if len(tc.in) <= 1024 { // keep the seed corpus small
			f.Add(tc.in)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDPAN(s)
		checkPrints(t, d, "[DPAN]")
		if err != nil {
			checkErr(t, err)
			if !d.IsZero() {
				t.Fatal("got a DPAN with an error")
			}
			return
		}
		if string(d.Reveal()) != s {
			t.Fatal("Reveal differs from the input")
		}
		n := -1
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				n = len(b)
				break
			}
		}
		if n < 16 || n > 16<<10 {
			t.Fatalf("accepted a payload of %d decoded bytes", n)
		}
	})
}

func FuzzParseHolder(f *testing.F) {
	for _, tc := range holderCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHolder(s)
		checkPrints(t, h, "[HOLDER]")
		if err != nil {
			checkErr(t, err)
			return
		}
		name := h.Reveal()
		if name != strings.TrimSpace(s) || !utf8.ValidString(name) {
			t.Fatal("the name is not the trimmed input")
		}
		if n := utf8.RuneCountInString(name); n < 1 || n > 64 {
			t.Fatalf("got %d runes", n)
		}
		for _, r := range name {
			if unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %U", r)
			}
		}
	})
}

func FuzzParseCVV(f *testing.F) {
	for _, tc := range cvvCases {
		f.Add(tc.in, tc.brand == Amex)
	}
	f.Fuzz(func(t *testing.T, s string, amex bool) {
		b := Visa
		if amex {
			b = Amex
		}
		c, err := ParseCVV(s, b)
		checkPrints(t, c, "[CVV]")
		if err != nil {
			checkErr(t, err)
			return
		}
		if got := string(c.Reveal()); got != s || (len(s) != 3 && !amex) || (len(s) != 4 && amex) {
			t.Fatal("accepted a CVV of the wrong shape")
		}
	})
}
