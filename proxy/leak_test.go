package proxy_test

// Finding card data in anything the proxy let out: every test's harness runs
// assertNoCardData when the test ends, and a test may run it sooner (with
// inputs that must not be echoed either). The tests at the end check the
// finder itself: a suite whose detector misses a leak proves nothing.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

var (
	uEscape   = regexp.MustCompile(`\\u([0-9a-fA-F]{4})`)
	pctEscape = regexp.MustCompile(`%([0-9a-fA-F]{2})`)
	entity    = regexp.MustCompile(`&#([0-9]{1,6});`)
	cvvRes    sync.Map
)

// unescape decodes JSON \u escapes (and \" \\ \/), percent-encoding and
// numeric HTML entities, repeatedly, so doubly escaped text is read too.
func unescape(s string) string {
	for range 3 {
		prev := s
		s = uEscape.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.ParseUint(m[2:], 16, 32)
			return string(rune(n))
		})
		s = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\/`, `/`).Replace(s)
		s = pctEscape.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.ParseUint(m[1:], 16, 8)
			return string([]byte{byte(n)})
		})
		s = entity.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.Atoi(m[2 : len(m)-1])
			return string(rune(n))
		})
		if s == prev {
			break
		}
	}
	return s
}

// digitsFlat maps every Unicode decimal digit to ASCII and drops the
// separators a PAN may be grouped with.
func digitsFlat(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == '-' || r == '+' || r == '\u00a0' || r == '\t':
			continue
		case r > 0x7f && unicode.Is(unicode.Nd, r):
			start := r
			for unicode.Is(unicode.Nd, start-1) {
				start--
			}
			b.WriteByte(byte('0' + (r-start)%10))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cvvPattern matches cvv as a quoted string or as a JSON, form or key=value value.
func cvvPattern(cvv string) *regexp.Regexp {
	if re, ok := cvvRes.Load(cvv); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(`["']` + cvv + `["']|[:=]\s*` + cvv + `([^0-9.]|$)`)
	cvvRes.Store(cvv, re)
	return re
}

// findCardData describes the first test card datum (or extra string) in b, or
// returns "". PANs are looked for in every spelling of testcards.Spellings, and
// in a normalised copy of b (escapes decoded, any Unicode digit made ASCII,
// separators dropped), which catches the mixtures; CVVs as a quoted string or a
// JSON/form/key=value value; DPANs whole or by a slice of their middle; the
// holder name as it is.
func findCardData(b []byte, extra ...string) string {
	raw := string(b)
	norm := unescape(raw)
	flat := digitsFlat(norm)
	for _, pan := range testcards.PANs {
		for form, s := range testcards.Spellings(pan) {
			if strings.Contains(raw, s) {
				return "the test PAN ending " + pan[len(pan)-4:] + " (" + form + ")"
			}
		}
		if strings.Contains(flat, pan) {
			return "the test PAN ending " + pan[len(pan)-4:] + " (after unescaping and removing separators)"
		}
	}
	for _, cvv := range testcards.CVVs {
		if cvvPattern(cvv).MatchString(raw) || cvvPattern(cvv).MatchString(norm) {
			return "a test CVV"
		}
	}
	for _, d := range testcards.DPANs {
		for _, part := range []string{d, d[20:60]} {
			if strings.Contains(raw, part) || strings.Contains(norm, part) {
				return "a test wallet DPAN"
			}
		}
	}
	if strings.Contains(raw, testcards.Holder) || strings.Contains(norm, testcards.Holder) {
		return "the test card holder name"
	}
	for _, x := range extra {
		if x != "" && (strings.Contains(raw, x) || strings.Contains(norm, x)) {
			return fmt.Sprintf("the input %q", x)
		}
	}
	return ""
}

// assertNoCardData fails t when a test PAN, CVV, DPAN or holder name — raw,
// grouped or escaped — or one of extra (inputs that must not be echoed) is in
// any response the test received (headers and body, raw TCP answers too), in
// the captured logs, in the audit trail, or in any Redis key or value. It also
// checks that every log line and audit record is one JSON object.
func (h *harness) assertNoCardData(t testing.TB, extra ...string) {
	t.Helper()
	check := func(where string, b []byte) {
		t.Helper()
		if what := findCardData(b, extra...); what != "" {
			t.Errorf("%s contains %s", where, what)
		}
	}
	check("the logs", h.logs.Bytes())
	check("the audit trail", h.audit.Bytes())
	h.mu.Lock()
	seen := append([][]byte(nil), h.seen...)
	down := h.redisDown
	h.mu.Unlock()
	for i, b := range seen {
		check(fmt.Sprintf("response %d", i+1), b)
	}
	if h.mr != nil || !down { // miniredis can be read while it is down; a stopped redis-server cannot
		for _, kv := range h.redisContents(t) {
			check("Redis", []byte(kv))
		}
	}
	// Nothing a client sent can break a log line or an audit record in two.
	h.logLines(t)
	h.auditRecords(t)
}

// redisContents returns every key and value in Redis: strings, hash fields,
// list and set members, and the base64 []byte fields of JSON values decoded
// (the idempotency records keep whole response bodies that way).
func (h *harness) redisContents(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, k := range h.redisKeys(t) {
		out = append(out, k)
		for _, v := range h.redisValues(t, k) {
			out = append(out, v)
			out = append(out, decodedFields(v)...)
		}
	}
	return out
}

// redisValues returns what key k holds, whatever its type.
func (h *harness) redisValues(t testing.TB, k string) []string {
	t.Helper()
	if h.mr != nil {
		switch h.mr.Type(k) {
		case "string":
			v, _ := h.mr.Get(k)
			return []string{v}
		case "hash":
			var vals []string
			fs, _ := h.mr.HKeys(k)
			for _, f := range fs {
				vals = append(vals, f, h.mr.HGet(k, f))
			}
			return vals
		case "list":
			l, _ := h.mr.List(k)
			return l
		case "set":
			m, _ := h.mr.Members(k)
			return m
		}
		return []string{h.mr.Dump()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		vals []string
		err  error
	)
	switch typ := h.rdb.Type(ctx, k).Val(); typ {
	case "string":
		var v string
		v, err = h.rdb.Get(ctx, k).Result()
		vals = []string{v}
	case "hash":
		var m map[string]string
		m, err = h.rdb.HGetAll(ctx, k).Result()
		for f, v := range m {
			vals = append(vals, f, v)
		}
	case "list":
		vals, err = h.rdb.LRange(ctx, k, 0, -1).Result()
	case "set":
		vals, err = h.rdb.SMembers(ctx, k).Result()
	case "zset":
		vals, err = h.rdb.ZRange(ctx, k, 0, -1).Result()
	case "none": // expired since the scan
	default:
		t.Errorf("Redis key of type %q: the card-data check cannot read it", typ)
	}
	if err != nil {
		t.Errorf("reading a Redis key: %v", err)
	}
	return vals
}

// decodedFields base64-decodes the string members of a JSON object value.
func decodedFields(v string) []string {
	var m map[string]any
	if json.Unmarshal([]byte(v), &m) != nil {
		return nil
	}
	var out []string
	for _, x := range m {
		if s, ok := x.(string); ok && len(s) >= 4 {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The finder checked.

func TestHostileHarness_FindsCardDataInEveryForm(t *testing.T) {
	for _, pan := range testcards.PANs {
		for form, s := range testcards.Spellings(pan) {
			for _, wrap := range []string{`{"x":"%s"}`, `x=%s&y=1`, `%s`, `{"x":"a %s b"}`} {
				if findCardData([]byte(fmt.Sprintf(wrap, s))) == "" {
					t.Errorf("PAN …%s %s in %q: not found", pan[len(pan)-4:], form, wrap)
				}
			}
		}
		mixed := strings.ReplaceAll(testcards.Spellings(pan)["JSON \\u-escaped"], `\`, `%5C`) // a percent-encoded JSON escape
		if findCardData([]byte(mixed)) == "" {
			t.Errorf("PAN …%s percent-encoded JSON escapes: not found", pan[len(pan)-4:])
		}
		if findCardData([]byte(`{"n":`+pan+`}`)) == "" {
			t.Errorf("PAN …%s as a JSON number: not found", pan[len(pan)-4:])
		}
	}
	for _, cvv := range testcards.CVVs {
		for _, s := range []string{`{"card_cvv":"` + cvv + `"}`, `cvv=` + cvv + `&x=1`, `{\"cvv\":\"` + cvv + `\"}`, `{"cvv":` + cvv + `}`, `cvv: ` + cvv} {
			if findCardData([]byte(s)) == "" {
				t.Errorf("CVV in %q: not found", s)
			}
		}
	}
	for _, d := range testcards.DPANs {
		if findCardData([]byte(`{"dpan":"`+d+`"}`)) == "" || findCardData([]byte("x"+d[15:80]+"y")) == "" {
			t.Error("a DPAN or a slice of one: not found")
		}
	}
	// What chdproxy legitimately shows must pass.
	pan := testcards.Success
	bin, last4 := pan[:6], pan[len(pan)-4:]
	for _, s := range []string{
		`{"token":"tok_AbC123","kind":"card","card":{"bin":"` + bin + `","last4":"` + last4 + `","brand":"visa","exp_month":"12","exp_year":"2030"},"has_cvv":true}`,
		`{"card":{"number":"` + pan[:6] + `******` + last4 + `"},"masked":"************4444","duration_ms":7.37,"status":200}`,
		`{"level":"info","msg":"request","request_id":"req_9aZ","key_id":"sk_1a2b3c4d","card_cvv":"[REDACTED]"}`,
	} {
		if what := findCardData([]byte(s)); what != "" {
			t.Errorf("false positive %s in %s", what, s)
		}
	}
}

// recorderTB collects the errors a check reports instead of failing the test.
type recorderTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorderTB) Helper() {}
func (r *recorderTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func TestHostileHarness_AssertNoCardDataSeesEverySink(t *testing.T) {
	plant := map[string]func(h *harness){
		// Written past the redacting formatter, which would mask it (as it should).
		"a log line": func(h *harness) {
			h.logs.Write([]byte(`{"msg":"leak ` + testcards.Spellings(testcards.Decline)["fullwidth digits"] + `"}` + "\n"))
		},
		"an audit record": func(h *harness) {
			h.audit.Write([]byte(`{"event":"x","token":"` + testcards.Success + `"}` + "\n"))
		},
		"a response body": func(h *harness) {
			h.record([]byte(`{"echo":"` + testcards.Spellings(testcards.Amex)["JSON \\u-escaped"] + `"}`))
		},
		"a response header": func(h *harness) {
			h.record([]byte("X-Card: " + testcards.Spellings(testcards.Success)["grouped (dashes)"] + "\r\n\r\n{}"))
		},
		// Through the client, so the real backend mode checks a redis-server too.
		"a Redis key":   func(h *harness) { h.rdb.Set(context.Background(), "chd:x:"+testcards.Success, "1", 0) },
		"a Redis value": func(h *harness) { h.rdb.Set(context.Background(), "chd:x", `{"card_cvv":"`+testcards.CVV+`"}`, 0) },
		"a Redis hash":  func(h *harness) { h.rdb.HSet(context.Background(), "chd:h", "f", testcards.DPANApple) },
		"a stored answer": func(h *harness) {
			h.rdb.Set(context.Background(), "chd:idem:x", mustJSON(t, map[string]any{"body": []byte(`{"n":"` + testcards.Decline + `"}`)}), 0)
		},
		"a broken log line": func(h *harness) { h.logs.Write([]byte("not json\n")) },
	}
	for name, f := range plant {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			h.assertNoCardData(t) // clean to start with
			f(h)
			h.skipLeakCheckAtEnd = true // planted on purpose
			rec := &recorderTB{TB: t}
			h.assertNoCardData(rec)
			if len(rec.errs) == 0 {
				t.Errorf("card data planted in %s was not reported", name)
			}
		})
	}
}
