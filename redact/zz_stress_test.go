package redact

import (
	"bytes"
	"math/rand"
	"testing"
)

func TestZZStress(t *testing.T) {
	for seed := int64(2); seed < 5; seed++ {
		pieces := []string{"4", "1", "0", "5", "9", "3", " ", "-", "+", "%3", "%34", "%31", "%20", "%2D", `\u0034`, `\u0031`, `\u0020`, `\u003`, `\`, `\\`, `"`, `\"`, ":", "=", "cvv", "card_cvv", "Authorization", "sk_", "ABCDEFGHIJKLMN", "[", "]", "{", "}", ",", "\n", "\r", "４", "１", "٤", "\u3000", "%EF%BC%94", `\ud835\udfd2`, "a", "x", ".", "4111111111111111", "41111", "11111", "&", "tok_", "null", "%", "-4", "Proxy-Authorization", `\n`, "map[", "Basic ", "card[cvv]", "pk_", "ak_", "%EF%BC%91", "０", "\t", "e", "E", ".", "#", ";", "\u00a0", "–", "٣", "%E0%A5%AA", `\u0966`, "true", "_", "n", "\\\\"}
		rng := rand.New(rand.NewSource(seed))
		for _, mask := range []PANMask{MaskLast4, MaskBINLast4} {
			r := New(Rules{PANMask: mask})
			for iter := 0; iter < 300000; iter++ {
				var sb bytes.Buffer
				n := rng.Intn(40)
				for k := 0; k < n; k++ {
					sb.WriteString(pieces[rng.Intn(len(pieces))])
				}
				in := sb.Bytes()
				out := r.Scrub(in)
				if w := surviving(out); w != nil {
					t.Fatalf("survived %v\n in: %q\nout: %q", w, in, out)
				}
				if again := r.Scrub(out); !bytes.Equal(again, out) {
					t.Fatalf("not idempotent\n   in: %q\n once: %q\ntwice: %q", in, out, again)
				}
				if surviving(in) != nil && !r.ContainsPAN(in) {
					t.Fatalf("ContainsPAN false for %q", in)
				}
				if r.ContainsPAN(out) {
					t.Fatalf("ContainsPAN(out) true: %q -> %q", in, out)
				}
			}
		}
	}
}
