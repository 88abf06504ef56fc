package vault

import (
	"context"
	"encoding/json"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/token"
)

// CardMeta is what may be shown of a card: BIN, last 4, brand, expiry.
type CardMeta struct {
	BIN      string     `json:"bin"`
	Last4    string     `json:"last4"`
	Brand    card.Brand `json:"brand"`
	ExpMonth string     `json:"exp_month"`
	ExpYear  string     `json:"exp_year"`
}

// Metadata describes a token without any card data.
type Metadata struct {
	Token   string       `json:"token"`
	Kind    token.Kind   `json:"kind"`
	Card    *CardMeta    `json:"card,omitempty"`
	Network card.Network `json:"network,omitempty"`
	// Fingerprint is a per-merchant HMAC of the PAN: the same card gives
	// the same fingerprint for one merchant (while the HMAC key is not
	// rotated) and unrelated ones for two merchants. FingerprintExp is the
	// same over PAN and expiry.
	Fingerprint    string     `json:"fingerprint,omitempty"`
	FingerprintExp string     `json:"fingerprint_exp,omitempty"`
	HasCVV         bool       `json:"has_cvv"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	CVVExpiresAt   *time.Time `json:"cvv_expires_at,omitempty"`
}

// recordVersion 2 binds the metadata into the ciphertexts' associated data
// (payload.go). Records of version 1 are refused (ErrIntegrity), not read with
// the old associated data: they were never in production, and reading them
// would keep the unbound form alive.
const recordVersion = 2

// storedRecord is the JSON kept in Redis: ciphertext and metadata, nothing else.
type storedRecord struct {
	V              int          `json:"v"`
	Merchant       string       `json:"merchant"`
	Kind           token.Kind   `json:"kind"`
	Ciphertext     string       `json:"ct"`
	KeyVersion     int          `json:"key_version"`
	Card           *CardMeta    `json:"card,omitempty"`
	Network        card.Network `json:"network,omitempty"`
	Fingerprint    string       `json:"fingerprint,omitempty"`
	FingerprintExp string       `json:"fingerprint_exp,omitempty"`
	// CVVNonce is random, bound into the CVV ciphertext's associated data,
	// and cleared in the same atomic step that deletes the CVV: a consumed
	// CVV put back into Redis alone does not decrypt again.
	CVVNonce     string     `json:"cvv_nonce,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	CVVExpiresAt *time.Time `json:"cvv_expires_at,omitempty"`
}

// meta returns the record's metadata with copies of its pointers, so a
// caller changing it changes nothing here.
func (r *storedRecord) meta(token string, hasCVV bool) Metadata {
	m := Metadata{
		Token:          token,
		Kind:           r.Kind,
		Network:        r.Network,
		Fingerprint:    r.Fingerprint,
		FingerprintExp: r.FingerprintExp,
		HasCVV:         hasCVV,
		CreatedAt:      r.CreatedAt,
		ExpiresAt:      r.ExpiresAt,
	}
	if r.Card != nil {
		c := *r.Card
		m.Card = &c
	}
	if hasCVV && r.CVVExpiresAt != nil {
		t := *r.CVVExpiresAt
		m.CVVExpiresAt = &t
	}
	return m
}

// spent is the record as consuming its CVV leaves it: without the nonce, so the
// CVV ciphertext no longer authenticates against it.
func (r *storedRecord) spent() ([]byte, error) {
	s := *r
	s.CVVNonce = ""
	return json.Marshal(&s)
}

// load reads and checks a token's record. Unknown, malformed-id, expired and
// other-merchant tokens all give ErrTokenNotFound.
func (v *Vault) load(ctx context.Context, merchant, token string, withCVV bool) (*storedRecord, snapshot, error) {
	if !validMerchantID(merchant) || !ValidTokenID(token) {
		return nil, snapshot{}, ErrTokenNotFound
	}
	st, err := v.store.read(ctx, merchant, token, withCVV)
	if err != nil {
		return nil, st, err
	}
	if st.rec == nil {
		if st.walletUse {
			return nil, st, ErrWalletConsumed
		}
		return nil, st, ErrTokenNotFound
	}
	var rec storedRecord
	if err := json.Unmarshal(st.rec, &rec); err != nil || rec.V != recordVersion {
		return nil, st, ErrIntegrity
	}
	if rec.Merchant != merchant || !v.clock().Before(rec.ExpiresAt) {
		return nil, st, ErrTokenNotFound
	}
	return &rec, st, nil
}

// cvvLive reports whether the record's CVV is still there, unconsumed and in time.
func (v *Vault) cvvLive(rec *storedRecord, st snapshot) bool {
	return rec.CVVNonce != "" && st.hasCVV && rec.CVVExpiresAt != nil && v.clock().Before(*rec.CVVExpiresAt)
}

// Metadata returns a token's metadata without reading the CVV ciphertext.
// HasCVV says whether a CVV is still available for one detokenization.
func (v *Vault) Metadata(ctx context.Context, merchant, token string) (Metadata, error) {
	rec, st, err := v.load(ctx, merchant, token, false)
	if err != nil {
		return Metadata{}, err
	}
	return rec.meta(token, v.cvvLive(rec, st)), nil
}

// Delete removes a token's record and CVV. ErrTokenNotFound when it does not
// exist (or is another merchant's, or a consumed wallet token).
func (v *Vault) Delete(ctx context.Context, merchant, token string) error {
	if !validMerchantID(merchant) || !ValidTokenID(token) {
		return ErrTokenNotFound
	}
	found, err := v.store.del(ctx, merchant, token)
	if err != nil {
		return err
	}
	if !found {
		return ErrTokenNotFound
	}
	return nil
}
