package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

// A forward request's deadline is the sum of its parts, each at its configured bound
// (README, "Deadlines"), and the servers' write timeout is always past it: never below
// the 45 s default, raised when the parts need more.
func TestForwardDeadlineIsTheSumOfItsParts(t *testing.T) {
	s := time.Second
	for _, tt := range []struct {
		name      string
		cfg       proxy.Config
		read      time.Duration
		deadline  time.Duration
		wantWrite time.Duration
	}{
		{"defaults: 15 read + 1 claim + 1 slot + 5 vault + 3 TCP + 3 TLS + 1 mark + 30 answer + 2 scrub + 5 CVV drop + 1 settle",
			proxy.Config{}, 15 * s, 67 * s, 68 * s},
		{"serve's defaults: vault.timeout 2 s + Redis 1 s",
			proxy.Config{VaultTimeout: 3 * s}, 15 * s, 63 * s, 64 * s},
		{"short parts keep the 45 s default",
			proxy.Config{VaultTimeout: s, Limits: proxy.Limits{SlotWait: 100 * time.Millisecond},
				Upstream: proxy.UpstreamOptions{ConnectTimeout: s, ResponseTimeout: 10 * s}}, 5 * s, 24100 * time.Millisecond, 45 * s},
		{"a long response timeout raises the write timeout",
			proxy.Config{VaultTimeout: 3 * s, Upstream: proxy.UpstreamOptions{ResponseTimeout: 120 * s}}, 15 * s, 153 * s, 154 * s},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := proxy.ForwardDeadline(tt.cfg, tt.read); got != tt.deadline {
				t.Errorf("ForwardDeadline: got %v, want %v", got, tt.deadline)
			}
			if tt.read != proxy.DefaultTimeouts.Read {
				return
			}
			to := proxy.ServerTimeouts(tt.cfg)
			if to.Write != tt.wantWrite || to.Write <= tt.deadline {
				t.Errorf("write timeout: got %v, want %v (past the %v deadline)", to.Write, tt.wantWrite, tt.deadline)
			}
			if to.Read != proxy.DefaultTimeouts.Read || to.ReadHeader != proxy.DefaultTimeouts.ReadHeader || to.Idle != proxy.DefaultTimeouts.Idle {
				t.Errorf("only the write timeout changes: got %+v", to)
			}
		})
	}
}

// A payment whose body arrives as slowly as the read timeout allows and whose answer
// comes just inside the response timeout is answered, not cut by the server, when the
// write timeout is composed as ServerTimeouts composes it (here from the harness's
// short parts); the upstream received it once. Body and answer together take longer
// than the read timeout plus a second, so a write timeout blind to the upstream part
// would cut it.
func TestForwardSlowBodyThenSlowAnswerIsNotCut(t *testing.T) {
	const read, response, vaultBound = 1500 * time.Millisecond, 2 * time.Second, 500 * time.Millisecond
	up := &fakeUpstream{respond: func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(response - 200*time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":1}`)
	}}
	h := newHarness(t, harnessOptions{upstream: up, responseTimeout: response, vaultTimeout: vaultBound})
	cfg := proxy.Config{VaultTimeout: vaultBound, Upstream: proxy.UpstreamOptions{ConnectTimeout: 2 * time.Second, ResponseTimeout: response}}
	write := proxy.ForwardDeadline(cfg, read) + time.Second
	addr := h.serve(h.listeners.Forward, proxy.Timeouts{ReadHeader: time.Second, Read: read, Write: write, Idle: time.Second})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	body := mustJSON(t, cardPayment(h.orderID(), tok))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /initPaymentHost2Host HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer %s\r\nAuthorization: %s\r\nIdempotency-Key: slow-body\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		h.keys[merchantA][proxy.RoleSecret], testcards.BasicAuth, len(body))
	start := time.Now()
	const pieces = 10
	for i := range pieces { // the body over most of the read timeout
		_, _ = c.Write(body[i*len(body)/pieces : (i+1)*len(body)/pieces])
		time.Sleep((read - 300*time.Millisecond) / pieces)
	}
	_ = c.SetReadDeadline(time.Now().Add(write + time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer after %v: %v (the server cut a payment that was sent)", time.Since(start), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got %d, want 200", resp.StatusCode)
	}
	if n := up.arrivals("/initPaymentHost2Host"); n != 1 {
		t.Errorf("the upstream received %d payments, want 1", n)
	}
	t.Logf("answered after %v (body ≈ %v, answer ≈ %v, write timeout %v)", time.Since(start), read-300*time.Millisecond, response-200*time.Millisecond, write)
}
