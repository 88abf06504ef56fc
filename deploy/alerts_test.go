package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testenv"
)

// TestAlertRules: Prometheus loads the rules (`promtool check rules`), and each
// alert fires, and stays quiet, as prometheus/alerts_test.yaml says.
func TestAlertRules(t *testing.T) {
	bin := testenv.Promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yaml"},
		{"test", "rules", "prometheus/alerts_test.yaml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesAreAllUnitTested: every alert of alerts.yaml is named in
// alerts_test.yaml, firing at least once (an exp_labels entry) and quiet at least
// once (exp_alerts: []).
func TestAlertRulesAreAllUnitTested(t *testing.T) {
	rules, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var alerts int
	for _, line := range strings.Split(string(rules), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: ")
		if !ok {
			continue
		}
		alerts++
		quiet := strings.Contains(string(tests), "alertname: "+name+", exp_alerts: []}")
		firing := strings.Contains(string(tests), "alertname: "+name+"\n")
		if !quiet || !firing {
			t.Errorf("%s: tested firing %v, tested quiet %v; want both", name, firing, quiet)
		}
	}
	if alerts < 10 {
		t.Fatalf("found %d alerts in alerts.yaml, want the dozen it has", alerts)
	}
}

// TestGrafanaDashboard: the dashboard is valid JSON whose panels each have a
// unique id and every query an expr (that the exprs name only exported metrics is
// checked against a real scrape in proxy/metrics_test.go).
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/chdproxy.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/chdproxy.json: %v", err)
	}
	ids := map[int]bool{}
	var queries int
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty expr", p.Title)
			}
			queries++
		}
	}
	if dash.UID == "" || queries < 20 {
		t.Fatalf("dashboard uid %q with %d queries; want a uid and its panels", dash.UID, queries)
	}
}
