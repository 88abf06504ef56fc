package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/token"
)

// Detokenization takes three steps so that a caller can check a token before
// anything is decrypted, and do its own work (the forward path writes its
// audit record) while transit decrypts: Lookup reads the token, Decrypt starts
// decrypting the payload and the CVV, Reveal waits for them, consumes what is
// one-time and returns the card data — or Discard drops it and consumes
// nothing.

// errSpent: Reveal after Reveal or Discard. The plaintexts are gone by then.
var errSpent = errors.New("vault: decryption already revealed or discarded")

// Record is a token as Lookup read it: ciphertexts and metadata, no card data.
type Record struct {
	merchant, token string
	stored          *storedRecord
	st              snapshot
	hasCVV          bool // a live CVV was there when Lookup read it
}

// Lookup reads a token's record once: record, CVV ciphertext and wallet
// marker in one Redis pipeline. Unknown, malformed, expired and
// other-merchant tokens give ErrTokenNotFound; a consumed wallet token
// ErrWalletConsumed.
func (v *Vault) Lookup(ctx context.Context, merchant, token string) (*Record, error) {
	rec, st, err := v.load(ctx, merchant, token, true)
	if err != nil {
		return nil, err
	}
	return &Record{merchant: merchant, token: token, stored: rec, st: st, hasCVV: v.cvvLive(rec, st)}, nil
}

// Meta returns the token's metadata; HasCVV says a live CVV was there when
// Lookup read it.
func (r *Record) Meta() Metadata { return r.stored.meta(r.token, r.hasCVV) }

// Secret is what detokenization yields. It is never logged and never
// marshalled: its card fields print as placeholders.
type Secret struct {
	Kind    token.Kind
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

// Decryption is a decryption under way. Call Reveal or Discard once; Discard
// after Reveal does nothing, so a deferred Discard is safe.
type Decryption struct {
	v                  *Vault
	ctx                context.Context // the caller's: Reveal consumes under it
	rec                *Record
	withCVV            bool
	dctx               context.Context    // the transit calls': ends with cancel
	cancel             context.CancelFunc // stops the transit calls of a discarded decryption
	done               chan struct{}      // closed once payload, cvv and their errors are set
	payload            []byte
	cvv                []byte
	payloadErr, cvvErr error
	state              atomic.Int32 // waiting, then delivered (by run) or abandoned (by Discard)
	claimed            atomic.Bool  // Reveal or Discard was called
	took               *taken       // what Reveal consumed, for Restore; nil: nothing
}

// taken is exactly what one Reveal removed from Redis: the CVV ciphertext and the
// record as it was (the nonce), or a wallet token's record.
type taken struct {
	cvv   string // the CVV ciphertext; "" for a wallet token
	rec   []byte // the record before
	spent []byte // the card record as the take left it (no nonce); nil for a wallet token
}

// Decrypt starts decrypting rec's payload, and its CVV when withCVV, in the
// background, and returns at once: both transit calls overlap the caller's own
// work (the forward path's audit fsync) and each other, so a detokenization
// waits for the slower of them, not their sum. One goroutine without a CVV,
// two with one. Nothing is consumed before Reveal. A card token without a live
// CVV gives ErrCVVUnavailable at once when withCVV; withCVV is ignored for
// wallet tokens, which have none.
func (v *Vault) Decrypt(ctx context.Context, rec *Record, withCVV bool) (*Decryption, error) {
	switch kind := rec.stored.Kind; {
	case kind.Wallet():
		withCVV = false
	case kind != token.Card:
		return nil, ErrIntegrity
	case withCVV && !v.cvvLive(rec.stored, rec.st):
		return nil, ErrCVVUnavailable
	}
	dctx, cancel := context.WithCancel(ctx)
	d := &Decryption{v: v, ctx: ctx, dctx: dctx, rec: rec, withCVV: withCVV, cancel: cancel, done: make(chan struct{})}
	go d.run()
	return d, nil
}

// run decrypts the payload and, beside it, the CVV; what nobody will read (a
// discarded decryption) is wiped.
func (d *Decryption) run() {
	r := d.rec
	cvvDone := make(chan struct{})
	if d.withCVV {
		go func() {
			d.cvv, d.cvvErr = decryptOne(d.dctx, d.v.transit, KeyCVV, r.st.cvv, []byte(r.merchant), r.stored.cvvAAD(r.token))
			close(cvvDone)
		}()
	} else {
		close(cvvDone)
	}
	d.payload, d.payloadErr = decryptOne(d.dctx, d.v.transit, KeyCard, r.stored.Ciphertext, []byte(r.merchant), r.stored.cardAAD(r.token))
	if d.payloadErr != nil {
		d.cancel() // the CVV is of no use now: do not wait for it
	}
	<-cvvDone
	if !d.state.CompareAndSwap(waiting, delivered) {
		d.wipe() // discarded meanwhile: nobody will read them
	}
	close(d.done)
}

// Format prints nothing of d, for any verb: d holds decrypted card data in
// unexported fields, which fmt would otherwise print (see card/secret.go).
func (d *Decryption) Format(f fmt.State, _ rune) { io.WriteString(f, "[Decryption]") }

func (d *Decryption) wipe() {
	wipe(d.payload)
	wipe(d.cvv)
}

// Reveal waits for the decryption, then consumes what is one-time and
// returns the Secret. The CVV is deleted only now, after it was decrypted, so
// a transit outage does not burn it; it is deleted together with its nonce in
// the record (Store.takeCVV), and of concurrent callers only the one that
// finds the ciphertext and record Lookup read gets it; the others get
// ErrCVVUnavailable. A wallet token is consumed the same way at its
// first Reveal (later: ErrWalletConsumed). Restore puts back what Reveal
// consumed when the card data never left the caller.
func (d *Decryption) Reveal() (*Secret, error) {
	if !d.claimed.CompareAndSwap(false, true) {
		return nil, errSpent
	}
	defer d.cancel()
	<-d.done
	defer d.wipe()
	if err := firstErr(d.payloadErr, d.cvvErr); err != nil {
		return nil, err
	}
	if d.rec.stored.Kind.Wallet() {
		return d.v.revealed(d.revealWallet())
	}
	return d.v.revealed(d.revealCard())
}

// Discard abandons the decryption: nothing is consumed, and the plaintexts
// are wiped, now or when they arrive. It does not wait for transit.
func (d *Decryption) Discard() {
	if !d.claimed.CompareAndSwap(false, true) {
		return
	}
	if d.state.CompareAndSwap(waiting, abandoned) {
		d.cancel() // run ends soon and wipes what it got
		return
	}
	<-d.done
	d.wipe()
}

func (d *Decryption) revealCard() (*Secret, error) {
	v, r := d.v, d.rec
	p, ok := decodeCard(d.payload)
	if !ok {
		return nil, ErrIntegrity
	}
	pan, err := card.PANFromDigits(p.pan)
	if err != nil {
		return nil, ErrIntegrity
	}
	s := &Secret{
		Kind:   token.Card,
		PAN:    pan,
		Expiry: card.Expiry{Month: p.month, Year: p.year},
		Holder: card.HolderFromBytes(p.holder),
		Meta:   r.stored.meta(r.token, v.cvvLive(r.stored, r.st)),
	}
	if !d.withCVV {
		return s, nil
	}
	if len(d.cvv) == 0 {
		return nil, ErrIntegrity
	}
	spent, err := r.stored.spent()
	if err != nil {
		return nil, err
	}
	ct, rec := r.st.cvv, r.st.rec
	ok, err = v.store.takeCVV(d.ctx, r.merchant, r.token, ct, rec, spent)
	if err == nil && !ok {
		ok, ct, rec, spent, err = v.retakeRewrapped(d.ctx, r)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrCVVUnavailable // consumed by a concurrent call
	}
	d.took = &taken{cvv: ct, rec: rec, spent: spent}
	s.CVV = card.CVVFromBytes(d.cvv)
	s.Meta.HasCVV = false
	s.Meta.CVVExpiresAt = nil
	return s, nil
}

// retakeRewrapped takes the CVV once more when a rewrap (chdproxy rewrap) rewrote the
// record and the CVV between Lookup and the take: both ciphertexts changed, but the CVV
// is the same one while its nonce is. Anything else (consumed, dropped, deleted) still
// refuses.
func (v *Vault) retakeRewrapped(ctx context.Context, r *Record) (ok bool, ct string, rec, spent []byte, err error) {
	now, st, err := v.load(ctx, r.merchant, r.token, true)
	if err != nil || !v.cvvLive(now, st) || now.CVVNonce != r.stored.CVVNonce {
		return false, "", nil, nil, nil
	}
	if spent, err = now.spent(); err != nil {
		return false, "", nil, nil, err
	}
	ok, err = v.store.takeCVV(ctx, r.merchant, r.token, st.cvv, st.rec, spent)
	return ok, st.cvv, st.rec, spent, err
}

func (d *Decryption) revealWallet() (*Secret, error) {
	v, r := d.v, d.rec
	p, ok := decodeWallet(d.payload)
	if !ok || card.Network(p.network) != r.stored.Network {
		return nil, ErrIntegrity
	}
	// Only the caller whose GETDEL returns the record Lookup read gets the payload.
	got, ok, err := v.store.takeRecord(d.ctx, r.merchant, r.token, r.stored.ExpiresAt.Sub(v.clock()))
	if err != nil {
		return nil, err
	}
	if !ok || !bytes.Equal(got, r.st.rec) {
		return nil, ErrWalletConsumed
	}
	d.took = &taken{rec: got}
	return &Secret{
		Kind:    r.stored.Kind,
		DPAN:    card.DPANFromBytes(p.dpan),
		Network: r.stored.Network,
		Meta:    r.stored.meta(r.token, false),
	}, nil
}

// Restore puts back what Reveal consumed (the CVV ciphertext with its nonce in
// the record, or a wallet token's record) for a caller whose request never
// left: no byte of it was written upstream. It is atomic and conditional: only
// while the keys are exactly as Reveal left them (not deleted, expired or
// consumed again), so it never revives what something else removed. restored
// reports whether anything was put back. Call it after Reveal returned, at
// most once; later calls do nothing.
func (d *Decryption) Restore(ctx context.Context) (restored bool, err error) {
	t, r := d.took, d.rec
	if t == nil {
		return false, nil
	}
	d.took = nil
	if t.spent == nil { // a wallet token: its record, until the token's own expiry
		ttl := r.stored.ExpiresAt.Sub(d.v.clock())
		if ttl <= 0 {
			return false, nil
		}
		return d.v.store.restoreRecord(ctx, r.merchant, r.token, t.rec, ttl)
	}
	ttl := r.stored.CVVExpiresAt.Sub(d.v.clock()) // the CVV's own lifetime, never longer
	if ttl <= 0 {
		return false, nil
	}
	return d.v.store.restoreCVV(ctx, r.merchant, r.token, t.cvv, ttl, t.rec, t.spent)
}

// DropCVV deletes a card token's CVV now, together with its nonce in the
// record, whether or not a request revealed it: sensitive authentication
// data ends at authorization (PCI DSS 3.3.1), also for a payment that did not
// ask for it. dropped reports whether there was a CVV to delete. Unknown,
// expired and other-merchant tokens give ErrTokenNotFound.
func (v *Vault) DropCVV(ctx context.Context, merchant, token string) (dropped bool, err error) {
	rec, st, err := v.load(ctx, merchant, token, false)
	if err != nil {
		return false, err
	}
	if rec.CVVNonce == "" && !st.hasCVV {
		return false, nil
	}
	spent, err := rec.spent()
	if err != nil {
		return false, err
	}
	// The CVV key goes whatever it holds; the record is rewritten only if it is
	// still the one read (a concurrent Reveal rewrites it the same way).
	if _, err := v.store.takeCVV(ctx, merchant, token, "", st.rec, spent); err != nil {
		return false, err
	}
	return true, nil
}
