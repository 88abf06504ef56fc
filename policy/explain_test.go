package policy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/deploy"
)

var update = flag.Bool("update", false, "rewrite docs/pci/policy-report.md from deploy/policy.yaml")

const reportPath = "../docs/pci/policy-report.md"

// TestExplainGolden keeps docs/pci/policy-report.md in step with
// deploy/policy.yaml. After changing the policy (even a comment, since the
// report names the file's SHA-256), run
//
//	go test ./policy -run TestExplainGolden -update
func TestExplainGolden(t *testing.T) {
	p, err := Parse(deploy.PolicyYAML, LintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := Explain(p)
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
	a := Explain(Default())
	for i := 0; i < 20; i++ {
		if b := Explain(Default()); !bytes.Equal(a, b) {
			t.Fatal("two reports of the same policy differ")
		}
	}
	// Reordering the file's routes changes the hash, not the rest.
	reordered := strings.Replace(basePolicy, "  - name: pay\n", "  - name: zzz\n", 1)
	p1, _ := Decode([]byte(basePolicy))
	p2, _ := Decode([]byte(reordered))
	r1 := strings.SplitN(string(Explain(p1)), "## Upstreams", 2)[1]
	r2 := strings.SplitN(string(Explain(p2)), "## Upstreams", 2)[1]
	if strings.Replace(r2, "`zzz`", "`pay`", 1) != r1 {
		t.Error("report depends on more than the policy's content")
	}
}

func TestExplainStatesWhatAuditorsNeed(t *testing.T) {
	p := Default()
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
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(report, "overridden") {
		t.Error("report of the file policy mentions overrides")
	}
	dev, _ := p.WithUpstreams(map[string]string{"chd-api": "http://127.0.0.1:8083"})
	if !strings.Contains(string(Explain(dev)), "the base URLs of `chd-api` were overridden") {
		t.Error("report of an overridden policy does not say so")
	}
}
