package card

import (
	"errors"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

// luhnPAN returns a Luhn-valid PAN of n digits: prefix, zeros, check digit.
func luhnPAN(prefix string, n int) string {
	body := prefix + strings.Repeat("0", n-1-len(prefix))
	for c := byte('0'); c <= '9'; c++ {
		if s := body + string(c); luhn([]byte(s)) {
			return s
		}
	}
	panic("unreachable")
}

type panCase struct {
	name  string
	in    string
	brand Brand
	bin   string
	last4 string
	err   error
}

// panCases are the ParsePAN table; they also seed FuzzParsePAN.
var panCases = []panCase{
	// Each brand, with the test PANs of the schemes and gateways.
	{name: "a Visa test card is accepted", in: testcards.Success, brand: Visa, bin: "401200", last4: "3010"},
	{name: "another Visa test card is accepted", in: "4003830171874018", brand: Visa, bin: "400383", last4: "4018"},
	{name: "a 13-digit Visa has a 6-digit BIN", in: "4222222222222", brand: Visa, bin: "422222", last4: "2222"},
	{name: "a 19-digit Visa is accepted", in: "4111111111111111110", brand: Visa, bin: "411111", last4: "1110"},
	{name: "a Mastercard 5-series card is accepted", in: "5555555555554444", brand: Mastercard, bin: "555555", last4: "4444"},
	{name: "a Mastercard 2-series card is accepted", in: "2223003122003222", brand: Mastercard, bin: "222300", last4: "3222"},
	{name: "the lowest Mastercard 2-series prefix 2221 is Mastercard", in: luhnPAN("2221", 16), brand: Mastercard},
	{name: "the highest Mastercard 2-series prefix 2720 is Mastercard", in: luhnPAN("27209", 16), brand: Mastercard},
	{name: "Mastercard prefix 51 is Mastercard", in: luhnPAN("51", 16), brand: Mastercard},
	{name: "an Amex card is accepted with a 6-digit BIN", in: "378282246310005", brand: Amex, bin: "378282", last4: "0005"},
	{name: "Amex prefix 34 is Amex", in: luhnPAN("34", 15), brand: Amex},
	{name: "a Discover 6011 card is accepted", in: "6011111111111117", brand: Discover, bin: "601111", last4: "1117"},
	{name: "a Discover 644 card is accepted", in: "6445644564456445", brand: Discover},
	{name: "Discover prefix 649 with 19 digits is Discover", in: luhnPAN("649", 19), brand: Discover},
	{name: "Discover prefix 65 is Discover", in: luhnPAN("65", 16), brand: Discover},
	{name: "the co-branded 622126 is Discover, not UnionPay", in: luhnPAN("622126", 16), brand: Discover},
	{name: "the co-branded 622925 is Discover, not UnionPay", in: luhnPAN("622925", 16), brand: Discover},
	{name: "622125, just below the co-branded range, is UnionPay", in: luhnPAN("622125", 16), brand: UnionPay},
	{name: "622926, just above the co-branded range, is UnionPay", in: luhnPAN("622926", 16), brand: UnionPay},
	{name: "a JCB card is accepted", in: "3530111333300000", brand: JCB, bin: "353011", last4: "0000"},
	{name: "JCB prefix 3528 with 19 digits is JCB", in: luhnPAN("3528", 19), brand: JCB},
	{name: "JCB prefix 3589 is JCB", in: luhnPAN("3589", 16), brand: JCB},
	{name: "a 14-digit Diners card is accepted", in: "36227206271667", brand: Diners, bin: "362272", last4: "1667"},
	{name: "Diners prefix 300 is Diners", in: luhnPAN("300", 14), brand: Diners},
	{name: "Diners prefix 305 with 19 digits is Diners", in: luhnPAN("305", 19), brand: Diners},
	{name: "Diners prefix 38 is Diners", in: luhnPAN("38", 16), brand: Diners},
	{name: "Diners prefix 39 is Diners", in: luhnPAN("39", 14), brand: Diners},
	{name: "a UnionPay card is accepted", in: "6200000000000005", brand: UnionPay, bin: "620000", last4: "0005"},
	{name: "a Maestro 67 card is accepted", in: "6759649826438453", brand: Maestro, bin: "675964", last4: "8453"},
	{name: "a 12-digit Maestro 50 card is accepted", in: luhnPAN("50", 12), brand: Maestro, bin: "500000"},
	{name: "Maestro prefix 56 with 19 digits is Maestro", in: luhnPAN("56", 19), brand: Maestro},
	{name: "Maestro prefix 58 is Maestro", in: luhnPAN("58", 16), brand: Maestro},
	{name: "a 6 no other brand claims (63) is Maestro", in: luhnPAN("63", 16), brand: Maestro},
	{name: "a 6 no other brand claims (6012) is Maestro", in: luhnPAN("6012", 16), brand: Maestro},
	{name: "a 6 no other brand claims (643) is Maestro", in: luhnPAN("643", 16), brand: Maestro},
	{name: "a Mir card is accepted", in: "2200000000000004", brand: Mir, bin: "220000", last4: "0004"},
	{name: "Mir prefix 2204 with 19 digits is Mir", in: luhnPAN("2204", 19), brand: Mir},

	// Separators.
	{name: "single spaces between groups are dropped", in: "4012 0000 0000 3010", brand: Visa, bin: "401200", last4: "3010"},
	{name: "single dashes between groups are dropped", in: "4012-0000-0000-3010", brand: Visa, bin: "401200", last4: "3010"},
	{name: "Amex 4-6-5 grouping is accepted", in: "3782 822463 10005", brand: Amex, last4: "0005"},
	{name: "a space between every digit is accepted", in: "4 0 1 2 0 0 0 0 0 0 0 0 3 0 1 0", brand: Visa},
	{name: "an empty number is a format error", in: "", err: ErrNumberFormat},
	{name: "a lone space is a format error", in: " ", err: ErrNumberFormat},
	{name: "a double space is a format error", in: "4012  0000 0000 3010", err: ErrNumberFormat},
	{name: "a double dash is a format error", in: "4012--0000-0000-3010", err: ErrNumberFormat},
	{name: "a leading space is a format error", in: " " + testcards.Success, err: ErrNumberFormat},
	{name: "a trailing space is a format error", in: testcards.Success + " ", err: ErrNumberFormat},
	{name: "a leading dash (a negative number) is a format error", in: "-" + testcards.Success, err: ErrNumberFormat},
	{name: "a trailing dash is a format error", in: testcards.Success + "-", err: ErrNumberFormat},
	{name: "mixing spaces and dashes is a format error", in: "4012-0000 0000-3010", err: ErrNumberFormat},
	{name: "a space next to a dash is a format error", in: "4012 -0000-0000-3010", err: ErrNumberFormat},
	{name: "a tab is a format error", in: "4012\t0000\t0000\t3010", err: ErrNumberFormat},
	{name: "a trailing newline is a format error", in: testcards.Success + "\n", err: ErrNumberFormat},
	{name: "dots are a format error", in: "4012.0000.0000.3010", err: ErrNumberFormat},
	{name: "a letter O for a zero is a format error", in: "401200000000301O", err: ErrNumberFormat},
	{name: "a plus sign is a format error", in: "+" + testcards.Success, err: ErrNumberFormat},
	{name: "a number in exponent form is a format error", in: "4.01200000000301e15", err: ErrNumberFormat},
	{name: "a hex literal is a format error", in: "0x" + testcards.Success, err: ErrNumberFormat},
	{name: "a NUL byte is a format error", in: testcards.Success + "\x00", err: ErrNumberFormat},
	{name: "fullwidth digits are a format error", in: "４０１２０００００００００３０１０", err: ErrNumberFormat},
	{name: "Arabic-Indic digits are a format error", in: "٤٠١٢٠٠٠٠٠٠٠٠٣٠١٠", err: ErrNumberFormat},
	{name: "one fullwidth digit among ASCII ones is a format error", in: "401200000000301０", err: ErrNumberFormat},
	{name: "invalid UTF-8 is a format error", in: "4012\xff0000", err: ErrNumberFormat},

	// Lengths.
	{name: "11 digits is a length error", in: "40120000003", err: ErrNumberLength},
	{name: "20 digits is a length error", in: luhnPAN("4", 20), err: ErrNumberLength},
	{name: "40 digits is a length error", in: strings.Repeat(testcards.Success, 2) + "40120000", err: ErrNumberLength},
	{name: "a 14-digit Visa is a length error", in: luhnPAN("4", 14), err: ErrNumberLength},
	{name: "a 15-digit Visa is a length error", in: luhnPAN("4", 15), err: ErrNumberLength},
	{name: "a 12-digit Visa is a length error", in: luhnPAN("4", 12), err: ErrNumberLength},
	{name: "a 16-digit Amex is a length error", in: luhnPAN("37", 16), err: ErrNumberLength},
	{name: "a 14-digit Amex is a length error", in: "37828224631000", err: ErrNumberLength},
	{name: "a 15-digit Mastercard is a length error", in: luhnPAN("51", 15), err: ErrNumberLength},
	{name: "a 19-digit Mastercard is a length error", in: luhnPAN("2221", 19), err: ErrNumberLength},
	{name: "a 15-digit Mir is a length error", in: luhnPAN("2200", 15), err: ErrNumberLength},
	{name: "a 15-digit Discover 6011 is a length error, not Maestro", in: luhnPAN("6011", 15), err: ErrNumberLength},
	{name: "a 15-digit UnionPay is a length error, not Maestro", in: luhnPAN("62", 15), err: ErrNumberLength},
	{name: "a 13-digit Diners is a length error", in: luhnPAN("36", 13), err: ErrNumberLength},
	{name: "a 15-digit JCB is a length error", in: luhnPAN("3530", 15), err: ErrNumberLength},

	// Prefixes no supported brand issues.
	{name: "prefix 1 is an unknown brand", in: luhnPAN("1", 16), err: ErrBrandUnknown},
	{name: "prefix 0 is an unknown brand", in: luhnPAN("0", 16), err: ErrBrandUnknown},
	{name: "prefix 7 is an unknown brand", in: luhnPAN("7", 16), err: ErrBrandUnknown},
	{name: "prefix 8 is an unknown brand", in: luhnPAN("8", 16), err: ErrBrandUnknown},
	{name: "prefix 9 is an unknown brand", in: luhnPAN("9", 16), err: ErrBrandUnknown},
	{name: "prefix 2205, just above Mir, is an unknown brand", in: luhnPAN("2205", 16), err: ErrBrandUnknown},
	{name: "prefix 2220, just below Mastercard, is an unknown brand", in: luhnPAN("2220", 16), err: ErrBrandUnknown},
	{name: "prefix 2721, just above Mastercard, is an unknown brand", in: luhnPAN("2721", 16), err: ErrBrandUnknown},
	{name: "prefix 3527, just below JCB, is an unknown brand", in: luhnPAN("3527", 16), err: ErrBrandUnknown},
	{name: "prefix 3590, just above JCB, is an unknown brand", in: luhnPAN("3590", 16), err: ErrBrandUnknown},
	{name: "prefix 306, just above Diners 300-305, is an unknown brand", in: luhnPAN("306", 16), err: ErrBrandUnknown},
	{name: "prefix 59 is an unknown brand", in: luhnPAN("59", 16), err: ErrBrandUnknown},

	// Checksums.
	{name: "a wrong Visa check digit is a checksum error", in: "4012000000003011", err: ErrNumberChecksum},
	{name: "a wrong Mastercard check digit is a checksum error", in: "5555555555554445", err: ErrNumberChecksum},
	{name: "a wrong Amex check digit is a checksum error", in: "378282246310006", err: ErrNumberChecksum},
	{name: "two swapped digits are a checksum error", in: "4012000000000310", err: ErrNumberChecksum},
}

func TestParsePAN(t *testing.T) {
	for _, tc := range panCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePAN(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got error %v, want %v", err, tc.err)
				}
				if !p.IsZero() {
					t.Fatalf("got a PAN with an error, want the zero PAN")
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			want := strings.NewReplacer(" ", "", "-", "").Replace(tc.in)
			if got := string(p.Reveal()); got != want {
				t.Errorf("Reveal: got %q, want %q", got, want)
			}
			if got := p.Brand(); got != tc.brand {
				t.Errorf("Brand: got %q, want %q", got, tc.brand)
			}
			if got := p.numDigits(); got != len(want) {
				t.Errorf("numDigits: got %d, want %d", got, len(want))
			}
			if tc.bin != "" {
				if got := p.BIN(); got != tc.bin {
					t.Errorf("BIN: got %q, want %q", got, tc.bin)
				}
			}
			if got := p.BIN(); got != want[:6] {
				t.Errorf("BIN: got %q, want the first 6 digits %q", got, want[:6])
			}
			if tc.last4 != "" {
				if got := p.Last4(); got != tc.last4 {
					t.Errorf("Last4: got %q, want %q", got, tc.last4)
				}
			}
		})
	}
}

func TestErrorsCarryStableCodes(t *testing.T) {
	cases := []struct {
		err  *Error
		code string
	}{
		{ErrNumberFormat, "invalid_card_number"},
		{ErrNumberLength, "invalid_card_length"},
		{ErrNumberChecksum, "invalid_card_checksum"},
		{ErrBrandUnknown, "unsupported_card_brand"},
		{ErrExpMonth, "invalid_exp_month"},
		{ErrExpYear, "invalid_exp_year"},
		{ErrExpired, "card_expired"},
		{ErrCVV, "invalid_cvv"},
		{ErrHolder, "invalid_card_holder"},
		{ErrDPAN, "invalid_dpan"},
		{ErrNetwork, "invalid_network"},
	}
	for _, tc := range cases {
		if got := tc.err.Code(); got != tc.code {
			t.Errorf("got code %q, want %q", got, tc.code)
		}
		if strings.ContainsAny(tc.err.Error(), "0123456789") {
			t.Errorf("message %q of %s has digits", tc.err.Error(), tc.code)
		}
		var e *Error
		if !errors.As(error(tc.err), &e) || e.Code() != tc.code {
			t.Errorf("errors.As lost the code %q", tc.code)
		}
	}
}

func TestPANFromDigits(t *testing.T) {
	cases := []struct {
		name string
		in   string
		err  error
	}{
		{"bare digits are accepted", testcards.Success, nil},
		{"an Amex is accepted", "378282246310005", nil},
		{"spaces are refused, unlike ParsePAN", "4012 0000 0000 3010", ErrNumberFormat},
		{"dashes are refused", "4012-0000-0000-3010", ErrNumberFormat},
		{"empty input is refused", "", ErrNumberFormat},
		{"a letter is refused", "401200000000301a", ErrNumberFormat},
		{"a short number is refused", "401200", ErrNumberLength},
		{"a bad check digit is refused", "4012000000003011", ErrNumberChecksum},
		{"an unknown brand is refused", luhnPAN("9", 16), ErrBrandUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			p, err := PANFromDigits(b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			clear(b) // the caller wipes its buffer; the PAN must not change
			if got := string(p.Reveal()); got != tc.in {
				t.Fatalf("got %q, want %q", got, tc.in)
			}
		})
	}
}

func TestRevealReturnsACopy(t *testing.T) {
	p, err := ParsePAN(testcards.Success)
	if err != nil {
		t.Fatal(err)
	}
	b := p.Reveal()
	clear(b)
	if got := string(p.Reveal()); got != testcards.Success {
		t.Fatalf("got %q after wiping a revealed copy, want the PAN unchanged", got)
	}
}

func TestZeroPAN(t *testing.T) {
	var p PAN
	if !p.IsZero() || p.Reveal() != nil || p.Brand() != "" || p.BIN() != "" ||
		p.Last4() != "" || p.numDigits() != 0 || mask(p, true) != "" {
		t.Fatal("the zero PAN must report nothing")
	}
	if p.String() != "[PAN]" {
		t.Fatalf("got %q, want %q", p.String(), "[PAN]")
	}
}

func TestPANEqual(t *testing.T) {
	a, _ := ParsePAN(testcards.Success)
	b, _ := ParsePAN("4012 0000 0000 3010")
	c, _ := ParsePAN("4003830171874018")
	if !a.equal(b) {
		t.Error("the same digits with and without spaces must be equal")
	}
	if a.equal(c) || a.equal(PAN{}) || !(PAN{}).equal(PAN{}) {
		t.Error("equal must tell different PANs and the zero PAN apart")
	}
}

func TestMask(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		keepBIN bool
		want    string
	}{
		{"a 16-digit PAN keeps first 6 and last 4", testcards.Success, true, "401200******3010"},
		{"a 16-digit PAN keeps only last 4", testcards.Success, false, "************3010"},
		{"a 15-digit Amex keeps first 6 and last 4", "378282246310005", true, "378282*****0005"},
		{"a 14-digit Diners keeps only last 4", "36227206271667", false, "**********1667"},
		{"a 12-digit Maestro keeps first 6 and last 4", luhnPAN("50", 12), true, "500000**000" + luhnPAN("50", 12)[11:]},
		{"a 19-digit Visa keeps first 6, not 8", "4111111111111111110", true, "411111*********1110"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePAN(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := mask(p, tc.keepBIN); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLuhn(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want bool
	}{
		{"a valid Visa passes", testcards.Success, true},
		{"a valid Amex passes", "378282246310005", true},
		{"a valid Diners passes", "36227206271667", true},
		{"a single zero passes", "0", true},
		{"a wrong check digit fails", "4012000000003011", false},
		{"empty input fails", "", false},
		{"a space fails", "4012 0000 0000 3010", false},
		{"a letter fails", "401200000000301a", false},
		{"a fullwidth digit fails", "401200000000301０", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := luhn([]byte(tc.in)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func BenchmarkParsePAN(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePAN("4012 0000 0000 3010"); err != nil {
			b.Fatal(err)
		}
	}
}
