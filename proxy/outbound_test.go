package proxy_test

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

// resetConnection answers nothing: it drops the connection with a TCP reset
// after the whole request has arrived.
func resetConnection(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // RST instead of FIN
		}
	}
	_ = conn.Close()
}

func TestForwardNeverRetriesARequestThatMayHaveBeenSent(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/initPaymentHost2Host" || r.URL.Path == "/refund" {
			resetConnection(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":1}`))
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)

	t.Run("a plain client would retry this request on a reused connection", func(t *testing.T) {
		// The control: net/http replays a request it believes idempotent when a kept-alive
		// connection fails, which is what the proxy must never let happen to a payment.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: theCA(t).Pool}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		warm, err := c.Post(h.upstream.URL+"/check", "application/json", bytes.NewReader([]byte(`{}`)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, warm.Body)
		warm.Body.Close()
		req, _ := http.NewRequest(http.MethodPost, h.upstream.URL+"/refund", bytes.NewReader([]byte(`{}`)))
		req.Header.Set("Idempotency-Key", "control")
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
		if n := up.arrivals("/refund"); n < 2 {
			t.Fatalf("arrivals of a replayable request: got %d, want at least 2 (the test would prove nothing)", n)
		}
	})

	tests := []struct {
		name string
		path string
		body any
	}{
		{"an injected payment whose connection is reset reaches the upstream once", "/initPaymentHost2Host", cardPayment(h.orderID(), tok)},
		{"a passthrough refund whose connection is reset reaches the upstream once", "/refund", map[string]any{"order_id": "o", "amount": 1, "reason": "r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.arrivals(tt.path)
			// Warm a kept-alive connection first: net/http only retries on reused ones.
			wantStatus(t, h.post(t, "/check", map[string]any{"order_id": "o"}), http.StatusOK)
			r := h.fwd(t, merchantA, http.MethodPost, tt.path, tt.body, map[string]string{
				"Idempotency-Key": "pay-once-" + tt.path, "X-Idempotency-Key": "pay-once",
			})
			// The request was written: the backend is told its outcome is unknown, not "nothing sent".
			wantError(t, r, http.StatusBadGateway, "upstream_result_unknown")
			if got := up.arrivals(tt.path) - before; got != 1 {
				t.Errorf("arrivals at the upstream: got %d, want 1", got)
			}
		})
	}
	if got := up.body("/initPaymentHost2Host", 0); !bytes.Contains(got, []byte(testcards.Success)) {
		t.Error("the reset payment did not carry the injected PAN: the test did not exercise injection")
	}
}

func TestForwardMapsUpstreamFailuresToStableCodes(t *testing.T) {
	t.Parallel()
	t.Run("an upstream that hangs gives 504 upstream_timeout quickly", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}}
		h := newHarness(t, harnessOptions{upstream: up, responseTimeout: 300 * time.Millisecond})
		defer close(release)
		tok := h.cardToken(t, testcards.Success, testcards.CVV)
		start := time.Now()
		r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
		wantError(t, r, http.StatusGatewayTimeout, "upstream_timeout")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("answer after %s, want about the 300ms response timeout", d)
		}
		if n := up.arrivals("/initPaymentHost2Host"); n != 1 {
			t.Errorf("arrivals at the upstream: got %d, want 1", n)
		}
	})
	t.Run("an unreachable upstream gives 502 upstream_unavailable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there any more
		h := newHarness(t, harnessOptions{upstreamURL: "https://" + addr})
		tok := h.cardToken(t, testcards.Success, testcards.CVV)
		r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
		wantError(t, r, http.StatusBadGateway, "upstream_unavailable")
		r = h.post(t, "/check", map[string]any{"order_id": "o"})
		wantError(t, r, http.StatusBadGateway, "upstream_unavailable")
	})
	t.Run("an upstream whose certificate the test CA did not sign is refused", func(t *testing.T) {
		t.Parallel()
		up := &fakeUpstream{}
		h := newHarness(t, harnessOptions{upstream: up, upstreamTLS: &tls.Config{}}) // httptest's own certificate
		tok := h.cardToken(t, testcards.Success, testcards.CVV)
		r := h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok))
		wantError(t, r, http.StatusBadGateway, "upstream_unavailable")
		if n := up.arrivals("/initPaymentHost2Host"); n != 0 {
			t.Errorf("arrivals at the untrusted upstream: got %d, want 0", n)
		}
	})
}

func TestForwardDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	tests := []struct {
		name string
		path string
		body any
	}{
		{"a redirect answering an injected payment is returned, not followed", "/initPaymentHost2Host", cardPayment(h.orderID(), tok)},
		{"a redirect answering a passthrough call is returned, not followed", "/check", map[string]any{"order_id": "o"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post(t, tt.path, tt.body)
			if r.status != http.StatusTemporaryRedirect {
				t.Errorf("status: got %d, want %d", r.status, http.StatusTemporaryRedirect)
			}
			if n := up.arrivals("/elsewhere"); n != 0 {
				t.Errorf("arrivals at the redirect target: got %d, want 0", n)
			}
		})
	}
}

func TestForwardRedactsUpstreamResponses(t *testing.T) {
	t.Parallel()
	var gzipped atomic.Bool
	pan := testcards.Success
	last4, masked := pan[len(pan)-4:], pan[:6]+"******"+pan[len(pan)-4:]
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		body := []byte(`{"status":2,"card":{"number":"` + pan + `","masked":"` + masked + `"},` +
			`"card_cvv":"` + testcards.CVV + `","note":"paid with ` + testcards.Spellings(testcards.Decline)["grouped (spaces)"] +
			`","apple_pay_dpan":"` + testcards.DPANApple + `"}`)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Debug-Card", pan)
		if r.URL.Path == "/check" && strings.EqualFold(r.Header.Get("Accept-Encoding"), "identity") { // gzip although the proxy asks for identity
			var zb bytes.Buffer // compressed, the PAN is not visible until decoded
			zw := gzip.NewWriter(&zb)
			zw.Write(body)
			zw.Close()
			w.Header().Set("Content-Encoding", "gzip")
			body = zb.Bytes()
			gzipped.Store(true)
		}
		_, _ = w.Write(body)
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, c := range []struct {
		name string
		path string
		body any
	}{
		{"an injection route's answer is redacted", "/initPaymentHost2Host", cardPayment(h.orderID(), tok)},
		{"a passthrough route's gzip-compressed answer is redacted", "/check", map[string]any{"order_id": "o"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.post(t, c.path, c.body)
			wantStatus(t, r, http.StatusOK)
			if what := findCardData(r.body); what != "" {
				t.Errorf("the answer body contains %s", what)
			}
			var hdr bytes.Buffer
			r.header.Write(&hdr)
			if what := findCardData(hdr.Bytes()); what != "" {
				t.Errorf("the answer headers contain %s", what)
			}
			m := r.object(t)
			card, _ := m["card"].(map[string]any)
			if got, want := card["number"], "************"+last4; got != want {
				t.Errorf("card.number: got %q, want %q", got, want)
			}
			if got, want := card["masked"], masked; got != want {
				t.Errorf("an already masked number: got %q, want %q", got, want)
			}
			if got := m["status"]; got != float64(2) {
				t.Errorf("status: got %v, want 2", got)
			}
		})
	}
	if !gzipped.Load() {
		t.Error("the upstream never sent a gzip-compressed answer: the gzip case proved nothing")
	}
}

func TestUpstreamClientDialsOnlyThePolicysHosts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{upstream: &fakeUpstream{}})
	other := startTLSUpstream(t, &fakeUpstream{})
	c := h.client // the proxy's own
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{"the policy's upstream is dialled", h.upstream.URL + "/check", true},
		{"another server on the same host is not dialled", other.URL + "/check", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Post(tt.url, "application/json", bytes.NewReader([]byte(`{}`)))
			if err == nil {
				resp.Body.Close()
			}
			if got := err == nil && resp.StatusCode == http.StatusOK; got != tt.ok {
				t.Errorf("got success %v (err %v), want %v", got, err, tt.ok)
			}
		})
	}
}
