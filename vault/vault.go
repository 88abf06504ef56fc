package vault

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/chdproxy/chdproxy/token"
)

// Default lifetimes. The CVV and wallet ones are capped by token.MaxOneTimeTTL.
const (
	defaultTokenTTL  = 24 * time.Hour
	defaultCVVTTL    = 10 * time.Minute
	defaultWalletTTL = 10 * time.Minute
)

// Config configures a Vault.
type Config struct {
	Transit Transit
	Store   *Store
	// TokenTTL is a card token's lifetime (default 24h).
	TokenTTL time.Duration
	// CVVTTL is the CVV's lifetime (default 10m, at most token.MaxOneTimeTTL,
	// and never longer than TokenTTL).
	CVVTTL time.Duration
	// WalletTTL is a wallet token's lifetime (default 10m, at most
	// token.MaxOneTimeTTL).
	WalletTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Vault tokenizes and detokenizes card data: ciphertexts from Transit, stored
// by Store. It is safe for concurrent use.
type Vault struct {
	transit   Transit
	store     *Store
	tokenTTL  time.Duration
	cvvTTL    time.Duration
	walletTTL time.Duration
	now       func() time.Time
	ids       io.Reader // randomness of token ids (crypto/rand)
}

// New checks cfg, applies defaults and returns a Vault. A CVV or wallet TTL
// above token.MaxOneTimeTTL is an error, not silently capped.
func New(cfg Config) (*Vault, error) {
	if cfg.Transit == nil || cfg.Store == nil {
		return nil, errors.New("vault: Config needs a Transit and a Store")
	}
	cfg.TokenTTL = cmp.Or(cfg.TokenTTL, defaultTokenTTL)
	cfg.CVVTTL = cmp.Or(cfg.CVVTTL, defaultCVVTTL)
	cfg.WalletTTL = cmp.Or(cfg.WalletTTL, defaultWalletTTL)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.TokenTTL < time.Millisecond || cfg.CVVTTL < time.Millisecond || cfg.WalletTTL < time.Millisecond:
		return nil, errors.New("vault: TTLs must be at least 1ms")
	case cfg.CVVTTL > token.MaxOneTimeTTL:
		return nil, errors.New("vault: CVVTTL exceeds the " + token.MaxOneTimeTTL.String() + " cap")
	case cfg.WalletTTL > token.MaxOneTimeTTL:
		return nil, errors.New("vault: WalletTTL exceeds the " + token.MaxOneTimeTTL.String() + " cap")
	}
	return &Vault{
		transit:   cfg.Transit,
		store:     cfg.Store,
		tokenTTL:  cfg.TokenTTL,
		cvvTTL:    min(cfg.CVVTTL, cfg.TokenTTL),
		walletTTL: cfg.WalletTTL,
		now:       cfg.Now,
		ids:       rand.Reader,
	}, nil
}

// clock is the time records are stamped and checked with: UTC, to the
// millisecond, as Redis keeps TTLs.
func (v *Vault) clock() time.Time { return v.now().UTC().Truncate(time.Millisecond) }

// Ping checks Redis and transit concurrently (readiness).
func (v *Vault) Ping(ctx context.Context) error {
	var wg sync.WaitGroup
	var terr error
	wg.Go(func() { terr = v.transit.Ping(ctx) })
	serr := v.store.ping(ctx)
	wg.Wait()
	return firstErr(serr, terr)
}

// String describes the vault's settings, no secrets.
func (v *Vault) String() string {
	return "Vault(token_ttl=" + v.tokenTTL.String() + ", cvv_ttl=" + v.cvvTTL.String() +
		", wallet_ttl=" + v.walletTTL.String() + ", dev_only_transit=" + strconv.FormatBool(isDevOnly(v.transit)) + ")"
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
