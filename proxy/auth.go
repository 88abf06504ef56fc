package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
)

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
// from that key's rate limit. A missing, unknown or wrong-listener key is a 401; a
// secret key on a connection without its merchant's client certificate is a 403.
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
		if c.role == RoleSecret && !clientCertificateMatches(r, d.directory(r).merchants[key.Merchant]) {
			// Before the key's limit: a stolen sk_ without its certificate cannot drain it.
			if lerr := d.Limiter.allowClient(ri.client); lerr != nil {
				return lerr
			}
			return errClientCertificate
		}
		if err := d.Limiter.allow(key.ID); err != nil {
			return err
		}
		return h(w, r, key)
	}
}

// clientCertificateMatches reports whether r's connection may use a secret key of m.
// When m lists client certificates, or the connection carries one (the forward
// listener requires them), the verified certificate's public key must be one m lists:
// a merchant without a list then gets nothing on a listener that asks for certificates.
// Behind a TLS-terminating proxy r.TLS is nil and a merchant with a list is refused.
func clientCertificateMatches(r *http.Request, m Merchant) bool {
	presented := r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	if len(m.ClientCerts) == 0 && !presented {
		return true
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return false
	}
	sum := sha256.Sum256(r.TLS.VerifiedChains[0][0].RawSubjectPublicKeyInfo)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	return slices.ContainsFunc(m.ClientCerts, func(c string) bool { return strings.EqualFold(c, digest) })
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
