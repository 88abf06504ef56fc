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

// readyz checks Vault and Redis with a short deadline so a load balancer gets a fast answer.
func (a *admin) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.Vault.Ping(ctx); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
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
