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
		{"Google Pay's upper-case VISA is accepted", "VISA", NetworkVisa, nil},
		{"lower-case visa is accepted", "visa", NetworkVisa, nil},
		{"Apple Pay's MasterCard gives Mastercard", "MasterCard", NetworkMastercard, nil},
		{"Apple Pay's AmEx gives Amex", "AmEx", NetworkAmex, nil},
		{"Google Pay's AMEX gives Amex", "AMEX", NetworkAmex, nil},
		{"DISCOVER gives Discover", "DISCOVER", NetworkDiscover, nil},
		{"jcb gives JCB", "jcb", NetworkJCB, nil},
		{"INTERAC gives Interac", "INTERAC", NetworkInterac, nil},
		{"maestro gives Maestro", "maestro", NetworkMaestro, nil},
		{"MIR gives Mir", "MIR", NetworkMir, nil},
		{"unionpay gives UnionPay", "unionpay", NetworkUnionPay, nil},
		{"Apple Pay's ChinaUnionPay gives UnionPay", "ChinaUnionPay", NetworkUnionPay, nil},
		{"electron gives Electron", "electron", NetworkElectron, nil},
		{"ELO gives Elo", "ELO", NetworkElo, nil},

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
