package testcards

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"
)

// luhn reports whether the last digit of pan checks the others.
func luhn(pan string) bool {
	sum := 0
	for i := range len(pan) {
		d := int(pan[len(pan)-1-i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return len(pan) > 0 && sum%10 == 0
}

func TestEveryPANButBadLuhnPassesTheLuhnCheck(t *testing.T) {
	if len(PANs) != 6 {
		t.Fatalf("got %d PANs, want 6", len(PANs))
	}
	for _, pan := range PANs {
		if got, want := luhn(pan), pan != BadLuhn; got != want {
			t.Errorf("PAN ending %s: Luhn-valid %v, want %v", pan[len(pan)-4:], got, want)
		}
		if len(pan) < 15 || len(pan) > 16 {
			t.Errorf("PAN ending %s: %d digits, want 15 or 16", pan[len(pan)-4:], len(pan))
		}
	}
	if BadLuhn[:len(BadLuhn)-1] != Success[:len(Success)-1] {
		t.Error("BadLuhn is not Success with another check digit")
	}
}

func TestTheOtherTestDataIsWellFormed(t *testing.T) {
	for name, c := range map[string]struct {
		got  string
		want int // digits
	}{
		"CVV": {CVV, 3}, "CVVMastercard": {CVVMastercard, 3}, "CVVAmex": {CVVAmex, 4},
		"ExpMonth": {ExpMonth, 2}, "ExpYear": {ExpYear, 4}, "ExpYearShort": {ExpYearShort, 2},
	} {
		if len(c.got) != c.want || strings.Trim(c.got, "0123456789") != "" {
			t.Errorf("%s: got %q, want %d digits", name, c.got, c.want)
		}
	}
	if Holder == "" || !utf8.ValidString(Holder) {
		t.Errorf("Holder: got %q, want a name", Holder)
	}
	for _, d := range DPANs {
		_, err := base64.StdEncoding.DecodeString(d)
		if _, rawErr := base64.RawStdEncoding.DecodeString(d); err != nil && rawErr != nil {
			t.Errorf("a DPAN is not base64: %v", err)
		}
		if len(d) < 80 {
			t.Errorf("a DPAN of %d characters, want at least 80 (leak finders look for a slice of it)", len(d))
		}
	}
	if BasicAuth != "Basic dGVzdDpxd2VydHk=" {
		t.Errorf("BasicAuth: got %q, want the documentation's test:qwerty", BasicAuth)
	}
}

func TestSpellings(t *testing.T) {
	s := Spellings(Success)
	for name, want := range map[string]string{
		"raw":               Success,
		"grouped (spaces)":  Success[:4] + " " + Success[4:8] + " " + Success[8:12] + " " + Success[12:],
		"grouped (dashes)":  Success[:4] + "-" + Success[4:8] + "-" + Success[8:12] + "-" + Success[12:],
		"fullwidth digits":  strings.Map(func(r rune) rune { return r - '0' + '０' }, Success),
		"Arabic-Indic form": strings.Map(func(r rune) rune { return r - '0' + '٠' }, Success),
	} {
		if s[name] != want {
			t.Errorf("%s: got %q, want %q", name, s[name], want)
		}
	}
	if got := s["JSON \\u-escaped"]; !strings.HasPrefix(got, `\u0034\u0030`) || len(got) != 6*len(Success) {
		t.Errorf("JSON \\u-escaped: got %q", got)
	}
	if got := s["percent-encoded"]; !strings.HasPrefix(got, "%34%30") || len(got) != 3*len(Success) {
		t.Errorf("percent-encoded: got %q", got)
	}
	if got := s["HTML entities"]; !strings.HasPrefix(got, "&#52;&#48;") {
		t.Errorf("HTML entities: got %q", got)
	}
}
