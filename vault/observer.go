package vault

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/token"
)

// Observer hears what the vault does, for metrics: each transit call, each
// Redis round trip, each coalesced batch and each change to a token. The
// vault calls it synchronously on its hot paths, so it must be fast and must
// not block. Nothing passed to it is card data, a token id or a merchant:
// only operation names, counts, durations and token kinds.
type Observer interface {
	// TransitCall: one call to the transit service (op "encrypt", "decrypt",
	// "hmac"; key "card", "cvv", "fingerprint") of items items.
	TransitCall(op, key string, items int, took time.Duration, err error)
	// StoreCall: one Redis round trip of the token store (op "put", "get",
	// "take_cvv", "take_wallet", "del", "ping").
	StoreCall(op string, took time.Duration, err error)
	// Batch: the Coalescer sent one call for callers queued callers' items.
	Batch(op, key string, items, callers int)
	// Token: a token was created, revealed or deleted, or a CVV consumed.
	// kind is "" where the vault does not read the record (a delete).
	Token(ev TokenEvent, kind token.Kind)
}

// TokenEvent names what happened to a token.
type TokenEvent string

// The token events an Observer hears.
const (
	TokenCreated  TokenEvent = "created"
	TokenRevealed TokenEvent = "revealed" // decrypted for injection (Reveal succeeded)
	TokenDeleted  TokenEvent = "deleted"
	CVVConsumed   TokenEvent = "cvv_consumed"
)

// Observable is a part of the vault that reports to an Observer. Observe may
// be called at any time (the last Observer set wins) and is safe beside
// running calls.
type Observable interface {
	Observe(Observer)
}

// observer holds an Observer that may be set while calls run.
type observer struct{ p atomic.Pointer[observerBox] }

type observerBox struct{ Observer }

func (o *observer) set(x Observer) { o.p.Store(&observerBox{x}) }

// get returns the Observer, or one that ignores everything.
func (o *observer) get() Observer {
	if b := o.p.Load(); b != nil && b.Observer != nil {
		return b.Observer
	}
	return nopObserver{}
}

type nopObserver struct{}

func (nopObserver) TransitCall(string, string, int, time.Duration, error) {}
func (nopObserver) StoreCall(string, time.Duration, error)                {}
func (nopObserver) Batch(string, string, int, int)                        {}
func (nopObserver) Token(TokenEvent, token.Kind)                          {}

// Observe sends what v, its store and (when it is Observable) its transit do
// to o. proxy.New calls it with the proxy's metrics.
func (v *Vault) Observe(o Observer) {
	v.store.Observe(o) // the store's observer also hears the vault's token events
	if t, ok := v.transit.(Observable); ok {
		t.Observe(o)
	}
}

// Observe implements Observable.
func (s *Store) Observe(o Observer) { s.obs.set(o) }

// Observe implements Observable, and passes o on to the wrapped Transit.
func (c *Coalescer) Observe(o Observer) {
	c.obs.set(o)
	if t, ok := c.t.(Observable); ok {
		t.Observe(o)
	}
}

// Observe implements Observable.
func (t *VaultTransit) Observe(o Observer) { t.obs.set(o) }

// revealed reports a successful Reveal.
func (v *Vault) revealed(s *Secret, err error) (*Secret, error) {
	if err == nil {
		v.store.obs.get().Token(TokenRevealed, s.Kind)
	}
	return s, err
}

// took reports one store round trip begun at start and returns err.
func (s *Store) took(op string, start time.Time, err error) {
	s.obs.get().StoreCall(op, time.Since(start), err)
}

// cardKind is token.Card where a parameter named token hides the package.
const cardKind = token.Card

// ignoreNil drops redis.Nil ("no such key"), which is an answer, not a failure.
func ignoreNil[T any](v T, err error) (T, error) {
	if errors.Is(err, redis.Nil) {
		return v, nil
	}
	return v, err
}
