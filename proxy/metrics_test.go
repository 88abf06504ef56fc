package proxy_test

// GET /metrics on the admin listener: the series an SRE graphs and alerts on,
// checked after real traffic; promtool's lint of the scrape; the dashboard and
// alert rules in deploy/ reference only series a scrape has. The hostile side
// (what a scrape must never show) is in hostile_metrics_test.go.

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gopkg.in/yaml.v3"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// scrape GETs /metrics without any key and parses the text format.
func (h *harness) scrape(t testing.TB) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	r := h.do(t, http.MethodGet, h.admin+"/metrics", nil, nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type: got %q, want text/plain", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams, r.body
}

// series is the sum of the samples of name whose labels include want (a
// histogram's sample count); ok is false when there is none.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, ok bool) {
	f, found := fams[name]
	if !found {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		ok = true
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return sum, ok
}

// fixedWord is what a label value may be: a listener, route name, code, kind,
// merchant id or operation; never a path, address or anything with '/' or ':'.
var fixedWord = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// chdproxySeries counts the series of our own metrics (not Go's or the process's).
func chdproxySeries(fams map[string]*dto.MetricFamily) int {
	n := 0
	for name, f := range fams {
		if strings.HasPrefix(name, "chdproxy_") {
			n += len(f.GetMetric())
		}
	}
	return n
}

// wantAtLeast fails unless the series of name with labels has a value of at least min.
func wantAtLeast(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels map[string]string, min float64) {
	t.Helper()
	got, ok := series(fams, name, labels)
	if !ok {
		t.Errorf("%s %v: no such series", name, labels)
		return
	}
	if got < min {
		t.Errorf("%s %v: got %v, want at least %v", name, labels, got, min)
	}
}

// metricsTraffic runs one of each kind of request the series count, and returns
// the token ids it made.
func (h *harness) metricsTraffic(t *testing.T) []string {
	t.Helper()
	card := h.cardToken(t, testcards.Success, testcards.CVV)
	apple := h.walletToken(t, "applePayDPan", testcards.DPANApple, "Visa")
	google := h.walletToken(t, "googlePayDPan", testcards.DPANGoogle, "Mastercard")
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), card)), http.StatusOK)
	wantStatus(t, h.post(t, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"payment_method": "applePayDPan", "apple_pay_dpan": apple})), http.StatusOK)
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), card)), http.StatusConflict, "cvv_unavailable")
	wantError(t, h.post(t, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"card_number": testcards.Visa})), http.StatusBadRequest, "raw_card_data")
	wantStatus(t, h.do(t, http.MethodDelete, h.admin+"/v1/tokens/"+google, nil, h.bearer(merchantA, proxy.RoleAdmin)), http.StatusNoContent)
	wantError(t, h.do(t, http.MethodGet, h.forward+"/no/such/route", nil, nil), http.StatusNotFound, "not_found")
	wantStatus(t, h.do(t, http.MethodGet, h.admin+"/readyz", nil, nil), http.StatusOK)
	return []string{card, apple, google}
}

// TestMetrics_SeriesCountWhatHappened: after one of each request, the RED series,
// token events, upstream outcomes, dependency latencies and checks, and the Go
// and process collectors are all in the scrape with the counts of that traffic.
func TestMetrics_SeriesCountWhatHappened(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.metricsTraffic(t)
	h.auditor.inner.(interface{ Flush() }).Flush()
	fams, _ := h.scrape(t)

	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"chdproxy_http_requests_total", map[string]string{"listener": "collect", "route": "tokenize", "code": "none", "status_class": "2xx", "merchant": merchantA}, 3},
		{"chdproxy_http_requests_total", map[string]string{"listener": "forward", "route": "initPaymentHost2Host", "code": "cvv_unavailable", "status_class": "4xx", "merchant": merchantA}, 1},
		{"chdproxy_http_requests_total", map[string]string{"listener": "forward", "route": "unmatched", "code": "not_found", "merchant": ""}, 1},
		{"chdproxy_http_requests_total", map[string]string{"listener": "admin", "route": "readyz", "status_class": "2xx"}, 1},
		{"chdproxy_http_request_duration_seconds", map[string]string{"listener": "collect", "route": "tokenize"}, 3},
		{"chdproxy_tokens_created_total", map[string]string{"kind": "card"}, 1},
		{"chdproxy_tokens_created_total", map[string]string{"kind": "apple_pay"}, 1},
		{"chdproxy_tokens_created_total", map[string]string{"kind": "google_pay"}, 1},
		{"chdproxy_tokens_revealed_total", map[string]string{"kind": "card"}, 1},
		{"chdproxy_tokens_revealed_total", map[string]string{"kind": "apple_pay"}, 1},
		{"chdproxy_tokens_deleted_total", nil, 1},
		{"chdproxy_cvvs_consumed_total", nil, 1},
		{"chdproxy_upstream_requests_total", map[string]string{"route": "initPaymentHost2Host", "outcome": "answered_2xx", "card_data_sent": "true"}, 2},
		{"chdproxy_redis_duration_seconds", map[string]string{"op": "put", "outcome": "ok"}, 3},
		{"chdproxy_redis_duration_seconds", map[string]string{"op": "take_cvv", "outcome": "ok"}, 1},
		{"chdproxy_redis_duration_seconds", map[string]string{"op": "take_wallet", "outcome": "ok"}, 1},
		{"chdproxy_audit_fsync_duration_seconds", nil, 1},
		{"chdproxy_audit_batch_records", nil, 1},
		{"chdproxy_dependency_up", map[string]string{"dependency": "vault"}, 1},
		{"chdproxy_dependency_up", map[string]string{"dependency": "redis"}, 1},
		{"chdproxy_dependency_up", map[string]string{"dependency": "audit"}, 1},
		{"go_goroutines", nil, 1},
		{"process_start_time_seconds", nil, 1},
	} {
		wantAtLeast(t, fams, c.name, c.labels, c.min)
	}
	// Exactly: the one CVV was consumed once, the refused replay consumed nothing.
	if got, _ := series(fams, "chdproxy_cvvs_consumed_total", nil); got != 1 {
		t.Errorf("chdproxy_cvvs_consumed_total: got %v, want 1", got)
	}
	// Series of fixed label values exist before their first event.
	for _, reason := range []string{"key", "client", "upstream_busy", "vault_busy"} {
		if got, ok := series(fams, "chdproxy_limiter_refusals_total", map[string]string{"reason": reason}); !ok || got != 0 {
			t.Errorf("chdproxy_limiter_refusals_total{reason=%q}: got %v (present %v), want 0", reason, got, ok)
		}
	}
}

// TestMetrics_DependencyUpFollowsTheOutage: chdproxy_dependency_up is checked at
// each scrape, so an idle replica's broken Vault, Redis or audit sink shows.
func TestMetrics_DependencyUpFollowsTheOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		dep     string
		breakIt func(h *harness)
	}{
		{"transit failing is vault down", "vault", func(h *harness) { h.transit.setFail(vault.ErrUnavailable) }},
		{"transit hanging past the deadline is vault down, the rest up", "vault", func(h *harness) { h.transit.setHang(5 * time.Second) }},
		{"redis closed is redis down", "redis", func(h *harness) { h.closeRedis() }},
		{"the audit sink failing is audit down", "audit", func(h *harness) { h.auditor.fail.Store(true) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			tt.breakIt(h)
			fams, _ := h.scrape(t)
			for _, dep := range []string{"vault", "redis", "audit"} {
				want := 1.0
				if dep == tt.dep {
					want = 0
				}
				if got, ok := series(fams, "chdproxy_dependency_up", map[string]string{"dependency": dep}); !ok || got != want {
					t.Errorf("chdproxy_dependency_up{dependency=%q}: got %v (present %v), want %v", dep, got, ok, want)
				}
			}
		})
	}
}

// TestMetrics_LimiterRefusalsCountedByReason: a refused key, a refused client
// address and a busy vault slot each count under their own reason.
func TestMetrics_LimiterRefusalsCountedByReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{limits: proxy.Limits{PerKeyRate: 0.001, PerKeyBurst: 1}, trustedProxies: behindProxy})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantStatus(t, h.do(t, http.MethodGet, h.forward+"/v1/tokens/"+tok, nil, h.fwdHeaders(merchantA, nil)), http.StatusOK)
	wantError(t, h.do(t, http.MethodGet, h.forward+"/v1/tokens/"+tok, nil, h.fwdHeaders(merchantA, nil)), http.StatusTooManyRequests, "rate_limited")
	fams, _ := h.scrape(t)
	wantAtLeast(t, fams, "chdproxy_limiter_refusals_total", map[string]string{"reason": "key"}, 1)

	// From one address behind the trusted proxy; the scrape comes from another.
	flood := headers{"X-Forwarded-For": "203.0.113.9"}
	for range 25 {
		h.do(t, http.MethodGet, h.admin+"/nowhere", nil, flood)
	}
	wantError(t, h.do(t, http.MethodGet, h.admin+"/nowhere", nil, flood), http.StatusTooManyRequests, "rate_limited")
	fams, _ = h.scrape(t)
	wantAtLeast(t, fams, "chdproxy_limiter_refusals_total", map[string]string{"reason": "client"}, 1)
	if got, _ := series(fams, "chdproxy_limiter_refusals_total", map[string]string{"reason": "vault_busy"}); got != 0 {
		t.Errorf("chdproxy_limiter_refusals_total{reason=\"vault_busy\"}: got %v, want 0", got)
	}
}

// TestMetrics_PromtoolAcceptsTheScrape runs `promtool check metrics` (Prometheus's
// own lint of names, types, units and help) on a scrape after real traffic.
func TestMetrics_PromtoolAcceptsTheScrape(t *testing.T) {
	promtool := testenv.Promtool(t)
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.metricsTraffic(t)
	_, body := h.scrape(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// metricName finds the metric names of our collectors in PromQL: a dashboard or
// rule naming a series nothing exports graphs nothing and never fires.
var metricName = regexp.MustCompile(`\b(?:chdproxy|go|process)_[a-z0-9_]+\b`)

// TestMetrics_DashboardAndAlertsNameOnlyScrapedSeries: every metric name in an
// expr of deploy/grafana/chdproxy.json and deploy/prometheus/alerts.yaml is in a
// scrape (a histogram by its _bucket, _sum or _count series).
func TestMetrics_DashboardAndAlertsNameOnlyScrapedSeries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.metricsTraffic(t)
	h.listeners.CertificateExpires("admin", time.Now().Add(90*24*time.Hour))
	fams, _ := h.scrape(t)
	exported := func(name string) bool {
		if _, ok := fams[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := fams[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) &&
				(f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
				return true
			}
		}
		return false
	}
	for _, file := range []string{"../deploy/grafana/chdproxy.json", "../deploy/prometheus/alerts.yaml"} {
		exprs := exprsOf(t, file)
		if len(exprs) == 0 {
			t.Fatalf("%s: no expr found", file)
		}
		var names []string
		for _, e := range exprs {
			names = append(names, metricName.FindAllString(e, -1)...)
		}
		if len(names) == 0 {
			t.Fatalf("%s: no chdproxy metric named", file)
		}
		for _, n := range slices.Compact(slices.Sorted(slices.Values(names))) {
			if !exported(n) {
				t.Errorf("%s names %s, which no scrape has", file, n)
			}
		}
	}
}

// exprsOf returns every PromQL expression of the dashboard (the "expr" of its
// panels' targets) or of the rule file (each rule's "expr"): JSON is YAML, so
// one walk of the decoded file finds both.
func exprsOf(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				out = append(out, e)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}

// TestIntegrationMetrics_VaultAndRedisLatencyOnRealServers: on a real Vault
// (transit behind the coalescer, as serve runs it) and a real redis-server, each
// transit call, coalesced batch and Redis round trip of the traffic is counted.
func TestIntegrationMetrics_VaultAndRedisLatencyOnRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Parallel()
	transit, _ := realVault(t, 5*time.Second)
	h := newHarness(t, harnessOptions{transit: vault.Coalesce(transit, vault.CoalesceOptions{}), realRedis: true})
	h.metricsTraffic(t)
	fams, _ := h.scrape(t)
	for _, call := range []map[string]string{
		{"op": "encrypt", "key": "card", "outcome": "ok"},
		{"op": "encrypt", "key": "cvv", "outcome": "ok"},
		{"op": "decrypt", "key": "card", "outcome": "ok"},
		{"op": "decrypt", "key": "cvv", "outcome": "ok"},
		{"op": "hmac", "key": "fingerprint", "outcome": "ok"},
	} {
		wantAtLeast(t, fams, "chdproxy_vault_transit_duration_seconds", call, 1)
		wantAtLeast(t, fams, "chdproxy_vault_coalesced_batch_items", map[string]string{"op": call["op"], "key": call["key"]}, 1)
	}
	for _, op := range []string{"put", "get", "take_cvv", "take_wallet", "del", "ping"} {
		wantAtLeast(t, fams, "chdproxy_redis_duration_seconds", map[string]string{"op": op, "outcome": "ok"}, 1)
	}
	wantAtLeast(t, fams, "chdproxy_dependency_up", map[string]string{"dependency": "vault"}, 1)
}
