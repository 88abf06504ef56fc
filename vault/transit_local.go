package vault

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// localPrefix starts every LocalCipher ciphertext.
const localPrefix = "dev:v1:"

var errLocalInput = errors.New("vault: local cipher: missing context")

// LocalCipher is the development-only Transit: XChaCha20-Poly1305 with a key
// per (key purpose, merchant) derived by HKDF-SHA256 from a random 32-byte
// master generated at construction, AAD = the item's AAD (the token id), and
// HMAC-SHA256 under another HKDF-derived key. The master never leaves the
// process, so everything it encrypted is lost when the process exits — fine
// for `chdproxy dev` with its in-memory Redis, wrong anywhere else:
// DevOnly reports true and `serve` refuses it.
//
// Ciphertexts are "dev:v1:" + base64(nonce || sealed box).
type LocalCipher struct {
	master  [32]byte
	hmacKey []byte
	aeads   sync.Map // string(key purpose, 0, context) → cipher.AEAD
}

// NewLocalCipher returns a LocalCipher with a fresh random master key.
func NewLocalCipher() (*LocalCipher, error) {
	c := &LocalCipher{}
	if _, err := io.ReadFull(rand.Reader, c.master[:]); err != nil {
		return nil, err
	}
	c.hmacKey = c.derive("chdproxy/dev/v1/hmac", nil)
	return c, nil
}

// DevOnly reports true: LocalCipher keeps its key in process memory.
func (*LocalCipher) DevOnly() bool { return true }

// String does not print the key.
func (*LocalCipher) String() string { return "LocalCipher(dev only)" }

// GoString does not print the key either (%#v).
func (*LocalCipher) GoString() string { return "LocalCipher(dev only)" }

func (c *LocalCipher) derive(info string, context []byte) []byte {
	in := make([]byte, 0, len(info)+1+len(context))
	in = append(in, info...)
	in = append(in, 0)
	in = append(in, context...)
	k := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, c.master[:], nil, in), k); err != nil {
		panic("vault: hkdf: " + err.Error()) // cannot happen for 32 bytes
	}
	return k
}

func (c *LocalCipher) aead(key Key, context []byte) cipher.AEAD {
	id := key.String() + "\x00" + string(context)
	if a, ok := c.aeads.Load(id); ok {
		return a.(cipher.AEAD)
	}
	k := c.derive("chdproxy/dev/v1/"+key.String(), context)
	a, err := chacha20poly1305.NewX(k)
	wipe(k)
	if err != nil {
		panic("vault: xchacha: " + err.Error()) // cannot happen for 32 bytes
	}
	got, _ := c.aeads.LoadOrStore(id, a)
	return got.(cipher.AEAD)
}

// Encrypt implements Transit.
func (c *LocalCipher) Encrypt(ctx context.Context, key Key, items []EncryptItem) ([]EncryptResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]EncryptResult, len(items))
	for i, it := range items {
		if len(it.Context) == 0 {
			out[i].Err = &TransitError{Op: "encrypt", Reason: "missing context", err: errLocalInput}
			continue
		}
		a := c.aead(key, it.Context)
		buf := make([]byte, a.NonceSize(), a.NonceSize()+len(it.Plaintext)+a.Overhead())
		if _, err := io.ReadFull(rand.Reader, buf); err != nil {
			return nil, err
		}
		buf = a.Seal(buf, buf, it.Plaintext, it.AAD)
		out[i] = EncryptResult{Ciphertext: localPrefix + base64.StdEncoding.EncodeToString(buf), KeyVersion: 1}
	}
	return out, nil
}

// Decrypt implements Transit.
func (c *LocalCipher) Decrypt(ctx context.Context, key Key, items []DecryptItem) ([]DecryptResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]DecryptResult, len(items))
	for i, it := range items {
		out[i].Plaintext, out[i].Err = c.open(key, it)
	}
	return out, nil
}

func (c *LocalCipher) open(key Key, it DecryptItem) ([]byte, error) {
	bad := &TransitError{Op: "decrypt", Reason: "ciphertext does not authenticate", err: ErrIntegrity}
	if len(it.Context) == 0 || !strings.HasPrefix(it.Ciphertext, localPrefix) {
		return nil, bad
	}
	raw, err := base64.StdEncoding.DecodeString(it.Ciphertext[len(localPrefix):])
	if err != nil {
		return nil, bad
	}
	a := c.aead(key, it.Context)
	if len(raw) < a.NonceSize()+a.Overhead() {
		return nil, bad
	}
	pt, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], it.AAD)
	if err != nil {
		return nil, bad
	}
	return pt, nil
}

// HMAC implements Transit: HMAC-SHA256(context || 0x00 || input).
func (c *LocalCipher) HMAC(ctx context.Context, items []HMACItem) ([]HMACResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]HMACResult, len(items))
	for i, it := range items {
		m := hmac.New(sha256.New, c.hmacKey)
		m.Write(it.Context)
		m.Write([]byte{0})
		m.Write(it.Input)
		out[i] = HMACResult{Sum: m.Sum(nil), KeyVersion: 1}
	}
	return out, nil
}

// Ping implements Transit; a LocalCipher is always ready.
func (c *LocalCipher) Ping(ctx context.Context) error { return ctx.Err() }
