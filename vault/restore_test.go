package vault

import (
	"testing"
	"time"
)

// Suite tests (suite_test.go) of Restore and DropCVV: what a request that never
// left gives back, and the CVV that ends at authorization.

// revealed is a Reveal of tok kept for Restore.
func revealed(t *testing.T, e *env, tok string, withCVV bool) *Decryption {
	t.Helper()
	rec, err := e.v.Lookup(bg, "m_alpha", tok)
	noErr(t, err, "Lookup")
	d, err := e.v.Decrypt(bg, rec, withCVV)
	noErr(t, err, "Decrypt")
	_, err = d.Reveal()
	noErr(t, err, "Reveal")
	return d
}

// wantRestored checks what one Restore reported.
func wantRestored(t *testing.T, d *Decryption, want bool, what string) {
	t.Helper()
	got, err := d.Restore(bg)
	noErr(t, err, "Restore "+what)
	if got != want {
		t.Fatalf("Restore %s: got restored=%v, want %v", what, got, want)
	}
}

// exists reports whether tok's key in space is in Redis.
func exists(t *testing.T, e *env, space, tok string) bool {
	t.Helper()
	n, err := e.rdb.Exists(bg, e.store.key(space, "m_alpha", tok)).Result()
	noErr(t, err, "EXISTS")
	return n == 1
}

func testRestore(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	c, w := cardAndWallet(t, e)
	rec, cvv := rawGet(t, e, "rec", "m_alpha", c.Token), rawGet(t, e, "cvv", "m_alpha", c.Token)
	wrec := rawGet(t, e, "rec", "m_alpha", w.Token)

	d := revealed(t, e, c.Token, true)
	dw := revealed(t, e, w.Token, false)
	wantRestored(t, d, true, "of a consumed CVV")
	wantRestored(t, dw, true, "of a consumed wallet token")
	if rawGet(t, e, "rec", "m_alpha", c.Token) != rec || rawGet(t, e, "cvv", "m_alpha", c.Token) != cvv {
		t.Fatal("the restored card record or CVV is not exactly what was consumed")
	}
	if rawGet(t, e, "rec", "m_alpha", w.Token) != wrec || exists(t, e, "used", w.Token) {
		t.Fatal("the restored wallet record is not exactly what was consumed, or its use marker stayed")
	}
	if ttl := e.rdb.PTTL(bg, e.store.key("cvv", "m_alpha", c.Token)).Val(); ttl <= 0 || ttl > e.v.CVVTTL() {
		t.Fatalf("the restored CVV lives %s, want its own remaining lifetime (at most %s)", ttl, e.v.CVVTTL())
	}
	wantRestored(t, d, false, "a second time")
	useBoth(t, e, c, w, "after Restore")
	_, err := detokenize(e.v, "m_alpha", c.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "a second use of a restored CVV")
	_, err = detokenize(e.v, "m_alpha", w.Token, false)
	wantErr(t, err, ErrWalletConsumed, "a second use of a restored wallet token")
}

func testRestoreOnlyWhatItTook(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	c, w := cardAndWallet(t, e)
	wantRestored(t, revealed(t, e, c.Token, false), false, "of a Reveal without the CVV")

	d := revealed(t, e, c.Token, true)
	dw := revealed(t, e, w.Token, false)
	noErr(t, e.v.Delete(bg, "m_alpha", c.Token), "Delete")
	wantErr(t, e.v.Delete(bg, "m_alpha", w.Token), ErrTokenNotFound, "Delete of a consumed wallet token (its marker goes)")
	wantRestored(t, d, false, "of a deleted card token")
	wantRestored(t, dw, false, "of a deleted wallet token")
	for _, space := range []string{"rec", "cvv", "used"} {
		if exists(t, e, space, c.Token) || exists(t, e, space, w.Token) {
			t.Fatalf("Restore brought a deleted token's %s key back", space)
		}
	}

	e = newEnv(t, envOptions{cfg: Config{CVVTTL: shortTTL}}) // advance sleeps on a real Redis
	c2, _ := cardAndWallet(t, e)
	d = revealed(t, e, c2.Token, true)
	e.advance(shortTTL + 50*time.Millisecond)
	wantRestored(t, d, false, "after the CVV's lifetime")
	if exists(t, e, "cvv", c2.Token) {
		t.Fatal("Restore brought back a CVV past its lifetime")
	}
}

func testDropCVV(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	c, w := cardAndWallet(t, e)
	oldCVV := rawGet(t, e, "cvv", "m_alpha", c.Token)
	dropped, err := e.v.DropCVV(bg, "m_alpha", c.Token)
	noErr(t, err, "DropCVV")
	if !dropped || exists(t, e, "cvv", c.Token) {
		t.Fatalf("DropCVV: got dropped=%v, CVV key left %v; want it dropped", dropped, exists(t, e, "cvv", c.Token))
	}
	if m, err := e.v.Metadata(bg, "m_alpha", c.Token); err != nil || m.HasCVV {
		t.Fatalf("Metadata after DropCVV: got has_cvv=%v (%v), want false", m.HasCVV, err)
	}
	// Its nonce went with it: the old ciphertext put back is no CVV.
	rawSet(t, e, "cvv", "m_alpha", c.Token, oldCVV)
	_, err = detokenize(e.v, "m_alpha", c.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "Detokenize with a dropped CVV put back")
	s, err := detokenize(e.v, "m_alpha", c.Token, false)
	noErr(t, err, "Detokenize without CVV after DropCVV")
	if string(s.PAN.Reveal()) != visaPAN {
		t.Fatal("the card went with its CVV")
	}
	noErr(t, e.rdb.Del(bg, e.store.key("cvv", "m_alpha", c.Token)).Err(), "DEL")
	if dropped, err := e.v.DropCVV(bg, "m_alpha", c.Token); err != nil || dropped {
		t.Fatalf("DropCVV of a token without a CVV: got %v, %v; want false, nil", dropped, err)
	}
	if dropped, err := e.v.DropCVV(bg, "m_alpha", w.Token); err != nil || dropped {
		t.Fatalf("DropCVV of a wallet token: got %v, %v; want false, nil", dropped, err)
	}
	_, err = e.v.DropCVV(bg, "m_beta", c.Token)
	wantErr(t, err, ErrTokenNotFound, "DropCVV of another merchant's token")
}
