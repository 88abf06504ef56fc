package vault

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Health is what readiness learned of the vault's two dependencies, checked
// apart and concurrently: a Redis outage no longer hides the state of Vault.
type Health struct {
	Transit error // nil: transit answered with the keys and the token
	Store   error // nil: Redis answered
}

// Health pings transit and Redis concurrently.
func (v *Vault) Health(ctx context.Context) Health {
	var h Health
	var wg sync.WaitGroup
	wg.Go(func() { h.Transit = v.transit.Ping(ctx) })
	h.Store = v.store.ping(ctx)
	wg.Wait()
	return h
}

// Readiness fault names: fixed words an on-call engineer can act on, never
// the server's text.
const (
	FaultOK            = "ok"
	FaultSealed        = "sealed"        // Vault is sealed: unseal it
	FaultStandby       = "standby"       // a standby node with no active node to forward to
	FaultUninitialized = "uninitialized" // Vault was never initialised
	FaultForbidden     = "forbidden"     // 403: token expired or revoked, or the policy lacks a path
	FaultMisconfigured = "misconfigured" // 400/404: a key or mount missing
	FaultAuthFailed    = "auth_failed"   // Redis refused the credentials
	FaultTimeout       = "timeout"
	FaultUnreachable   = "unreachable" // no answer: down, wrong address, TLS
	FaultUnavailable   = "unavailable" // answered 5xx/429
)

// TransitFault names what Health.Transit says is wrong.
func TransitFault(err error) string {
	var se *vaultStateError
	var te *TransitError
	switch {
	case err == nil:
		return FaultOK
	case errors.As(err, &se):
		return se.state
	case errors.Is(err, ErrTimeout):
		return FaultTimeout
	case !errors.As(err, &te):
		return FaultUnavailable
	case te.Status == http.StatusForbidden:
		return FaultForbidden
	case te.Status == 0:
		return FaultUnreachable
	case te.Status == http.StatusBadRequest, te.Status == http.StatusNotFound:
		return FaultMisconfigured
	}
	return FaultUnavailable
}

// StoreFault names what Health.Store says is wrong.
func StoreFault(err error) string {
	switch {
	case err == nil:
		return FaultOK
	case redis.HasErrorPrefix(err, "NOAUTH"), redis.HasErrorPrefix(err, "WRONGPASS"), redis.HasErrorPrefix(err, "NOPERM"):
		return FaultAuthFailed
	case errors.Is(err, ErrTimeout):
		return FaultTimeout
	}
	return FaultUnreachable
}

// vaultStateError is a failed transit call that sys/health explains.
type vaultStateError struct {
	state string // FaultSealed, FaultStandby, FaultUninitialized
	err   error
}

func (e *vaultStateError) Error() string { return e.err.Error() + " (vault " + e.state + ")" }
func (e *vaultStateError) Unwrap() error { return e.err }

// explain asks sys/health why transit answered err: Vault answers 503 both
// when sealed and when no active node exists, and only sys/health (which
// needs no token, so no policy grant) tells them apart. A standby that
// forwards to its active node answers transit calls, so it never gets here.
func (t *VaultTransit) explain(ctx context.Context, err error) error {
	var te *TransitError
	if !errors.As(err, &te) || (te.Status < 500 && te.Status != http.StatusTooManyRequests) {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	h, herr := t.c.Sys().HealthWithContext(cctx)
	switch {
	case herr != nil || h == nil:
		return err
	case !h.Initialized:
		return &vaultStateError{FaultUninitialized, err}
	case h.Sealed:
		return &vaultStateError{FaultSealed, err}
	case h.Standby:
		return &vaultStateError{FaultStandby, err}
	}
	return err
}
