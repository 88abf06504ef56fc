package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/token"
)

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newToken() (string, error) { return newTokenID(rand.Reader) }

func TestTokenIDs(t *testing.T) {
	seen := map[string]bool{}
	counts := map[byte]int{}
	for range 5000 {
		id, err := newToken()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidTokenID(id) || len(id) != 26 {
			t.Fatalf("got invalid token id %q", id)
		}
		if seen[id] {
			t.Fatalf("got token id %q twice", id)
		}
		seen[id] = true
		for i := 4; i < len(id); i++ {
			counts[id[i]]++
		}
	}
	// 110,000 draws over 62 symbols: each ~1774; a biased generator (say
	// b%62 without rejection) would skew the low symbols by ~25%.
	for _, c := range []byte(base62) {
		if n := counts[c]; n < 1550 || n > 2000 {
			t.Fatalf("symbol %q drawn %d times, want about 1774", c, n)
		}
	}
	if ValidTokenID("tok_"+strings.Repeat("a", 21)+"é") || ValidTokenID("TOK_"+strings.Repeat("a", 22)) {
		t.Fatal("ValidTokenID accepted a malformed id")
	}
}

// digitsReader yields only bytes that map to digits, then letters.
type digitsReader struct{ n int }

func (r *digitsReader) Read(p []byte) (int, error) {
	for i := range p {
		if r.n < 200 {
			p[i] = byte(r.n % 10) // base62[0..9] are the digits
		} else {
			p[i] = 20
		}
		r.n++
	}
	return len(p), nil
}

func TestTokenIDsNeverHoldALongDigitRun(t *testing.T) {
	id, err := newTokenID(&digitsReader{})
	if err != nil {
		t.Fatal(err)
	}
	if digitRun([]byte(id)) > maxDigitRun || !ValidTokenID(id) {
		t.Fatalf("got %q with a run of %d digits", id, digitRun([]byte(id)))
	}
}

func TestPayloadsRoundTripAndRejectDamage(t *testing.T) {
	b := encodeCard([]byte(visaPAN), 3, 2031, []byte(holderName))
	p, ok := decodeCard(b)
	if !ok || string(p.pan) != visaPAN || p.month != 3 || p.year != 2031 || string(p.holder) != holderName {
		t.Fatalf("card payload did not round-trip: %v", ok)
	}
	w := encodeWallet("Visa", []byte(testDPAN))
	q, ok := decodeWallet(w)
	if !ok || string(q.network) != "Visa" || string(q.dpan) != testDPAN {
		t.Fatal("wallet payload did not round-trip")
	}
	for i := range len(b) {
		if _, ok := decodeCard(b[:i]); ok {
			t.Fatalf("a card payload cut to %d bytes decoded", i)
		}
	}
	if _, ok := decodeCard(append(bytes.Clone(b), 0)); ok {
		t.Fatal("a card payload with a trailing byte decoded")
	}
	if _, ok := decodeCard(w); ok {
		t.Fatal("a wallet payload decoded as a card")
	}
	if _, ok := decodeWallet(b); ok {
		t.Fatal("a card payload decoded as a wallet")
	}
}

func TestLocalCipherBindsContextAADAndKey(t *testing.T) {
	lc, err := NewLocalCipher()
	if err != nil {
		t.Fatal(err)
	}
	if !isDevOnly(lc) {
		t.Fatal("LocalCipher is not marked dev-only")
	}
	enc, err := lc.Encrypt(bg, KeyCard, []EncryptItem{{Plaintext: []byte(visaPAN), Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
	noErr(t, err, "Encrypt")
	ct := enc[0].Ciphertext
	if !strings.HasPrefix(ct, "dev:v1:") || strings.Contains(ct, visaPAN) {
		t.Fatalf("got ciphertext %q", ct)
	}
	dec, err := lc.Decrypt(bg, KeyCard, []DecryptItem{
		{Ciphertext: ct, Context: []byte("m_alpha"), AAD: []byte("tok_a")},
		{Ciphertext: ct, Context: []byte("m_beta"), AAD: []byte("tok_a")},
		{Ciphertext: ct, Context: []byte("m_alpha"), AAD: []byte("tok_b")},
		{Ciphertext: ct[:len(ct)-4] + "AAA=", Context: []byte("m_alpha"), AAD: []byte("tok_a")},
		{Ciphertext: "vault:v1:" + ct[7:], Context: []byte("m_alpha"), AAD: []byte("tok_a")},
	})
	noErr(t, err, "Decrypt")
	if string(dec[0].Plaintext) != visaPAN {
		t.Fatal("the right context and AAD did not decrypt")
	}
	for i, r := range dec[1:] {
		wantErr(t, r.Err, ErrIntegrity, fmt.Sprintf("item %d", i+1))
	}
	dec, _ = lc.Decrypt(bg, KeyCVV, []DecryptItem{{Ciphertext: ct, Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
	wantErr(t, dec[0].Err, ErrIntegrity, "card ciphertext under the CVV key")

	other, _ := NewLocalCipher()
	dec, _ = other.Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: ct, Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
	wantErr(t, dec[0].Err, ErrIntegrity, "another process's ciphertext")

	h1, _ := lc.HMAC(bg, []HMACItem{{Context: []byte("m_alpha"), Input: []byte(visaPAN)}, {Context: []byte("m_beta"), Input: []byte(visaPAN)}})
	h2, _ := lc.HMAC(bg, []HMACItem{{Context: []byte("m_alpha"), Input: []byte(visaPAN)}})
	if !bytes.Equal(h1[0].Sum, h2[0].Sum) || bytes.Equal(h1[0].Sum, h1[1].Sum) {
		t.Fatal("HMAC is not stable per merchant or not distinct across merchants")
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v", lc, lc, lc), fmt.Sprint(lc.master[:4])) {
		t.Fatal("LocalCipher prints its master key")
	}
}

func TestSecretNeverPrintsCardData(t *testing.T) {
	e := newUnitEnv(t, envOptions{})
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
	noErr(t, err, "TokenizeCard")
	s, err := detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "Detokenize")
	w, err := e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay))
	noErr(t, err, "TokenizeWallet")
	ws, err := detokenize(e.v, "m_alpha", w.Token, false)
	noErr(t, err, "Detokenize")
	for _, x := range []any{s, *s, ws, struct{ S *Secret }{s}} {
		out := fmt.Sprintf("%v %+v %#v %s %q %x", x, x, x, x, x, x)
		for _, secret := range []string{visaPAN, "3010" + "737", holderName, testDPAN, fmt.Sprintf("%x", visaPAN)} {
			if strings.Contains(out, secret) {
				t.Fatalf("printing a Secret shows card data: %s", out)
			}
		}
	}
	for _, x := range []any{s, *s, struct{ S Secret }{*s}} {
		if _, err := json.Marshal(x); err == nil {
			t.Fatal("a Secret marshalled to JSON")
		}
	}
}

func TestErrorsMatchTheirClasses(t *testing.T) {
	if !errors.Is(ErrTimeout, ErrUnavailable) || errors.Is(ErrUnavailable, ErrTimeout) {
		t.Fatal("ErrTimeout must match ErrUnavailable, not the reverse")
	}
	se := &StoreError{Op: "get", err: ErrTimeout, cause: errors.New("i/o timeout 10.0.0.1:6379")}
	if !errors.Is(se, ErrTimeout) || !errors.Is(se, ErrUnavailable) || strings.Contains(se.Error(), "10.0.0.1") {
		t.Fatalf("got %q", se.Error())
	}
	te := transitStatusErr("decrypt", 503)
	if !errors.Is(te, ErrUnavailable) || te.Error() != "vault: transit decrypt: status 503: Service Unavailable" {
		t.Fatalf("got %q", te.Error())
	}
}

func TestValidMerchantID(t *testing.T) {
	for _, s := range []string{"m", "merchant_42", "acme-eu.prod", strings.Repeat("x", 64)} {
		if !validMerchantID(s) {
			t.Errorf("validMerchantID(%q) = false, want true", s)
		}
	}
	for _, s := range []string{"", "a:b", "a{b", "a}b", "a*b", "a b", "a\x00", strings.Repeat("x", 65), "ä"} {
		if validMerchantID(s) {
			t.Errorf("validMerchantID(%q) = true, want false", s)
		}
	}
}

func TestStorePutIsNXAndIdempotent(t *testing.T) {
	e := newUnitEnv(t, envOptions{})
	id, _ := newToken()
	if err := e.store.put(bg, "m_alpha", id, []byte(`{"v":1}`), time.Minute, "", 0); err != nil {
		t.Fatal(err)
	}
	err := e.store.put(bg, "m_alpha", id, []byte(`{"v":1,"other":true}`), time.Minute, "ct", time.Minute)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v for a taken id, want ErrConflict", err)
	}
	if n, _ := e.rdb.Exists(bg, e.store.key("cvv", "m_alpha", id)).Result(); n != 0 {
		t.Fatal("a refused record write still wrote its CVV")
	}
	// Writing the identical record again (a retried command) succeeds.
	if err := e.store.put(bg, "m_alpha", id, []byte(`{"v":1}`), time.Minute, "", 0); err != nil {
		t.Fatalf("an identical rewrite failed: %v", err)
	}
}

// blocksReader returns its blocks in turn, each exactly once.
type blocksReader struct{ blocks [][]byte }

func (r *blocksReader) Read(p []byte) (int, error) {
	if len(r.blocks) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.blocks[0])
	r.blocks = r.blocks[1:]
	return n, nil
}

func TestTokenizeRetriesWithANewIDOnCollision(t *testing.T) {
	e := newUnitEnv(t, envOptions{})
	a, b := make([]byte, 48), make([]byte, 48)
	for i := range a {
		a[i], b[i] = byte(i), byte(i+100)
	}
	e.v.ids = &blocksReader{blocks: [][]byte{a, a, b}}
	first, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "first TokenizeCard")
	second, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, mcPAN, "123", ""))
	noErr(t, err, "second TokenizeCard (colliding first)")
	if first.Token == second.Token {
		t.Fatal("the colliding id was reused")
	}
	s, err := detokenize(e.v, "m_alpha", first.Token, true)
	noErr(t, err, "Detokenize of the first token")
	if string(s.PAN.Reveal()) != visaPAN || string(s.CVV.Reveal()) != visaCVV {
		t.Fatal("the collision overwrote the first token")
	}
	s, err = detokenize(e.v, "m_alpha", second.Token, true)
	noErr(t, err, "Detokenize of the second token")
	if string(s.PAN.Reveal()) != mcPAN || string(s.CVV.Reveal()) != "123" {
		t.Fatal("the retried token does not hold its card")
	}
}
