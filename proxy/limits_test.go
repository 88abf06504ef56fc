package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestClientAddrTrustsForwardedForOnlyFromTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"an untrusted peer is the client, whatever it forwards", "198.51.100.1:5000", []string{"192.0.2.9"}, "198.51.100.1"},
		{"a trusted peer names the client", "10.0.0.1:5000", []string{"192.0.2.9"}, "192.0.2.9"},
		{"what the client wrote itself, left of its address, is never reached", "10.0.0.1:5000", []string{"192.0.2.66, 10.9.9.9, 192.0.2.9"}, "192.0.2.9"},
		{"a chain of trusted proxies is walked from the right", "10.0.0.1:5000", []string{"192.0.2.9, 10.1.1.1, 10.2.2.2"}, "192.0.2.9"},
		{"several header lines are one list", "10.0.0.1:5000", []string{"192.0.2.66", "192.0.2.9"}, "192.0.2.9"},
		{"an unparsable hop ends the walk at the last trusted one", "10.0.0.1:5000", []string{"192.0.2.9, garbage"}, "10.0.0.1"},
		{"no header: the trusted peer itself", "10.0.0.1:5000", nil, "10.0.0.1"},
		{"only trusted hops: the leftmost", "10.0.0.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"a v4-mapped peer is its IPv4 address", "[::ffff:10.0.0.1]:5000", []string{"192.0.2.9"}, "192.0.2.9"},
		{"an IPv6 trusted peer names an IPv6 client", "[2001:db8:1::5]:443", []string{"2001:db8:2::7"}, "2001:db8:2::7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/tokens", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, trusted); got != netip.MustParseAddr(tt.want) {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestClientKeyIsTheAddressForIPv4AndThe64ForIPv6(t *testing.T) {
	key := func(s string) netip.Prefix { return clientKey(netip.MustParseAddr(s)) }
	if key("2001:db8::1") != key("2001:db8::ffff:1") {
		t.Error("two addresses of one IPv6 /64 have two buckets")
	}
	if key("2001:db8::1") == key("2001:db8:0:1::1") {
		t.Error("two IPv6 /64s share a bucket")
	}
	if key("192.0.2.1") == key("192.0.2.2") || key("::ffff:192.0.2.1") != key("192.0.2.1") {
		t.Error("IPv4 addresses are not one bucket each")
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

// requestFrom is a request whose TCP peer is addr.
func requestFrom(addr string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = addr + ":1"
	return r
}

func TestClientBucketsForgetIdleClientsAndStayBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(Limits{PerClientRate: 1, PerClientBurst: 2}, nil, clock.now)
	l.clients.max = 10
	for i := range 50 {
		if err := l.allowClient(clientAddr(requestFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()), nil)); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if n := len(l.clients.m); n > 10 {
			t.Fatalf("%d buckets held, want at most 10", n)
		}
	}
	// A busy client keeps its (empty) bucket while it is busy.
	busy := requestFrom("198.51.100.1")
	for range 2 {
		if err := l.allowClient(clientAddr(busy, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.allowClient(clientAddr(busy, nil)); err == nil {
		t.Fatal("a third request within the burst of 2 was allowed")
	}
	// Once every bucket would be full again (burst/rate = 2s), the next new client
	// sweeps them all out.
	clock.add(2 * time.Second)
	if err := l.allowClient(clientAddr(requestFrom("198.51.100.2"), nil)); err != nil {
		t.Fatal(err)
	}
	if n := len(l.clients.m); n != 1 {
		t.Errorf("%d buckets held after the idle period, want 1", n)
	}
}

func TestRefusalsSayWhichLimit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(Limits{PerKeyRate: 0.5, PerKeyBurst: 1, PerClientRate: 0.25, PerClientBurst: 1}, nil, clock.now)
	r := requestFrom("192.0.2.1")
	for _, tt := range []struct {
		take  func() error
		msg   string
		after string
	}{
		{func() error { return l.allow("pk_1") }, "too many requests for this key", "2"},
		{func() error { return l.allowClient(clientAddr(r, nil)) }, "too many requests from this client address", "4"},
	} {
		if err := tt.take(); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		ae := writeErr(w, tt.take())
		if ae.code != "rate_limited" || ae.msg != tt.msg || w.Code != http.StatusTooManyRequests {
			t.Errorf("got %d %q %q, want 429 rate_limited %q", w.Code, ae.code, ae.msg, tt.msg)
		}
		if got := w.Header().Get("Retry-After"); got != tt.after {
			t.Errorf("Retry-After: got %q, want %q", got, tt.after)
		}
	}
}

func TestLimitsTakeTheDefaultForEachZeroField(t *testing.T) {
	got := Limits{PerKeyRate: 5, Vault: 3}.withDefaults()
	want := DefaultLimits
	want.PerKeyRate, want.Vault = 5, 3
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
