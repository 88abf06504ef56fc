package proxy

import "net/http"

// caller says where a listener's callers present their key and which role it must have.
type caller struct {
	header string
	role   Role
}

var (
	collectCaller = caller{"Authorization", RolePublishable}
	forwardCaller = caller{"Proxy-Authorization", RoleSecret}
	adminCaller   = caller{"Authorization", RoleAdmin}
)

// keyedFunc is a handler behind the authentication layer; key is its caller's.
type keyedFunc func(w http.ResponseWriter, r *http.Request, key Key) error

// authenticated is the layer in front of everything else on an authenticated route
// (idempotency replays included): it resolves the caller's key, names merchant and
// key id in the request's access-log line and audit record, and takes one request
// from that key's rate limit. A missing, unknown or wrong-listener key is a 401.
func (d *deps) authenticated(c caller, h keyedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key, err := d.Keys.Authenticate(bearer(r.Header.Get(c.header)), c.role)
		if err != nil {
			return errUnauthorized
		}
		ri := info(r)
		ri.merchant, ri.keyID = key.Merchant, key.ID
		if err := d.Limiter.allow(key.ID); err != nil {
			return err
		}
		return h(w, r, key)
	}
}
