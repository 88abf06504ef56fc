package vault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/token"
)

// maxTokenizeAttempts bounds retries after a token id collision.
const maxTokenizeAttempts = 3

// CardInput is a card to tokenize. CVV and Holder are optional.
type CardInput struct {
	PAN    card.PAN
	Expiry card.Expiry
	CVV    card.CVV
	Holder card.Holder
}

// WalletInput is an Apple Pay or Google Pay payload to tokenize.
type WalletInput struct {
	Kind    token.Kind // token.ApplePay or token.GooglePay
	DPAN    card.DPAN
	Network card.Network
}

// TokenizeCard encrypts a card and stores it under a new token of merchant.
// Three transit calls run concurrently — card payload (card key), CVV (CVV
// key, when given), two fingerprints (one HMAC batch) — then one Redis
// round trip writes the record and the CVV, or nothing. A transit failure
// stores nothing.
func (v *Vault) TokenizeCard(ctx context.Context, merchant string, in CardInput) (Metadata, error) {
	if !validMerchantID(merchant) || in.PAN.IsZero() ||
		in.Expiry.Month < 1 || in.Expiry.Month > 12 || in.Expiry.Year < 1000 || in.Expiry.Year > 9999 {
		return Metadata{}, ErrInvalidInput
	}
	return v.withNewID(func(id string) (Metadata, error) { return v.tokenizeCard(ctx, merchant, id, in) })
}

// TokenizeWallet encrypts a wallet payload (DPAN and network) under the
// card key and stores it under a new one-time token living WalletTTL.
func (v *Vault) TokenizeWallet(ctx context.Context, merchant string, in WalletInput) (Metadata, error) {
	if !validMerchantID(merchant) || in.DPAN.IsZero() || in.Network == "" || !in.Kind.Wallet() {
		return Metadata{}, ErrInvalidInput
	}
	return v.withNewID(func(id string) (Metadata, error) { return v.tokenizeWallet(ctx, merchant, id, in) })
}

// withNewID runs tokenize under a new token id, and again under another one
// after a collision: the id is in the AAD, so everything is encrypted anew.
func (v *Vault) withNewID(tokenize func(id string) (Metadata, error)) (Metadata, error) {
	for range maxTokenizeAttempts {
		id, err := newTokenID(v.ids)
		if err != nil {
			return Metadata{}, err
		}
		m, err := tokenize(id)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return m, err
	}
	return Metadata{}, ErrConflict
}

// tokenizeCard fills the record first: its metadata is the ciphertexts'
// associated data (payload.go).
func (v *Vault) tokenizeCard(ctx context.Context, merchant, id string, in CardInput) (Metadata, error) {
	now := v.clock()
	rec := newRecord(merchant, token.Card, now, v.tokenTTL)
	rec.Card = &CardMeta{
		BIN:      in.PAN.BIN(),
		Last4:    in.PAN.Last4(),
		Brand:    in.PAN.Brand(),
		ExpMonth: in.Expiry.MonthString(),
		ExpYear:  in.Expiry.YearString(),
	}
	if !in.CVV.IsZero() {
		t := now.Add(v.cvvTTL)
		rec.CVVExpiresAt, rec.CVVNonce = &t, rand.Text()
	}
	sealed, err := v.sealCard(ctx, id, &rec, in)
	if err != nil {
		return Metadata{}, err
	}
	rec.Ciphertext, rec.KeyVersion = sealed.card.Ciphertext, sealed.card.KeyVersion
	rec.Fingerprint, rec.FingerprintExp = sealed.fp, sealed.fpExp
	return v.save(ctx, id, &rec, v.tokenTTL, sealed.cvv)
}

// sealedCard is what transit made of a card.
type sealedCard struct {
	card      EncryptResult
	cvv       string // the CVV ciphertext, "" without a CVV
	fp, fpExp string
}

// sealCard makes the transit calls of a card concurrently and wipes every
// plaintext copy it made once they are done.
func (v *Vault) sealCard(ctx context.Context, id string, rec *storedRecord, in CardInput) (sealedCard, error) {
	mctx, aad := []byte(rec.Merchant), rec.cardAAD(id)
	pan := in.PAN.Reveal()
	defer wipe(pan)
	var holder []byte
	if !in.Holder.IsZero() {
		holder = []byte(in.Holder.Reveal())
		defer wipe(holder)
	}
	payload := encodeCard(pan, in.Expiry.Month, in.Expiry.Year, holder)
	defer wipe(payload)
	panExp := make([]byte, 0, len(pan)+7)
	panExp = append(append(append(panExp, pan...), 0), in.Expiry.YearString()+in.Expiry.MonthString()...)
	defer wipe(panExp)

	var (
		wg            sync.WaitGroup
		s             sealedCard
		cvvErr, fpErr error
	)
	if !in.CVV.IsZero() {
		cvv := in.CVV.Reveal()
		defer wipe(cvv)
		wg.Go(func() {
			r, err := encryptOne(ctx, v.transit, KeyCVV, cvv, mctx, rec.cvvAAD(id))
			s.cvv, cvvErr = r.Ciphertext, err
		})
	}
	wg.Go(func() { s.fp, s.fpExp, fpErr = v.fingerprints(ctx, mctx, pan, panExp) })
	var cardErr error
	s.card, cardErr = encryptOne(ctx, v.transit, KeyCard, payload, mctx, aad)
	wg.Wait()
	return s, firstErr(cardErr, cvvErr, fpErr)
}

// fingerprints MACs the PAN, and the PAN with its expiry, in one batch.
func (v *Vault) fingerprints(ctx context.Context, mctx, pan, panExp []byte) (fp, fpExp string, err error) {
	hm, err := v.transit.HMAC(ctx, []HMACItem{{Context: mctx, Input: pan}, {Context: mctx, Input: panExp}})
	if err == nil && len(hm) != 2 {
		err = &TransitError{Op: "hmac", Reason: "wrong number of results", err: ErrUnavailable}
	}
	for _, r := range hm {
		if err == nil && r.Err != nil {
			err = r.Err
		}
	}
	if err != nil {
		return "", "", err
	}
	return fingerprint(hm[0]), fingerprint(hm[1]), nil
}

// fingerprint renders an HMAC as "fp_" + unpadded base64url.
func fingerprint(r HMACResult) string {
	return "fp_" + base64.RawURLEncoding.EncodeToString(r.Sum)
}

func (v *Vault) tokenizeWallet(ctx context.Context, merchant, id string, in WalletInput) (Metadata, error) {
	rec := newRecord(merchant, in.Kind, v.clock(), v.walletTTL)
	rec.Network = in.Network
	dpan := in.DPAN.Reveal()
	defer wipe(dpan)
	payload := encodeWallet(string(in.Network), dpan)
	defer wipe(payload)
	res, err := encryptOne(ctx, v.transit, KeyCard, payload, []byte(merchant), rec.cardAAD(id))
	if err != nil {
		return Metadata{}, err
	}
	rec.Ciphertext, rec.KeyVersion = res.Ciphertext, res.KeyVersion
	return v.save(ctx, id, &rec, v.walletTTL, "")
}

// newRecord starts the record of a new token living ttl from now; the
// ciphertext is added once sealed under the record's associated data.
func newRecord(merchant string, kind token.Kind, now time.Time, ttl time.Duration) storedRecord {
	return storedRecord{
		V:         recordVersion,
		Merchant:  merchant,
		Kind:      kind,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
	}
}

// save stores a new record, with its CVV ciphertext when cvv is not "", and
// returns its metadata. ErrConflict when the id is taken.
func (v *Vault) save(ctx context.Context, id string, rec *storedRecord, ttl time.Duration, cvv string) (Metadata, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return Metadata{}, err
	}
	if err := v.store.put(ctx, rec.Merchant, id, b, ttl, cvv, v.cvvTTL); err != nil {
		return Metadata{}, err
	}
	v.store.obs.get().Token(TokenCreated, rec.Kind)
	return rec.meta(id, rec.CVVNonce != ""), nil
}

// digestDomain starts every Digest input: fingerprint inputs start with a
// digit, so no digest equals a fingerprint.
const digestDomain = "chd-idempotency\x00"

// Digest MACs input (card fields the caller encoded) with transit's HMAC key
// under merchant. The proxy binds an idempotency record to a tokenize
// request's card fields with it: the key stays in Vault, so whoever reads
// the record cannot test a guessed card against it.
func (v *Vault) Digest(ctx context.Context, merchant string, input []byte) ([]byte, error) {
	if !validMerchantID(merchant) {
		return nil, ErrInvalidInput
	}
	msg := append([]byte(digestDomain), input...)
	defer wipe(msg)
	res, err := v.transit.HMAC(ctx, []HMACItem{{Context: []byte(merchant), Input: msg}})
	r, err := one(res, err, func(r HMACResult) error { return r.Err })
	return r.Sum, err
}

// CVVTTL is how long a tokenized CVV lives: no longer than that is a tokenize
// answer worth replaying.
func (v *Vault) CVVTTL() time.Duration { return v.cvvTTL }
