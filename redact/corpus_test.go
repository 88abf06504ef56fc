package redact

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

// The SmartPayments corpus: every example request and response body of the
// API documentation, one file each under testdata/smartpayments. Regenerate:
//
//	go test ./redact -run TestSmartPaymentsCorpus -update -api /path/to/smartpayments-api.txt
var (
	update  = flag.Bool("update", false, "rewrite testdata/smartpayments from -api")
	apiDocs = flag.String("api", "", "the SmartPayments API documentation (text)")
)

const corpusDir = "testdata/smartpayments"

// extractBodies returns the JSON bodies of the documentation: the data of each
// curl example and each block that starts with a line "{" alone.
func extractBodies(doc string) (reqs, resps []string) {
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		isReq := strings.HasPrefix(l, "--data") && strings.HasSuffix(l, "'{")
		if !isReq && l != "{" {
			continue
		}
		body := []string{"{"}
		for i++; i < len(lines); i++ {
			if lines[i] == "}'" || lines[i] == "}" {
				body = append(body, "}")
				break
			}
			body = append(body, lines[i])
		}
		if isReq {
			reqs = append(reqs, strings.Join(body, "\n")+"\n")
		} else {
			resps = append(resps, strings.Join(body, "\n")+"\n")
		}
	}
	return reqs, resps
}

func writeCorpus(t *testing.T) {
	doc, err := os.ReadFile(*apiDocs)
	if err != nil {
		t.Fatal(err)
	}
	reqs, resps := extractBodies(string(doc))
	if err := os.MkdirAll(corpusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for kind, bodies := range map[string][]string{"request": reqs, "response": resps} {
		for i, b := range bodies {
			name := filepath.Join(corpusDir, fmt.Sprintf("%s-%02d.json", kind, i+1))
			if err := os.WriteFile(name, []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// corpus returns the corpus files by name.
func corpus(t testing.TB) map[string][]byte {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil || len(files) < 20 {
		t.Fatalf("corpus: %d files (%v), want the documentation's 20+ bodies", len(files), err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// cardFieldRE finds the documentation's card fields, written one per line.
var cardFieldRE = regexp.MustCompile(`"(card_number|customer_card_number|card_cvv|apple_pay_dpan|google_pay_dpan)": "([^"]*)"`)

// expectScrubbed is what Scrub must make of a corpus body, computed apart from
// the scanner: card numbers masked, CVV and wallet payloads redacted, and not
// one other byte changed.
func expectScrubbed(b []byte, keepBIN bool) []byte {
	return cardFieldRE.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := cardFieldRE.FindSubmatch(m)
		v := string(sub[2])
		switch string(sub[1]) {
		case "card_number", "customer_card_number":
			keep := 0
			if keepBIN {
				keep = 6
			}
			v = v[:keep] + strings.Repeat("*", len(v)-4-keep) + v[len(v)-4:]
		default:
			v = redacted
		}
		return []byte(`"` + string(sub[1]) + `": "` + v + `"`)
	})
}

func TestSmartPaymentsCorpus(t *testing.T) {
	if *update {
		writeCorpus(t)
	}
	fields := 0
	for name, b := range corpus(t) {
		fields += len(cardFieldRE.FindAll(b, -1))
		for _, mask := range []PANMask{MaskLast4, MaskBINLast4} {
			want := expectScrubbed(b, mask == MaskBINLast4)
			if got := New(Rules{PANMask: mask}).Scrub(b); !bytes.Equal(got, want) {
				t.Errorf("%s (mask %d): got\n%s\nwant\n%s", name, mask, got, want)
			}
		}
	}
	if fields < 7 {
		t.Errorf("the corpus holds %d card fields, want the documentation's 7", fields)
	}
}

// TestScrubLeavesPaymentDataAlone: what payment answers and logs are full of
// comes out byte for byte: the documentation's millisecond timestamp pair,
// long ids, IBANs, amounts, bare numbers (no quotes added).
func TestScrubLeavesPaymentDataAlone(t *testing.T) {
	for _, in := range []string{
		`"dateFrom": 1674507600000, "dateTo": 1679678900200`,
		`{"dateFrom":1674507600000,"dateTo":1679678900200}`,
		"1674507600000 1679678900200",
		"1674507600000-1679678900200",
		`dateFrom=1674507600000&dateTo=1679678900200`,
		`{"id":12345678901234567890}`,
		`{"id":"41111111111111111110","ref":98765432109876543210}`,
		`{"txn_id":` + testcards.Success + `0}`,
		`{"iban":"DE89370400440532013000"}`,
		`IBAN DE89 3704 0044 0532 0130 00`,
		`{"iban":"GB29NWBK60161331926819","iban2":"GB29 NWBK 6016 1331 9268 19"}`,
		`{"iban":"FR1420041010050500013M02606","nl":"NL91ABNA0417164300"}`,
		`{"amount":1000,"balance":10000,"holdBalance":0,"total":"1250.00","fee":0.35}`,
		`{"n":1715000000000000000,"zeros":100000000000000,"ts":1715002345678}`,
		`{"endDate":"2024-01-12T11:18:26.678Z","customer_birthdate":"06.06.1997"}`,
		`{"customer_phone":"+442079460612","customer_zip_code":121165}`,
	} {
		for _, mask := range []PANMask{MaskLast4, MaskBINLast4} {
			if got := New(Rules{PANMask: mask}).String(in); got != in {
				t.Errorf("got %q, want %q", got, in)
			}
		}
		if HasPAN([]byte(in)) {
			t.Errorf("HasPAN(%q) = true, want false", in)
		}
	}
}

// TestScrubCatchesPANSpellings: every spelling of every test PAN is masked
// and found by HasPAN, alone and inside JSON.
func TestScrubCatchesPANSpellings(t *testing.T) {
	r := New(Rules{})
	for _, pan := range testcards.PANs[:5] {
		forms := testcards.Spellings(pan)
		for _, sep := range []string{".", "/", "_", "\u00a0", "\u2009", "\u202f", "\u200b", ". ", "-"} {
			g := []rune(forms["grouped (spaces)"])
			forms["grouped by "+sep] = strings.ReplaceAll(string(g), " ", sep)
		}
		forms["mixed separators"] = pan[:4] + "." + pan[4:8] + "/" + pan[8:12] + "\u00a0" + pan[12:]
		forms["after a short number"] = "12 " + pan
		forms["percent-encoded dots"] = pan[:4] + "%2E" + pan[4:8] + "%2e" + pan[8:]
		forms["HTML hex references"] = "&#x" + fmt.Sprintf("%x", pan[0]) + ";" + pan[1:]
		forms["fullwidth full stops"] = pan[:4] + "\uff0e" + pan[4:]
		for name, f := range forms {
			if name == "grouped by . " {
				continue // two separators: two numbers
			}
			for _, in := range []string{f, `{"x":"` + f + `"}`, "<pan>" + f + "</pan>"} {
				if !HasPAN([]byte(in)) {
					t.Errorf("%s: HasPAN(%q) = false", name, in)
				}
				if w := surviving(r.Scrub([]byte(in))); w != nil || strings.Contains(r.String(in), pan) {
					t.Errorf("%s: a PAN survived in %q", name, r.String(in))
				}
			}
		}
	}
}

// TestScrubRedactsCVVNames: every CVV name, in every syntax.
func TestScrubRedactsCVVNames(t *testing.T) {
	r := New(Rules{})
	cvv := testcards.CVV
	for _, name := range []string{"cvc", "CSC", "cvn", "card_security_code", "cardSecurityCode", "Card-Cvc", "cvv2", "security_code", "x_card_cvv", "cav2", "cvd"} {
		for _, in := range []string{
			`{"` + name + `":"` + cvv + `"}`,
			`{"` + name + `":` + cvv + `}`,
			name + "=" + cvv + "&a=1",
			"<" + name + ">" + cvv + "</" + name + ">",
			"<ns:" + name + ` type="x">` + cvv + "</ns:" + name + ">",
			"<" + name + "><![CDATA[" + cvv + "]]></" + name + ">",
			`<card ` + name + `="` + cvv + `"/>`,
			name + ": " + cvv + "\r\n",
		} {
			if got := r.String(in); strings.Contains(got, cvv) || !strings.Contains(got, redacted) {
				t.Errorf("got %q from %q, want the code redacted", got, in)
			}
		}
	}
	for _, in := range []string{`{"cid":"c-123"}`, `<cvv_expires_at>2024</cvv_expires_at>`, `{"has_cvv":true}`} {
		if got := r.String(in); got != in {
			t.Errorf("got %q, want %q", got, in)
		}
	}
}
