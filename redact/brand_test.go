package redact

import (
	"fmt"
	"testing"

	"github.com/chdproxy/chdproxy/card"
)

// TestIssuersMatchCard: redact's brand table (which may not import card)
// agrees with card's for every 6-digit prefix and every length 13–19.
func TestIssuersMatchCard(t *testing.T) {
	var prefixes []int
	for _, r := range issuers { // every edge of every range, and a sample in between
		prefixes = append(prefixes, r.lo-1, r.lo, r.hi, r.hi+1)
	}
	for p := 0; p < 1000000; p += 97 {
		prefixes = append(prefixes, p)
	}
	for _, p := range prefixes {
		for n := minPAN; n <= maxPAN; n++ {
			d := []byte(fmt.Sprintf("%06d", p))
			for len(d) < n-1 {
				d = append(d, '0')
			}
			d = append(d, luhnDigit(d))
			_, err := card.PANFromDigits(d)
			if got, want := issued(p, n), err == nil; got != want {
				t.Fatalf("prefix %06d, %d digits: issued %v, card says %v", p, n, got, want)
			}
		}
	}
}

// luhnDigit returns the check digit that completes d.
func luhnDigit(d []byte) byte {
	sum := 0
	for i := range d {
		v := int(d[len(d)-1-i] - '0')
		if i%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return byte('0' + (10-sum%10)%10)
}
