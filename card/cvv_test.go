package card

import (
	"errors"
	"testing"
)

type cvvCase struct {
	name  string
	in    string
	brand Brand
	err   error
}

var cvvCases = []cvvCase{
	{name: "3 digits for Visa are valid", in: "737", brand: Visa},
	{name: "a leading zero is kept", in: "012", brand: Mastercard},
	{name: "all zeros are kept", in: "000", brand: Visa},
	{name: "4 digits for Amex are valid", in: "7373", brand: Amex},
	{name: "3 digits with no brand are valid", in: "737", brand: ""},
	{name: "3 digits for Amex are invalid", in: "737", brand: Amex, err: ErrCVV},
	{name: "4 digits for Visa are invalid", in: "7373", brand: Visa, err: ErrCVV},
	{name: "2 digits are invalid", in: "73", brand: Visa, err: ErrCVV},
	{name: "an empty CVV is invalid", in: "", brand: Visa, err: ErrCVV},
	{name: "a letter is invalid", in: "73a", brand: Visa, err: ErrCVV},
	{name: "a leading space is invalid", in: " 73", brand: Visa, err: ErrCVV},
	{name: "a sign is invalid", in: "-73", brand: Visa, err: ErrCVV},
	{name: "Arabic-Indic digits are invalid", in: "٧٣٧", brand: Visa, err: ErrCVV},
	{name: "fullwidth digits are invalid", in: "７３７", brand: Visa, err: ErrCVV},
}

func TestParseCVV(t *testing.T) {
	for _, tc := range cvvCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCVV(tc.in, tc.brand)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if err != nil {
				if !c.IsZero() {
					t.Fatal("got a CVV with an error, want the zero CVV")
				}
				return
			}
			if got := string(c.Reveal()); got != tc.in {
				t.Fatalf("got %q, want %q", got, tc.in)
			}
		})
	}
}

func TestCVVFromBytes(t *testing.T) {
	b := []byte("012")
	c := CVVFromBytes(b)
	clear(b)
	if got := string(c.Reveal()); got != "012" {
		t.Fatalf("got %q, want %q", got, "012")
	}
	if !CVVFromBytes(nil).IsZero() {
		t.Fatal("empty bytes must give the zero CVV")
	}
	if (CVV{}).Reveal() != nil {
		t.Fatal("the zero CVV must reveal nil")
	}
	if !c.equal(CVVFromBytes([]byte("012"))) || c.equal(CVVFromBytes([]byte("013"))) {
		t.Fatal("equal must compare the digits")
	}
}
