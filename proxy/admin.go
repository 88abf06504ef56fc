package proxy

import (
	"context"
	"errors"
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

// readiness is the /readyz body, the same shape whatever the outcome. Each check is
// "ok", "failing", or "unknown" (Vault is not reported on when Redis failed first).
type readiness struct {
	Status string `json:"status"` // ready | unavailable
	Checks struct {
		Vault string `json:"vault"`
		Redis string `json:"redis"`
		Audit string `json:"audit"`
	} `json:"checks"`
}

// readyz checks Vault, Redis and the audit trail with a short deadline so a load
// balancer gets a fast answer: a replica whose audit trail cannot be written can
// do nothing (every operation fails closed), so it is not ready either.
func (a *admin) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	auditc := make(chan error, 1)
	go func() { auditc <- a.Audit.Health() }() // a hung disk must not hang the answer
	var rd readiness
	rd.Status, rd.Checks.Vault, rd.Checks.Redis, rd.Checks.Audit = "ready", "ok", "ok", "ok"
	var se *vault.StoreError
	if err := a.Vault.Ping(ctx); errors.As(err, &se) {
		rd.Checks.Redis, rd.Checks.Vault = "failing", "unknown"
	} else if err != nil {
		rd.Checks.Vault = "failing"
	}
	var aerr error
	select {
	case aerr = <-auditc:
	case <-ctx.Done():
		aerr = errAuditStuck
	}
	if aerr != nil {
		rd.Checks.Audit = "failing"
		a.Log.WithError(aerr).Warn("readiness: the audit trail cannot be written")
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
	merchant := key.Merchant
	id := mux.Vars(r)["id"]
	if !vault.ValidTokenID(id) {
		return errTokenNotFound // malformed ids answer exactly like unknown ones
	}
	info(r).token = id
	if err := d.attempt(r); err != nil {
		return err
	}
	ctx, done, err := d.vaultCall(r.Context())
	if err != nil {
		return err
	}
	defer done()
	if err := d.Vault.Delete(ctx, merchant, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
