package redact

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
)

// Test card numbers (public test PANs of the card networks).
const (
	visa16   = "4111111111111111"
	visa13   = "4222222222222"
	amex15   = "378282246310005"
	diners14 = "30569309025904"
	mc16     = "5555555555554444"
	disc16   = "6011111111111117"
	visa19   = "4111111111111111110" // Luhn-valid 19 digits
)

// fullwidth, arabicIndic, devanagari rewrite ASCII digits in another script.
func toScript(s string, zero rune) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return zero + r - '0'
		}
		return r
	}, s)
}

func jsonEscaped(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			sb.WriteString(`\u003`)
			sb.WriteRune(r)
		} else {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

func percentEncoded(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			sb.WriteString("%3")
			sb.WriteRune(r)
		} else {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

func TestScrubMasksPANs(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a bare 16-digit Visa keeps its last four", visa16, "************1111"},
		{"a 13-digit Visa is masked", visa13, "*********2222"},
		{"a 14-digit Diners is masked", diners14, "**********5904"},
		{"a 15-digit Amex is masked", amex15, "***********0005"},
		{"a Mastercard is masked", mc16, "************4444"},
		{"a 19-digit PAN is masked", visa19, "***************1110"},
		{"a PAN grouped by spaces keeps its spaces", "4111 1111 1111 1111", "**** **** **** 1111"},
		{"a PAN grouped by dashes keeps its dashes", "4111-1111-1111-1111", "****-****-****-1111"},
		{"an Amex grouped 4-6-5 is masked", "3782 822463 10005", "**** ****** *0005"},
		{"a PAN grouped irregularly is masked", "41 1111-11111 11 111", "** ****-***** *1 111"},
		{"a PAN inside a JSON log line is masked",
			`{"level":"info","msg":"charge","pan":"` + visa16 + `","order_id":"ORD-1001"}`,
			`{"level":"info","msg":"charge","pan":"************1111","order_id":"ORD-1001"}`},
		{"a PAN as a JSON number is quoted to keep the line JSON", `{"n":` + visa16 + `,"m":1}`, `{"n":"************1111","m":1}`},
		{"a negative fractional JSON number is quoted whole", `[1, -` + visa16 + `.5e3]`, `[1, "-************1111.5e3"]`},
		{"a PAN in logfmt text is masked", "level=info pan=" + visa16 + " amount=10.00", "level=info pan=************1111 amount=10.00"},
		{"a PAN glued to letters is masked", "card" + visa16 + "x", "card************1111x"},
		{"a PAN next to another number is found", "9 " + visa16, "9 ************1111"},
		{"a PAN after a grouped number is found", "12 34 4111 1111 1111 1111", "12 34 **** **** **** 1111"},
		{"a PAN grouped by dots is masked", "4111.1111.1111.1111", "****.****.****.1111"},
		{"a PAN grouped by slashes and underscores is masked", "4111/1111_1111/1111", "****/****_****/1111"},
		{"a PAN grouped by no-break and thin spaces is masked", "4111\u00a01111\u20091111\u202f1111", "****\u00a0****\u2009****\u202f1111"},
		{"a PAN grouped by zero-width spaces is masked", "4111\u200b1111\u200b1111\u200b1111", "****\u200b****\u200b****\u200b1111"},
		{"a PAN grouped by JSON-escaped slashes is masked", `"4111\/1111\/1111\/1111"`, `"****\/****\/****\/1111"`},
		{"a PAN in HTML character references is masked", "&#52;&#x31;&#49;&#49;" + visa16[4:], "****" + "********1111"},
		{"a PAN grouped by &nbsp; is masked", "4111&nbsp;1111&nbsp;1111&nbsp;1111", "****&nbsp;****&nbsp;****&nbsp;1111"},
		{"two PANs on one line are both masked", visa16 + " and " + mc16, "************1111 and ************4444"},
		{"a PAN in a query string is masked", "/pay?card=" + visa16 + "&x=1", "/pay?card=************1111&x=1"},
		{"a form-encoded PAN grouped by plus signs is masked", "card=4111+1111+1111+1111&a=1", "card=****+****+****+1111&a=1"},
		{"a form-encoded PAN grouped by %20 is masked", "card=4111%201111%201111%201111", "card=****%20****%20****%201111"},
		{"a percent-encoded PAN is masked", percentEncoded(visa16), "************%31%31%31%31"},
		{"a JSON-escaped PAN is masked", `"` + jsonEscaped(visa16) + `"`, `"************\u0031\u0031\u0031\u0031"`},
		{"a PAN half JSON-escaped is masked", `"\u0034\u0031` + visa16[2:] + `"`, `"************1111"`},
		{"a PAN grouped by JSON-escaped spaces is masked", `"4111\u00201111\u00201111\u00201111"`, `"****\u0020****\u0020****\u00201111"`},
		{"a fullwidth PAN is masked", toScript(visa16, '０'), "************" + toScript("1111", '０')},
		{"an Arabic-Indic PAN is masked", toScript(visa16, '٠'), "************" + toScript("1111", '٠')},
		{"a Devanagari PAN is masked", toScript(visa16, '०'), "************" + toScript("1111", '०')},
		{"a PAN mixing scripts is masked", "4１1١" + "111111111111", "************1111"},
		{"a fullwidth PAN grouped by ideographic spaces is masked",
			toScript("4111", '０') + "\u3000" + toScript("1111", '０') + "\u3000" + toScript("11111111", '０'),
			"****\u3000****\u3000****" + toScript("1111", '０')},
		{"a PAN grouped by en dashes is masked", "4111–1111–1111–1111", "****–****–****–1111"},
		{"a percent-encoded fullwidth PAN is masked",
			"%EF%BC%94%EF%BC%91%EF%BC%91" + "1111111111111",
			"************1111"},
		{"a PAN written with mathematical digits is masked",
			toScript(visa16, '\U0001D7CE'), "************" + toScript("1111", '\U0001D7CE')},
		{"a PAN written with JSON surrogate pairs is masked",
			`\ud835\udfd2` + strings.Repeat(`\ud835\udfcf`, 11) + "1111", "************1111"},
		{"a PAN inside an escaped JSON string is masked",
			`{"msg":"upstream said {\"card\":\"` + visa16 + `\"}"}`,
			`{"msg":"upstream said {\"card\":\"************1111\"}"}`},
	}
	r := New(Rules{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if w := surviving([]byte(r.String(tt.in))); w != nil {
				t.Errorf("a Luhn-valid window survived: %v", w)
			}
		})
	}
}

func TestScrubBINLast4KeepsAtMostTenDigits(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a 16-digit PAN keeps its first six and last four", visa16, "411111******1111"},
		{"a grouped PAN keeps its first six and last four", "4111 1111 1111 1111", "4111 11** **** 1111"},
		{"a 15-digit Amex keeps its first six and last four", amex15, "378282*****0005"},
		{"a 13-digit PAN keeps its first six and last four", visa13, "422222***2222"},
		{"a PAN whose sub-windows also pass Luhn keeps no more", "4012888888881881", "401288******1881"},
	}
	r := New(Rules{PANMask: MaskBINLast4})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.String(tt.in)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			digits := 0
			for _, c := range got {
				if unicode.IsDigit(c) {
					digits++
				}
			}
			if digits > 10 {
				t.Errorf("%d digits visible in %q, want at most 10", digits, got)
			}
		})
	}
}

func TestUnknownPANMaskMeansLast4(t *testing.T) {
	if got, want := New(Rules{PANMask: 7}).String(visa16), "************1111"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// nonCardData must come out byte for byte, and Scrub must return the input
// slice itself.
var nonCardData = []struct{ name, in string }{
	{"an order id", `{"order_id":"ORD-2024-0501-77812","merchant_order":"100045873"}`},
	{"an RFC 3339 timestamp", `{"time":"2024-05-01T12:34:56.123456789Z"}`},
	{"a Unix-millisecond timestamp that fails Luhn", `{"ts":1714566896123}`},
	{"a Unix-second timestamp", `ts=1714566896`},
	{"a phone number in E.164", `{"phone":"+442079460612"}`},
	{"a grouped phone number", `call +44 20 7946 0612 now`},
	{"an amount", `{"amount":"1250.00","total":125000,"fee":0.35}`},
	{"a large amount with cents", `amount=1234567890.12`},
	{"a UUID", `{"request_id":"550e8400-e29b-41d4-a716-446655440000"}`},
	{"another UUID", `request_id=123e4567-e89b-12d3-a456-426614174000`},
	{"a token id", `{"token":"tok_4fH8sK2pLq9ZxT7vWm3Rb1"}`},
	{"a token id made of digits and letters", `tok_1234567890abcdefABCDEF`},
	{"an IP address and port", `remote=192.168.100.200:54321`},
	{"a 12-digit number", `ref=123456789012`},
	{"a 16-digit number that fails Luhn", `{"ref":"4111111111111113"}`},
	{"a card's last four and BIN in metadata", `{"bin":"411111","last4":"1111","has_cvv":true}`},
	{"a masked PAN", `{"pan":"************1111"}`},
	{"a field that only mentions cvv in its name", `{"has_cvv":true,"cvv_expires_at":"2024-05-01T12:44:56Z"}`},
	{"an empty cvv", `{"card_cvv":""} cvv=&x=1`},
	{"a null cvv", `{"card_cvv":null}`},
	{"a key-like identifier too short to be a key", `{"pk_id":42,"sk_flag":"on"}`},
	{"a word ending in sk followed by an underscore", `task_0123456789abcdefgh=1`},
	{"a date range", `2024-05-01 2024-05-31`},
	{"card holder name", `{"card_holder":"JANE DOE"}`},
	{"a version string", `go1.26.8 linux/amd64 v1.10.2`},
	{"a hex digest", `{"policy_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}`},
	{"plain text with no digits", `the quick brown fox jumps over the lazy dog`},
	{"non-Latin text", `Платёж принят 支付成功 تم الدفع`},
	{"a redacted line", `{"card_cvv":"[REDACTED]","key":"sk_[REDACTED]","Authorization":"[REDACTED]"}`},
}

func TestScrubLeavesNonCardDataAlone(t *testing.T) {
	r := New(Rules{})
	for _, tt := range nonCardData {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got := r.Scrub(in)
			if string(got) != tt.in {
				t.Fatalf("got %q, want %q", got, tt.in)
			}
			if len(in) > 0 && &got[0] != &in[0] {
				t.Errorf("Scrub returned a copy of clean input, want the input itself")
			}
		})
	}
}

// TestAcceptedFalsePositives documents what Scrub masks although it may
// not be a card number: any 13–19 digit number (or whole groups of one)
// that a brand issues at its length and that passes Luhn, whatever it
// means. Ids of that shape are refused as raw card data on the forward side
// too; numbers that are not (timestamps, zero runs, 20-digit ids) pass.
func TestAcceptedFalsePositives(t *testing.T) {
	r := New(Rules{})
	id := "4" + strings.Repeat("0", 14) + "2" // Luhn-valid, Visa prefix and length
	tests := []struct{ name, in, want string }{
		{"a Luhn-valid 16-digit id with a Visa prefix is masked", `{"ref":"` + id + `"}`, `{"ref":"************0002"}`},
		{"a decimal whose digits spell a card number is masked", `{"x":4.` + id[1:] + `}`, `{"x":"*.***********0002"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScrubRedactsFields(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a JSON CVV string", `{"card_cvv":"123"}`, `{"card_cvv":"[REDACTED]"}`},
		{"a JSON CVV number", `{"card_cvv": 123,"x":1}`, `{"card_cvv": "[REDACTED]","x":1}`},
		{"a JSON CVV with spaces around the colon", `{"cvv" : "0123"}`, `{"cvv" : "[REDACTED]"}`},
		{"field names ignore case", `{"CVV":"123","Card_CVV":"456","CVC2":"789"}`, `{"CVV":"[REDACTED]","Card_CVV":"[REDACTED]","CVC2":"[REDACTED]"}`},
		{"a dashed field name", `security-code=123`, `security-code=[REDACTED]`},
		{"a dotted field path", `{"card.cvv":"123"}`, `{"card.cvv":"[REDACTED]"}`},
		{"a bracketed form field", `card[cvv]=123&card[exp]=12`, `card[cvv]=[REDACTED]&card[exp]=12`},
		{"a form body", `card_number=tok_abc&card_cvv=123&amount=10`, `card_number=tok_abc&card_cvv=[REDACTED]&amount=10`},
		{"a query string", `/pay?cvv=123#top`, `/pay?cvv=[REDACTED]#top`},
		{"logrus text", `level=info card_cvv=123 msg="ok"`, `level=info card_cvv=[REDACTED] msg="ok"`},
		{"logrus text with a quoted value", `card_cvv="1 2 3" msg=ok`, `card_cvv="[REDACTED]" msg=ok`},
		{"key: value text", `cvv: 123, exp: 12/25`, `cvv: [REDACTED], exp: 12/25`},
		{"a Go struct print", `{CVV:123 Exp:12/25}`, `{CVV:[REDACTED] Exp:12/25}`},
		{"an Apple Pay DPAN", `{"apple_pay_dpan":"eyJkYXRhIjoiYWJjIn0=","apple_pay_payment_method_network":"Visa"}`,
			`{"apple_pay_dpan":"[REDACTED]","apple_pay_payment_method_network":"Visa"}`},
		{"a Google Pay DPAN in a form", `google_pay_dpan=eyJkYXRhIjoiYWJjIn0%3D&x=1`, `google_pay_dpan=[REDACTED]&x=1`},
		{"a DPAN object", `{"dpan":{"data":"abc","sig":"d]ef"},"n":1}`, `{"dpan":"[REDACTED]","n":1}`},
		{"a CVV inside an escaped JSON string",
			`{"msg":"body={\"card_cvv\":\"123\",\"amount\":10}"}`,
			`{"msg":"body={\"card_cvv\":\"[REDACTED]\",\"amount\":10}"}`},
		{"a CVV number inside an escaped JSON string",
			`{"msg":"body={\"cvv\":123}"}`,
			`{"msg":"body={\"cvv\":\"[REDACTED]\"}"}`},
		{"a CVV with an escaped quote inside",
			`{"cvv":"1\"2","n":1}`,
			`{"cvv":"[REDACTED]","n":1}`},
		{"an unterminated CVV string runs to the end of the line", "{\"cvv\":\"12\nnext", "{\"cvv\":\"[REDACTED]\nnext"},
		{"the card holder is not redacted by default", `{"card_holder":"JANE DOE","cvc":"123"}`, `{"card_holder":"JANE DOE","cvc":"[REDACTED]"}`},
	}
	r := New(Rules{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRulesAddFieldsAndHeaders(t *testing.T) {
	r := New(Rules{Fields: []string{"Card_Holder", " pin "}, Headers: []string{"X-Api-Key"}})
	tests := []struct{ in, want string }{
		{`{"card_holder":"JANE DOE"}`, `{"card_holder":"[REDACTED]"}`},
		{`pin=1234`, `pin=[REDACTED]`},
		{"X-Api-Key: abc def\r\nHost: x", "X-Api-Key: [REDACTED]\r\nHost: x"},
		{`{"cvv":"123"}`, `{"cvv":"[REDACTED]"}`},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestScrubRedactsCredentials(t *testing.T) {
	const sk = "sk_Z3kq9XbW7TmP2vLr8NcY4h"
	tests := []struct{ name, in, want string }{
		{"a header dump", "POST /authorize HTTP/1.1\r\nAuthorization: Basic bWVyY2hhbnQ6c2VjcmV0\r\nHost: x\r\n",
			"POST /authorize HTTP/1.1\r\nAuthorization: [REDACTED]\r\nHost: x\r\n"},
		{"a Proxy-Authorization header", "Proxy-Authorization: Bearer " + sk + "\n", "Proxy-Authorization: [REDACTED]\n"},
		{"a header dump inside a JSON string", `{"msg":"GET / HTTP/1.1\r\nauthorization: Basic YWJj\r\nAccept: */*"}`,
			`{"msg":"GET / HTTP/1.1\r\nauthorization: [REDACTED]\r\nAccept: */*"}`},
		{"a JSON header map", `{"headers":{"Authorization":["Basic YWJj"],"Accept":["*/*"]}}`,
			`{"headers":{"Authorization":"[REDACTED]","Accept":["*/*"]}}`},
		{"a JSON header string", `{"authorization":"Bearer abc.def.ghi"}`, `{"authorization":"[REDACTED]"}`},
		{"a Go header map print", `map[Authorization:[Basic YWJj] Accept:[*/*]]`, `map[Authorization:[REDACTED] Accept:[*/*]]`},
		{"key=value with a scheme", `authorization=Bearer abc.def level=info`, `authorization=[REDACTED] level=info`},
		{"key=value quoted", `proxy_authorization="Bearer abc" level=info`, `proxy_authorization="[REDACTED]" level=info`},
		{"a secret key in text", "using " + sk + " now", "using sk_[REDACTED] now"},
		{"a publishable key in JSON", `{"key":"pk_Z3kq9XbW7TmP2vLr8NcY4h"}`, `{"key":"pk_[REDACTED]"}`},
		{"an admin key", `admin=ak_Z3kq9XbW7TmP2vLr8NcY4h`, `admin=ak_[REDACTED]`},
		{"a key after an escaped newline", `{"msg":"a\nsk_Z3kq9XbW7TmP2vLr8NcY4h"}`, `{"msg":"a\nsk_[REDACTED]"}`},
		{"a token id survives next to a key", "tok_Z3kq9XbW7TmP2vLr8NcY4h " + sk, "tok_Z3kq9XbW7TmP2vLr8NcY4h sk_[REDACTED]"},
	}
	r := New(Rules{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScrubIsIdempotent(t *testing.T) {
	var inputs []string
	for _, s := range []string{visa16, "4111 1111 1111 1111", percentEncoded(visa16), jsonEscaped(visa16),
		toScript(visa16, '０'), "123456789" + visa16 + "987654321", visa19 + visa16 + amex15} {
		inputs = append(inputs, s, `{"msg":"`+s+`","cvv":"123"}`)
	}
	for _, tt := range nonCardData {
		inputs = append(inputs, tt.in)
	}
	for _, mask := range []PANMask{MaskLast4, MaskBINLast4} {
		r := New(Rules{PANMask: mask})
		for _, in := range inputs {
			once := r.Scrub([]byte(in))
			twice := r.Scrub(once)
			if !bytes.Equal(once, twice) {
				t.Errorf("mask %d: Scrub(Scrub(%q)) = %q, want %q", mask, in, twice, once)
			}
		}
	}
}

func TestScrubDoesNotAllocateOnCleanInput(t *testing.T) {
	r := New(Rules{})
	line := []byte(`{"level":"info","msg":"forwarded","route":"authorize","order_id":"ORD-2024-0501-77812","amount":"1250.00","ts":1714566896123,"token":"tok_4fH8sK2pLq9ZxT7vWm3Rb1","time":"2024-05-01T12:34:56Z"}`)
	if n := testing.AllocsPerRun(100, func() { r.Scrub(line) }); n != 0 {
		t.Errorf("Scrub allocated %v times per clean line, want 0", n)
	}
}

func TestScrubDoesNotModifyItsInput(t *testing.T) {
	r := New(Rules{})
	in := []byte(`{"pan":"` + visa16 + `","cvv":"123"}`)
	keep := bytes.Clone(in)
	r.Scrub(in)
	if !bytes.Equal(in, keep) {
		t.Errorf("input changed to %q", in)
	}
}

func TestHasPAN(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"a bare PAN", visa16, true},
		{"a grouped PAN", "4111 1111 1111 1111", true},
		{"a percent-encoded PAN", percentEncoded(visa16), true},
		{"a JSON-escaped PAN", jsonEscaped(visa16), true},
		{"a fullwidth PAN", toScript(visa16, '０'), true},
		{"a PAN glued to a longer digit run is another number", "77" + visa16, false},
		{"a PAN grouped by dots", "4111.1111.1111.1111", true},
		{"a timestamp pair", "1674507600000 1679678900200", false},
		{"a failing Luhn number", "4111111111111113", false},
		{"a masked PAN", "************1111", false},
		{"a token", "tok_4fH8sK2pLq9ZxT7vWm3Rb1", false},
		{"a CVV field alone", `{"cvv":"123"}`, false},
		{"nothing", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HasPAN([]byte(tt.in)); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	r := New(Rules{Headers: []string{"X-Api-Key"}})
	tests := []struct{ name, value, want string }{
		{"Authorization", "Basic YWJj", redacted},
		{"proxy-authorization", "Bearer sk_Z3kq9XbW7TmP2vLr8NcY4h", redacted},
		{"X-API-KEY", "abc", redacted},
		{"X-Card-Cvv", "123", redacted},
		{"X-Card-Cvc", "123", redacted},
		{"Card-Security-Code", "123", redacted},
		{"X-Cvv-Expires-At", "2024-05-01T12:44:56Z", "2024-05-01T12:44:56Z"},
		{"Cvv", "123", redacted},
		{"X-Request-Id", "550e8400-e29b-41d4-a716-446655440000", "550e8400-e29b-41d4-a716-446655440000"},
		{"Referer", "https://shop.example/?pan=" + visa16, "https://shop.example/?pan=************1111"},
	}
	for _, tt := range tests {
		if got := r.Header(tt.name, tt.value); got != tt.want {
			t.Errorf("header(%q): got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestStringReturnsItsInputWhenClean(t *testing.T) {
	r := New(Rules{})
	s := "order ORD-1001 paid"
	if got := r.String(s); got != s {
		t.Errorf("got %q, want %q", got, s)
	}
	if got := r.String(""); got != "" {
		t.Errorf("got %q, want empty", got)
	}
}

// Every non-ASCII decimal digit must map to the value Unicode gives it.
func TestUnicodeDigitValues(t *testing.T) {
	n := 0
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if !unicode.Is(unicode.Nd, r) {
			continue
		}
		n++
		kind, v := classifyRune(r)
		if kind != tkDigit || int(v) != refDigitValue(r) {
			t.Fatalf("%U: got kind %d value %d, want digit %d", r, kind, v, refDigitValue(r))
		}
	}
	if n < 600 {
		t.Errorf("only %d Unicode digits seen", n)
	}
}
