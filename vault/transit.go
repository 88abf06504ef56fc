package vault

import (
	"context"
)

// Key names the purpose of a transit encryption key. Each Transit maps it to
// its own key (VaultTransitConfig.CardKey / CVVKey; LocalCipher derives one).
type Key int

const (
	// KeyCard encrypts card payloads (PAN, expiry, holder) and wallet
	// payloads (DPAN, network).
	KeyCard Key = iota + 1
	// KeyCVV encrypts CVVs only, so CVV decryption can be granted, audited
	// and rotated apart from card data.
	KeyCVV
)

func (k Key) String() string {
	switch k {
	case KeyCard:
		return "card"
	case KeyCVV:
		return "cvv"
	}
	return "unknown"
}

// EncryptItem is one plaintext to encrypt. Context selects the derived key
// (the merchant id) and AAD is authenticated but not encrypted (the token
// id): a ciphertext decrypts only with the same Context and AAD.
type EncryptItem struct {
	Plaintext []byte
	Context   []byte
	AAD       []byte
}

// EncryptResult is the outcome of one EncryptItem: a ciphertext in the
// implementation's text form ("vault:v1:…", "dev:v1:…") and the key version
// used, or Err.
type EncryptResult struct {
	Ciphertext string
	KeyVersion int
	Err        error
}

// DecryptItem is one ciphertext to decrypt, with the Context and AAD it was
// encrypted with.
type DecryptItem struct {
	Ciphertext string
	Context    []byte
	AAD        []byte
}

// DecryptResult is the outcome of one DecryptItem. Plaintext belongs to the
// caller, who should wipe it after use. A ciphertext that does not
// authenticate gives an Err matching ErrIntegrity.
type DecryptResult struct {
	Plaintext []byte
	Err       error
}

// HMACItem is one input to fingerprint. Transit HMAC has no derivation
// context, so implementations MAC Context || 0x00 || Input (see hmacMessage):
// the same card gives unrelated fingerprints for two merchants.
type HMACItem struct {
	Context []byte
	Input   []byte
}

// HMACResult is the outcome of one HMACItem: the raw MAC and the key version.
type HMACResult struct {
	Sum        []byte
	KeyVersion int
	Err        error
}

// Transit is the encryption service of the vault: Vault's transit engine in
// production (VaultTransit), a local AEAD in development (LocalCipher).
//
// Every method takes a batch and answers per item, like Vault's
// batch_input/batch_results: on a nil error the result slice has exactly
// len(items) entries, in order, each with either a value or its own Err. A
// non-nil error means the whole call failed (nothing was encrypted). A
// wrapper may therefore coalesce concurrent callers' items into one call.
//
// Implementations must not keep the item slices after returning (callers
// wipe plaintexts) and must never put input data in an error.
type Transit interface {
	Encrypt(ctx context.Context, key Key, items []EncryptItem) ([]EncryptResult, error)
	Decrypt(ctx context.Context, key Key, items []DecryptItem) ([]DecryptResult, error)
	HMAC(ctx context.Context, items []HMACItem) ([]HMACResult, error)
	// Ping checks that the service answers and the keys can be used.
	Ping(ctx context.Context) error
}

// hmacMessage returns context || 0x00 || input in a new buffer (the caller
// wipes it). Contexts are merchant ids, which contain no NUL byte
// (validMerchantID), so the encoding is unambiguous.
func hmacMessage(context, input []byte) []byte {
	m := make([]byte, 0, len(context)+1+len(input))
	m = append(m, context...)
	m = append(m, 0)
	return append(m, input...)
}

// wipe zeroes b.
func wipe(b []byte) { clear(b) }

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

// encryptOne encrypts one plaintext.
func encryptOne(ctx context.Context, t Transit, key Key, plaintext, mctx, aad []byte) (EncryptResult, error) {
	r, err := t.Encrypt(ctx, key, []EncryptItem{{Plaintext: plaintext, Context: mctx, AAD: aad}})
	return one(r, err, func(r EncryptResult) error { return r.Err })
}

// decryptOne decrypts one ciphertext; the plaintext is the caller's to wipe.
func decryptOne(ctx context.Context, t Transit, key Key, ciphertext string, mctx, aad []byte) ([]byte, error) {
	r, err := t.Decrypt(ctx, key, []DecryptItem{{Ciphertext: ciphertext, Context: mctx, AAD: aad}})
	res, err := one(r, err, func(r DecryptResult) error { return r.Err })
	return res.Plaintext, err
}
