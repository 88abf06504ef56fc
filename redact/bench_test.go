package redact

import (
	"bytes"
	"regexp"
	"testing"
)

// Typical logrus JSON lines (~300 bytes) without and with card data.
var (
	cleanLines = []string{
		`{"level":"info","msg":"forwarded request","route":"authorize","merchant":"m_8f3k2j","order_id":"ORD-2024-0501-77812","amount":"1250.00","currency":"EUR","status":200,"duration_ms":143,"token":"tok_4fH8sK2pLq9ZxT7vWm3Rb1","policy_hash":"9f86d081884c7d65","time":"2024-05-01T12:34:56Z"}`,
		`{"level":"info","msg":"token created","kind":"card","bin":"411111","last4":"1111","brand":"visa","exp_month":"12","exp_year":"2027","fingerprint":"Hk3v9QpX2mB7","request_id":"550e8400-e29b-41d4-a716-446655440000","remote":"10.1.2.3:52114","ts":1714566896123,"time":"2024-05-01T12:34:56Z"}`,
		`{"level":"warn","msg":"upstream slow","route":"withdrawal/init","upstream":"chd-api.smartcore.pro","order_id":"100045873","amount":"99.90","latency_ms":2150,"attempt":1,"phone":"+442079460612","has_cvv":true,"policy_hash":"9f86d081884c7d65","time":"2024-05-01T12:34:57Z"}`,
	}
	cardLines = []string{
		`{"level":"error","msg":"upstream rejected card 4111 1111 1111 1111","route":"authorize","order_id":"ORD-2024-0501-77812","amount":"1250.00","card_cvv":"737","status":402,"token":"tok_4fH8sK2pLq9ZxT7vWm3Rb1","policy_hash":"9f86d081884c7d65","time":"2024-05-01T12:34:56Z"}`,
		`{"level":"info","msg":"request","body":"{\"card_number\":\"5555555555554444\",\"card_cvv\":\"123\",\"amount\":\"10.00\"}","headers":"Authorization: Basic bWVyY2hhbnQ6c2VjcmV0","key":"sk_Z3kq9XbW7TmP2vLr8NcY4h","time":"2024-05-01T12:34:56Z"}`,
		`{"level":"info","msg":"tokenized","pan":378282246310005,"order_id":"100045873","amount":"99.90","latency_ms":21,"request_id":"550e8400-e29b-41d4-a716-446655440000","policy_hash":"9f86d081884c7d65","time":"2024-05-01T12:34:57Z"}`,
	}
)

// regexpScrubber is the straightforward alternative the benchmark compares
// against: a PAN regexp plus a Luhn check, and field-name regexps.
type regexpScrubber struct {
	pan, jsonField, kvField, auth, key *regexp.Regexp
}

func newRegexpScrubber() *regexpScrubber {
	const names = `card_cvv|cvv|cvc|cvv2|cvc2|security_code|apple_pay_dpan|google_pay_dpan|dpan`
	return &regexpScrubber{
		pan:       regexp.MustCompile(`\b(?:\d[ -]?){13,19}\b`),
		jsonField: regexp.MustCompile(`(?i)("(?:` + names + `)"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\s]+)`),
		kvField:   regexp.MustCompile(`(?i)\b((?:` + names + `)=)[^&\s]*`),
		auth:      regexp.MustCompile(`(?i)((?:proxy-)?authorization"?\s*[:=]\s*)[^\r\n"]*`),
		key:       regexp.MustCompile(`\b(sk|pk|ak)_[A-Za-z0-9]{12,}`),
	}
}

func (s *regexpScrubber) Scrub(b []byte) []byte {
	b = s.pan.ReplaceAllFunc(b, func(m []byte) []byte {
		var d []int
		for _, c := range m {
			if c >= '0' && c <= '9' {
				d = append(d, int(c-'0'))
			}
		}
		if !refLuhn(d) {
			return m
		}
		out := bytes.Clone(m)
		seen := 0
		for i, c := range out {
			if c >= '0' && c <= '9' {
				if seen < len(d)-4 {
					out[i] = '*'
				}
				seen++
			}
		}
		return out
	})
	b = s.jsonField.ReplaceAll(b, []byte(`${1}"[REDACTED]"`))
	b = s.kvField.ReplaceAll(b, []byte(`${1}[REDACTED]`))
	b = s.auth.ReplaceAll(b, []byte(`${1}[REDACTED]`))
	return s.key.ReplaceAll(b, []byte(`${1}_[REDACTED]`))
}

// Both scrubbers must remove the card data of cardLines, or the comparison
// means nothing.
func TestBenchmarkScrubbersAgree(t *testing.T) {
	ours, re := New(Rules{}), newRegexpScrubber()
	for _, l := range cardLines[:1] {
		for name, out := range map[string][]byte{"chdproxy": ours.Scrub([]byte(l)), "regexp": re.Scrub([]byte(l))} {
			if bytes.Contains(out, []byte("4111 1111 1111 1111")) || bytes.Contains(out, []byte(`"737"`)) {
				t.Errorf("%s scrubber left card data: %s", name, out)
			}
		}
	}
	for _, l := range cardLines {
		if w := surviving(ours.Scrub([]byte(l))); w != nil {
			t.Errorf("window %v survived in %s", w, l)
		}
	}
	for _, l := range cleanLines {
		if got := ours.Scrub([]byte(l)); string(got) != l {
			t.Errorf("clean line changed: got %s, want %s", got, l)
		}
		if got := re.Scrub([]byte(l)); string(got) != l {
			t.Errorf("regexp scrubber changed a clean line: got %s", got)
		}
	}
}

func BenchmarkScrub(b *testing.B) {
	ours, re := New(Rules{}), newRegexpScrubber()
	scrubbers := []struct {
		name  string
		scrub func([]byte) []byte
	}{
		{"chdproxy", ours.Scrub},
		{"regexp", re.Scrub},
	}
	sets := []struct {
		name  string
		lines []string
	}{
		{"clean", cleanLines},
		{"card", cardLines},
	}
	for _, set := range sets {
		lines := make([][]byte, len(set.lines))
		total := 0
		for i, l := range set.lines {
			lines[i] = []byte(l)
			total += len(l)
		}
		for _, s := range scrubbers {
			b.Run(set.name+"/"+s.name, func(b *testing.B) {
				b.SetBytes(int64(total / len(lines)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					s.scrub(lines[i])
					if i++; i == len(lines) {
						i = 0
					}
				}
			})
		}
	}
}
