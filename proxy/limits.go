package proxy

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bounds what one caller and the whole process may ask of the proxy.
type Limits struct {
	// PerKeyRate is the sustained requests per second of one API key; PerKeyBurst its burst.
	PerKeyRate  float64
	PerKeyBurst int
	// Upstream and Vault bound the calls in flight towards each; a request that cannot
	// get a slot within SlotWait is answered 503 instead of queueing without end.
	Upstream int
	Vault    int
	SlotWait time.Duration
}

// DefaultLimits suit one proxy instance on a small machine.
var DefaultLimits = Limits{PerKeyRate: 100, PerKeyBurst: 200, Upstream: 256, Vault: 256, SlotWait: time.Second}

var (
	errRateLimited  = newError(http.StatusTooManyRequests, "rate_limited", "too many requests for this key")
	errUpstreamBusy = newError(http.StatusServiceUnavailable, "upstream_busy", "too many calls in flight to the upstream")
	errVaultBusy    = newError(http.StatusServiceUnavailable, "vault_busy", "too many calls in flight to the token vault")
)

// rateLimited carries the Retry-After of a refusal.
type rateLimited struct{ retryAfter time.Duration }

func (e *rateLimited) Error() string { return errRateLimited.msg }
func (e *rateLimited) Unwrap() error { return errRateLimited }

// Limiter holds one token bucket per key id and the in-flight slots towards the
// upstream and Vault. One Limiter is shared by all listeners of a process.
type Limiter struct {
	lim   Limits
	mu    sync.Mutex
	byKey map[string]*rate.Limiter
	up    chan struct{}
	vault chan struct{}
}

// newLimiter returns a Limiter; the zero Limits means DefaultLimits.
func newLimiter(l Limits) *Limiter {
	if l == (Limits{}) {
		l = DefaultLimits
	}
	return &Limiter{lim: l, byKey: map[string]*rate.Limiter{}, up: make(chan struct{}, l.Upstream), vault: make(chan struct{}, l.Vault)}
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
	res := rl.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return &rateLimited{retryAfter: d}
	}
	return nil
}

// slot takes a place in sem, waiting at most SlotWait; release gives it back.
func (l *Limiter) slot(ctx context.Context, sem chan struct{}, busy error) (release func(), err error) {
	t := time.NewTimer(l.lim.SlotWait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-t.C:
		return nil, busy
	case <-ctx.Done():
		return nil, busy
	}
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
