package proxy

import (
	"context"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bounds what one caller and the whole process may ask of the proxy.
type Limits struct {
	// PerKeyRate is the sustained requests per second of one API key; PerKeyBurst its burst.
	PerKeyRate  float64
	PerKeyBurst int
	// PerClientRate and PerClientBurst bound one client address (an IPv4 address or an
	// IPv6 /64): every collect request, because the pk_ is public and shared by every
	// shopper of a merchant, and every unauthenticated request on any listener. Small,
	// so one address flooding a pk_ cannot empty that key's bucket for everyone else.
	PerClientRate  float64
	PerClientBurst int
	// Upstream and Vault bound the calls in flight towards each; a request that cannot
	// get a slot within SlotWait is answered 503 instead of queueing without end.
	Upstream int
	Vault    int
	SlotWait time.Duration
}

// DefaultLimits suit one proxy instance on a small machine. One client address gets
// 20 tokenizations at once and one a second after that: a shopper retyping a card a few
// times never notices; a card tester from one address needs about 28 hours for 100,000
// tries. The key's bucket is large enough for a busy merchant's checkouts.
var DefaultLimits = Limits{
	PerKeyRate: 100, PerKeyBurst: 200, PerClientRate: 1, PerClientBurst: 20,
	Upstream: 256, Vault: 256, SlotWait: time.Second,
}

// withDefaults returns l with each zero field at its DefaultLimits value, so a
// configuration naming some limits never switches the others off.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	return Limits{
		PerKeyRate: orDefault(l.PerKeyRate, d.PerKeyRate), PerKeyBurst: orDefault(l.PerKeyBurst, d.PerKeyBurst),
		PerClientRate: orDefault(l.PerClientRate, d.PerClientRate), PerClientBurst: orDefault(l.PerClientBurst, d.PerClientBurst),
		Upstream: orDefault(l.Upstream, d.Upstream), Vault: orDefault(l.Vault, d.Vault), SlotWait: orDefault(l.SlotWait, d.SlotWait),
	}
}

func orDefault[T int | float64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

var (
	errRateLimited       = newError(http.StatusTooManyRequests, "rate_limited", "too many requests for this key")
	errClientRateLimited = newError(http.StatusTooManyRequests, "rate_limited", "too many requests from this client address")
	errUpstreamBusy      = newError(http.StatusServiceUnavailable, "upstream_busy", "too many calls in flight to the upstream")
	errVaultBusy         = newError(http.StatusServiceUnavailable, "vault_busy", "too many calls in flight to the token vault")
)

// rateLimited is a refusal by one limit (its message says which) and its Retry-After.
type rateLimited struct {
	limit      *apiError
	retryAfter time.Duration
}

func (e *rateLimited) Error() string { return e.limit.msg }
func (e *rateLimited) Unwrap() error { return e.limit }

// maxClients bounds the per-client buckets held at once: 175 bytes each (measured),
// so 17.5 MB at most.
const maxClients = 100_000

// Limiter holds one token bucket per key id and per client address, and the in-flight
// slots towards the upstream and Vault. One Limiter is shared by all listeners of a process.
type Limiter struct {
	lim     Limits
	trusted []netip.Prefix // proxies whose X-Forwarded-For names the client
	now     func() time.Time
	mu      sync.Mutex
	byKey   map[string]*rate.Limiter // bounded by the configured keys
	clients clientBuckets
	up      chan struct{}
	vault   chan struct{}
	refused func(reason string) // counts each refusal (metrics); nil: none
}

// newLimiter returns a Limiter; zero fields of l take their DefaultLimits value, a nil
// now is time.Now.
func newLimiter(l Limits, trusted []netip.Prefix, now func() time.Time) *Limiter {
	l = l.withDefaults()
	if now == nil {
		now = time.Now
	}
	// A bucket left alone for burst/rate is full again: forgetting it changes nothing.
	idle := time.Duration(min(float64(l.PerClientBurst)/l.PerClientRate, 86400) * float64(time.Second))
	return &Limiter{
		lim: l, trusted: trusted, now: now, byKey: map[string]*rate.Limiter{},
		clients: clientBuckets{m: map[netip.Prefix]*clientBucket{}, idle: idle, max: maxClients},
		up:      make(chan struct{}, l.Upstream), vault: make(chan struct{}, l.Vault),
	}
}

// allow takes one request from keyID's bucket, or says how long to wait.
func (l *Limiter) allow(keyID string) error {
	l.mu.Lock()
	rl, ok := l.byKey[keyID]
	if !ok {
		rl = rate.NewLimiter(rate.Limit(l.lim.PerKeyRate), l.lim.PerKeyBurst)
		l.byKey[keyID] = rl
	}
	l.mu.Unlock()
	return l.count(take(rl, l.now(), errRateLimited), "key")
}

// allowClient takes one request from the bucket of r's client address.
func (l *Limiter) allowClient(client netip.Addr) error {
	now := l.now()
	rl := l.clients.get(clientKey(client), now, func() *rate.Limiter {
		return rate.NewLimiter(rate.Limit(l.lim.PerClientRate), l.lim.PerClientBurst)
	})
	return l.count(take(rl, now, errClientRateLimited), "client")
}

// count reports a refusal (err not nil) by the limit named reason, and returns err.
func (l *Limiter) count(err error, reason string) error {
	if err != nil && l.refused != nil {
		l.refused(reason)
	}
	return err
}

// take takes one request from rl at now, or returns how long to wait as a refusal by limit.
func take(rl *rate.Limiter, now time.Time, limit *apiError) error {
	res := rl.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return &rateLimited{limit: limit, retryAfter: d}
	}
	return nil
}

// clientBuckets are the per-client buckets, bounded in number: idle ones are swept out
// at most once per idle period, and at the cap arbitrary ones make room for a tenth
// more, so that a flood of new addresses costs one sweep per max/10 of them.
type clientBuckets struct {
	mu        sync.Mutex
	m         map[netip.Prefix]*clientBucket
	idle      time.Duration
	max       int
	lastSweep time.Time
}

type clientBucket struct {
	rl   *rate.Limiter
	last time.Time
}

// get returns the bucket of client, made by fresh when it has none.
func (c *clientBuckets) get(client netip.Prefix, now time.Time, fresh func() *rate.Limiter) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[client]
	if !ok {
		c.makeRoom(now)
		b = &clientBucket{rl: fresh()}
		c.m[client] = b
	}
	b.last = now
	return b.rl
}

// makeRoom sweeps idle buckets once per idle period, or whenever the cap is reached;
// if every bucket is busy at the cap, arbitrary ones go (their clients start full).
func (c *clientBuckets) makeRoom(now time.Time) {
	if len(c.m) < c.max && now.Sub(c.lastSweep) < c.idle {
		return
	}
	c.lastSweep = now
	for k, b := range c.m {
		if now.Sub(b.last) >= c.idle {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) < c.max-c.max/10 {
			break
		}
		delete(c.m, k)
	}
}

// clientKey is the bucket a client address counts against: the address for IPv4, its
// /64 for IPv6 (one subscriber's network; each of its 2^64 addresses is free to them).
func clientKey(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits) // the zero Prefix for an unknown address: one shared bucket
	return p
}

// clientAddr is who sent r: the TCP peer, or, when the peer is a trusted proxy, the
// nearest X-Forwarded-For address that is not one. Each proxy appends the address it
// saw, so the list is read from the right; whatever a client wrote itself sits to the
// left of its own address and is never reached. An unparsable hop ends the walk.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0 && isTrusted(addr, trusted); i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
	}
	return addr
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// slot takes a place in sem, waiting at most SlotWait; release gives it back.
func (l *Limiter) slot(ctx context.Context, sem chan struct{}, busy error) (release func(), err error) {
	t := time.NewTimer(l.lim.SlotWait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, l.count(busy, classify(busy).code) // upstream_busy, vault_busy
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
