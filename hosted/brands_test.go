package hosted

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/card"
)

// withCheckDigit appends the Luhn check digit to body.
func withCheckDigit(body string) string {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + strconv.Itoa((10-sum%10)%10)
}

// lookup is the frame's brandOf for a whole number: the first range that matches.
func lookup(num string) *brandRange {
	for i := range brandTable {
		r := &brandTable[i]
		if n := len(r.Lo); n <= len(num) && num[:n] >= r.Lo && num[:n] <= r.Hi {
			return r
		}
	}
	return nil
}

// number is a Luhn-valid number of n digits starting with prefix.
func number(prefix string, n int) string {
	return withCheckDigit(prefix + strings.Repeat("0", n-1-len(prefix)))
}

// neighbours are the prefixes just outside and at the edges of every range.
func neighbours() []string {
	var out []string
	for _, r := range brandTable {
		lo, _ := strconv.Atoi(r.Lo)
		hi, _ := strconv.Atoi(r.Hi)
		w := len(r.Lo)
		for _, v := range []int{lo - 1, lo, hi, hi + 1} {
			if s := strconv.Itoa(v); v >= 0 && len(s) <= w {
				out = append(out, strings.Repeat("0", w-len(s))+s)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		out = append(out, strconv.Itoa(100000+rng.IntN(900000)))
	}
	return out
}

func TestBrandTableMatchesCardPackage(t *testing.T) {
	for _, prefix := range neighbours() {
		for n := 12; n <= 19; n++ {
			num := number(prefix, n)
			pan, err := card.ParsePAN(num)
			r := lookup(num)
			switch {
			case r == nil:
				if !errors.Is(err, card.ErrBrandUnknown) {
					t.Fatalf("prefix %s, %d digits: the frame knows no brand, card says %v", prefix, n, err)
				}
			case slices.Contains(r.Lengths, n):
				if err != nil || pan.Brand() != r.Brand {
					t.Fatalf("prefix %s, %d digits: the frame says valid %s, card says %v %q", prefix, n, r.Brand, err, pan.Brand())
				}
			default:
				if !errors.Is(err, card.ErrNumberLength) {
					t.Fatalf("prefix %s, %d digits: the frame says %s has no such length, card says %v", prefix, n, r.Brand, err)
				}
			}
		}
	}
}

func TestBrandTableCVVLengthsMatchCardPackage(t *testing.T) {
	for _, r := range brandTable {
		_, err3 := card.ParseCVV("123", r.Brand)
		_, err4 := card.ParseCVV("1234", r.Brand)
		if got := map[bool]int{true: 4, false: 3}[err4 == nil]; got != r.CVV || (err3 == nil) == (err4 == nil) {
			t.Errorf("%s: the frame wants a %d-digit CVV, card accepts 3: %v, 4: %v", r.Brand, r.CVV, err3 == nil, err4 == nil)
		}
		sum := 0
		for _, g := range r.Gaps {
			sum += g
		}
		if sum < r.Lengths[0] {
			t.Errorf("%s: groups %v cover %d digits, want at least %d", r.Brand, r.Gaps, sum, r.Lengths[0])
		}
	}
}

func TestFrameScriptStartsWithTheBrandTable(t *testing.T) {
	if !strings.HasPrefix(string(frameJS), "const CHD_BRANDS = [{\"lo\":\"4\"") {
		t.Fatalf("frame.js starts with %.60q, want the brand table", frameJS)
	}
}
