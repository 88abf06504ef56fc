package card

import (
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

// leakPANs are the PANs the leak test prints, in every brand length.
var leakPANs = []string{"4003830171874018", testcards.Success, "378282246310005", "36227206271667", "4111111111111111110"}

const (
	leakCVV    = "737"
	leakCVV4   = "7373"
	leakHolder = "Jane Cardholder"
)

type exported struct {
	PAN    PAN
	CVV    CVV
	Holder Holder
	DPAN   DPAN
	Expiry Expiry
}

type unexported struct {
	pan    PAN
	cvv    CVV
	holder Holder
	dpan   DPAN
}

type nested struct {
	In    exported
	in    unexported
	Ptr   *exported
	ptr   *unexported
	Slice []PAN
	slice []CVV
	Map   map[string]PAN
	Keys  map[PAN]string
	Any   any
	anys  []any
}

type wrapErr struct{ pan PAN }

func (e wrapErr) Error() string { return fmt.Sprintf("card %v refused", e.pan) }

// forbidden returns the forms in which secret s must never appear: as is, as
// hex (either case), as base64, and as fmt's decimal byte list.
func forbidden(s string) []string {
	h := hex.EncodeToString([]byte(s))
	dec := strings.Trim(fmt.Sprint([]byte(s)), "[]")
	return []string{s, h, strings.ToUpper(h), dec}
}

var (
	digitRun    = regexp.MustCompile(`[0-9]+`)
	addressLike = regexp.MustCompile(`[0-9a-fA-F]{8,}`)
)

// noTime drops slog's timestamp, whose digits could spell a CVV.
var noTime = &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}}

// distinctive reports whether s, 6 or more digits, could not plausibly occur
// in a pointer address printed in decimal, hex or binary.
func distinctive(s string) bool {
	return len(s) >= 6 && strings.ContainsAny(s, "23456789") && !strings.Contains(s, "000")
}

// assertNoLeak fails when out holds any PAN, the hidden middle digits of a
// PAN, the holder name, the DPAN or a CVV in any forbidden form (a CVV as
// digits only as a whole digit run). fmt prints the pointer inside these types as an address (hex,
// decimal or binary, by verb), so short or plain digit strings are checked
// only where an address cannot produce them by chance.
func assertNoLeak(t *testing.T, what, out string) {
	t.Helper()
	secrets := append([]string{leakHolder, applePayDPAN}, leakPANs...)
	for _, p := range leakPANs {
		if mid := p[6 : len(p)-4]; distinctive(mid) { // what masking hides
			secrets = append(secrets, mid)
		}
	}
	for _, s := range secrets {
		for _, f := range forbidden(s) {
			if len(f) >= 6 && strings.Contains(out, f) {
				t.Errorf("%s leaks %.8q… in %q", what, f, out)
			}
		}
	}
	// A CVV is short enough to occur in an address by chance, so it is
	// checked with the addresses (8+ hex digits, in any base) taken out.
	stripped := addressLike.ReplaceAllString(out, "#")
	for _, cvv := range []string{leakCVV, leakCVV4} {
		for _, run := range digitRun.FindAllString(stripped, -1) {
			if run == cvv {
				t.Errorf("%s leaks a CVV in %q", what, out)
			}
		}
		for _, f := range forbidden(cvv)[1:] {
			if strings.Contains(stripped, f) {
				t.Errorf("%s leaks a CVV as %q in %q", what, f, out)
			}
		}
	}
}

func TestNothingPrintsCardData(t *testing.T) {
	if !distinctive(leakPANs[0][6 : len(leakPANs[0])-4]) {
		t.Fatal("the first test PAN needs distinctive middle digits")
	}
	var pans []PAN
	for _, s := range leakPANs {
		p, err := ParsePAN(s)
		if err != nil {
			t.Fatal(err)
		}
		pans = append(pans, p)
	}
	cvv, err := ParseCVV(leakCVV, Visa)
	if err != nil {
		t.Fatal(err)
	}
	cvv4, err := ParseCVV(leakCVV4, Amex)
	if err != nil {
		t.Fatal(err)
	}
	holder, err := ParseHolder(leakHolder)
	if err != nil {
		t.Fatal(err)
	}
	dpan, err := ParseDPAN(applePayDPAN)
	if err != nil {
		t.Fatal(err)
	}

	var values []any
	for _, p := range pans {
		ex := exported{PAN: p, CVV: cvv, Holder: holder, DPAN: dpan, Expiry: Expiry{12, 2030}}
		un := unexported{pan: p, cvv: cvv4, holder: holder, dpan: dpan}
		n := nested{
			In: ex, in: un, Ptr: &ex, ptr: &un,
			Slice: []PAN{p, p}, slice: []CVV{cvv, cvv4},
			Map:  map[string]PAN{"card": p},
			Keys: map[PAN]string{p: "x"},
			Any:  p, anys: []any{p, cvv, holder, dpan},
		}
		values = append(values,
			p, &p, cvv, cvv4, &cvv, holder, &holder, dpan, &dpan,
			ex, &ex, un, &un, n, &n,
			[]PAN{p}, []*PAN{&p}, [2]CVV{cvv, cvv4}, []any{p, cvv, holder, dpan},
			map[string]any{"pan": p, "cvv": cvv, "holder": holder, "dpan": dpan},
			map[PAN]CVV{p: cvv}, struct{ p PAN }{p}, struct{ P *PAN }{&p},
		)
	}

	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T",
		"% x", "%#x", "%08d", "%20s", "%-20v", "%.3s", "%U", "%c", "%b", "%o", "%e", "%t", "%p"}
	for i, v := range values {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, v)
			assertNoLeak(t, fmt.Sprintf("value %d (%T) with %s", i, v, verb), out)
		}
		assertNoLeak(t, fmt.Sprintf("value %d Sprint", i), fmt.Sprint(v))
		assertNoLeak(t, fmt.Sprintf("value %d Sprintln", i), fmt.Sprintln(v, v))

		if b, err := json.Marshal(v); err == nil {
			assertNoLeak(t, fmt.Sprintf("value %d as JSON", i), string(b))
		} else {
			assertNoLeak(t, fmt.Sprintf("value %d JSON error", i), err.Error())
		}
		if b, err := json.MarshalIndent(v, "", " "); err == nil {
			assertNoLeak(t, fmt.Sprintf("value %d as indented JSON", i), string(b))
		}
		if b, err := xml.Marshal(v); err == nil {
			assertNoLeak(t, fmt.Sprintf("value %d as XML", i), string(b))
		} else {
			assertNoLeak(t, fmt.Sprintf("value %d XML error", i), err.Error())
		}
		var g bytes.Buffer
		if err := gob.NewEncoder(&g).Encode(v); err == nil {
			assertNoLeak(t, fmt.Sprintf("value %d as gob", i), g.String())
		} else {
			assertNoLeak(t, fmt.Sprintf("value %d gob error", i), err.Error())
		}

		// Wrapped in errors.
		e1 := fmt.Errorf("tokenize: %v: %w", v, ErrNumberChecksum)
		e2 := errors.Join(e1, fmt.Errorf("%+v", v))
		e3 := fmt.Errorf("outer: %w", wrapErr{pans[0]})
		for _, e := range []error{e1, e2, e3} {
			assertNoLeak(t, fmt.Sprintf("value %d in an error", i), e.Error())
			assertNoLeak(t, fmt.Sprintf("value %d in an error, %%+v", i), fmt.Sprintf("%+v", e))
		}

		// Loggers: log, slog text and JSON.
		var buf bytes.Buffer
		log.New(&buf, "", 0).Printf("card=%v", v)
		slog.New(slog.NewTextHandler(&buf, noTime)).Info("msg", "card", v)
		slog.New(slog.NewJSONHandler(&buf, noTime)).Info("msg", "card", v)
		assertNoLeak(t, fmt.Sprintf("value %d logged", i), buf.String())
	}

	// The MarshalText/MarshalJSON methods themselves.
	for _, m := range []interface {
		MarshalJSON() ([]byte, error)
		MarshalText() ([]byte, error)
	}{pans[0], cvv, holder, dpan} {
		j, _ := m.MarshalJSON()
		x, _ := m.MarshalText()
		assertNoLeak(t, "MarshalJSON/MarshalText", string(j)+string(x))
	}
}

func TestPlaceholders(t *testing.T) {
	p, _ := ParsePAN(testcards.Success)
	c, _ := ParseCVV("737", Visa)
	h, _ := ParseHolder("Jane Cardholder")
	d, _ := ParseDPAN(applePayDPAN)
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"a PAN prints [PAN]", p, "[PAN]"},
		{"the zero PAN prints [PAN]", PAN{}, "[PAN]"},
		{"a CVV prints [CVV]", c, "[CVV]"},
		{"a Holder prints [HOLDER]", h, "[HOLDER]"},
		{"a DPAN prints [DPAN]", d, "[DPAN]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d"} {
				if got := fmt.Sprintf(verb, tc.v); got != tc.want {
					t.Errorf("%s: got %q, want %q", verb, got, tc.want)
				}
			}
			if got := fmt.Sprintf("%q", tc.v); got != `"`+tc.want+`"` {
				t.Errorf("%%q: got %q, want %q", got, `"`+tc.want+`"`)
			}
			b, err := json.Marshal(tc.v)
			if err != nil || string(b) != `"`+tc.want+`"` {
				t.Errorf("JSON: got %s (%v), want %q", b, err, `"`+tc.want+`"`)
			}
			if s, ok := tc.v.(fmt.Stringer); !ok || s.String() != tc.want {
				t.Errorf("String: want %q", tc.want)
			}
			if s, ok := tc.v.(fmt.GoStringer); !ok || s.GoString() != tc.want {
				t.Errorf("GoString: want %q", tc.want)
			}
		})
	}
}
