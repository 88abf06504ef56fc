package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/vault"
)

// Config is everything a running proxy is built from. serve, dev, chdbench and the
// tests all assemble the proxy through New with one of these.
type Config struct {
	Policy    *policy.Policy
	Vault     *vault.Vault
	Keys      *Keys
	Merchants []Merchant
	Log       *logrus.Logger // the redacting logger (redact.NewLogger)
	Audit     Auditor
	// Redis holds the idempotency records; IdempotencySecret keys their body HMAC and
	// must be the same on every replica (at least 32 bytes).
	Redis             redis.UniversalClient
	IdempotencySecret []byte
	IdempotencyTTL    time.Duration // zero: 24h
	Limits            Limits        // zero fields: their DefaultLimits value
	// TrustedProxies are the load balancers in front of the listeners: from a peer in
	// one of them, the client address (for the per-client limits) is the nearest
	// X-Forwarded-For address outside them. From any other peer the header is ignored.
	TrustedProxies []netip.Prefix
	Upstream       UpstreamOptions
	// AuditSummaryEvery is how often refusals of requests without a known key are
	// written as summary records (zero: 10s); Listeners.Close writes the rest.
	AuditSummaryEvery time.Duration
	// Dev allows a vault on the dev-only cipher; production refuses it.
	Dev bool
	Now func() time.Time // zero: time.Now
}

// Merchant is one merchant as the listeners know it.
type Merchant struct {
	ID      string
	Origins []string // browser origins allowed to tokenize with this merchant's pk_ keys
}

// Listeners are the proxy's three HTTP handlers, one per listener.
type Listeners struct {
	Collect http.Handler // browser checkouts, pk_ keys
	Forward http.Handler // merchant backends, sk_ keys
	Admin   http.Handler // operators, ak_ keys (health checks need none)
	client  *http.Client
	refused *refusals
}

// Close writes the pending refusal summaries to the auditor (flush it afterwards)
// and closes the idle connections to the upstreams.
func (l *Listeners) Close() {
	l.refused.flush()
	l.client.CloseIdleConnections()
}

// New checks cfg and builds the three listeners over one set of shared parts (one
// limiter, one upstream client, one idempotency store).
func New(cfg Config) (*Listeners, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	client, err := newUpstreamClient(cfg.Policy, cfg.Upstream)
	if err != nil {
		return nil, err
	}
	d := &deps{
		Vault: cfg.Vault, Keys: cfg.Keys, Merchants: map[string]Merchant{}, Log: cfg.Log, Audit: cfg.Audit,
		Limiter:     newLimiter(cfg.Limits, cfg.TrustedProxies, cfg.Now),
		Idempotency: newIdempotency(cfg.Redis, cfg.IdempotencySecret, cfg.IdempotencyTTL),
		Policy:      cfg.Policy, Redactor: redact.New(cfg.Policy.RedactRules()), Client: client,
		report: policy.Explain(cfg.Policy), now: cfg.Now,
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.refusals = &refusals{audit: cfg.Audit, log: cfg.Log, every: cfg.AuditSummaryEvery}
	if d.refusals.every <= 0 {
		d.refusals.every = defaultRefusalInterval
	}
	for _, m := range cfg.Merchants {
		d.Merchants[m.ID] = m
	}
	return &Listeners{Collect: collectHandler(d), Forward: forwardHandler(d), Admin: adminHandler(d), client: client, refused: d.refusals}, nil
}

// check collects every problem of cfg.
func (cfg Config) check() error {
	var errs []error
	for _, part := range []struct {
		name    string
		missing bool
	}{
		{"Policy", cfg.Policy == nil}, {"Vault", cfg.Vault == nil}, {"Keys", cfg.Keys == nil},
		{"Log", cfg.Log == nil}, {"Audit", cfg.Audit == nil}, {"Redis", cfg.Redis == nil},
	} {
		if part.missing {
			errs = append(errs, fmt.Errorf("proxy: Config.%s is required", part.name))
		}
	}
	if len(cfg.IdempotencySecret) < 32 {
		errs = append(errs, errors.New("proxy: the idempotency secret needs at least 32 bytes"))
	}
	if cfg.Vault != nil && cfg.Vault.DevOnly() && !cfg.Dev {
		errs = append(errs, errors.New("proxy: the vault runs on the dev-only cipher; only `chdproxy dev` may"))
	}
	seen := map[string]bool{}
	for _, m := range cfg.Merchants {
		if seen[m.ID] {
			errs = append(errs, fmt.Errorf("proxy: merchant %q is listed twice", m.ID))
		}
		seen[m.ID] = true
	}
	return errors.Join(errs...)
}

// deps is what the listeners share.
type deps struct {
	Vault       *vault.Vault
	Keys        *Keys
	Merchants   map[string]Merchant
	Log         *logrus.Logger
	Audit       Auditor
	Limiter     *Limiter // shared by every listener of the process
	Idempotency *Idempotency
	Policy      *policy.Policy
	Redactor    *redact.Redactor // scrubs upstream answers
	Client      *http.Client     // the one upstream client
	report      []byte           // the policy report served on admin
	refusals    *refusals        // audit summaries of requests refused before any key
	now         func() time.Time
}
