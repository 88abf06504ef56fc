package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/chdproxy/chdproxy/card"
)

// Kind is what a token stands for.
type Kind string

// The token kinds.
const (
	KindCard      Kind = "card"
	KindApplePay  Kind = "apple_pay"
	KindGooglePay Kind = "google_pay"
)

// TTL defaults and caps.
const (
	DefaultTokenTTL  = 24 * time.Hour
	DefaultCVVTTL    = 10 * time.Minute
	DefaultWalletTTL = 10 * time.Minute
	// MaxCVVTTL caps the CVV's and the wallet token's lifetime: both are
	// sensitive authentication data / one-time cryptograms.
	MaxCVVTTL = 60 * time.Minute
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
	Kind    Kind // KindApplePay or KindGooglePay
	DPAN    card.DPAN
	Network card.Network
}

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
	Kind    Kind         `json:"kind"`
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

// Secret is what detokenization yields. It is never logged and never
// marshalled: its card fields print as placeholders.
type Secret struct {
	Kind    Kind
	PAN     card.PAN
	Expiry  card.Expiry
	Holder  card.Holder
	CVV     card.CVV
	DPAN    card.DPAN
	Network card.Network
	Meta    Metadata
}

// MarshalJSON refuses: a Secret must not be serialised.
func (Secret) MarshalJSON() ([]byte, error) {
	return nil, errors.New("vault: a Secret is not serialisable")
}

// Config configures a Vault.
type Config struct {
	Transit Transit
	Store   *Store
	// TokenTTL is a card token's lifetime (default 24h).
	TokenTTL time.Duration
	// CVVTTL is the CVV's lifetime (default 10m, at most MaxCVVTTL, and
	// never longer than TokenTTL).
	CVVTTL time.Duration
	// WalletTTL is a wallet token's lifetime (default 10m, at most MaxCVVTTL).
	WalletTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Vault tokenizes and detokenizes card data: ciphertexts from Transit, stored
// by Store. It is safe for concurrent use.
type Vault struct {
	transit   Transit
	store     *Store
	tokenTTL  time.Duration
	cvvTTL    time.Duration
	walletTTL time.Duration
	now       func() time.Time
	ids       io.Reader // randomness of token ids (crypto/rand)
}

// New checks cfg, applies defaults and returns a Vault. A CVV or wallet TTL
// above MaxCVVTTL is an error, not silently capped.
func New(cfg Config) (*Vault, error) {
	if cfg.Transit == nil || cfg.Store == nil {
		return nil, errors.New("vault: Config needs a Transit and a Store")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.CVVTTL == 0 {
		cfg.CVVTTL = DefaultCVVTTL
	}
	if cfg.WalletTTL == 0 {
		cfg.WalletTTL = DefaultWalletTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.TokenTTL < time.Millisecond || cfg.CVVTTL < time.Millisecond || cfg.WalletTTL < time.Millisecond:
		return nil, errors.New("vault: TTLs must be at least 1ms")
	case cfg.CVVTTL > MaxCVVTTL:
		return nil, errors.New("vault: CVVTTL exceeds the " + MaxCVVTTL.String() + " cap")
	case cfg.WalletTTL > MaxCVVTTL:
		return nil, errors.New("vault: WalletTTL exceeds the " + MaxCVVTTL.String() + " cap")
	}
	return &Vault{
		transit:   cfg.Transit,
		store:     cfg.Store,
		tokenTTL:  cfg.TokenTTL,
		cvvTTL:    min(cfg.CVVTTL, cfg.TokenTTL),
		walletTTL: cfg.WalletTTL,
		now:       cfg.Now,
		ids:       rand.Reader,
	}, nil
}

// record is the JSON stored in Redis: ciphertext and metadata, nothing else.
type record struct {
	V              int          `json:"v"`
	Merchant       string       `json:"merchant"`
	Kind           Kind         `json:"kind"`
	Ciphertext     string       `json:"ct"`
	KeyVersion     int          `json:"key_version"`
	Card           *CardMeta    `json:"card,omitempty"`
	Network        card.Network `json:"network,omitempty"`
	Fingerprint    string       `json:"fingerprint,omitempty"`
	FingerprintExp string       `json:"fingerprint_exp,omitempty"`
	CVV            bool         `json:"cvv,omitempty"`
	CreatedAt      time.Time    `json:"created_at"`
	ExpiresAt      time.Time    `json:"expires_at"`
	CVVExpiresAt   *time.Time   `json:"cvv_expires_at,omitempty"`
}

func (r *record) meta(token string, hasCVV bool) Metadata {
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

func (v *Vault) clock() time.Time { return v.now().UTC().Truncate(time.Millisecond) }

// fingerprint renders an HMAC as "fp_" + unpadded base64url.
func fingerprint(r HMACResult) string {
	return "fp_" + base64.RawURLEncoding.EncodeToString(r.Sum)
}

// one returns the single result of a one-item call, or the call's error.
func one[T any](res []T, err error, itemErr func(T) error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if len(res) != 1 {
		return zero, &TransitError{Op: "batch", Reason: "wrong number of results", err: ErrUnavailable}
	}
	if e := itemErr(res[0]); e != nil {
		return zero, e
	}
	return res[0], nil
}

func encErr(r EncryptResult) error { return r.Err }
func decErr(r DecryptResult) error { return r.Err }

// TokenizeCard encrypts a card and stores it under a new token of merchant.
// Three transit calls run concurrently — card payload (card key), CVV (CVV
// key, when given), two fingerprints (one HMAC batch) — then one Redis
// round trip writes the record and the CVV, or nothing. A transit failure
// stores nothing.
func (v *Vault) TokenizeCard(ctx context.Context, merchant string, in CardInput) (Metadata, error) {
	if !ValidMerchantID(merchant) || in.PAN.IsZero() ||
		in.Expiry.Month < 1 || in.Expiry.Month > 12 || in.Expiry.Year < 1000 || in.Expiry.Year > 9999 {
		return Metadata{}, ErrInvalidInput
	}
	for range maxTokenizeAttempts {
		id, err := newTokenID(v.ids)
		if err != nil {
			return Metadata{}, err
		}
		m, err := v.tokenizeCard(ctx, merchant, id, in)
		if errors.Is(err, ErrConflict) {
			continue // the id is in the AAD: encrypt again under a new one
		}
		return m, err
	}
	return Metadata{}, ErrConflict
}

func (v *Vault) tokenizeCard(ctx context.Context, merchant, id string, in CardInput) (Metadata, error) {
	now := v.clock()
	mctx, aad := []byte(merchant), []byte(id)

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
		wg     sync.WaitGroup
		cvvRes EncryptResult
		cvvErr error
		hm     []HMACResult
		hmErr  error
	)
	if !in.CVV.IsZero() {
		cvv := in.CVV.Reveal()
		defer wipe(cvv)
		wg.Go(func() {
			r, err := v.transit.Encrypt(ctx, KeyCVV, []EncryptItem{{Plaintext: cvv, Context: mctx, AAD: aad}})
			cvvRes, cvvErr = one(r, err, encErr)
		})
	}
	wg.Go(func() {
		hm, hmErr = v.transit.HMAC(ctx, []HMACItem{{Context: mctx, Input: pan}, {Context: mctx, Input: panExp}})
		if hmErr == nil && len(hm) != 2 {
			hmErr = &TransitError{Op: "hmac", Reason: "wrong number of results", err: ErrUnavailable}
		}
		for _, r := range hm {
			if hmErr == nil && r.Err != nil {
				hmErr = r.Err
			}
		}
	})
	r, err := v.transit.Encrypt(ctx, KeyCard, []EncryptItem{{Plaintext: payload, Context: mctx, AAD: aad}})
	cardRes, cardErr := one(r, err, encErr)
	wg.Wait()
	if err := firstErr(cardErr, cvvErr, hmErr); err != nil {
		return Metadata{}, err
	}

	rec := record{
		V:              1,
		Merchant:       merchant,
		Kind:           KindCard,
		Ciphertext:     cardRes.Ciphertext,
		KeyVersion:     cardRes.KeyVersion,
		Fingerprint:    fingerprint(hm[0]),
		FingerprintExp: fingerprint(hm[1]),
		CreatedAt:      now,
		ExpiresAt:      now.Add(v.tokenTTL),
		Card: &CardMeta{
			BIN:      in.PAN.BIN(),
			Last4:    in.PAN.Last4(),
			Brand:    in.PAN.Brand(),
			ExpMonth: in.Expiry.MonthString(),
			ExpYear:  in.Expiry.YearString(),
		},
	}
	if !in.CVV.IsZero() {
		rec.CVV = true
		t := now.Add(v.cvvTTL)
		rec.CVVExpiresAt = &t
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return Metadata{}, err
	}
	if err := v.store.put(ctx, merchant, id, b, v.tokenTTL, cvvRes.Ciphertext, v.cvvTTL); err != nil {
		return Metadata{}, err
	}
	return rec.meta(id, rec.CVV), nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// TokenizeWallet encrypts a wallet payload (DPAN and network) under the
// card key and stores it under a new one-time token living WalletTTL.
func (v *Vault) TokenizeWallet(ctx context.Context, merchant string, in WalletInput) (Metadata, error) {
	if !ValidMerchantID(merchant) || in.DPAN.IsZero() || in.Network == "" ||
		(in.Kind != KindApplePay && in.Kind != KindGooglePay) {
		return Metadata{}, ErrInvalidInput
	}
	for range maxTokenizeAttempts {
		id, err := newTokenID(v.ids)
		if err != nil {
			return Metadata{}, err
		}
		m, err := v.tokenizeWallet(ctx, merchant, id, in)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return m, err
	}
	return Metadata{}, ErrConflict
}

func (v *Vault) tokenizeWallet(ctx context.Context, merchant, id string, in WalletInput) (Metadata, error) {
	now := v.clock()
	dpan := in.DPAN.Reveal()
	defer wipe(dpan)
	payload := encodeWallet(string(in.Network), dpan)
	defer wipe(payload)
	r, err := v.transit.Encrypt(ctx, KeyCard, []EncryptItem{{Plaintext: payload, Context: []byte(merchant), AAD: []byte(id)}})
	res, err := one(r, err, encErr)
	if err != nil {
		return Metadata{}, err
	}
	rec := record{
		V:          1,
		Merchant:   merchant,
		Kind:       in.Kind,
		Ciphertext: res.Ciphertext,
		KeyVersion: res.KeyVersion,
		Network:    in.Network,
		CreatedAt:  now,
		ExpiresAt:  now.Add(v.walletTTL),
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return Metadata{}, err
	}
	if err := v.store.put(ctx, merchant, id, b, v.walletTTL, "", 0); err != nil {
		return Metadata{}, err
	}
	return rec.meta(id, false), nil
}

// load reads and checks a token's record. Unknown, malformed-id, expired and
// other-merchant tokens all give ErrTokenNotFound.
func (v *Vault) load(ctx context.Context, merchant, token string, withCVV bool) (*record, stored, error) {
	if !ValidMerchantID(merchant) || !ValidTokenID(token) {
		return nil, stored{}, ErrTokenNotFound
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
	var rec record
	if err := json.Unmarshal(st.rec, &rec); err != nil || rec.V != 1 {
		return nil, st, ErrIntegrity
	}
	if rec.Merchant != merchant || !v.clock().Before(rec.ExpiresAt) {
		return nil, st, ErrTokenNotFound
	}
	return &rec, st, nil
}

// cvvLive reports whether the record's CVV is still there and in time.
func (v *Vault) cvvLive(rec *record, st stored) bool {
	return rec.CVV && st.hasCVV && (rec.CVVExpiresAt == nil || v.clock().Before(*rec.CVVExpiresAt))
}

// Metadata returns a token's metadata. HasCVV says whether a CVV is still
// available for one detokenization.
func (v *Vault) Metadata(ctx context.Context, merchant, token string) (Metadata, error) {
	rec, st, err := v.load(ctx, merchant, token, false)
	if err != nil {
		return Metadata{}, err
	}
	return rec.meta(token, v.cvvLive(rec, st)), nil
}

// Detokenize decrypts a token for injection. For a card it returns PAN,
// expiry and holder and, when wantCVV, the CVV, which it consumes: the CVV
// is deleted (GETDEL) after it was decrypted, so a transit outage does not
// burn it, and of concurrent callers exactly one gets it; the others get
// ErrCVVUnavailable, as does any later call. A wallet token is consumed the
// same way at its first detokenization (later: ErrWalletConsumed). wantCVV is
// ignored for wallet tokens, which have none.
func (v *Vault) Detokenize(ctx context.Context, merchant, token string, wantCVV bool) (*Secret, error) {
	rec, st, err := v.load(ctx, merchant, token, wantCVV)
	if err != nil {
		return nil, err
	}
	return v.detokenize(ctx, merchant, token, rec, st, wantCVV, pass)
}

// DetokenizeIf is Detokenize with a single read of the record: check sees the token's
// metadata first and says whether the CVV is wanted; an error from check stops
// everything before any decryption or consumption. gate, when not nil, then runs
// beside the decryption, and nothing is consumed or returned unless it returns nil:
// the forward path writes there the audit record that must precede a detokenization,
// so its fsync and Vault's decryption overlap.
func (v *Vault) DetokenizeIf(ctx context.Context, merchant, token string, check func(Metadata) (wantCVV bool, err error), gate func() error) (*Secret, error) {
	rec, st, err := v.load(ctx, merchant, token, true)
	if err != nil {
		return nil, err
	}
	wantCVV, err := check(rec.meta(token, v.cvvLive(rec, st)))
	if err != nil {
		return nil, err
	}
	wait := pass
	if gate != nil {
		res := make(chan error, 1) // the gate finishes even when decryption fails first
		go func() { res <- gate() }()
		wait = func() error { return <-res }
	}
	return v.detokenize(ctx, merchant, token, rec, st, wantCVV, wait)
}

func pass() error { return nil }

// detokenize decrypts, then calls gate and consumes (the CVV, a wallet token) only
// when it passes.
func (v *Vault) detokenize(ctx context.Context, merchant, token string, rec *record, st stored, wantCVV bool, gate func() error) (*Secret, error) {
	mctx, aad := []byte(merchant), []byte(token)
	switch rec.Kind {
	case KindCard:
		return v.detokenizeCard(ctx, merchant, token, rec, st, wantCVV, mctx, aad, gate)
	case KindApplePay, KindGooglePay:
		return v.detokenizeWallet(ctx, merchant, token, rec, st, mctx, aad, gate)
	}
	return nil, ErrIntegrity
}

func (v *Vault) detokenizeCard(ctx context.Context, merchant, token string, rec *record, st stored, wantCVV bool, mctx, aad []byte, gate func() error) (*Secret, error) {
	if wantCVV && !v.cvvLive(rec, st) {
		return nil, ErrCVVUnavailable
	}
	var (
		wg     sync.WaitGroup
		cvvRes DecryptResult
		cvvErr error
	)
	if wantCVV {
		wg.Go(func() {
			r, err := v.transit.Decrypt(ctx, KeyCVV, []DecryptItem{{Ciphertext: st.cvv, Context: mctx, AAD: aad}})
			cvvRes, cvvErr = one(r, err, decErr)
		})
	}
	r, err := v.transit.Decrypt(ctx, KeyCard, []DecryptItem{{Ciphertext: rec.Ciphertext, Context: mctx, AAD: aad}})
	cardRes, cardErr := one(r, err, decErr)
	wg.Wait()
	defer wipe(cardRes.Plaintext)
	defer wipe(cvvRes.Plaintext)
	if err := firstErr(cardErr, cvvErr); err != nil {
		return nil, err
	}
	if err := gate(); err != nil {
		return nil, err
	}

	p, ok := decodeCard(cardRes.Plaintext)
	if !ok {
		return nil, ErrIntegrity
	}
	pan, err := card.PANFromDigits(p.pan)
	if err != nil {
		return nil, ErrIntegrity
	}
	s := &Secret{
		Kind:   KindCard,
		PAN:    pan,
		Expiry: card.Expiry{Month: p.month, Year: p.year},
		Holder: card.HolderFromBytes(p.holder),
		Meta:   rec.meta(token, v.cvvLive(rec, st)),
	}
	if wantCVV {
		if len(cvvRes.Plaintext) == 0 {
			return nil, ErrIntegrity
		}
		ct, ok, err := v.store.takeCVV(ctx, merchant, token)
		if err != nil {
			return nil, err
		}
		if !ok || ct != st.cvv {
			return nil, ErrCVVUnavailable // consumed by a concurrent call
		}
		s.CVV = card.CVVFromBytes(cvvRes.Plaintext)
		s.Meta.HasCVV = false
		s.Meta.CVVExpiresAt = nil
	}
	return s, nil
}

func (v *Vault) detokenizeWallet(ctx context.Context, merchant, token string, rec *record, st stored, mctx, aad []byte, gate func() error) (*Secret, error) {
	r, err := v.transit.Decrypt(ctx, KeyCard, []DecryptItem{{Ciphertext: rec.Ciphertext, Context: mctx, AAD: aad}})
	res, err := one(r, err, decErr)
	defer wipe(res.Plaintext)
	if err != nil {
		return nil, err
	}
	p, ok := decodeWallet(res.Plaintext)
	if !ok || card.Network(p.network) != rec.Network {
		return nil, ErrIntegrity
	}
	if err := gate(); err != nil {
		return nil, err
	}
	// Consume after decrypting: an outage does not burn the token, and
	// only the caller whose GETDEL returns the record gets the payload.
	got, ok, err := v.store.takeRecord(ctx, merchant, token, rec.ExpiresAt.Sub(v.clock()))
	if err != nil {
		return nil, err
	}
	if !ok || !bytes.Equal(got, st.rec) {
		return nil, ErrWalletConsumed
	}
	return &Secret{
		Kind:    rec.Kind,
		DPAN:    card.DPANFromBytes(p.dpan),
		Network: rec.Network,
		Meta:    rec.meta(token, false),
	}, nil
}

// Delete removes a token's record and CVV. ErrTokenNotFound when it does not
// exist (or is another merchant's, or a consumed wallet token).
func (v *Vault) Delete(ctx context.Context, merchant, token string) error {
	if !ValidMerchantID(merchant) || !ValidTokenID(token) {
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

// Ping checks Redis and transit concurrently (readiness).
func (v *Vault) Ping(ctx context.Context) error {
	var wg sync.WaitGroup
	var terr error
	wg.Go(func() { terr = v.transit.Ping(ctx) })
	serr := v.store.Ping(ctx)
	wg.Wait()
	return firstErr(serr, terr)
}

// String describes the vault's settings, no secrets.
func (v *Vault) String() string {
	return "Vault(token_ttl=" + v.tokenTTL.String() + ", cvv_ttl=" + v.cvvTTL.String() +
		", wallet_ttl=" + v.walletTTL.String() + ", dev_only_transit=" + strconv.FormatBool(IsDevOnly(v.transit)) + ")"
}
