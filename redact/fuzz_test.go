package redact

import (
	"bytes"
	"math/rand"
	"slices"
	"testing"
)

// soup is the alphabet of checkScrub's random inputs: the pieces of the
// grammar (digits, separators, escapes, field names, quotes, brackets)
// whose interactions are where a scanner goes wrong.
var soup = []string{
	"4", "1", "0", "5", "9", "3", " ", "-", "+", "%", "%3", "%34", "%31", "%20", "%2D",
	`\u0034`, `\u0031`, `\u0020`, `\u003`, `\`, `\\`, `"`, `\"`, `\n`, ":", "=", "[", "]", "{", "}",
	",", "&", "#", ";", ".", "_", "\n", "\r", "\t", "a", "e", "n", "x",
	"cvv", "card_cvv", "card[cvv]", "Authorization", "Proxy-Authorization", "map[", "Basic ",
	"sk_", "pk_", "ak_", "tok_", "ABCDEFGHIJKLMN", "null", "true",
	"４", "１", "０", "٤", "٣", "\u3000", "\u00a0", "–", "%EF%BC%94", "%EF%BC%91", "%E0%A5%AA",
	`\ud835\udfd2`, `\u0966`, "4111111111111111", "41111", "11111", "-4",
}

// TestScrubPropertiesOnRandomInput checks the FuzzScrub properties on
// deterministic random sequences of grammar pieces.
func TestScrubPropertiesOnRandomInput(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < n; iter++ {
		var in []byte
		for k := rng.Intn(40); k > 0; k-- {
			in = append(in, soup[rng.Intn(len(soup))]...)
		}
		checkScrub(t, in, iter%2 == 1)
	}
}

// FuzzScrub checks, for any input and both mask policies:
//
//	(a) no Luhn-valid window of 13–19 digits, contiguous or separated by
//	    single spaces or dashes, ASCII or Unicode digits, raw or with JSON
//	    and percent escapes decoded, survives (checked by the independent
//	    reference in check_test.go);
//	(b) Scrub(Scrub(x)) == Scrub(x);
//	(c) Scrub never panics and never changes its input;
//
// and that containsPAN sees whatever the reference sees in the input.
func FuzzScrub(f *testing.F) {
	seeds := []string{
		"",
		visa16,
		"4111 1111 1111 1111",
		"4111-1111-1111-1111",
		"9" + visa16 + "9",
		amex15 + " " + visa13,
		visa19,
		percentEncoded(visa16),
		jsonEscaped(visa16),
		"4111%201111%201111%201111",
		"4111+1111+1111+1111",
		toScript(visa16, '０'),
		toScript(visa16, '٠'),
		"%EF%BC%94%EF%BC%91" + "11111111111111",
		`\ud835\udfd2` + "111111111111111",
		`{"level":"info","msg":"charge ` + visa16 + `","card_cvv":"737","time":"2024-05-01T12:34:56Z"}`,
		`{"msg":"body={\"card_cvv\":\"737\",\"pan\":\"` + visa16 + `\"}"}`,
		`card_cvv=737&pan=` + visa16,
		"Authorization: Basic bWVyY2hhbnQ6c2VjcmV0\r\nHost: x",
		`map[Authorization:[Basic YWJj]]`,
		"sk_Z3kq9XbW7TmP2vLr8NcY4h tok_Z3kq9XbW7TmP2vLr8NcY4h",
		`{"ts":1715002345678,"order_id":"ORD-2024-0501-77812","phone":"+442079460612"}`,
		"550e8400-e29b-41d4-a716-446655440000",
		`"cvv":"1\"2`,
		`\\u0034` + visa16,
		"%3" + visa16,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	for _, b := range corpus(f) {
		f.Add(b, false)
	}
	rng := rand.New(rand.NewSource(2))
	for range 50 {
		var in []byte
		for k := 10 + rng.Intn(30); k > 0; k-- {
			in = append(in, soup[rng.Intn(len(soup))]...)
		}
		f.Add(in, rng.Intn(2) == 1)
	}
	f.Fuzz(checkScrub)
}

func checkScrub(t *testing.T, in []byte, keepBIN bool) {
	t.Helper()
	mask := MaskLast4
	if keepBIN {
		mask = MaskBINLast4
	}
	r := New(Rules{PANMask: mask})
	keep := bytes.Clone(in)

	out := r.Scrub(in)
	if !bytes.Equal(in, keep) {
		t.Fatalf("Scrub changed its input from %q to %q", keep, in)
	}
	if w := surviving(out); w != nil {
		t.Fatalf("Luhn-valid window %v survived\n in: %q\nout: %q", w, in, out)
	}
	if again := r.Scrub(out); !bytes.Equal(again, out) {
		t.Fatalf("not idempotent\n   in: %q\n once: %q\ntwice: %q", in, out, again)
	}
	if surviving(in) != nil && !HasPAN(in) {
		t.Fatalf("HasPAN(%q) = false, the reference finds %v", in, surviving(in))
	}
	if HasPAN(out) {
		t.Fatalf("HasPAN(Scrub(%q)) = true; out: %q", in, out)
	}
}

// FuzzScrubKeepsCleanData checks precision: text made of digits, separators
// and JSON punctuation (no names, no escapes) in which the reference finds no
// card number comes out of Scrub byte for byte, quotes and all; and each
// SmartPayments corpus body, with such text put in a field, keeps every byte
// outside its card fields.
func FuzzScrubKeepsCleanData(f *testing.F) {
	f.Add([]byte("1674507600000 1679678900200"), uint8(0))
	f.Add([]byte("12345678901234567890"), uint8(1))
	f.Add([]byte("89 3704 0044 0532 0130 00"), uint8(2))
	bodies := corpus(f)
	names := make([]string, 0, len(bodies))
	for n := range bodies {
		names = append(names, n)
	}
	slices.Sort(names)
	r := New(Rules{})
	f.Fuzz(func(t *testing.T, b []byte, pick uint8) {
		const alphabet = "0123456789 -./_+:,[]{}\"0123456789"
		s := make([]byte, len(b))
		for i, c := range b {
			s[i] = alphabet[int(c)%len(alphabet)]
		}
		if surviving(s) != nil {
			return
		}
		if got := r.Scrub(s); !bytes.Equal(got, s) {
			t.Fatalf("clean text changed\n in: %q\nout: %q", s, got)
		}
		body := bodies[names[int(pick)%len(names)]]
		in := bytes.Replace(body, []byte("{"), append(append([]byte(`{"fuzz": "`), bytes.ReplaceAll(s, []byte(`"`), nil)...), `", `...), 1)
		if surviving(bytes.ReplaceAll(s, []byte(`"`), nil)) != nil {
			return
		}
		if got, want := r.Scrub(in), expectScrubbed(in, false); !bytes.Equal(got, want) {
			t.Fatalf("corpus body changed beyond its card fields\n got: %s\nwant: %s", got, want)
		}
	})
}
