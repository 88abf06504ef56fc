package card

import (
	"errors"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

func TestParseNetwork(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Network
		err  error
	}{
		{"canonical Visa is accepted", "Visa", NetworkVisa, nil},
		{"Google Pay's upper-case VISA is kept as sent", "VISA", "VISA", nil},
		{"lower-case visa is kept as sent", "visa", "visa", nil},
		{"Apple Pay's MasterCard is kept as sent", "MasterCard", "MasterCard", nil},
		{"Apple Pay's AmEx is kept as sent", "AmEx", "AmEx", nil},
		{"Google Pay's AMEX is kept as sent", "AMEX", "AMEX", nil},
		{"DISCOVER is kept as sent", "DISCOVER", "DISCOVER", nil},
		{"jcb is kept as sent", "jcb", "jcb", nil},
		{"INTERAC is kept as sent", "INTERAC", "INTERAC", nil},
		{"maestro is kept as sent", "maestro", "maestro", nil},
		{"MIR is kept as sent", "MIR", "MIR", nil},
		{"unionpay is kept as sent", "unionpay", "unionpay", nil},
		{"Apple Pay's ChinaUnionPay is kept as sent", "ChinaUnionPay", "ChinaUnionPay", nil},
		{"electron is kept as sent", "electron", "electron", nil},
		{"ELO is kept as sent", "ELO", "ELO", nil},

		{"an empty network is invalid", "", "", ErrNetwork},
		{"a leading space is invalid", " Visa", "", ErrNetwork},
		{"a trailing space is invalid", "Visa ", "", ErrNetwork},
		{"a NUL suffix is invalid", "Visa\x00", "", ErrNetwork},
		{"an unknown network is invalid", "Diners", "", ErrNetwork},
		{"a long spelling is invalid", "American Express", "", ErrNetwork},
		{"fullwidth letters are invalid", "ＶＩＳＡ", "", ErrNetwork},
		{"a long s that folds to s is invalid", "viſa", "", ErrNetwork},
		{"a Cyrillic lookalike is invalid", "mіr", "", ErrNetwork},
		{"a PAN is invalid", testcards.Success, "", ErrNetwork},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetwork(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
