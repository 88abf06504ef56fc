package policy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/redact"
)

var update = flag.Bool("update", false, "rewrite docs/pci/policy-report.md from deploy/policy.yaml")

const reportPath = "../docs/pci/policy-report.md"

// TestExplainGolden keeps docs/pci/policy-report.md in step with
// deploy/policy.yaml. After changing the policy (even a comment, since the
// report names the file's SHA-256), run
//
//	go test ./policy -run TestExplainGolden -update
func TestExplainGolden(t *testing.T) {
	got := Explain(defaultPolicy(t))
	if *update {
		if err := os.WriteFile(reportPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./policy -run TestExplainGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: regenerate it with: go test ./policy -run TestExplainGolden -update\n%s",
			reportPath, firstDifference(string(want), string(got)))
	}
}

func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  file:      %s\n  generated: %s", i+1, wl, gl)
		}
	}
	return ""
}

func TestExplainIsDeterministic(t *testing.T) {
	a := Explain(defaultPolicy(t))
	for i := 0; i < 20; i++ {
		if b := Explain(defaultPolicy(t)); !bytes.Equal(a, b) {
			t.Fatal("two reports of the same policy differ")
		}
	}
	// Reordering the file's routes changes the hash, not the rest.
	reordered := strings.Replace(basePolicy, "  - name: pay\n", "  - name: zzz\n", 1)
	p1, _ := decode([]byte(basePolicy))
	p2, _ := decode([]byte(reordered))
	r1 := strings.SplitN(string(Explain(p1)), "## Upstreams", 2)[1]
	r2 := strings.SplitN(string(Explain(p2)), "## Upstreams", 2)[1]
	if strings.Replace(r2, "`zzz`", "`pay`", 1) != r1 {
		t.Error("report depends on more than the policy's content")
	}
}

func TestExplainStatesWhatAuditorsNeed(t *testing.T) {
	p := defaultPolicy(t)
	report := string(Explain(p))
	for _, want := range []string{
		"Policy SHA-256 | `" + p.Hash + "`",
		"| `chd-api` | `https://chd-api.smartcore.pro` | chd-api.smartcore.pro | yes |",
		"### POST `/initPaymentHost2Host`",
		"### POST `/authorize`",
		"### POST `/withdrawal/init`",
		"| `card_cvv` | `cvv`: CVV (one-time) | `card` |",
		"| `apple_pay_dpan` | `dpan`: wallet payment data (one-time) | `apple_pay` |",
		"| `customer_card_number` | `pan`: PAN (full card number) | `card` |",
		"- CVV consumed: no; this route never receives a CVV.",
		"| POST | `/check` | `check` | `https://api-gateway.smartcore.pro/check` (upstream `api-gateway`) |",
		"| CVV | 10m | hard cap 1h; deleted at its first injection |",
		"(`pan_mask: last4`)",
		"Header values replaced whole: `Authorization`, `Cookie`, `Proxy-Authorization`, `Set-Cookie`",
		"## What chdproxy never does",
		"Follow a redirect",
	} {
		wantInReport(t, report, want)
	}
	if strings.Contains(report, "overridden") {
		t.Error("report of the file policy mentions overrides")
	}
	dev, err := p.WithUpstreams(map[string]string{"chd-api": "http://127.0.0.1:8083"}, LintOptions{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(Explain(dev)), "the base URLs of `chd-api` were overridden") {
		t.Error("report of an overridden policy does not say so")
	}
}

// The report's sentence on the PAN mask must be what the redactor does with
// the rules the policy gives it.
func TestExplainStatesThePANMaskTheRedactorApplies(t *testing.T) {
	tests := []struct {
		mask, says, pan, masked string
	}{
		{PANMaskLast4, "every digit but the last four is masked", "4111111111111111", "************1111"},
		{PANMaskBINLast4, "the first six digits (the BIN) and the last\n  four stay", "4111111111111111", "411111******1111"},
		{PANMaskBINLast4, "the first six digits (the BIN) and the last\n  four stay", "4000000000000000006", "400000*********0006"},
	}
	for _, tt := range tests {
		t.Run(tt.mask+" on "+strconv.Itoa(len(tt.pan))+" digits", func(t *testing.T) {
			p, probs := lintBytes([]byte(strings.Replace(basePolicy, "pan_mask: last4", "pan_mask: "+tt.mask, 1)), LintOptions{})
			if len(probs) > 0 {
				t.Fatal(listProblems(probs))
			}
			if report := string(Explain(p)); !strings.Contains(report, tt.says) {
				t.Errorf("report lacks %q", tt.says)
			}
			if got := redact.New(p.RedactRules()).String(tt.pan); got != tt.masked {
				t.Errorf("got %q, want %q", got, tt.masked)
			}
		})
	}
}

// What a policy acknowledges is shown first, in the summary and its own
// section, and again on each route it concerns.
func TestExplainShowsAcknowledgedDeviationsFirst(t *testing.T) {
	y := ackEveryRoute(t, mutateText(t, string(deploy.PolicyYAML), "base_url: https://chd-api.smartcore.pro ", "base_url: https://127.0.0.1:8443 "), "[nonstandard_host]")
	p, probs := lintBytes([]byte(y), LintOptions{})
	if len(probs) > 0 {
		t.Fatal(listProblems(probs))
	}
	report := string(Explain(p))
	for _, want := range []string{
		"| Deviations from the SmartPayments card fields | **3, acknowledged in the policy: see below** |",
		"## Acknowledged deviations from the SmartPayments card fields\n\n> **Warning:**",
		"| `/initPaymentHost2Host` | `nonstandard_host` | `routes[0].upstream` | card data goes to https://127.0.0.1:8443 (upstream \"chd-api\"), not to https://chd-api.smartcore.pro, the SmartPayments card-data host |",
		"| `/withdrawal/init` | `nonstandard_host` | `routes[2].upstream` |",
		"- **Acknowledged deviations: `nonstandard_host`**",
	} {
		wantInReport(t, report, want)
	}
	if strings.Index(report, "## Acknowledged deviations") > strings.Index(report, "## Upstreams") {
		t.Error("the acknowledged deviations come after the upstreams, want them first")
	}
	if def := string(Explain(defaultPolicy(t))); !strings.Contains(def, "| Deviations from the SmartPayments card fields | none |") || strings.Contains(def, "Acknowledged deviations") {
		t.Error("the default report does not say it has no deviation")
	}
}

func wantInReport(t *testing.T, report, want string) {
	t.Helper()
	if !strings.Contains(report, want) {
		t.Errorf("report lacks %q", want)
	}
}
