package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdTransit holds every Decrypt until release is closed — or, with
// honourCtx, until the caller's context ends — and keeps the plaintexts it
// handed out, to see whether they were wiped.
type holdTransit struct {
	Transit
	release   chan struct{}
	honourCtx bool

	mu  sync.Mutex
	out [][]byte
}

func (h *holdTransit) Decrypt(ctx context.Context, k Key, items []DecryptItem) ([]DecryptResult, error) {
	var gone <-chan struct{}
	if h.honourCtx {
		gone = ctx.Done()
	}
	select {
	case <-h.release:
	case <-gone:
		return nil, ctx.Err()
	}
	r, err := h.Transit.Decrypt(context.Background(), k, items)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range r {
		h.out = append(h.out, x.Plaintext)
	}
	return r, err
}

// wiped reports whether n plaintexts were handed out (2: card and CVV, both
// decrypted in the background, whether or not Reveal comes) and are all zero now.
func (h *holdTransit) wiped(n int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.out) != n {
		return false
	}
	for _, p := range h.out {
		if len(p) == 0 || !bytes.Equal(p, make([]byte, len(p))) {
			return false
		}
	}
	return true
}

// heldDecryption starts decrypting a fresh card with its CVV through a holdTransit.
func heldDecryption(t *testing.T, honourCtx bool) (*Vault, *holdTransit, *Decryption, Metadata) {
	t.Helper()
	e := newUnitEnv(t, envOptions{})
	h := &holdTransit{Transit: e.transit, release: make(chan struct{}), honourCtx: honourCtx}
	v, err := New(Config{Transit: h, Store: e.store, Now: e.clock.Now})
	noErr(t, err, "New")
	m, err := v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
	noErr(t, err, "TokenizeCard")
	rec, err := v.Lookup(bg, "m_alpha", m.Token)
	noErr(t, err, "Lookup")
	d, err := v.Decrypt(bg, rec, true)
	noErr(t, err, "Decrypt")
	return v, h, d, m
}

// finished fails t unless d's decryption has ended.
func finished(t *testing.T, d *Decryption) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the decryption is still running")
	}
}

func TestDiscardBeforeThePlaintextsArriveWipesThemOnArrival(t *testing.T) {
	v, h, d, m := heldDecryption(t, false)
	d.Discard()
	close(h.release)
	finished(t, d)
	if !h.wiped(2) {
		t.Fatal("the plaintexts that arrived after Discard were not wiped")
	}
	got, err := v.Metadata(bg, "m_alpha", m.Token)
	noErr(t, err, "Metadata")
	if !got.HasCVV {
		t.Fatal("Discard consumed the CVV")
	}
}

func TestDiscardAfterThePlaintextsArrivedWipesThem(t *testing.T) {
	_, h, d, _ := heldDecryption(t, false)
	close(h.release)
	finished(t, d)
	d.Discard()
	if !h.wiped(2) {
		t.Fatal("Discard left the plaintexts in memory")
	}
}

func TestDiscardStopsADecryptionHeldUpInTransit(t *testing.T) {
	_, _, d, _ := heldDecryption(t, true)
	d.Discard()
	finished(t, d) // no goroutine left waiting on transit
}

func TestRevealWipesItsPlaintextsAndIsOnce(t *testing.T) {
	_, h, d, _ := heldDecryption(t, false)
	close(h.release)
	s, err := d.Reveal()
	noErr(t, err, "Reveal")
	if !h.wiped(2) {
		t.Fatal("Reveal left the plaintexts in memory")
	}
	if string(s.PAN.Reveal()) != visaPAN || string(s.CVV.Reveal()) != visaCVV || s.Holder.Reveal() != holderName {
		t.Fatal("the Secret lost its card data with the wiped plaintexts")
	}
	d.Discard() // a deferred Discard after Reveal does nothing
	if _, err := d.Reveal(); !errors.Is(err, errSpent) {
		t.Fatalf("second Reveal: got %v, want errSpent", err)
	}
}

func TestDecryptionNeverPrintsCardData(t *testing.T) {
	_, h, d, _ := heldDecryption(t, false)
	close(h.release)
	finished(t, d)
	defer d.Discard()
	forms := []string{visaPAN, holderName} // the CVV's digits alone are too short to search for
	for _, secret := range []string{visaPAN, holderName, visaCVV} {
		forms = append(forms, fmt.Sprintf("%x", secret), strings.Trim(fmt.Sprint([]byte(secret)), "[]"))
	}
	for _, x := range []any{d, struct{ D *Decryption }{d}} {
		out := fmt.Sprintf("%v %+v %#v %s %q %x %d", x, x, x, x, x, x, x)
		for _, form := range forms {
			if strings.Contains(out, form) {
				t.Fatalf("printing a Decryption shows card data: %s", out)
			}
		}
	}
}

// keyCounter counts Decrypt calls per key.
type keyCounter struct {
	Transit
	mu    sync.Mutex
	calls map[Key]int
}

func (k *keyCounter) Decrypt(ctx context.Context, key Key, items []DecryptItem) ([]DecryptResult, error) {
	k.mu.Lock()
	k.calls[key]++
	k.mu.Unlock()
	return k.Transit.Decrypt(ctx, key, items)
}

func (k *keyCounter) count(key Key) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[key]
}

// Decrypt starts the payload's and the CVV's decryptions at once, in the
// background, so they overlap the caller's audit fsync and each other; Reveal
// decrypts nothing more.
func TestDecryptStartsPayloadAndCVVBeforeReveal(t *testing.T) {
	e := newUnitEnv(t, envOptions{})
	kc := &keyCounter{Transit: e.transit, calls: map[Key]int{}}
	v, err := New(Config{Transit: kc, Store: e.store, Now: e.clock.Now})
	noErr(t, err, "New")
	m, err := v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
	noErr(t, err, "TokenizeCard")
	rec, err := v.Lookup(bg, "m_alpha", m.Token)
	noErr(t, err, "Lookup")

	d, err := v.Decrypt(bg, rec, false)
	noErr(t, err, "Decrypt")
	finished(t, d)
	if kc.count(KeyCard) != 1 || kc.count(KeyCVV) != 0 {
		t.Fatalf("before Reveal: got %d card and %d CVV decryptions, want 1 and 0", kc.count(KeyCard), kc.count(KeyCVV))
	}
	s, err := d.Reveal()
	noErr(t, err, "Reveal")
	if string(s.PAN.Reveal()) != visaPAN || kc.count(KeyCard) != 1 {
		t.Fatalf("Reveal decrypted again: got %d card decryptions, want 1", kc.count(KeyCard))
	}

	d, err = v.Decrypt(bg, rec, true)
	noErr(t, err, "Decrypt with CVV")
	finished(t, d)
	if kc.count(KeyCard) != 2 || kc.count(KeyCVV) != 1 {
		t.Fatalf("before Reveal: got %d card and %d CVV decryptions, want 2 and 1", kc.count(KeyCard), kc.count(KeyCVV))
	}
	s, err = d.Reveal()
	noErr(t, err, "Reveal with CVV")
	if string(s.CVV.Reveal()) != visaCVV || kc.count(KeyCard) != 2 || kc.count(KeyCVV) != 1 {
		t.Fatalf("got %d card and %d CVV decryptions, want 2 and 1", kc.count(KeyCard), kc.count(KeyCVV))
	}
}
