package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/chdproxy/chdproxy/vault"
)

// adminHandler serves the admin listener: health, readiness, token delete and the
// policy report (the Markdown of `chdproxy policy explain`).
func adminHandler(d *deps) http.Handler {
	rt := newRouter(d, "admin")
	a := &admin{d}
	rt.Methods(http.MethodGet).Path("/healthz").Name("healthz").Handler(wrap(d, "admin", "", a.healthz))
	rt.Methods(http.MethodGet).Path("/readyz").Name("readyz").Handler(wrap(d, "admin", "", a.readyz))
	// No key, like /readyz: Prometheus scrapes with network policy as the control, and
	// needs no admin key that could delete tokens. Labels carry no caller data (metrics.go).
	rt.Methods(http.MethodGet).Path("/metrics").Name("metrics").Handler(wrap(d, "admin", "", d.clientLimited(d.metrics.handler(d))))
	rt.Methods(http.MethodGet).Path("/v1/policy").Name("policy_report").Handler(wrap(d, "admin", "policy_report",
		d.authenticated(adminCaller, a.policy)))
	rt.Methods(http.MethodDelete).Path("/v1/tokens/{id}").Name("admin_token_delete").Handler(wrap(d, "admin", "delete",
		d.authenticated(adminCaller, a.deleteToken)))
	return rt
}

type admin struct{ *deps }

func (a *admin) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readiness is the /readyz body, the same shape whatever the outcome. Each check
// is "ok" or names the fault: Vault sealed, standby, uninitialized, forbidden,
// misconfigured, timeout, unreachable or unavailable (vault.TransitFault);
// Redis auth_failed, timeout or unreachable (vault.StoreFault); audit failing.
type readiness struct {
	Status string `json:"status"` // ready | unavailable
	Checks struct {
		Vault string `json:"vault"`
		Redis string `json:"redis"`
		Audit string `json:"audit"`
	} `json:"checks"`
}

// readyz checks Vault, Redis and the audit trail concurrently with a short
// deadline so a load balancer gets a fast answer: a replica whose audit trail
// cannot be written can do nothing (every operation fails closed), so it is not
// ready either. Any failing dependency answers 503.
func (a *admin) readyz(w http.ResponseWriter, r *http.Request) error {
	if a.draining.Load() { // shutting down: whatever the dependencies say
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	auditc := make(chan error, 1)
	go func() { auditc <- a.Audit.Health() }() // a hung disk must not hang the answer
	hl := a.Vault.Health(ctx)
	var rd readiness
	rd.Status, rd.Checks.Audit = "ready", "ok"
	rd.Checks.Vault, rd.Checks.Redis = vault.TransitFault(hl.Transit), vault.StoreFault(hl.Store)
	var aerr error
	select {
	case aerr = <-auditc: // answered while a slow Vault or Redis used up the deadline
	default:
		select {
		case aerr = <-auditc:
		case <-ctx.Done():
			aerr = errAuditStuck
		}
	}
	if aerr != nil {
		rd.Checks.Audit = "failing"
	}
	for what, err := range map[string]error{"vault": hl.Transit, "redis": hl.Store, "audit trail": aerr} {
		if err != nil { // errors of vault and audit carry no data
			a.Log.WithError(err).Warn("readiness: the " + what + " check fails")
		}
	}
	status := http.StatusOK
	if rd.Checks.Vault != "ok" || rd.Checks.Redis != "ok" || rd.Checks.Audit != "ok" {
		rd.Status, status = "unavailable", http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, rd)
	return nil
}

func (a *admin) policy(w http.ResponseWriter, _ *http.Request, _ Key) error {
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	_, err := w.Write(a.report)
	return err
}

// deleteToken removes a token of the caller's merchant; shared by the admin and
// forward listeners.
func (d *deps) deleteToken(w http.ResponseWriter, r *http.Request, key Key) error {
	return d.onToken(r, func(ctx context.Context, id string) error {
		if err := d.Vault.Delete(ctx, key.Merchant, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// onToken runs op on the path's token id once the attempt record is written, within
// the Vault bound. A malformed id answers exactly like an unknown one.
func (d *deps) onToken(r *http.Request, op func(ctx context.Context, id string) error) error {
	id := mux.Vars(r)["id"]
	if !vault.ValidTokenID(id) {
		return errTokenNotFound
	}
	info(r).token = id
	ctx, done, err := d.attemptedVaultCall(r)
	if err != nil {
		return err
	}
	defer done()
	return op(ctx, id)
}
