package vault

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/token"
)

// CVV re-collection: a card token's CVV is one-shot, so a card-on-file payment
// needs a fresh one. The merchant's backend opens a CVV session for one of its
// card tokens (NewCVVSession); the shopper's browser, which never learns the
// token, redeems the session once with a CVV (RedeemCVVSession), and the CVV is
// attached exactly as a tokenize-time CVV: same CVV key, same TTL, same nonce
// and associated data, consumed at its first injection.
//
// Sessions live under {prefix}:cvs:{merchant}:{cvs_…}, holding only the token id.

// CVVSessionTTL is how long a CVV session can be redeemed.
const CVVSessionTTL = 10 * time.Minute

const (
	sessionPrefix = "cvs_"
	sessionLen    = len(sessionPrefix) + 26 // rand.Text: 26 base32 characters, 130 bits
	// maxAttachAttempts bounds the re-reads when the record changes under an
	// attach (a payment consumed the old CVV, a rewrap rewrote it).
	maxAttachAttempts = 3
)

var (
	// ErrNotCard: a CVV belongs only to a card token; this one is a wallet token.
	ErrNotCard = errors.New("vault: not a card token")
	// ErrCVVSessionNotFound: the CVV session does not exist, was redeemed
	// already, expired, or is another merchant's.
	ErrCVVSessionNotFound = errors.New("vault: cvv session not found")
)

// CVVAttached is the token event of a CVV attached to an existing card token.
const CVVAttached TokenEvent = "cvv_attached"

// CVVSession is an open CVV session: its id and when it ends.
type CVVSession struct {
	ID        string
	ExpiresAt time.Time
}

// ValidCVVSessionID reports whether s has the shape of a CVV session id.
func ValidCVVSessionID(s string) bool {
	rest, ok := strings.CutPrefix(s, sessionPrefix)
	if !ok || len(s) != sessionLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// NewCVVSession opens a single-use CVV session for merchant's card token, living
// CVVSessionTTL (never past the token's own expiry). Unknown, expired and other
// merchants' tokens give ErrTokenNotFound; a wallet token ErrNotCard.
func (v *Vault) NewCVVSession(ctx context.Context, merchant, tok string) (CVVSession, error) {
	rec, _, err := v.load(ctx, merchant, tok, false)
	if err != nil {
		return CVVSession{}, err
	}
	if rec.Kind != token.Card {
		return CVVSession{}, ErrNotCard
	}
	now := v.clock()
	s := CVVSession{ID: sessionPrefix + rand.Text(), ExpiresAt: minTime(now.Add(CVVSessionTTL), rec.ExpiresAt)}
	if err := v.store.putSession(ctx, merchant, s.ID, tok, s.ExpiresAt.Sub(now)); err != nil {
		return CVVSession{}, err
	}
	return s, nil
}

// RedeemCVVSession consumes merchant's CVV session and attaches cvv to its token
// (AttachCVV). The session is taken atomically, so of concurrent callers one
// gets it; if the attach then fails before anything was written (a CVV of the
// wrong length for the brand, an outage) the session is put back for the rest of
// its life, so the shopper can try again.
func (v *Vault) RedeemCVVSession(ctx context.Context, merchant, session string, cvv card.CVV) (Metadata, error) {
	if !validMerchantID(merchant) || !ValidCVVSessionID(session) {
		return Metadata{}, ErrCVVSessionNotFound
	}
	tok, ttl, err := v.store.takeSession(ctx, merchant, session)
	if err != nil {
		return Metadata{}, err
	}
	m, err := v.AttachCVV(ctx, merchant, tok, cvv)
	if err != nil && !errors.Is(err, ErrTokenNotFound) && !errors.Is(err, ErrNotCard) && ttl > 0 {
		// Best effort: an error here leaves the session spent, which is safe.
		_ = v.store.putSession(context.WithoutCancel(ctx), merchant, session, tok, ttl)
	}
	return m, err
}

// AttachCVV gives merchant's card token a fresh CVV, replacing any it had, for
// the vault's CVV TTL (never past the token's expiry). The record's CVV expiry is
// bound into the card ciphertext's associated data (payload.go), so the card
// payload is decrypted and encrypted again under the new record, and the CVV is
// sealed under a new nonce, concurrently; the record and CVV are then written
// in one step only if the record is still the one read. A cvv of the wrong
// length for the token's brand is card.ErrCVV.
func (v *Vault) AttachCVV(ctx context.Context, merchant, tok string, cvv card.CVV) (Metadata, error) {
	if cvv.IsZero() {
		return Metadata{}, ErrInvalidInput
	}
	for range maxAttachAttempts {
		m, err := v.attachOnce(ctx, merchant, tok, cvv)
		if !errors.Is(err, ErrConflict) {
			return m, err
		}
	}
	return Metadata{}, ErrConflict
}

func (v *Vault) attachOnce(ctx context.Context, merchant, tok string, cvv card.CVV) (Metadata, error) {
	rec, st, err := v.load(ctx, merchant, tok, false)
	if err != nil {
		return Metadata{}, err
	}
	if rec.Kind != token.Card || rec.Card == nil {
		return Metadata{}, ErrNotCard
	}
	digits := cvv.Reveal()
	defer wipe(digits)
	if _, err := card.ParseCVV(string(digits), rec.Card.Brand); err != nil {
		return Metadata{}, err
	}
	now := v.clock()
	next := *rec
	until := minTime(now.Add(v.cvvTTL), rec.ExpiresAt)
	if !until.After(now) {
		return Metadata{}, ErrTokenNotFound
	}
	next.CVVExpiresAt, next.CVVNonce = &until, rand.Text()
	cardCT, cvvCT, err := v.resealForCVV(ctx, tok, rec, &next, digits)
	if err != nil {
		return Metadata{}, err
	}
	next.Ciphertext, next.KeyVersion = cardCT.Ciphertext, cardCT.KeyVersion
	b, err := json.Marshal(&next)
	if err != nil {
		return Metadata{}, err
	}
	ok, err := v.store.attachCVV(ctx, merchant, tok, st.rec, b, cvvCT, until.Sub(now))
	if err != nil {
		return Metadata{}, err
	}
	if !ok {
		return Metadata{}, ErrConflict
	}
	v.store.obs.get().Token(CVVAttached, token.Card)
	return next.meta(tok, true), nil
}

// resealForCVV encrypts the card payload again under next's associated data and
// the CVV under next's nonce, concurrently; the decrypted payload is wiped.
func (v *Vault) resealForCVV(ctx context.Context, tok string, old, next *storedRecord, cvv []byte) (EncryptResult, string, error) {
	mctx := []byte(old.Merchant)
	var (
		wg     sync.WaitGroup
		cvvRes EncryptResult
		cvvErr error
	)
	wg.Go(func() { cvvRes, cvvErr = encryptOne(ctx, v.transit, KeyCVV, cvv, mctx, next.cvvAAD(tok)) })
	var res EncryptResult
	payload, err := decryptOne(ctx, v.transit, KeyCard, old.Ciphertext, mctx, old.cardAAD(tok))
	if err == nil {
		if _, ok := decodeCard(payload); !ok {
			err = ErrIntegrity
		} else {
			res, err = encryptOne(ctx, v.transit, KeyCard, payload, mctx, next.cardAAD(tok))
		}
	}
	wipe(payload)
	wg.Wait()
	return res, cvvRes.Ciphertext, firstErr(err, cvvErr)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (s *Store) sessionKey(merchant, session string) string {
	return s.prefix + ":cvs:" + merchant + ":{" + session + "}"
}

// putSession stores a session naming tok for ttl, unless the id is taken.
func (s *Store) putSession(ctx context.Context, merchant, session, tok string, ttl time.Duration) error {
	start := time.Now()
	ok, err := s.c.SetNX(ctx, s.sessionKey(merchant, session), tok, max(ttl, time.Millisecond)).Result()
	s.took("put_session", start, err)
	if err != nil {
		return storeErr("put", ctx, err)
	}
	if !ok {
		return ErrConflict
	}
	return nil
}

// takeSessionScript deletes a session and returns its token id and remaining TTL.
var takeSessionScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  return false
end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {v, ttl}
`)

// takeSession consumes a session: of concurrent callers, one gets its token id.
func (s *Store) takeSession(ctx context.Context, merchant, session string) (tok string, ttl time.Duration, err error) {
	start := time.Now()
	res, err := takeSessionScript.Run(ctx, s.c, []string{s.sessionKey(merchant, session)}).Slice()
	_, nerr := ignoreNil(res, err)
	s.took("take_session", start, nerr)
	if errors.Is(err, redis.Nil) {
		return "", 0, ErrCVVSessionNotFound
	}
	if err != nil {
		return "", 0, storeErr("getdel", ctx, err)
	}
	tok, _ = res[0].(string)
	ms, _ := res[1].(int64)
	if len(res) != 2 || !ValidTokenID(tok) {
		return "", 0, ErrCVVSessionNotFound
	}
	return tok, time.Duration(ms) * time.Millisecond, nil
}

// attachCVVScript replaces the record (keeping its TTL) and sets the CVV
// ciphertext, only while the record is still the one read (ARGV[1]).
var attachCVVScript = redis.NewScript(luaReplace + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
replace(KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
`)

// attachCVV writes next and the CVV ciphertext ct (for ttl) over the record
// before; ok is false when the record changed or went since it was read.
func (s *Store) attachCVV(ctx context.Context, merchant, tok string, before, next []byte, ct string, ttl time.Duration) (bool, error) {
	keys := []string{s.key("rec", merchant, tok), s.key("cvv", merchant, tok)}
	start := time.Now()
	n, err := attachCVVScript.Run(ctx, s.c, keys, before, next, ct, max(ttl.Milliseconds(), 1)).Int()
	s.took("attach_cvv", start, err)
	if err != nil {
		return false, storeErr("attach", ctx, err)
	}
	return n == 1, nil
}
