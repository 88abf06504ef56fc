package proxy_test

// Checkout lock-out (issue 11): the pk_ is shared by every shopper of a merchant, so
// one address flooding it must empty only its own bucket. Client addresses come from
// the TCP peer, or from X-Forwarded-For only through a configured trusted proxy.

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// behindProxy trusts the loopback peer of the test client as a load balancer.
var behindProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

func TestHostile_OneAddressFloodingThePublishableKeyLocksOutNoShopper(t *testing.T) {
	h := newHarness(t, harnessOptions{trustedProxies: behindProxy})
	const flooder = "203.0.113.7"
	// More requests than the pk_'s whole burst, all from one address.
	body := mustJSON(t, cardFields(testcards.Success, testcards.CVV))
	hdr := withHeaders(h.bearer(merchantA, proxy.RolePublishable), headers{"X-Forwarded-For": flooder})
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				r, err := h.send(http.MethodPost, h.collect+"/v1/tokens", body, "application/json", hdr)
				if err != nil {
					t.Error(err)
					return
				}
				if r.status == http.StatusCreated {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n, burst := accepted.Load(), proxy.DefaultLimits.PerClientBurst; n > int64(burst)+2 {
		t.Errorf("the flooding address got %d tokens, want about its burst of %d", n, burst)
	}
	// 20 real checkouts from other addresses right after: none is refused. Each
	// shopper's own header names the flooder; the proxy appended the shopper.
	for i := range 20 {
		shopper := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}).String()
		r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"X-Forwarded-For": flooder + ", " + shopper})
		if r.status != http.StatusCreated {
			t.Errorf("checkout %d from %s: got %d %q, want 201", i, shopper, r.status, r.code())
		}
	}
}

// Without a trusted proxy in front, X-Forwarded-For is the client's own text: a
// flooder naming a new address each time is still one TCP peer. A configured proxy
// that is not the peer changes nothing.
func TestHostile_SpoofedForwardedForFromAnUntrustedPeerIsIgnored(t *testing.T) {
	for name, trusted := range map[string][]netip.Prefix{
		"no trusted proxy":                     nil,
		"a trusted proxy that is not the peer": {netip.MustParsePrefix("10.0.0.0/8")},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{trustedProxies: trusted})
			burst := proxy.DefaultLimits.PerClientBurst
			for i := range burst + 5 {
				spoof := "192.0.2." + strconv.Itoa(i+1)
				r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"X-Forwarded-For": spoof})
				if want := http.StatusCreated; i >= burst {
					wantError(t, r, http.StatusTooManyRequests, "rate_limited")
				} else if r.status != want {
					t.Fatalf("request %d: got %d %q, want %d", i, r.status, r.code(), want)
				}
			}
		})
	}
}

// clientFrom is a test client whose connections come from the loopback address ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	probe, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Skipf("cannot use %s as a source address: %v", ip, err)
	}
	probe.Close()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// The peer address is the client: after 127.0.0.1 emptied its bucket, a shopper
// connecting from 127.0.0.2 tokenizes.
func TestHostile_ClientAddressIsTheTCPPeer(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	other := clientFrom(t, "127.0.0.2")
	body := mustJSON(t, cardFields(testcards.Success, testcards.CVV))
	for range proxy.DefaultLimits.PerClientBurst {
		wantStatus(t, h.col(t, merchantA, body, nil), http.StatusCreated)
	}
	wantError(t, h.col(t, merchantA, body, nil), http.StatusTooManyRequests, "rate_limited")
	req, err := http.NewRequest(http.MethodPost, h.collect+"/v1/tokens", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.keys[merchantA][proxy.RolePublishable])
	resp, err := other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h.record(dumpResponse(resp.Header, b))
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("the shopper at 127.0.0.2: got %d, want 201", resp.StatusCode)
	}
}

// Requests without a valid key count against their address on every listener (key
// guessing, probing); the keyed traffic of a backend at the same address does not.
func TestHostile_UnauthenticatedRequestsAreLimitedPerClientOnEveryListener(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := randomTokenID(t, "tok_"+strings.Repeat("a", 22))
	for i := range proxy.DefaultLimits.PerClientBurst {
		r := h.do(t, http.MethodGet, h.forward+"/v1/tokens/"+tok, nil, headers{"Proxy-Authorization": "Bearer sk_guess" + strconv.Itoa(i)})
		wantError(t, r, http.StatusUnauthorized, "unauthorized")
	}
	for name, r := range map[string]*response{
		"a key guess on forward": h.do(t, http.MethodGet, h.forward+"/v1/tokens/"+tok, nil, headers{"Proxy-Authorization": "Bearer sk_guess"}),
		"a key guess on admin":   h.do(t, http.MethodGet, h.admin+"/v1/policy", nil, headers{"Authorization": "Bearer ak_guess"}),
		"a probe on collect":     h.do(t, http.MethodGet, h.collect+"/.env", nil, nil),
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, r, http.StatusTooManyRequests, "rate_limited")
			if got := errorMessage(r); got != "too many requests from this client address" {
				t.Errorf("message: got %q, want the client address's limit", got)
			}
		})
	}
	// The backend's own key still works from that address.
	wantError(t, h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil), http.StatusNotFound, "token_not_found")
}

// Every collect answer to a registered origin is readable by that page (so the
// checkout can show `rate_limited` and wait Retry-After); a success only by the key's
// merchant, and nothing by an origin no merchant registered.
func TestHostile_CollectErrorsAreReadableByRegisteredOrigins(t *testing.T) {
	// The address's bucket holds the first five requests below and never refills.
	h := newHarness(t, harnessOptions{limits: proxy.Limits{PerClientRate: 1e-6, PerClientBurst: 5}})
	fields := cardFields(testcards.Success, testcards.CVV)
	var r *response
	steps := []struct {
		name   string
		send   func() *response
		status int
		code   string
		origin string // the Access-Control-Allow-Origin wanted
	}{
		{"a 401 is readable", func() *response {
			return h.do(t, http.MethodPost, h.collect+"/v1/tokens", fields, headers{"Origin": originA, "Authorization": "Bearer pk_wrong"})
		}, http.StatusUnauthorized, "unauthorized", originA},
		{"a 400 is readable", func() *response {
			return h.col(t, merchantA, map[string]string{"card_holder": testcards.Holder}, headers{"Origin": originA})
		}, http.StatusBadRequest, "missing_field", originA},
		{"a 503 is readable", func() *response {
			h.transit.setFail(vault.ErrUnavailable)
			defer h.transit.setFail(nil)
			return h.col(t, merchantB, fields, headers{"Origin": originB})
		}, http.StatusServiceUnavailable, "vault_unavailable", originB},
		{"another merchant's page cannot read the refusal of its origin", func() *response {
			return h.col(t, merchantA, fields, headers{"Origin": originB})
		}, http.StatusForbidden, "origin_not_allowed", ""},
		{"a success is readable by the merchant's page", func() *response {
			return h.col(t, merchantA, fields, headers{"Origin": originA})
		}, http.StatusCreated, "", originA},
		{"a 429 is readable, with its Retry-After", func() *response {
			return h.col(t, merchantA, fields, headers{"Origin": originA})
		}, http.StatusTooManyRequests, "rate_limited", originA},
		{"an unregistered origin reads nothing", func() *response {
			return h.col(t, merchantA, fields, headers{"Origin": "https://evil.example"})
		}, http.StatusTooManyRequests, "rate_limited", ""},
	}
	for _, st := range steps { // in order: they share the address's bucket
		r = st.send()
		if r.status != st.status || r.code() != st.code {
			t.Errorf("%s: got %d %q, want %d %q", st.name, r.status, r.code(), st.status, st.code)
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); got != st.origin {
			t.Errorf("%s: Access-Control-Allow-Origin: got %q, want %q", st.name, got, st.origin)
		}
		want := ""
		if st.origin != "" {
			want = "Retry-After, X-Request-Id"
		}
		if got := r.header.Get("Access-Control-Expose-Headers"); got != want {
			t.Errorf("%s: Access-Control-Expose-Headers: got %q, want %q", st.name, got, want)
		}
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("a 429 without Retry-After")
	}
}

// Audit records name the same client the limits see: behind a trusted load balancer,
// the shopper's address, not the balancer's.
func TestHostile_AuditNamesTheClientBehindATrustedProxy(t *testing.T) {
	h := newHarness(t, harnessOptions{trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	hdr := withHeaders(h.bearer(merchantA, proxy.RolePublishable), headers{"X-Forwarded-For": "203.0.113.7"})
	r, err := h.send(http.MethodPost, h.collect+"/v1/tokens", mustJSON(t, cardFields(testcards.Success, testcards.CVV)), "application/json", hdr)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, http.StatusCreated)
	recs := h.waitAudit(t, func(recs []map[string]any) bool {
		for _, rec := range recs {
			if rec["event"] == "tokenize" && rec["outcome"] == "success" {
				return true
			}
		}
		return false
	})
	for _, rec := range recs {
		if rec["event"] == "tokenize" && rec["source_ip"] != "203.0.113.7" {
			t.Errorf("audit record %v: source_ip want 203.0.113.7", rec)
		}
	}
}
