package proxy_test

// Attacks on GET /metrics: a scrape is read by more people and systems than the
// audit trail (dashboards, long-term storage, other teams), so nothing a caller
// sent may reach it — no card data, token id, key, client address, path,
// idempotency key or origin — and no caller input may add series (a label per
// path or address would also let anyone exhaust Prometheus).

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

// hostileMetricsTraffic sends requests that carry card data, tokens, keys and
// odd values everywhere a caller can put them, on every listener, from addresses
// behind the trusted proxy. It returns what must never be in a scrape.
func (h *harness) hostileMetricsTraffic(t *testing.T, round int) []string {
	t.Helper()
	n := strconv.Itoa(round)
	xff := "198.51.100." + n
	idem := "idem-secret-" + n
	origin := "https://evil-" + n + ".example"
	oddPaths := []string{
		"/secret-path-" + n, "/v1/tokens/..%2f..%2fetc%2fpasswd-" + n, "/" + testcards.Visa + "/" + n,
		"/initPaymentHost2Host/extra-" + n, "/%2e%2e/admin-" + n,
	}
	hdr := headers{"X-Forwarded-For": xff, "Origin": origin}
	once := func(k string) headers { return withHeaders(headers{"Idempotency-Key": idem + k}, hdr) }
	card := h.tokenize(t, merchantA, cardFields(testcards.Success, testcards.CVV)).Token
	wallet := h.walletToken(t, "googlePayDPan", testcards.DPANGoogle, "Mastercard")
	must := []string{card, wallet, "tok_", xff, idem, origin, "127.0.0.1", "evil-"}

	// Bad keys, one of them another role's real secret, another a PAN.
	for _, bad := range []string{"pk_not-a-key-" + n, h.keys[merchantA][proxy.RoleSecret], testcards.Amex} {
		h.do(t, http.MethodPost, h.collect+"/v1/tokens", cardFields(testcards.Visa, testcards.CVV), withHeaders(headers{"Authorization": "Bearer " + bad}, hdr))
		must = append(must, bad)
	}
	// Bad bodies with card data, and tokens where none may go.
	h.do(t, http.MethodPost, h.collect+"/v1/tokens", `{"card_number":"`+testcards.Visa+`",`, withHeaders(h.bearer(merchantA, proxy.RolePublishable), hdr))
	h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"card_number": testcards.Visa, "card_cvv": testcards.CVV}), hdr)
	h.fwd(t, merchantA, http.MethodPost, "/check?card="+testcards.Visa, map[string]any{"order_id": card}, hdr)
	h.fwd(t, merchantB, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), card), hdr)
	h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), card), once("-card"))
	h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", paymentBody(h.orderID(), map[string]any{"payment_method": "googlePayDPan", "google_pay_dpan": wallet}), once("-wallet"))
	h.col(t, merchantA, cardFields(testcards.Visa, testcards.CVV), once("-collect"))
	h.do(t, http.MethodGet, h.forward+"/v1/tokens/"+card, nil, h.fwdHeaders(merchantB, hdr))
	h.do(t, http.MethodDelete, h.admin+"/v1/tokens/"+card, nil, withHeaders(h.bearer(merchantA, proxy.RoleAdmin), hdr))
	for _, p := range oddPaths {
		for _, base := range []string{h.collect, h.forward, h.admin} {
			h.do(t, http.MethodGet, base+p, nil, hdr)
		}
		must = append(must, strings.Trim(p, "/"))
	}
	for _, secrets := range h.keys {
		for _, s := range secrets {
			must = append(must, s, keyID(s))
		}
	}
	return must
}

// TestHostile_MetricsScrapeShowsNoCallerData: after hostile traffic of every kind,
// the scrape holds no test card data and none of the tokens, keys, key ids,
// client addresses, paths, idempotency keys or origins the requests carried.
func TestHostile_MetricsScrapeShowsNoCallerData(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{trustedProxies: behindProxy})
	must := h.hostileMetricsTraffic(t, 7)
	fams, body := h.scrape(t)
	if what := findCardData(body, must...); what != "" {
		t.Fatalf("the scrape holds %s", what)
	}
	// The traffic was counted (a scrape that counted nothing would pass the above).
	wantAtLeast(t, fams, "chdproxy_http_requests_total", map[string]string{"route": "unmatched"}, 15)
	wantAtLeast(t, fams, "chdproxy_upstream_requests_total", map[string]string{"card_data_sent": "true"}, 2)
	wantAtLeast(t, fams, "chdproxy_http_requests_total", map[string]string{"listener": "collect", "code": "unauthorized"}, 3)
	wantAtLeast(t, fams, "chdproxy_http_requests_total", map[string]string{"listener": "forward", "code": "raw_card_data"}, 2)
	wantAtLeast(t, fams, "chdproxy_audit_summarised_refusals_total", map[string]string{"listener": "collect", "code": "unauthorized"}, 3)
	// Every label value is one of our fixed words.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); v != "" && !fixedWord.MatchString(v) {
					t.Errorf("%s{%s=%q}: not a fixed word", name, l.GetName(), v)
				}
			}
		}
	}
}

// TestHostile_MetricsSeriesDoNotGrowWithCallerInput: a second round of hostile
// traffic with new paths, addresses, keys, idempotency keys and origins adds no
// series: labels are listener, route name, code, merchant of a configured key.
func TestHostile_MetricsSeriesDoNotGrowWithCallerInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{trustedProxies: behindProxy})
	h.hostileMetricsTraffic(t, 1)
	h.hostileMetricsTraffic(t, 2)
	h.scrape(t) // so that /metrics's own series is in the next one
	first, _ := h.scrape(t)
	for round := 3; round < 7; round++ {
		h.hostileMetricsTraffic(t, round)
	}
	second, _ := h.scrape(t)
	if a, b := chdproxySeries(first), chdproxySeries(second); b != a {
		t.Errorf("chdproxy series: %d after two rounds of hostile traffic, %d after six; want no growth", a, b)
	}
	wantAtLeast(t, second, "chdproxy_http_requests_total", map[string]string{"route": "unmatched"}, 6*15)
}

// TestHostile_MetricsOnlyOnTheAdminListener: the collect and forward listeners,
// which face browsers and merchants, have no /metrics.
func TestHostile_MetricsOnlyOnTheAdminListener(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for _, base := range []string{h.collect, h.forward} {
		wantError(t, h.do(t, http.MethodGet, base+"/metrics", nil, nil), http.StatusNotFound, "not_found")
	}
	h.scrape(t) // no key needed on admin (metrics.go says why)
}
