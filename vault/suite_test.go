package vault

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/token"
	"github.com/redis/go-redis/v9"
)

// This file is the one store+vault test suite. runSuite runs it against any
// backend pair: miniredis + LocalCipher (unit_test.go) and a real
// redis-server + a real Vault dev server (integration_test.go).

// Test card data. Test PANs appear only in test files.
var (
	visaPAN    = testcards.Success
	visaCVV    = testcards.CVV
	amexPAN    = testcards.Amex
	amexCVV    = testcards.CVVAmex
	mcPAN      = testcards.Decline
	holderName = testcards.Holder
	// testDPAN is an arbitrary base64 payload standing for a wallet DPAN.
	testDPAN = "eyJkYXRhIjoiUXVpdGUgYSBkaXN0aW5jdGl2ZSB3YWxsZXQgcGF5bG9hZCBmb3IgdGVzdHMiLCJ2ZXJzaW9uIjoiRUNfdjEifQ=="
)

// fakeClock is the vault's clock in the suite; advance moves it together
// with Redis's (FastForward for miniredis, a sleep for a real server).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// faultTransit wraps a Transit and fails chosen operations with chosen
// errors ("encrypt:card", "encrypt:cvv", "decrypt:card", "decrypt:cvv",
// "hmac") — fault injection that works over both backends.
type faultTransit struct {
	Transit
	mu    sync.Mutex
	fails map[string]error
}

func (f *faultTransit) fail(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails == nil {
		f.fails = map[string]error{}
	}
	f.fails[op] = err
}

func (f *faultTransit) check(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fails[op]
}

func (f *faultTransit) Encrypt(ctx context.Context, k Key, items []EncryptItem) ([]EncryptResult, error) {
	if err := f.check("encrypt:" + k.String()); err != nil {
		return nil, err
	}
	return f.Transit.Encrypt(ctx, k, items)
}

func (f *faultTransit) Decrypt(ctx context.Context, k Key, items []DecryptItem) ([]DecryptResult, error) {
	if err := f.check("decrypt:" + k.String()); err != nil {
		return nil, err
	}
	return f.Transit.Decrypt(ctx, k, items)
}

func (f *faultTransit) HMAC(ctx context.Context, items []HMACItem) ([]HMACResult, error) {
	if err := f.check("hmac"); err != nil {
		return nil, err
	}
	return f.Transit.HMAC(ctx, items)
}

func (f *faultTransit) Ping(ctx context.Context) error {
	if err := f.check("ping"); err != nil {
		return err
	}
	return f.Transit.Ping(ctx)
}

// env is one vault under test and handles on what backs it.
type env struct {
	v       *Vault
	store   *Store
	transit Transit // the transit inside faults (for building more vaults)
	faults  *faultTransit
	rdb     redis.UniversalClient
	prefix  string // Store prefix; scans match prefix + ":*"
	clock   *fakeClock
	// advance moves the vault's clock and Redis's time by d.
	advance func(d time.Duration)
	// stopRedis kills Redis; sealTransit makes the real transit service
	// unavailable (seals Vault). Only set for dedicated environments.
	stopRedis   func()
	sealTransit func()
}

type envOptions struct {
	cfg Config // TTLs only; Transit, Store and Now are filled in
	// dedicated asks for a Redis of the test's own (to kill it, or to
	// scan every key); ownTransit for a transit service of its own (to
	// seal it).
	dedicated  bool
	ownTransit bool
}

type newEnvFunc func(t *testing.T, o envOptions) *env

// buildEnv finishes an env from a Redis client and a transit.
func buildEnv(t testing.TB, o envOptions, rdb redis.UniversalClient, tr Transit, prefix string, advance func(time.Duration)) *env {
	t.Helper()
	e := &env{
		rdb:       rdb,
		prefix:    prefix,
		clock:     newFakeClock(),
		transit:   tr,
		faults:    &faultTransit{Transit: tr},
		store:     NewStore(rdb, StoreOptions{Prefix: prefix}),
		stopRedis: nil,
	}
	e.advance = func(d time.Duration) {
		e.clock.Add(d)
		advance(d)
	}
	cfg := o.cfg
	cfg.Transit, cfg.Store, cfg.Now = e.faults, e.store, e.clock.Now
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.v = v
	return e
}

func runSuite(t *testing.T, newEnv newEnvFunc) {
	for _, tc := range suiteTests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newEnv) })
	}
}

var suiteTests = []struct {
	name string
	f    func(*testing.T, newEnvFunc)
}{
	{"a card round-trips with its CVV, holder and metadata", testCardRoundTrip},
	{"both wallet kinds round-trip once", testWalletRoundTrip},
	{"fingerprints are per merchant and per card", testFingerprints},
	{"a ciphertext copied into another record does not decrypt", testCopiedCiphertext},
	{"another merchant's token is indistinguishable from a missing one", testOtherMerchant},
	{"no Redis key or value holds card data", testRedisScan},
	{"the CVV is gone after its TTL", testCVVTTL},
	{"the CVV and a wallet token go to exactly one of concurrent callers, with or without a shared Lookup", testConcurrentConsume},
	{"a wallet token expires after its TTL", testWalletTTL},
	{"delete removes record and CVV", testDelete},
	{"TTL caps are enforced", testTTLCaps},
	{"Redis down gives ErrUnavailable quickly", testRedisDown},
	{"transit down gives ErrUnavailable and burns nothing", testTransitDown},
	{"a failed transit call stores nothing", testNoHalfWrittenToken},
	{"a discarded decryption consumes nothing; a revealed one consumes", testDiscardThenReveal},
	{"a refused Decrypt consumes nothing", testRefusedDecrypt},
	{"invalid input and malformed ids are refused", testInvalidInput},
	{"a record tampered in Redis does not decrypt", testTamperedRecord},
	{"a consumed CVV put back into Redis is not revealed again", testRestoredCVV},
	{"Restore puts back exactly what Reveal consumed, usable once more", testRestore},
	{"Restore revives nothing deleted, expired or never taken", testRestoreOnlyWhatItTook},
	{"DropCVV deletes the CVV and its nonce, nothing else", testDropCVV},
}

var bg = context.Background()

func mustPAN(t testing.TB, s string) card.PAN {
	t.Helper()
	p, err := card.ParsePAN(s)
	if err != nil {
		t.Fatalf("ParsePAN: %v", err)
	}
	return p
}

func mustCard(t testing.TB, pan, cvv, holder string) CardInput {
	t.Helper()
	p := mustPAN(t, pan)
	in := CardInput{PAN: p, Expiry: card.Expiry{Month: 3, Year: 2031}}
	if cvv != "" {
		c, err := card.ParseCVV(cvv, p.Brand())
		if err != nil {
			t.Fatalf("ParseCVV: %v", err)
		}
		in.CVV = c
	}
	if holder != "" {
		h, err := card.ParseHolder(holder)
		if err != nil {
			t.Fatalf("ParseHolder: %v", err)
		}
		in.Holder = h
	}
	return in
}

func mustWallet(t testing.TB, kind token.Kind) WalletInput {
	t.Helper()
	d, err := card.ParseDPAN(testDPAN)
	if err != nil {
		t.Fatalf("ParseDPAN: %v", err)
	}
	return WalletInput{Kind: kind, DPAN: d, Network: card.NetworkMastercard}
}

// clean fails t when an error's text carries test data.
func clean(t testing.TB, err error, extra ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error() + fmt.Sprintf(" %v %+v %#v", err, err, err)
	for _, s := range append([]string{visaPAN, amexPAN, mcPAN, visaCVV, amexCVV, holderName, testDPAN, "m_alpha", "m_beta"}, extra...) {
		if strings.Contains(msg, s) {
			t.Fatalf("error text %q holds test data %q", err.Error(), s)
		}
	}
}

// wantErr fails t unless errors.Is(err, want), and checks err's text.
func wantErr(t testing.TB, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
	clean(t, err)
}

// detokenize is the forward path without its checks: Lookup, Decrypt, Reveal.
func detokenize(v *Vault, merchant, tok string, wantCVV bool) (*Secret, error) {
	rec, err := v.Lookup(bg, merchant, tok)
	if err != nil {
		return nil, err
	}
	d, err := v.Decrypt(bg, rec, wantCVV)
	if err != nil {
		return nil, err
	}
	return d.Reveal()
}

func noErr(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		clean(t, err)
		t.Fatalf("%s: %v", what, err)
	}
}

func testCardRoundTrip(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
	noErr(t, err, "TokenizeCard")
	if !ValidTokenID(m.Token) {
		t.Fatalf("token %q is not a valid token id", m.Token)
	}
	wantCard := CardMeta{BIN: "401200", Last4: "3010", Brand: card.Visa, ExpMonth: "03", ExpYear: "2031"}
	if m.Kind != token.Card || m.Card == nil || *m.Card != wantCard {
		t.Fatalf("got metadata %+v, want card %+v", m, wantCard)
	}
	if !m.HasCVV || m.CVVExpiresAt == nil || !m.CVVExpiresAt.Equal(e.clock.Now().Add(defaultCVVTTL)) {
		t.Fatalf("got has_cvv=%v cvv_expires_at=%v, want true and now+10m", m.HasCVV, m.CVVExpiresAt)
	}
	if !m.ExpiresAt.Equal(e.clock.Now().Add(defaultTokenTTL)) || !m.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("got created %v expires %v, want now and now+24h", m.CreatedAt, m.ExpiresAt)
	}
	if !strings.HasPrefix(m.Fingerprint, "fp_") || !strings.HasPrefix(m.FingerprintExp, "fp_") || m.Fingerprint == m.FingerprintExp {
		t.Fatalf("got fingerprints %q %q, want two distinct fp_ values", m.Fingerprint, m.FingerprintExp)
	}

	got, err := e.v.Metadata(bg, "m_alpha", m.Token)
	noErr(t, err, "Metadata")
	if a, b := mustJSON(t, got), mustJSON(t, m); a != b {
		t.Fatalf("Metadata got %s, want %s", a, b)
	}

	s, err := detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "Detokenize with CVV")
	if string(s.PAN.Reveal()) != visaPAN || s.Expiry != (card.Expiry{Month: 3, Year: 2031}) ||
		s.Holder.Reveal() != holderName || string(s.CVV.Reveal()) != visaCVV || s.Kind != token.Card {
		t.Fatal("Detokenize did not return the card that was tokenized")
	}
	if s.Meta.Token != m.Token || s.Meta.HasCVV {
		t.Fatalf("got secret metadata token=%q has_cvv=%v, want %q and false", s.Meta.Token, s.Meta.HasCVV, m.Token)
	}

	_, err = detokenize(e.v, "m_alpha", m.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "second Detokenize with CVV")
	s, err = detokenize(e.v, "m_alpha", m.Token, false)
	noErr(t, err, "Detokenize without CVV after the CVV was used")
	if string(s.PAN.Reveal()) != visaPAN || !s.CVV.IsZero() {
		t.Fatal("the card token stopped working once its CVV was used")
	}
	got, err = e.v.Metadata(bg, "m_alpha", m.Token)
	noErr(t, err, "Metadata")
	if got.HasCVV || got.CVVExpiresAt != nil {
		t.Fatalf("got has_cvv=%v after the CVV was used, want false", got.HasCVV)
	}

	// A card without CVV or holder.
	m2, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, mcPAN, "", ""))
	noErr(t, err, "TokenizeCard without CVV")
	if m2.HasCVV || m2.CVVExpiresAt != nil {
		t.Fatal("a card tokenized without CVV says it has one")
	}
	_, err = detokenize(e.v, "m_alpha", m2.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "Detokenize with CVV of a card without one")
	s, err = detokenize(e.v, "m_alpha", m2.Token, false)
	noErr(t, err, "Detokenize without CVV")
	if string(s.PAN.Reveal()) != mcPAN || !s.Holder.IsZero() {
		t.Fatal("Detokenize did not return the card that was tokenized")
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testWalletRoundTrip(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	for _, kind := range []token.Kind{token.ApplePay, token.GooglePay} {
		m, err := e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, kind))
		noErr(t, err, "TokenizeWallet")
		if m.Kind != kind || m.Network != card.NetworkMastercard || m.Card != nil || m.HasCVV || m.Fingerprint != "" {
			t.Fatalf("got metadata %+v for %s", m, kind)
		}
		if !m.ExpiresAt.Equal(e.clock.Now().Add(defaultWalletTTL)) {
			t.Fatalf("got expires_at %v, want now+10m", m.ExpiresAt)
		}
		s, err := detokenize(e.v, "m_alpha", m.Token, true) // wantCVV is ignored
		noErr(t, err, "Detokenize wallet")
		if string(s.DPAN.Reveal()) != testDPAN || s.Network != card.NetworkMastercard || s.Kind != kind || !s.PAN.IsZero() {
			t.Fatalf("Detokenize did not return the %s payload that was tokenized", kind)
		}
		_, err = detokenize(e.v, "m_alpha", m.Token, false)
		wantErr(t, err, ErrWalletConsumed, "second Detokenize of a wallet token")
		_, err = e.v.Metadata(bg, "m_alpha", m.Token)
		wantErr(t, err, ErrWalletConsumed, "Metadata of a used wallet token")
	}
}

func testFingerprints(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	a1, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	a2, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", holderName))
	noErr(t, err, "TokenizeCard")
	other := mustCard(t, visaPAN, "", "")
	other.Expiry = card.Expiry{Month: 4, Year: 2031}
	a3, err := e.v.TokenizeCard(bg, "m_alpha", other)
	noErr(t, err, "TokenizeCard")
	a4, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, mcPAN, "", ""))
	noErr(t, err, "TokenizeCard")
	b1, err := e.v.TokenizeCard(bg, "m_beta", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")

	switch {
	case a1.Token == a2.Token:
		t.Fatal("two tokenizations gave the same token")
	case a1.Fingerprint != a2.Fingerprint || a1.FingerprintExp != a2.FingerprintExp:
		t.Fatal("the same card gave two fingerprints for one merchant")
	case a1.Fingerprint != a3.Fingerprint || a1.FingerprintExp == a3.FingerprintExp:
		t.Fatal("another expiry must keep the PAN fingerprint and change the PAN+expiry one")
	case a1.Fingerprint == a4.Fingerprint:
		t.Fatal("two cards gave one fingerprint")
	case a1.Fingerprint == b1.Fingerprint || a1.FingerprintExp == b1.FingerprintExp:
		t.Fatal("two merchants got the same fingerprint for one card")
	}
}

// rawRecord reads a record straight from Redis.
func rawGet(t testing.TB, e *env, space, merchant, token string) string {
	t.Helper()
	v, err := e.rdb.Get(bg, e.store.key(space, merchant, token)).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", space, err)
	}
	return v
}

func rawSet(t testing.TB, e *env, space, merchant, token, val string) {
	t.Helper()
	if err := e.rdb.Set(bg, e.store.key(space, merchant, token), val, time.Hour).Err(); err != nil {
		t.Fatalf("SET %s: %v", space, err)
	}
}

func setCT(t testing.TB, recJSON, ct string) string {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal([]byte(recJSON), &r); err != nil {
		t.Fatal(err)
	}
	r["ct"] = ct
	return mustJSON(t, r)
}

func getCT(t testing.TB, recJSON string) string {
	t.Helper()
	var r storedRecord
	if err := json.Unmarshal([]byte(recJSON), &r); err != nil {
		t.Fatal(err)
	}
	return r.Ciphertext
}

func testCopiedCiphertext(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	a, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	b, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, mcPAN, "123", ""))
	noErr(t, err, "TokenizeCard")

	t.Run("card ciphertext into another token of the same merchant", func(t *testing.T) {
		recA, recB := rawGet(t, e, "rec", "m_alpha", a.Token), rawGet(t, e, "rec", "m_alpha", b.Token)
		rawSet(t, e, "rec", "m_alpha", b.Token, setCT(t, recB, getCT(t, recA)))
		_, err := detokenize(e.v, "m_alpha", b.Token, false)
		wantErr(t, err, ErrIntegrity, "Detokenize of a record holding another token's ciphertext")
		rawSet(t, e, "rec", "m_alpha", b.Token, recB)
	})
	t.Run("CVV ciphertext into another token of the same merchant", func(t *testing.T) {
		rawSet(t, e, "cvv", "m_alpha", b.Token, rawGet(t, e, "cvv", "m_alpha", a.Token))
		_, err := detokenize(e.v, "m_alpha", b.Token, true)
		wantErr(t, err, ErrIntegrity, "Detokenize of a CVV copied from another token")
	})
	t.Run("a whole record under another merchant, same token id", func(t *testing.T) {
		rec := rawGet(t, e, "rec", "m_alpha", a.Token)
		var r map[string]any
		json.Unmarshal([]byte(rec), &r)
		r["merchant"] = "m_beta" // the attacker rewrites the merchant too
		rawSet(t, e, "rec", "m_beta", a.Token, mustJSON(t, r))
		rawSet(t, e, "cvv", "m_beta", a.Token, rawGet(t, e, "cvv", "m_alpha", a.Token))
		_, err := detokenize(e.v, "m_beta", a.Token, false)
		wantErr(t, err, ErrIntegrity, "Detokenize of a card copied to another merchant")
		_, err = detokenize(e.v, "m_beta", a.Token, true)
		wantErr(t, err, ErrIntegrity, "Detokenize of a card and CVV copied to another merchant")
	})
	t.Run("the original still decrypts", func(t *testing.T) {
		s, err := detokenize(e.v, "m_alpha", a.Token, true)
		noErr(t, err, "Detokenize of the original")
		if string(s.PAN.Reveal()) != visaPAN || string(s.CVV.Reveal()) != visaCVV {
			t.Fatal("the original token lost its card")
		}
	})
}

func testOtherMerchant(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	c, w := cardAndWallet(t, e)
	unknown, _ := newToken()

	for _, tok := range []string{c.Token, w.Token, unknown} {
		_, errOther := detokenize(e.v, "m_beta", tok, true)
		_, errUnknown := detokenize(e.v, "m_alpha", unknown, true)
		if !indistinguishable(errOther, errUnknown, ErrTokenNotFound) {
			t.Fatalf("got %v for another merchant and %v for an unknown token, want ErrTokenNotFound alike for both", errOther, errUnknown)
		}
		_, errOther = e.v.Metadata(bg, "m_beta", tok)
		_, errUnknown = e.v.Metadata(bg, "m_alpha", unknown)
		if !indistinguishable(errOther, errUnknown, ErrTokenNotFound) {
			t.Fatalf("Metadata: got %v and %v, want ErrTokenNotFound alike for both", errOther, errUnknown)
		}
		if err := e.v.Delete(bg, "m_beta", tok); !errors.Is(err, ErrTokenNotFound) {
			t.Fatalf("Delete by another merchant: got %v, want ErrTokenNotFound", err)
		}
	}
	// The owner lost nothing: not the CVV, not the one-time wallet token.
	useBoth(t, e, c, w, "after another merchant tried")
}

// indistinguishable reports whether a and b are both want and read the same.
func indistinguishable(a, b, want error) bool {
	return errors.Is(a, want) && errors.Is(b, want) && fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

// secretForms returns s and the encodings it could hide in.
func secretForms(s string) []string {
	return []string{
		s,
		hex.EncodeToString([]byte(s)),
		base64.StdEncoding.EncodeToString([]byte(s)),
		base64.RawURLEncoding.EncodeToString([]byte(s)),
	}
}

var b64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{8,}={0,2}`)

// decodedRuns base64-decodes every base64-looking run of v, in every
// alphabet and padding variant that accepts it.
func decodedRuns(v string) [][]byte {
	var out [][]byte
	for _, run := range b64Run.FindAllString(v, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(run); err == nil {
				out = append(out, b)
			} else if b, err := enc.DecodeString(strings.TrimRight(run, "=")); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

// scanAll returns every key matching pattern and its value, failing on any
// key that is not a plain string (which the scan could not inspect).
func scanAll(t testing.TB, rdb redis.UniversalClient, pattern string) map[string]string {
	t.Helper()
	out := map[string]string{}
	keys, err := scanKeys(rdb, pattern)
	if err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	for _, k := range keys {
		typ, err := rdb.Type(bg, k).Result()
		if err != nil {
			t.Fatalf("TYPE: %v", err)
		}
		if typ != "string" {
			t.Fatalf("key %q has type %s; the vault stores only strings", k, typ)
		}
		v, err := rdb.Get(bg, k).Result()
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		out[k] = v
	}
	return out
}

// scanKeys lists the keys matching pattern; on a Cluster, of every master
// (a SCAN answers for one node only).
func scanKeys(rdb redis.UniversalClient, pattern string) ([]string, error) {
	scan := func(c redis.Cmdable) ([]string, error) {
		var keys []string
		it := c.Scan(bg, 0, pattern, 100).Iterator()
		for it.Next(bg) {
			keys = append(keys, it.Val())
		}
		return keys, it.Err()
	}
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return scan(rdb)
	}
	var mu sync.Mutex
	var all []string
	err := cc.ForEachMaster(bg, func(_ context.Context, c *redis.Client) error {
		keys, err := scan(c)
		mu.Lock()
		defer mu.Unlock()
		all = append(all, keys...)
		return err
	})
	return all, err
}

func testRedisScan(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{dedicated: true})
	var tokens []Metadata
	for _, in := range []CardInput{mustCard(t, amexPAN, amexCVV, holderName), mustCard(t, visaPAN, visaCVV, holderName)} {
		m, err := e.v.TokenizeCard(bg, "m_alpha", in)
		noErr(t, err, "TokenizeCard")
		tokens = append(tokens, m)
	}
	for _, kind := range []token.Kind{token.ApplePay, token.GooglePay} {
		m, err := e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, kind))
		noErr(t, err, "TokenizeWallet")
		tokens = append(tokens, m)
	}

	all := scanAll(t, e.rdb, "*") // every key of this Redis, not just ours
	if len(all) != 6 {            // 2 cards × (record + CVV) + 2 wallet records
		t.Fatalf("got %d keys, want 6: %v", len(all), keysOf(all))
	}
	dpanBytes, _ := base64.StdEncoding.DecodeString(testDPAN)
	// Long secrets: must appear nowhere, in no encoding, not even inside
	// something base64-decoded.
	long := [][]byte{[]byte(amexPAN), []byte(visaPAN), []byte(testDPAN), dpanBytes, []byte(holderName), []byte(amexCVV)}
	for k, v := range all {
		for _, s := range long {
			for _, form := range secretForms(string(s)) {
				if strings.Contains(k, form) || strings.Contains(v, form) {
					t.Fatalf("key %q or its value holds a secret in clear or encoded form", k)
				}
			}
			for _, d := range decodedRuns(v) {
				if strings.Contains(string(d), string(s)) {
					t.Fatalf("a base64 run in key %q's value decodes to a secret", k)
				}
			}
		}
		// The 3-digit CVV is too short to search for in random text (token
		// ids, fingerprints, ciphertexts), so check where it could be stored:
		// no JSON field holds it, and no ciphertext decodes to text holding it.
		var rec map[string]any
		switch {
		case strings.Contains(k, ":rec:"):
			if err := json.Unmarshal([]byte(v), &rec); err != nil {
				t.Fatalf("record %q is not JSON: %v", k, err)
			}
			walkJSON(rec, "", func(path, leaf string) {
				if strings.Contains(leaf, visaCVV) && path != "ct" && path != "fingerprint" && path != "fingerprint_exp" && path != "cvv_nonce" {
					t.Fatalf("record field %s holds the CVV digits", path)
				}
				if path == "ct" && !isCiphertext(leaf) {
					t.Fatalf("record field ct is not a ciphertext")
				}
			})
		case strings.Contains(k, ":cvv:"):
			if !isCiphertext(v) {
				t.Fatalf("CVV key %q does not hold a ciphertext", k)
			}
		default:
			t.Fatalf("unexpected key %q", k)
		}
		for _, d := range decodedRuns(v) {
			if strings.Contains(string(d), visaCVV) && len(d) < 16 {
				t.Fatalf("key %q holds a short value decoding to the CVV digits", k)
			}
		}
	}
	for _, m := range tokens {
		if !strings.Contains(strings.Join(keysOf(all), " "), "{"+m.Token+"}") {
			t.Fatalf("no key carries token %s as hash tag", m.Token)
		}
	}
	// And the ciphertexts really decrypt to the cards: the scan looked at
	// the right data, not at something unrelated.
	s, err := detokenize(e.v, "m_alpha", tokens[0].Token, true)
	noErr(t, err, "Detokenize")
	if string(s.PAN.Reveal()) != amexPAN || string(s.CVV.Reveal()) != amexCVV {
		t.Fatal("the scanned records do not hold the tokenized card")
	}
}

var ciphertextForm = regexp.MustCompile(`^(vault|dev):v[0-9]+:[A-Za-z0-9+/]+={0,2}$`)

func isCiphertext(s string) bool { return ciphertextForm.MatchString(s) }

func walkJSON(v any, path string, f func(path, leaf string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walkJSON(c, p, f)
		}
	case []any:
		for i, c := range x {
			walkJSON(c, fmt.Sprintf("%s[%d]", path, i), f)
		}
	case string:
		f(path, x)
	case float64, bool, nil:
		f(path, fmt.Sprint(x))
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// shortTTL is short enough to keep the real-Redis suite fast, long enough
// to be measured by it.
const shortTTL = 300 * time.Millisecond

func testCVVTTL(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{cfg: Config{CVVTTL: shortTTL}})
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	pttl, err := e.rdb.PTTL(bg, e.store.key("cvv", "m_alpha", m.Token)).Result()
	if err != nil || pttl <= 0 || pttl > shortTTL {
		t.Fatalf("got CVV PTTL %v (%v), want (0, %v]", pttl, err, shortTTL)
	}
	pttl, err = e.rdb.PTTL(bg, e.store.key("rec", "m_alpha", m.Token)).Result()
	if err != nil || pttl <= defaultTokenTTL-time.Minute || pttl > defaultTokenTTL {
		t.Fatalf("got record PTTL %v (%v), want about %v", pttl, err, defaultTokenTTL)
	}
	e.advance(shortTTL + 50*time.Millisecond)
	_, err = detokenize(e.v, "m_alpha", m.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "Detokenize with CVV after the CVV TTL")
	if n, _ := e.rdb.Exists(bg, e.store.key("cvv", "m_alpha", m.Token)).Result(); n != 0 {
		t.Fatal("the CVV key outlived its TTL in Redis")
	}
	got, err := e.v.Metadata(bg, "m_alpha", m.Token)
	noErr(t, err, "Metadata")
	if got.HasCVV {
		t.Fatal("Metadata says has_cvv after the CVV TTL")
	}
	s, err := detokenize(e.v, "m_alpha", m.Token, false)
	noErr(t, err, "Detokenize without CVV after the CVV TTL")
	if string(s.PAN.Reveal()) != visaPAN {
		t.Fatal("the card is gone with its CVV")
	}
}

func testConcurrentConsume(t *testing.T, newEnv newEnvFunc) {
	for _, shared := range []bool{false, true} {
		e := newEnv(t, envOptions{})
		c, w := cardAndWallet(t, e)
		races := []struct {
			what string
			call func() (*Secret, error)
			won  func(*Secret) bool
			lost error // what every other caller gets
			wins atomic.Int32
		}{
			{what: "CVV", call: racer(t, e, c.Token, true, shared), won: func(s *Secret) bool { return string(s.CVV.Reveal()) == visaCVV }, lost: ErrCVVUnavailable},
			{what: "wallet", call: racer(t, e, w.Token, false, shared), won: func(s *Secret) bool { return string(s.DPAN.Reveal()) == testDPAN }, lost: ErrWalletConsumed},
		}
		const n = 8
		var wg sync.WaitGroup
		for range n {
			for i := range races {
				r := &races[i]
				wg.Go(func() {
					s, err := r.call()
					switch {
					case err == nil && r.won(s):
						r.wins.Add(1)
					case !errors.Is(err, r.lost):
						t.Errorf("concurrent %s Detokenize (shared Lookup %v): %v", r.what, shared, err)
					}
				})
			}
		}
		wg.Wait()
		for i := range races {
			if got := races[i].wins.Load(); got != 1 {
				t.Fatalf("shared Lookup %v: got %d %s winners among %d callers, want 1", shared, got, races[i].what, n)
			}
		}
	}
}

// racer returns a detokenization of tok to run concurrently: each call with
// its own Lookup, or all decrypting the one Record read before (shared).
func racer(t *testing.T, e *env, tok string, wantCVV, shared bool) func() (*Secret, error) {
	t.Helper()
	if !shared {
		return func() (*Secret, error) { return detokenize(e.v, "m_alpha", tok, wantCVV) }
	}
	rec, err := e.v.Lookup(bg, "m_alpha", tok)
	noErr(t, err, "Lookup")
	return func() (*Secret, error) {
		d, err := e.v.Decrypt(bg, rec, wantCVV)
		if err != nil {
			return nil, err
		}
		return d.Reveal()
	}
}

func testWalletTTL(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{cfg: Config{WalletTTL: shortTTL}})
	m, err := e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay))
	noErr(t, err, "TokenizeWallet")
	e.advance(shortTTL + 50*time.Millisecond)
	_, err = detokenize(e.v, "m_alpha", m.Token, false)
	wantErr(t, err, ErrTokenNotFound, "Detokenize after the wallet TTL")
}

func testDelete(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	keep, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, mcPAN, "", ""))
	noErr(t, err, "TokenizeCard")
	noErr(t, e.v.Delete(bg, "m_alpha", m.Token), "Delete")
	_, err = detokenize(e.v, "m_alpha", m.Token, false)
	wantErr(t, err, ErrTokenNotFound, "Detokenize after Delete")
	_, err = e.v.Metadata(bg, "m_alpha", m.Token)
	wantErr(t, err, ErrTokenNotFound, "Metadata after Delete")
	wantErr(t, e.v.Delete(bg, "m_alpha", m.Token), ErrTokenNotFound, "second Delete")
	for k := range scanAll(t, e.rdb, e.prefix+":*") {
		if strings.Contains(k, m.Token) {
			t.Fatalf("key %q survived Delete", k)
		}
	}
	if _, err := e.v.Metadata(bg, "m_alpha", keep.Token); err != nil {
		t.Fatalf("Delete of one token removed another: %v", err)
	}
	w, err := e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay))
	noErr(t, err, "TokenizeWallet")
	noErr(t, e.v.Delete(bg, "m_alpha", w.Token), "Delete wallet token")
	_, err = detokenize(e.v, "m_alpha", w.Token, false)
	wantErr(t, err, ErrTokenNotFound, "Detokenize of a deleted wallet token")
}

func testTTLCaps(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	for _, cfg := range []Config{
		{CVVTTL: token.MaxOneTimeTTL + time.Second},
		{WalletTTL: token.MaxOneTimeTTL + time.Second},
		{TokenTTL: -time.Second},
	} {
		cfg.Transit, cfg.Store = e.transit, e.store
		if _, err := New(cfg); err == nil {
			t.Fatalf("New accepted TTLs token=%v cvv=%v wallet=%v", cfg.TokenTTL, cfg.CVVTTL, cfg.WalletTTL)
		}
	}
	// At the cap is fine; a CVV never outlives its token.
	v, err := New(Config{Transit: e.transit, Store: e.store, TokenTTL: 5 * time.Minute, CVVTTL: token.MaxOneTimeTTL, WalletTTL: token.MaxOneTimeTTL, Now: e.clock.Now})
	noErr(t, err, "New at the caps")
	m, err := v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	pttl, err := e.rdb.PTTL(bg, e.store.key("cvv", "m_alpha", m.Token)).Result()
	if err != nil || pttl <= 0 || pttl > 5*time.Minute {
		t.Fatalf("got CVV PTTL %v (%v), want at most the token's 5m", pttl, err)
	}
	if !m.CVVExpiresAt.Equal(m.ExpiresAt) {
		t.Fatalf("got cvv_expires_at %v after expires_at %v", m.CVVExpiresAt, m.ExpiresAt)
	}
	w, err := v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay))
	noErr(t, err, "TokenizeWallet")
	pttl, err = e.rdb.PTTL(bg, e.store.key("rec", "m_alpha", w.Token)).Result()
	if err != nil || pttl <= 0 || pttl > token.MaxOneTimeTTL {
		t.Fatalf("got wallet PTTL %v (%v), want at most %v", pttl, err, token.MaxOneTimeTTL)
	}
}

func testRedisDown(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{dedicated: true})
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	rec, err := e.v.Lookup(bg, "m_alpha", m.Token)
	noErr(t, err, "Lookup")
	d, err := e.v.Decrypt(bg, rec, true)
	noErr(t, err, "Decrypt")
	e.stopRedis()
	calls := []struct {
		name string
		f    func() error
	}{
		{"TokenizeCard", func() error { _, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, "")); return err }},
		{"TokenizeWallet", func() error { _, err := e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay)); return err }},
		{"Lookup", func() error { _, err := e.v.Lookup(bg, "m_alpha", m.Token); return err }},
		{"Reveal", func() error { _, err := d.Reveal(); return err }},
		{"Metadata", func() error { _, err := e.v.Metadata(bg, "m_alpha", m.Token); return err }},
		{"Delete", func() error { return e.v.Delete(bg, "m_alpha", m.Token) }},
		{"Ping", func() error { return e.v.Ping(bg) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.f()
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%s took %v with Redis down, want under 1s", c.name, d)
		}
		wantErr(t, err, ErrUnavailable, c.name+" with Redis down")
		clean(t, err, m.Token)
	}
}

func testTransitDown(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{dedicated: true, ownTransit: true})
	c, w := cardAndWallet(t, e)
	before := len(scanAll(t, e.rdb, "*"))
	e.sealTransit()

	_, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	wantErr(t, err, ErrUnavailable, "TokenizeCard with transit down")
	_, err = e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.GooglePay))
	wantErr(t, err, ErrUnavailable, "TokenizeWallet with transit down")
	_, err = detokenize(e.v, "m_alpha", c.Token, true)
	wantErr(t, err, ErrUnavailable, "Detokenize with transit down")
	_, err = detokenize(e.v, "m_alpha", w.Token, false)
	wantErr(t, err, ErrUnavailable, "wallet Detokenize with transit down")
	wantErr(t, e.v.Ping(bg), ErrUnavailable, "Ping with transit down")

	if after := len(scanAll(t, e.rdb, "*")); after != before {
		t.Fatalf("got %d keys after failed calls, want the %d from before", after, before)
	}
	// Nothing was burnt: the CVV and the one-time wallet token are still there.
	m, err := e.v.Metadata(bg, "m_alpha", c.Token)
	noErr(t, err, "Metadata with transit down")
	if !m.HasCVV {
		t.Fatal("a failed Detokenize consumed the CVV")
	}
	if _, err := e.v.Metadata(bg, "m_alpha", w.Token); err != nil {
		t.Fatalf("a failed Detokenize consumed the wallet token: %v", err)
	}
}

func testNoHalfWrittenToken(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	for _, op := range []string{"encrypt:card", "encrypt:cvv", "hmac"} {
		e.faults.fail(op, &TransitError{Op: op, Reason: "injected", err: ErrUnavailable})
		_, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
		wantErr(t, err, ErrUnavailable, "TokenizeCard with "+op+" failing")
		_, err = e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay))
		if op == "encrypt:card" {
			wantErr(t, err, ErrUnavailable, "TokenizeWallet with "+op+" failing")
		}
		e.faults.fail(op, nil)
		if op == "encrypt:card" {
			if keys := scanAll(t, e.rdb, e.prefix+":*"); len(keys) != 0 {
				t.Fatalf("got keys %v after failed tokenizations, want none", keysOf(keys))
			}
		} else {
			// The wallet succeeded; only its record may exist.
			for k := range scanAll(t, e.rdb, e.prefix+":*") {
				e.rdb.Del(bg, k)
			}
		}
	}
	// A per-item failure (not a whole-call one) also stores nothing.
	e.faults.fail("encrypt:cvv", nil)
	itemFail := &itemFaultTransit{Transit: e.transit}
	v, err := New(Config{Transit: itemFail, Store: e.store, Now: e.clock.Now})
	noErr(t, err, "New")
	_, err = v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	wantErr(t, err, ErrUnavailable, "TokenizeCard with a failed HMAC item")
	if keys := scanAll(t, e.rdb, e.prefix+":*"); len(keys) != 0 {
		t.Fatalf("got keys %v after a failed tokenization, want none", keysOf(keys))
	}
}

// itemFaultTransit fails the second HMAC item of every call.
type itemFaultTransit struct{ Transit }

func (f *itemFaultTransit) HMAC(ctx context.Context, items []HMACItem) ([]HMACResult, error) {
	r, err := f.Transit.HMAC(ctx, items)
	if err == nil && len(r) > 1 {
		r[1] = HMACResult{Err: &TransitError{Op: "hmac", Reason: "injected", err: ErrUnavailable}}
	}
	return r, err
}

func testInvalidInput(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	good := mustCard(t, visaPAN, visaCVV, "")
	for name, in := range map[string]CardInput{
		"no PAN":    {Expiry: good.Expiry},
		"no expiry": {PAN: good.PAN},
		"month 13":  {PAN: good.PAN, Expiry: card.Expiry{Month: 13, Year: 2031}},
	} {
		_, err := e.v.TokenizeCard(bg, "m_alpha", in)
		wantErr(t, err, ErrInvalidInput, "TokenizeCard with "+name)
	}
	for _, merchant := range []string{"", "a:b", "{x}", "a b", "m\x00", strings.Repeat("m", 65), "mé"} {
		_, err := e.v.TokenizeCard(bg, merchant, good)
		wantErr(t, err, ErrInvalidInput, fmt.Sprintf("TokenizeCard for merchant %q", merchant))
	}
	for name, in := range map[string]WalletInput{
		"kind card":  {Kind: token.Card, DPAN: mustWallet(t, token.ApplePay).DPAN, Network: card.NetworkVisa},
		"no DPAN":    {Kind: token.ApplePay, Network: card.NetworkVisa},
		"no network": {Kind: token.ApplePay, DPAN: mustWallet(t, token.ApplePay).DPAN},
	} {
		_, err := e.v.TokenizeWallet(bg, "m_alpha", in)
		wantErr(t, err, ErrInvalidInput, "TokenizeWallet with "+name)
	}
	for _, tok := range []string{"", "tok_", "tok_short", "tok_" + strings.Repeat("a", 23), "tok_" + strings.Repeat("-", 22), "xyz_" + strings.Repeat("a", 22), visaPAN} {
		_, err := detokenize(e.v, "m_alpha", tok, false)
		wantErr(t, err, ErrTokenNotFound, fmt.Sprintf("Detokenize of %q", tok))
		wantErr(t, e.v.Delete(bg, "m_alpha", tok), ErrTokenNotFound, "Delete of a malformed id")
	}
	if keys := scanAll(t, e.rdb, e.prefix+":*"); len(keys) != 0 {
		t.Fatalf("got keys %v after refused input, want none", keysOf(keys))
	}
}

func testDiscardThenReveal(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	c, w := cardAndWallet(t, e)
	for _, m := range []Metadata{c, w} {
		rec, err := e.v.Lookup(bg, "m_alpha", m.Token)
		noErr(t, err, "Lookup")
		if got, want := mustJSON(t, rec.Meta()), mustJSON(t, m); got != want {
			t.Fatalf("Lookup metadata: got %s, want %s", got, want)
		}
		d, err := e.v.Decrypt(bg, rec, true)
		noErr(t, err, "Decrypt")
		d.Discard()
		if _, err := d.Reveal(); !errors.Is(err, errSpent) {
			t.Fatalf("Reveal after Discard: got %v, want errSpent", err)
		}
	}
	got, err := e.v.Metadata(bg, "m_alpha", c.Token)
	noErr(t, err, "Metadata")
	if !got.HasCVV {
		t.Fatal("a discarded decryption consumed the CVV")
	}
	useBoth(t, e, c, w, "after a Discard")
	_, err = detokenize(e.v, "m_alpha", c.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "Detokenize with CVV after a Reveal")
	_, err = detokenize(e.v, "m_alpha", w.Token, false)
	wantErr(t, err, ErrWalletConsumed, "wallet Detokenize after a Reveal")
}

func testRefusedDecrypt(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{cfg: Config{CVVTTL: shortTTL}})
	c, w := cardAndWallet(t, e)
	noCVV, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, mcPAN, "", ""))
	noErr(t, err, "TokenizeCard without CVV")

	rec, err := e.v.Lookup(bg, "m_alpha", noCVV.Token)
	noErr(t, err, "Lookup")
	_, err = e.v.Decrypt(bg, rec, true)
	wantErr(t, err, ErrCVVUnavailable, "Decrypt with CVV of a card without one")

	orig := rawGet(t, e, "rec", "m_alpha", w.Token)
	rawSet(t, e, "rec", "m_alpha", w.Token, strings.Replace(orig, `"kind":"apple_pay"`, `"kind":"paypal"`, 1))
	rec, err = e.v.Lookup(bg, "m_alpha", w.Token)
	noErr(t, err, "Lookup of a record of an unknown kind")
	_, err = e.v.Decrypt(bg, rec, false)
	wantErr(t, err, ErrIntegrity, "Decrypt of a record of an unknown kind")
	rawSet(t, e, "rec", "m_alpha", w.Token, orig)

	rec, err = e.v.Lookup(bg, "m_alpha", c.Token)
	noErr(t, err, "Lookup")
	if !rec.Meta().HasCVV {
		t.Fatal("Lookup of a fresh card says it has no CVV")
	}
	e.advance(shortTTL + 50*time.Millisecond)
	_, err = e.v.Decrypt(bg, rec, true)
	wantErr(t, err, ErrCVVUnavailable, "Decrypt with a CVV that expired after Lookup")

	for _, tok := range []string{noCVV.Token, c.Token, w.Token} {
		_, err := detokenize(e.v, "m_alpha", tok, false)
		noErr(t, err, "Detokenize after a refused Decrypt")
	}
}

// useBoth detokenizes the card with its CVV and the wallet token, which
// consumes both, and fails t unless both were still whole.
func useBoth(t *testing.T, e *env, c, w Metadata, after string) {
	t.Helper()
	s, err := detokenize(e.v, "m_alpha", c.Token, true)
	noErr(t, err, "Detokenize with CVV "+after)
	if string(s.CVV.Reveal()) != visaCVV {
		t.Fatal("the CVV was lost " + after)
	}
	s, err = detokenize(e.v, "m_alpha", w.Token, false)
	noErr(t, err, "wallet Detokenize "+after)
	if string(s.DPAN.Reveal()) != testDPAN {
		t.Fatal("the wallet payload was lost " + after)
	}
}

// cardAndWallet tokenizes a Visa card with its CVV and an Apple Pay DPAN for m_alpha.
func cardAndWallet(t *testing.T, e *env) (card, wallet Metadata) {
	t.Helper()
	card, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	wallet, err = e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay))
	noErr(t, err, "TokenizeWallet")
	return card, wallet
}
