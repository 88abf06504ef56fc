package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/token"
)

// basePolicy is small, valid and safe; each case below breaks it one way.
const basePolicy = `version: 1
upstreams:
  chd: {base_url: "https://chd.example", card_data: true}
  gw: {base_url: "https://gw.example"}
routes:
  - name: pay
    acknowledge: [nonstandard_host, nonstandard_path] # not SmartPayments: the generic rules
    path: /pay
    upstream: chd
    payment: true
    kinds: [card, apple_pay]
    payment_method_field: payment_method
    inject:
      - {field: card_number, attribute: pan, kinds: [card]}
      - {field: card_cvv, attribute: cvv, kinds: [card]}
      - {field: wallet_dpan, attribute: dpan, kinds: [apple_pay]}
  - name: payout
    acknowledge: [nonstandard_host, nonstandard_path] # not SmartPayments: the generic rules
    path: /payout
    upstream: chd
    kinds: [card]
    inject:
      - {field: payout_card, attribute: pan}
passthrough:
  - {name: status, path: /status, upstream: gw}
tokens: {card_ttl: 24h, cvv_ttl: 10m, wallet_ttl: 10m}
logging: {pan_mask: last4}
redaction: {fields: [card_cvv], headers: [Authorization]}
`

// want is an expected problem: its path, a piece of its message, and a piece
// of the line it must point at ("" for line 0).
type want struct{ path, msg, at string }

// mutate applies old→new replacements to basePolicy, failing when one does
// not apply exactly once.
func mutate(t *testing.T, repl ...string) string {
	t.Helper()
	return mutateText(t, basePolicy, repl...)
}

// mutateText applies old→new replacements to s, each exactly once.
func mutateText(t *testing.T, s string, repl ...string) string {
	t.Helper()
	for i := 0; i+1 < len(repl); i += 2 {
		if n := strings.Count(s, repl[i]); n != 1 {
			t.Fatalf("replacement %q matches %d times, want 1", repl[i], n)
		}
		s = strings.Replace(s, repl[i], repl[i+1], 1)
	}
	return s
}

// lineOf returns the 1-based line of the first line containing needle.
func lineOf(t *testing.T, text, needle string) int {
	t.Helper()
	if needle == "" {
		return 0
	}
	for i, line := range strings.Split(text, "\n") {
		if strings.Contains(line, needle) {
			return i + 1
		}
	}
	t.Fatalf("no line contains %q", needle)
	return 0
}

func checkProblems(t *testing.T, text string, got []Problem, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(wants), listProblems(got))
		return
	}
	for i, w := range wants {
		g := got[i]
		if g.Path != w.path || !strings.Contains(g.Message, w.msg) || g.Line != lineOf(t, text, w.at) {
			t.Errorf("problem %d: got %q, want line %d, path %q, message containing %q",
				i, g.String(), lineOf(t, text, w.at), w.path, w.msg)
		}
	}
}

func listProblems(probs []Problem) string {
	var b strings.Builder
	for _, p := range probs {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

func TestBasePolicyIsValidAndSafe(t *testing.T) {
	if _, probs := lintBytes([]byte(basePolicy), LintOptions{}); len(probs) > 0 {
		t.Fatalf("base policy has problems:\n%s", listProblems(probs))
	}
}

func TestLintRejectsUnsafePolicies(t *testing.T) {
	tests := []struct {
		name string
		dev  bool
		yaml string
		want []want
	}{
		{
			name: "an http upstream is refused outside dev",
			yaml: mutate(t, `"https://gw.example"`, `"http://gw.example"`),
			want: []want{{"upstreams.gw.base_url", "plain http", "http://gw.example"}},
		},
		{
			name: "an http upstream on loopback is refused outside dev",
			yaml: mutate(t, `"https://chd.example"`, `"http://127.0.0.1:8083"`),
			want: []want{{"upstreams.chd.base_url", "must use https", "127.0.0.1"}},
		},
		{
			name: "an http upstream to another host is refused even in dev",
			dev:  true,
			yaml: mutate(t, `"https://gw.example"`, `"http://gw.example"`),
			want: []want{{"upstreams.gw.base_url", "dev allows http only to 127.0.0.1", "http://gw.example"}},
		},
		{
			name: "an upstream with a scheme other than https is refused",
			yaml: mutate(t, `"https://gw.example"`, `"ftp://gw.example"`),
			want: []want{{"upstreams.gw.base_url", "must use https", "ftp://"}},
		},
		{
			name: "an upstream carrying credentials is refused",
			yaml: mutate(t, `"https://gw.example"`, `"https://user:pw@gw.example"`),
			want: []want{{"upstreams.gw.base_url", "must not carry credentials", "user:pw"}},
		},
		{
			name: "an upstream with a query is refused",
			yaml: mutate(t, `"https://gw.example"`, `"https://gw.example/?x=1"`),
			want: []want{{"upstreams.gw.base_url", "must not have a query", "x=1"}},
		},
		{
			name: "an injection route to a host that is not the card-data host is refused",
			yaml: mutate(t, "path: /payout\n    upstream: chd", "path: /payout\n    upstream: gw"),
			want: []want{{"routes[1].upstream", "not a card-data host", "upstream: gw"}},
		},
		{
			name: "a CVV injected on a route that is not a payment route is refused",
			yaml: mutate(t, "{field: payout_card, attribute: pan}", "{field: payout_card, attribute: pan}\n      - {field: payout_cvv, attribute: cvv}"),
			want: []want{{"routes[1].inject[1].attribute", "only on a payment route", "payout_cvv"}},
		},
		{
			name: "a CVV TTL above the 60m cap is refused",
			yaml: mutate(t, "cvv_ttl: 10m", "cvv_ttl: 61m"),
			want: []want{{"tokens.cvv_ttl", "above the hard cap of 1h", "cvv_ttl"}},
		},
		{
			name: "a wallet TTL above the 60m cap is refused",
			yaml: mutate(t, "wallet_ttl: 10m", "wallet_ttl: 2h"),
			want: []want{{"tokens.wallet_ttl", "above the hard cap", "wallet_ttl"}},
		},
		{
			name: "a zero CVV TTL is refused",
			yaml: mutate(t, "cvv_ttl: 10m", "cvv_ttl: 0s"),
			want: []want{{"tokens.cvv_ttl", "too short", "cvv_ttl"}},
		},
		{
			name: "a negative card TTL is refused",
			yaml: mutate(t, "card_ttl: 24h", "card_ttl: -1h"),
			want: []want{{"tokens.card_ttl", "too short", "card_ttl"}},
		},
		{
			name: "a card token living past the 90 day cap is refused (old key versions could never retire)",
			yaml: mutate(t, "card_ttl: 24h", "card_ttl: 2161h"),
			want: []want{{"tokens.card_ttl", "above the hard cap of 2160h", "card_ttl"}},
		},
		{
			name: "a card token living exactly the 90 day cap is accepted",
			yaml: mutate(t, "card_ttl: 24h", "card_ttl: 2160h"),
		},
		{
			name: "a location key is an unknown key",
			yaml: mutate(t, "{field: card_number, attribute: pan, kinds: [card]}", "{field: card_number, attribute: pan, kinds: [card], location: header}"),
			want: []want{{"routes[0].inject[0].location", `unknown key "location"`, "location: header"}},
		},
		{
			name: "a field written as a query parameter is not a field name",
			yaml: mutate(t, "field: card_number,", `field: "query:card_number",`),
			want: []want{{"routes[0].inject[0].field", "not a top-level JSON key", "query:card_number"}},
		},
		{
			name: "a field written as a header is not a field name",
			yaml: mutate(t, "field: card_number,", `field: "header:X-Card",`),
			want: []want{{"routes[0].inject[0].field", "not a top-level JSON key", "header:X-Card"}},
		},
		{
			name: "a field with a body prefix is not a field name either",
			yaml: mutate(t, "field: card_number,", `field: "body:card_number",`),
			want: []want{{"routes[0].inject[0].field", "not a top-level JSON key", "body:card_number"}},
		},
		{
			name: "a nested field path is refused",
			yaml: mutate(t, "field: card_number,", "field: card.number,"),
			want: []want{{"routes[0].inject[0].field", "not a top-level JSON key", "card.number"}},
		},
		{
			name: "a wildcard route path is refused",
			yaml: mutate(t, "path: /pay\n", "path: /pay*\n"),
			want: []want{{"routes[0].path", "wildcard or pattern", "/pay*"}},
		},
		{
			name: "a route path with a variable is refused",
			yaml: mutate(t, "path: /pay\n", "path: /pay/{id}\n"),
			want: []want{{"routes[0].path", "wildcard or pattern", "/pay/{id}"}},
		},
		{
			name: "a route path with a regular expression is refused",
			yaml: mutate(t, "path: /pay\n", "path: /pay/(.+)$\n"),
			want: []want{{"routes[0].path", "wildcard or pattern", "/pay/(.+)$"}},
		},
		{
			name: "a route path with a colon variable is refused",
			yaml: mutate(t, "path: /pay\n", "path: /pay/:id\n"),
			want: []want{{"routes[0].path", "wildcard or pattern", "/pay/:id"}},
		},
		{
			name: "a wildcard passthrough path is refused",
			yaml: mutate(t, "path: /status,", "path: /status/*,"),
			want: []want{{"passthrough[0].path", "wildcard or pattern", "/status/*"}},
		},
		{
			name: "a route path not starting with a slash is refused",
			yaml: mutate(t, "path: /payout", "path: payout"),
			want: []want{{"routes[1].path", "must start with '/'", "path: payout"}},
		},
		{
			name: "a route path with a trailing slash is refused",
			yaml: mutate(t, "path: /payout", "path: /payout/"),
			want: []want{{"routes[1].path", "trailing '/'", "path: /payout/"}},
		},
		{
			name: "a field mapped twice on one route is refused",
			yaml: mutate(t, "field: wallet_dpan,", "field: card_number,"),
			want: []want{{"routes[0].inject[2].field", `field "card_number" is mapped twice`, "attribute: dpan"}},
		},
		{
			name: "the same path injected and passed through is refused",
			yaml: mutate(t, "path: /status,", "path: /pay,"),
			want: []want{{"passthrough[0].path", "both an injection route (routes[0]) and a passthrough route", "name: status"}},
		},
		{
			name: "the same path routed twice is refused",
			yaml: mutate(t, "path: /payout", "path: /pay # twice"),
			want: []want{{"routes[1].path", "already routed by routes[0]", "# twice"}},
		},
		{
			name: "an unknown attribute is refused",
			yaml: mutate(t, "attribute: pan, kinds: [card]}", "attribute: track2, kinds: [card]}"),
			want: []want{{"routes[0].inject[0].attribute", `unknown attribute "track2"`, "track2"}},
		},
		{
			name: "an unknown token kind is refused",
			yaml: mutate(t, "kinds: [card, apple_pay]", "kinds: [card, apple_pay, paypal]"),
			want: []want{{"routes[0].kinds[2]", `unknown token kind "paypal"`, "paypal"}},
		},
		{
			name: "a wallet attribute for card tokens is refused",
			yaml: mutate(t, "attribute: pan, kinds: [card]}", "attribute: dpan, kinds: [card]}"),
			want: []want{{"routes[0].inject[0].kinds[0]", `attribute "dpan" does not exist for card tokens`, "field: card_number"}},
		},
		{
			name: "a card attribute for wallet tokens is refused",
			yaml: mutate(t, "attribute: dpan, kinds: [apple_pay]", "attribute: holder, kinds: [apple_pay]"),
			want: []want{
				{"routes[0].kinds", `token kind "apple_pay" is accepted but no field receives`, "kinds: [card, apple_pay]"},
				{"routes[0].inject[2].kinds[0]", `attribute "holder" does not exist for apple_pay tokens`, "wallet_dpan"},
			},
		},
		{
			name: "an injection for a kind the route does not accept is refused",
			yaml: mutate(t, "attribute: pan, kinds: [card]}", "attribute: pan, kinds: [card, google_pay]}"),
			want: []want{{"routes[0].inject[0].kinds[1]", `token kind "google_pay" is not accepted by this route`, "field: card_number"}},
		},
		{
			name: "an accepted kind that no field receives is refused",
			yaml: mutate(t, "kinds: [card, apple_pay]", "kinds: [card, apple_pay, google_pay]"),
			want: []want{{"routes[0].kinds", `token kind "google_pay" is accepted but no field receives`, "google_pay"}},
		},
		{
			name: "a route accepting several kinds without payment_method_field is refused",
			yaml: mutate(t, "    payment_method_field: payment_method\n", ""),
			want: []want{{"routes[0].payment_method_field", "must name payment_method_field", "name: pay"}},
		},
		{
			name: "a payment_method_field that also receives card data is refused",
			yaml: mutate(t, "payment_method_field: payment_method", "payment_method_field: card_number"),
			want: []want{{"routes[0].inject[0].field", "payment_method_field and cannot receive card data", "{field: card_number"}},
		},
		{
			name: "an injection route with no fields is refused",
			yaml: mutate(t, "    inject:\n      - {field: payout_card, attribute: pan}\n", "    inject: []\n"),
			want: []want{{"routes[1].inject", "no fields to inject", "inject: []"}},
		},
		{
			name: "an injection route with a method other than POST is refused",
			yaml: mutate(t, "path: /payout", "path: /payout\n    method: PUT"),
			want: []want{{"routes[1].method", `accept POST only, got "PUT"`, "method: PUT"}},
		},
		{
			name: "a passthrough route with a method other than POST or GET is refused",
			yaml: mutate(t, "upstream: gw}", "upstream: gw, method: DELETE}"),
			want: []want{{"passthrough[0].method", `POST or GET only, got "DELETE"`, "DELETE"}},
		},
		{
			name: "duplicate route names are refused",
			yaml: mutate(t, "name: payout", "name: pay # again"),
			want: []want{{"routes[1].name", `duplicate route name "pay" (also routes[0])`, "# again"}},
		},
		{
			name: "a passthrough name that repeats a route name is refused",
			yaml: mutate(t, "name: status", "name: payout"),
			want: []want{{"passthrough[0].name", `duplicate route name "payout" (also routes[1])`, "path: /status"}},
		},
		{
			name: "an undefined upstream is refused",
			yaml: mutate(t, "upstream: gw}", "upstream: nowhere}"),
			want: []want{{"passthrough[0].upstream", `upstream "nowhere" is not defined`, "nowhere"}},
		},
		{
			name: "a PAN mask that shows more than BIN and last4 is refused",
			yaml: mutate(t, "pan_mask: last4", "pan_mask: first6_last4"),
			want: []want{{"logging.pan_mask", `pan_mask "first6_last4" is not allowed`, "pan_mask"}},
		},
		{
			name: "an unsupported version is refused",
			yaml: mutate(t, "version: 1", "version: 2"),
			want: []want{{"version", "unsupported version 2", "version"}},
		},
		{
			name: "a header listed twice in another case is refused",
			yaml: mutate(t, "headers: [Authorization]", "headers: [Authorization, authorization]"),
			want: []want{{"redaction.headers[1]", `header "authorization" is listed twice`, "headers:"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := lintBytes([]byte(tt.yaml), LintOptions{Dev: tt.dev})
			checkProblems(t, tt.yaml, got, tt.want)
		})
	}
}

func TestDecodeRejectsSchemaErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []want
	}{
		{
			name: "an unknown key is refused",
			yaml: mutate(t, "version: 1\n", "version: 1\nextra: true\n"),
			want: []want{{"extra", `unknown key "extra"`, "extra"}},
		},
		{
			name: "a misspelled key is refused with a suggestion, and the key it replaces is missing",
			yaml: mutate(t, "path: /payout\n    upstream: chd", "path: /payout\n    upstrem: chd"),
			want: []want{
				{"routes[1].upstream", `missing required key "upstream"`, "name: payout"},
				{"routes[1].upstrem", `unknown key "upstrem" (did you mean "upstream"?)`, "upstrem"},
			},
		},
		{
			name: "a duplicate key is refused",
			yaml: mutate(t, "logging: {pan_mask: last4}", "logging: {pan_mask: last4, pan_mask: bin_last4}"),
			want: []want{{"logging.pan_mask", `duplicate key "pan_mask" (first at line 27)`, "logging"}},
		},
		{
			name: "a duplicate upstream is refused",
			yaml: mutate(t, "  gw: {base_url", "  chd: {base_url: \"https://other.example\"}\n  gw: {base_url"),
			want: []want{{"upstreams.chd", `duplicate key "chd"`, "other.example"}},
		},
		{
			name: "a string where a boolean belongs is refused",
			yaml: mutate(t, "card_data: true", `card_data: "yes"`),
			want: []want{{"upstreams.chd.card_data", "must be a boolean", "card_data"}},
		},
		{
			name: "a YAML 1.1 yes where a boolean belongs is refused",
			yaml: mutate(t, "payment: true", "payment: yes"),
			want: []want{{"routes[0].payment", "must be a boolean (true or false), got a string", "payment: yes"}},
		},
		{
			name: "a number where a duration belongs is refused",
			yaml: mutate(t, "card_ttl: 24h", "card_ttl: 24"),
			want: []want{{"tokens.card_ttl", "must be a duration", "tokens"}},
		},
		{
			name: "a malformed duration is refused",
			yaml: mutate(t, "card_ttl: 24h", "card_ttl: 1 day"),
			want: []want{{"tokens.card_ttl", `got "1 day"`, "tokens"}},
		},
		{
			name: "a string where a list belongs is refused",
			yaml: mutate(t, "kinds: [card]\n", "kinds: card\n"),
			want: []want{{"routes[1].kinds", "must be a list, got a string", "kinds: card"}},
		},
		{
			name: "a number where a string belongs is refused",
			yaml: mutate(t, "name: status", "name: 7"),
			want: []want{{"passthrough[0].name", "must be a string, got an integer", "name: 7"}},
		},
		{
			name: "an empty value is refused",
			yaml: mutate(t, "upstream: gw}", "upstream: }"),
			want: []want{{"passthrough[0].upstream", "must be a string, got nothing (null)", "name: status"}},
		},
		{
			name: "a missing section is refused",
			yaml: mutate(t, "logging: {pan_mask: last4}\n", ""),
			want: []want{{"logging", `missing required key "logging"`, "version"}},
		},
		{
			name: "anchors and aliases are refused",
			yaml: mutate(t, "kinds: [card, apple_pay]", "kinds: &k [card, apple_pay]", "kinds: [card]\n", "kinds: *k\n"),
			want: []want{
				{"", "anchors are not allowed", "&k"},
				{"routes[1].kinds", "aliases are not allowed", "kinds: *k"},
			},
		},
		{
			name: "a merge key is refused",
			yaml: mutate(t, "tokens: {card_ttl: 24h, cvv_ttl: 10m, wallet_ttl: 10m}", "base: &b {card_ttl: 24h}\ntokens: {<<: *b, cvv_ttl: 10m, wallet_ttl: 10m}"),
			want: []want{
				{"", "anchors are not allowed", "base:"},
				{"base", `unknown key "base"`, "base:"},
				{"tokens", "merge keys (<<) are not allowed", "tokens:"},
				{"tokens.card_ttl", `missing required key "card_ttl"`, "tokens:"},
			},
		},
		{
			name: "a second YAML document is refused",
			yaml: basePolicy + "---\nversion: 1\n",
			want: []want{{"", "only one YAML document", "---"}},
		},
		{
			name: "a YAML syntax error is reported with its line",
			yaml: mutate(t, "logging: {pan_mask: last4}", "logging: {pan_mask: [last4}"),
			want: []want{{"", "YAML syntax", "logging"}},
		},
		{
			name: "a policy that is not a mapping is refused",
			yaml: "- version: 1\n",
			want: []want{{"", "the policy must be a mapping, got a list", "version"}},
		},
		{
			name: "an empty policy is refused",
			yaml: "# nothing here\n",
			want: []want{{"", "policy is empty", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := lintBytes([]byte(tt.yaml), LintOptions{})
			checkProblems(t, tt.yaml, got, tt.want)
		})
	}
}

func TestLintAllowsLoopbackHTTPInDev(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8083", "http://localhost:8083", "http://[::1]:8083", "https://gw.example"} {
		t.Run(u, func(t *testing.T) {
			y := mutate(t, `"https://gw.example"`, `"`+u+`"`, `"https://chd.example"`, `"`+u+`"`)
			if _, probs := lintBytes([]byte(y), LintOptions{Dev: true}); len(probs) > 0 {
				t.Errorf("dev lint of %s: got problems:\n%s", u, listProblems(probs))
			}
		})
	}
}

func TestLintReportsEveryProblemInAFile(t *testing.T) {
	y := mutate(t,
		`"https://gw.example"`, `"http://gw.example"`, // 1: plain http
		"path: /payout", "path: /payout/*", // 2: wildcard
		"field: card_number,", `field: "query:card_number",`, // 3: not a body field
		"cvv_ttl: 10m", "cvv_ttl: 90m", // 4: CVV TTL cap
		"logging: {pan_mask: last4}", "logging: {pan_mask: full, colour: red}", // 5: unknown key, 6: pan_mask
	)
	// Five distinct lines, six problems: every one is listed, in line order.
	_, got := lintBytes([]byte(y), LintOptions{})
	checkProblems(t, y, got, []want{
		{"upstreams.gw.base_url", "plain http", "http://gw.example"},
		{"routes[0].inject[0].field", "not a top-level JSON key", "query:card_number"},
		{"routes[1].path", "wildcard", "/payout/*"},
		{"tokens.cvv_ttl", "hard cap", "cvv_ttl"},
		{"logging.colour", "unknown key", "colour"},
		{"logging.pan_mask", "not allowed", "pan_mask"},
	})
}

func TestLintReportsFiveProblemsWhenAFileHasFive(t *testing.T) {
	y := mutate(t,
		"version: 1", "version: 1\nowner: payments", // unknown key
		`"https://chd.example"`, `"http://chd.example"`, // plain http
		"path: /pay\n", "path: /pay/{order}\n", // wildcard
		"wallet_ttl: 10m", "wallet_ttl: 3h", // wallet TTL cap
		"name: status", "name: pay", // duplicate name
	)
	_, got := lintBytes([]byte(y), LintOptions{})
	if len(got) != 5 {
		t.Fatalf("got %d problems, want 5:\n%s", len(got), listProblems(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Line < got[i-1].Line || got[i].Line == 0 {
			t.Errorf("problems not sorted by line, or without a line:\n%s", listProblems(got))
		}
	}
}

func TestLintOfAPolicyBuiltInCode(t *testing.T) {
	p := &Policy{
		Version:   1,
		Upstreams: map[string]Upstream{"chd": {Name: "chd", BaseURL: "https://chd-api.smartcore.pro", CardData: true}},
		Routes: []Route{{
			Name: "pay", Method: "POST", Path: "/authorize", Upstream: "chd", Payment: true,
			AllowedKinds: []token.Kind{token.Card},
			Inject:       []Injection{{Field: "card_number", Attribute: AttrPAN, Kinds: []token.Kind{token.Card}}},
		}},
		Tokens:  TokenTTLs{Card: 24 * 3600e9, CVV: 600e9, Wallet: 600e9},
		Logging: Logging{PANMask: PANMaskBINLast4},
	}
	if probs := lint(p, LintOptions{}); len(probs) > 0 {
		t.Fatalf("got problems:\n%s", listProblems(probs))
	}
	p.Routes[0].Inject[0].Field = "query:card_number"
	probs := lint(p, LintOptions{})
	if len(probs) != 1 || probs[0].Line != 0 || probs[0].Path != "routes[0].inject[0].field" {
		t.Fatalf("got %v, want one problem without a line at routes[0].inject[0].field", probs)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Line: 12, Path: "routes[1].path", Message: "m"}, "line 12: routes[1].path: m"},
		{Problem{Path: "routes[1].path", Message: "m"}, "routes[1].path: m"},
		{Problem{Line: 3, Message: "m"}, "line 3: m"},
		{Problem{Message: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// ackEveryRoute adds an acknowledge list to each of the default policy's three
// injection routes (after their upstream line).
func ackEveryRoute(t *testing.T, s, list string) string {
	t.Helper()
	const at = "    upstream: chd-api\n"
	if n := strings.Count(s, at); n != 3 {
		t.Fatalf("%q matches %d times, want 3", at, n)
	}
	return strings.ReplaceAll(s, at, at+"    acknowledge: "+list+"\n")
}

// TestLintFlagsCardDataOutsideTheSmartPaymentsCardFields: each policy is
// deploy/policy.yaml with one change that sends card data to another host, path
// or body field than the SmartPayments documentation names, which lint refuses
// until the route acknowledges it; an acknowledgement with nothing to
// acknowledge is refused too.
func TestLintFlagsCardDataOutsideTheSmartPaymentsCardFields(t *testing.T) {
	def := string(deploy.PolicyYAML)
	type pm struct{ path, msg string }
	tests := []struct {
		name string
		yaml string
		want []pm
	}{
		{name: "the default policy is clean", yaml: def},
		{
			name: "a PAN into purpose on /withdrawal/init is refused",
			yaml: mutateText(t, def, "{field: customer_card_number,    attribute: pan}", "{field: purpose,    attribute: pan}"),
			want: []pm{{"routes[2].inject[0].field", `the pan of card tokens into body field "purpose": SmartPayments /withdrawal/init takes it in customer_card_number only; if intended, add nonstandard_field`}},
		},
		{
			name: "a CVV into card_holder on /authorize is refused",
			yaml: mutateText(t, def, "{field: card_holder,    attribute: holder}\n\n", "{field: card_holder,    attribute: cvv}\n\n"),
			want: []pm{{"routes[1].inject[4].field", `the cvv of card tokens into body field "card_holder": SmartPayments /authorize takes it in card_cvv only`}},
		},
		{
			name: "a cardholder name on /withdrawal/init, where SmartPayments takes none, is refused",
			yaml: mutateText(t, def, "{field: customer_card_exp_year,  attribute: exp_year}", "{field: customer_card_exp_year,  attribute: exp_year}\n      - {field: customer_card_holder, attribute: holder}"),
			want: []pm{{"routes[2].inject[3].field", `SmartPayments /withdrawal/init takes no holder of card tokens`}},
		},
		{
			name: "a Google Pay DPAN into the Apple Pay field is refused",
			yaml: mutateText(t, def, "{field: apple_pay_dpan,                    attribute: dpan,    kinds: [apple_pay]}", "{field: apple_pay_dpan, attribute: dpan, kinds: [apple_pay, google_pay]}"),
			want: []pm{{"routes[0].inject[5].field", `the dpan of apple_pay, google_pay tokens into body field "apple_pay_dpan": SmartPayments /initPaymentHost2Host takes it in apple_pay_dpan or google_pay_dpan only`}},
		},
		{
			name: "card data to another host is refused on every route",
			yaml: mutateText(t, def, "base_url: https://chd-api.smartcore.pro ", "base_url: https://chd-api.smartcore.pro.evil.example "),
			want: []pm{
				{"routes[0].upstream", `card data goes to https://chd-api.smartcore.pro.evil.example (upstream "chd-api"), not to https://chd-api.smartcore.pro`},
				{"routes[1].upstream", "add nonstandard_host"}, {"routes[2].upstream", "add nonstandard_host"},
			},
		},
		{
			name: "a path prefix on the card-data host is refused",
			yaml: mutateText(t, def, "base_url: https://chd-api.smartcore.pro ", "base_url: https://chd-api.smartcore.pro/v0 "),
			want: []pm{{"routes[0].upstream", "goes to https://chd-api.smartcore.pro/v0"}, {"routes[1].upstream", "nonstandard_host"}, {"routes[2].upstream", "nonstandard_host"}},
		},
		{
			name: "a sandbox base URL in the file is refused",
			yaml: mutateText(t, def, "base_url: https://chd-api.smartcore.pro ", "base_url: https://127.0.0.1:8443 "),
			want: []pm{{"routes[0].upstream", "goes to https://127.0.0.1:8443"}, {"routes[1].upstream", "nonstandard_host"}, {"routes[2].upstream", "nonstandard_host"}},
		},
		{
			name: "injection on another path is refused",
			yaml: mutateText(t, def, "path: /withdrawal/init\n", "path: /withdrawal/init2\n"),
			want: []pm{{"routes[2].path", "/withdrawal/init2 is not a SmartPayments call that takes card data (/authorize, /initPaymentHost2Host, /withdrawal/init); if intended, add nonstandard_path"}},
		},
		{
			name: "an acknowledged deviation passes, another on the same route does not",
			yaml: ackEveryRoute(t, mutateText(t, def, "base_url: https://chd-api.smartcore.pro ", "base_url: https://127.0.0.1:8443 ",
				"{field: customer_card_number,    attribute: pan}", "{field: purpose,    attribute: pan}"), "[nonstandard_host]"),
			want: []pm{{"routes[2].inject[0].field", "add nonstandard_field"}},
		},
		{
			name: "an acknowledgement with nothing to acknowledge is refused",
			yaml: ackEveryRoute(t, def, "[nonstandard_field]"),
			want: []pm{
				{"routes[0].acknowledge[0]", "nothing on this route is nonstandard_field; remove it"},
				{"routes[1].acknowledge[0]", "nothing on this route is nonstandard_field"}, {"routes[2].acknowledge[0]", "nothing on this route is nonstandard_field"},
			},
		},
		{
			name: "unknown and repeated acknowledgements are refused",
			yaml: mutateText(t, def, "{field: customer_card_number,    attribute: pan}", "{field: purpose,    attribute: pan}",
				"path: /withdrawal/init\n", "path: /withdrawal/init\n    acknowledge: [nonstandard_field, everything, nonstandard_field]\n"),
			want: []pm{{"routes[2].acknowledge[1]", `unknown deviation "everything" (known: nonstandard_host, nonstandard_path, nonstandard_field)`}, {"routes[2].acknowledge[2]", "nonstandard_field is listed twice"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := lintBytes([]byte(tt.yaml), LintOptions{})
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), listProblems(got))
			}
			for i, w := range tt.want {
				if got[i].Path != w.path || !strings.Contains(got[i].Message, w.msg) || got[i].Line == 0 {
					t.Errorf("problem %d: got %q, want a line, path %q, message containing %q", i, got[i], w.path, w.msg)
				}
			}
		})
	}
}

// The check reads the file's own base URL: `chdproxy dev` and the tests point
// the default policy at a sandbox without acknowledging anything, a file that
// names the sandbox itself must acknowledge it.
func TestLintChecksTheFilesBaseURLNotTheOverride(t *testing.T) {
	p, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WithUpstreams(map[string]string{"chd-api": "https://127.0.0.1:8443"}, LintOptions{}); err != nil {
		t.Errorf("the default policy overridden to a sandbox: %v", err)
	}
	file, _ := decode([]byte(mutateText(t, string(deploy.PolicyYAML), "base_url: https://chd-api.smartcore.pro ", "base_url: https://127.0.0.1:8443 ")))
	if _, err := file.WithUpstreams(map[string]string{"chd-api": "https://chd-api.smartcore.pro"}, LintOptions{}); err == nil || !strings.Contains(err.Error(), "nonstandard_host") {
		t.Errorf("a sandbox file overridden back to chd-api: got %v, want the file's host refused", err)
	}
}
