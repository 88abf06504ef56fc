package proxy

import "net/http"

// caller says where a listener's callers present their key and which role it must
// have. A public key (the pk_ every checkout page embeds) names a merchant, not a
// caller: its requests also count against their client address.
type caller struct {
	header string
	role   Role
	public bool
}

var (
	collectCaller = caller{"Authorization", RolePublishable, true}
	forwardCaller = caller{"Proxy-Authorization", RoleSecret, false}
	adminCaller   = caller{"Authorization", RoleAdmin, false}
)

// keyedFunc is a handler behind the authentication layer; key is its caller's.
type keyedFunc func(w http.ResponseWriter, r *http.Request, key Key) error

// authenticated is the layer in front of everything else on an authenticated route
// (idempotency replays included): it resolves the caller's key, names merchant and
// key id in the request's access-log line and audit record, and takes one request
// from that key's rate limit. A missing, unknown or wrong-listener key is a 401.
// Requests without a valid key, and every request with a public key, first take one
// from their client address's limit: the client's own bucket empties before a flood
// reaches the key's, which every shopper of the merchant shares.
func (d *deps) authenticated(c caller, h keyedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key, err := d.directory(r).keys.Authenticate(bearer(r.Header.Get(c.header)), c.role)
		if err != nil || c.public {
			if lerr := d.Limiter.allowClient(info(r).client); lerr != nil {
				return lerr
			}
		}
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

// clientLimited takes one request from the client address's limit before h: for the
// routes anyone may call without a key.
func (d *deps) clientLimited(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := d.Limiter.allowClient(info(r).client); err != nil {
			return err
		}
		return h(w, r)
	}
}

// directory is the keys and merchants r uses from its first look to its end: a reload
// in between never has a request authenticate under one set and check origins under another.
func (d *deps) directory(r *http.Request) *directory {
	ri := info(r)
	if ri.dir == nil {
		ri.dir = d.dir.Load()
	}
	return ri.dir
}
