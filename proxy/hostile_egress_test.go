package proxy_test

// Hostile-input suite (see hostile_body_test.go): SSRF, and what chdproxy sends to
// and takes from upstreams.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestHostile_SSRFViaCallbackURL(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	evil := startTrapListener(t)
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	cb := "http://" + evil.addr() + "/callback"
	body := cardPayment(h.orderID(), tok)
	for _, f := range []string{"callback_url", "success_url", "fail_url", "status_url"} {
		body[f] = cb
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", body), http.StatusOK)
	wantStatus(t, h.post(t, "/refund", map[string]any{"order_id": body["order_id"], "amount": 1000, "reason": "r", "callback_url": cb}), http.StatusOK)
	got := h.sandbox.Received("/initPaymentHost2Host")
	if len(got) != 1 || !bytes.Contains(got[0].Body, []byte(`"callback_url":"`+cb+`"`)) {
		t.Error("callback_url did not reach the upstream untouched")
	}
	evil.assertNoConnection(t)
}

func TestHostile_SSRFViaHostHeader(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	evil := startTrapListener(t)
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	hdr := headers{"Host": evil.addr(), "X-Forwarded-Host": evil.addr(), "X-Original-URL": "http://" + evil.addr() + "/", "Forwarded": "host=" + evil.addr()}
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), hdr), http.StatusOK)
	h.wantUpstreamCalls(t, "/initPaymentHost2Host", 1)
	evil.assertNoConnection(t)
}

func TestHostile_SSRFViaAbsoluteFormTarget(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	evil := startTrapListener(t)
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := string(mustJSON(t, cardPayment(h.orderID(), tok)))
	req := rawRequest("POST http://"+evil.addr()+"/initPaymentHost2Host HTTP/1.1", []string{
		"Host: " + evil.addr(), "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth,
		"Content-Type: application/json", "Content-Length: " + strconv.Itoa(len(body)), "Connection: close",
	}, body)
	resps, _ := h.raw(t, h.fwdAddr, req, 5*time.Second)
	if len(resps) != 1 || resps[0].status != http.StatusOK {
		t.Fatalf("got %v, want one 200 from the policy's upstream", statuses(resps))
	}
	h.wantUpstreamCalls(t, "/initPaymentHost2Host", 1)
	evil.assertNoConnection(t)
}

func TestHostile_UpstreamRedirectNotFollowed(t *testing.T) {
	evil := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {}}
	evilSrv := startTLSUpstream(t, evil)
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evilSrv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
	wantStatus(t, r, http.StatusTemporaryRedirect)
	r = h.post(t, "/check", map[string]any{"order_id": h.orderID()})
	wantStatus(t, r, http.StatusTemporaryRedirect)
	if n := up.arrivals(""); n != 2 {
		t.Errorf("the upstream saw %d requests, want 2", n)
	}
	if n := evil.arrivals(""); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
}

func TestHostile_UpstreamAnswerWithCardDataIsRedacted(t *testing.T) {
	forms := testcards.Spellings(testcards.Success)
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		ct := map[string]string{"json": "application/json", "html": "text/html", "bin": "application/octet-stream", "none": "", "weird": "application/x-custom"}[r.URL.Query().Get("ct")]
		if r.URL.Query().Get("ct") == "" {
			ct = "application/json"
		}
		w.Header()["Content-Type"] = []string{ct}
		w.Header().Set("X-Debug-Card", testcards.Success)
		w.Header().Set("Location", "https://example.com/receipt?pan="+testcards.Decline)
		fmt.Fprintf(w, `{"card":{"number":"%s","grouped":"%s","num":%s,"esc":"%s","wide":"%s"},"card_cvv":"%s","echo":{"card_number":"%s","cvv":%s}}`,
			testcards.Success, forms["grouped (spaces)"], testcards.Decline, forms["JSON \\u-escaped"], forms["fullwidth digits"], testcards.CVV, testcards.Amex, testcards.CVVAmex)
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
	for _, ct := range []string{"json", "html", "bin", "none", "weird"} {
		wantStatus(t, h.post(t, "/check?ct="+ct, map[string]any{"order_id": h.orderID()}), http.StatusOK)
	}
}

func TestHostile_EgressUpstreamNameResolvingToAnInternalAddress(t *testing.T) {
	name := loopbackHostname()
	if name == "" {
		t.Skip("no host name other than localhost resolves to loopback here")
	}
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }}
	h := newHarness(t, harnessOptions{upstream: up, upstreamBase: func(u string) string { return strings.Replace(u, "127.0.0.1", name, 1) }})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantError(t, h.post(t, "/check", map[string]any{"order_id": h.orderID()}), http.StatusBadGateway, "egress_denied")
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusBadGateway, "egress_denied")
	if n := up.arrivals(""); n != 0 {
		t.Errorf("the upstream got %d requests through %s, want 0", n, name)
	}
}

func TestHostile_EgressOnlyToPolicyHosts(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	evil := startTrapListener(t)
	for _, u := range []string{"https://" + evil.addr() + "/", "http://" + evil.addr() + "/", "https://169.254.169.254/latest/meta-data/"} {
		resp, err := h.client.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s through the upstream client succeeded, want an egress refusal", u)
			continue
		}
		if !strings.Contains(err.Error(), "not allowed by the policy") {
			t.Errorf("GET %s: got %v, want the egress refusal", u, err)
		}
	}
	if tr, ok := h.client.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Error("the upstream client may use a proxy from the environment")
	}
	if h.client.CheckRedirect == nil {
		t.Error("the upstream client follows redirects")
	}
	evil.assertNoConnection(t)
}

func TestHostile_EgressUntrustedUpstreamCertificate(t *testing.T) {
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }}
	h := newHarness(t, harnessOptions{upstream: up, upstreamTLS: &tls.Config{}}) // httptest's own certificate
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	wantError(t, h.post(t, "/check", map[string]any{"order_id": h.orderID()}), http.StatusBadGateway, "upstream_unavailable")
	wantError(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusBadGateway, "upstream_unavailable")
	if n := up.arrivals(""); n != 0 {
		t.Errorf("the upstream got %d requests over unverified TLS, want 0", n)
	}
}

func TestHostile_EgressRefusesTLSBelow12(t *testing.T) {
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }}
	cfg := &tls.Config{Certificates: []tls.Certificate{serverCert(t)}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	h := newHarness(t, harnessOptions{upstream: up, upstreamTLS: cfg})
	wantError(t, h.post(t, "/check", map[string]any{"order_id": h.orderID()}), http.StatusBadGateway, "upstream_unavailable")
	if n := up.arrivals(""); n != 0 {
		t.Errorf("the upstream got %d requests over TLS 1.1, want 0", n)
	}
}
