package proxy

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Role says which listener a key opens. A key presented to another listener is refused.
type Role string

const (
	RolePublishable Role = "publishable" // pk_…: collect listener only
	RoleSecret      Role = "secret"      // sk_…: forward listener only
	RoleAdmin       Role = "admin"       // ak_…: admin listener only
)

var rolePrefix = map[Role]string{RolePublishable: "pk_", RoleSecret: "sk_", RoleAdmin: "ak_"}

// Key is one API key as the proxy holds it: only the SHA-256 digest of the secret.
type Key struct {
	ID       string // non-secret identifier for logs and audit records
	Merchant string
	Role     Role
	digest   [sha256.Size]byte
}

// String never shows the digest; it is not secret, but there is no reason to print it.
func (k Key) String() string {
	return fmt.Sprintf("key{id:%s merchant:%s role:%s}", k.ID, k.Merchant, k.Role)
}

// Keys authenticates presented keys against stored digests in constant time.
type Keys struct{ keys []Key }

// Len is how many keys are registered (for the audit record of a reload).
func (ks *Keys) Len() int { return len(ks.keys) }

// ErrUnauthorized is returned for a missing, unknown or wrong-listener key alike.
var ErrUnauthorized = errors.New("unauthorized")

// KeyDigest is the digest a config file stores for a key: "sha256:" + hex.
func KeyDigest(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(d[:])
}

// ErrDuplicateKey: a digest is registered once. Listed for two roles or two
// merchants, one key would open both (a public pk_ the forward listener).
var ErrDuplicateKey = errors.New("the same key digest is listed twice (for two roles or two merchants)")

// Add registers a key by its digest ("sha256:<hex>"). Two keys per role and merchant
// may be active at once so that keys can be rotated without downtime.
func (ks *Keys) Add(merchant string, role Role, digest string) error {
	if _, ok := rolePrefix[role]; !ok {
		return fmt.Errorf("unknown key role %q", role)
	}
	if merchant == "" {
		return errors.New("key without merchant")
	}
	raw, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil || len(raw) != sha256.Size || !strings.HasPrefix(digest, "sha256:") {
		return errors.New("key digest must be sha256:<64 hex digits>")
	}
	n := 0
	for _, k := range ks.keys {
		if [sha256.Size]byte(raw) == k.digest {
			return ErrDuplicateKey
		}
		if k.Merchant == merchant && k.Role == role {
			n++
		}
	}
	if n >= 2 {
		return fmt.Errorf("merchant %q has more than two %s keys", merchant, role)
	}
	k := Key{Merchant: merchant, Role: role}
	copy(k.digest[:], raw)
	k.ID = rolePrefix[role] + hex.EncodeToString(raw[:4])
	ks.keys = append(ks.keys, k)
	return nil
}

// Generate creates a new random key for merchant and role, registers its digest and
// returns the secret. Used by `chdproxy dev` and tests; production loads digests.
func (ks *Keys) Generate(merchant string, role Role) (string, error) {
	secret, digest, err := NewKey(role)
	if err != nil {
		return "", err
	}
	return secret, ks.Add(merchant, role, digest)
}

// NewKey makes a new random key for role (its prefix and 32 base62 characters
// from crypto/rand) and the digest a configuration stores for it ("sha256:<hex>").
func NewKey(role Role) (secret, digest string, err error) {
	prefix, ok := rolePrefix[role]
	if !ok {
		return "", "", fmt.Errorf("unknown key role %q", role)
	}
	secret = prefix + randomBase62(keyChars)
	return secret, KeyDigest(secret), nil
}

// Authenticate returns the key whose digest matches secret and whose role is role.
// Every stored key is compared, so timing does not depend on which one matches.
// Only keys of the generated form open anything (PCI DSS 8.3.6): a digest of a short
// hand-made key in a config would otherwise be a guessable credential.
func (ks *Keys) Authenticate(secret string, role Role) (Key, error) {
	if !wellFormed(secret, role) {
		return Key{}, ErrUnauthorized
	}
	d := sha256.Sum256([]byte(secret))
	var found Key
	match := 0
	for _, k := range ks.keys {
		eq := subtle.ConstantTimeCompare(d[:], k.digest[:])
		if eq == 1 {
			found = k
		}
		match |= eq
	}
	if match == 0 || found.Role != role {
		return Key{}, ErrUnauthorized
	}
	return found, nil
}

// wellFormed says whether secret has the form NewKey gives role's keys: the role's
// prefix and keyChars base62 characters (190 bits).
func wellFormed(secret string, role Role) bool {
	body, ok := strings.CutPrefix(secret, rolePrefix[role])
	if !ok || len(body) != keyChars {
		return false
	}
	for i := 0; i < len(body); i++ {
		if strings.IndexByte(base62, body[i]) < 0 {
			return false
		}
	}
	return true
}

// bearer extracts the credential of an "Authorization: Bearer …"-style header value.
func bearer(v string) string {
	const p = "bearer "
	if len(v) > len(p) && strings.EqualFold(v[:len(p)], p) {
		return strings.TrimSpace(v[len(p):])
	}
	return ""
}

const (
	base62   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	keyChars = 32 // characters after the prefix of a generated key
)

// randomBase62 returns n characters from crypto/rand without modulo bias.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic("crypto/rand: " + err.Error()) // the OS RNG failing is not recoverable
		}
		for _, b := range buf {
			if b < 248 && len(out) < n { // 248 = 4*62: reject to keep the distribution uniform
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}
