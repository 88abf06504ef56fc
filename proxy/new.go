package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync/atomic"
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
	// VaultTimeout bounds one request's work against Vault and Redis (zero: 5s): serve
	// sets it from vault.timeout (which bounds one transit call, queueing included)
	// plus Redis's timeouts.
	VaultTimeout time.Duration
	// Dev allows a vault on the dev-only cipher; production refuses it.
	Dev bool
	Now func() time.Time // zero: time.Now
}

// Merchant is one merchant as the listeners know it.
type Merchant struct {
	ID      string
	Origins []string // browser origins allowed to tokenize with this merchant's pk_ keys
	// ClientCerts are the "sha256:<hex>" digests of the SubjectPublicKeyInfo of the client
	// certificates its backends present to the forward listener. Listed (or whenever the
	// connection carries a client certificate), a request with this merchant's sk_ needs a
	// verified certificate among them: a leaked sk_ alone opens nothing.
	ClientCerts []string
}

// Listeners are the proxy's three HTTP handlers, one per listener.
type Listeners struct {
	Collect http.Handler // browser checkouts, pk_ keys
	Forward http.Handler // merchant backends, sk_ keys
	Admin   http.Handler // operators, ak_ keys (health checks need none)
	client  *http.Client
	refused *refusals
	deps    *deps
}

// Drain makes /readyz answer 503 "draining" from now on: the first step of a
// shutdown, so a load balancer stops sending before the listeners stop accepting.
func (l *Listeners) Drain() { l.deps.draining.Store(true) }

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
		Vault: cfg.Vault, Log: cfg.Log, Audit: cfg.Audit,
		Limiter:     newLimiter(cfg.Limits, cfg.TrustedProxies, cfg.Now),
		Idempotency: newIdempotency(cfg.Redis, cfg.IdempotencySecret, cfg.IdempotencyTTL),
		Policy:      cfg.Policy, Redactor: redact.New(cfg.Policy.RedactRules()), Client: client,
		report: policy.Explain(cfg.Policy), now: cfg.Now, vaultBound: cfg.VaultTimeout,
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.vaultBound <= 0 {
		d.vaultBound = defaultVaultTimeout
	}
	d.Idempotency.hold = ServerTimeouts(cfg).Write // a claim is renewed as long as a request can run
	d.refusals = &refusals{audit: cfg.Audit, log: cfg.Log, every: cfg.AuditSummaryEvery}
	if d.refusals.every <= 0 {
		d.refusals.every = defaultRefusalInterval
	}
	d.dir.Store(newDirectory(cfg.Keys, cfg.Merchants))
	d.metrics = observe(d)
	return &Listeners{Collect: collectHandler(d), Forward: forwardHandler(d), Admin: adminHandler(d), client: client, refused: d.refusals, deps: d}, nil
}

// Reload replaces the keys and merchants, both at once, so that a leaked key is revoked
// without a restart. A request keeps the ones it started with (see deps.directory); an
// invalid set changes nothing. keys must not be changed after the call.
func (l *Listeners) Reload(keys *Keys, merchants []Merchant) error {
	if keys == nil {
		return errors.New("proxy: Reload needs the keys")
	}
	if err := checkMerchants(merchants); err != nil {
		return err
	}
	l.deps.dir.Store(newDirectory(keys, merchants))
	return nil
}

// directory is the keys and merchants in force: replaced whole by Reload, never changed.
type directory struct {
	keys      *Keys
	merchants map[string]Merchant
}

func newDirectory(keys *Keys, merchants []Merchant) *directory {
	dir := &directory{keys: keys, merchants: make(map[string]Merchant, len(merchants))}
	for _, m := range merchants {
		dir.merchants[m.ID] = m
	}
	return dir
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
	errs = append(errs, checkMerchants(cfg.Merchants))
	return errors.Join(errs...)
}

// checkMerchants refuses a merchant listed twice.
func checkMerchants(merchants []Merchant) error {
	var errs []error
	seen := map[string]bool{}
	for _, m := range merchants {
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
	dir         atomic.Pointer[directory] // keys and merchants; Reload swaps them
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
	metrics     *metrics // served at /metrics on admin (metrics.go)
	vaultBound  time.Duration
	draining    atomic.Bool // Listeners.Drain was called: not ready
}
