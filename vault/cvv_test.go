package vault

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/token"
)

// CVV re-collection on every backend pair of the suite: miniredis + LocalCipher,
// redis-server + a real Vault dev server.

var cvvTests = []struct {
	name string
	opts envOptions
	f    func(*testing.T, *env)
}{
	{"a redeemed session attaches a fresh CVV that is injected once", envOptions{}, testAttachThenRevealOnce},
	{"a session is redeemed once only", envOptions{}, testSessionSingleUse},
	{"another merchant can neither open nor redeem a session", envOptions{}, testSessionOtherMerchant},
	{"a wallet token has no CVV session", envOptions{}, testSessionWallet},
	{"a session ends after its TTL", envOptions{}, testSessionTTL},
	{"a session ends with its token", envOptions{cfg: Config{TokenTTL: shortTTL, CVVTTL: shortTTL}}, testSessionEndsWithToken},
	{"a CVV of the wrong length keeps the session and the old CVV", envOptions{}, testAttachWrongLength},
	{"an attached CVV ends after the CVV TTL", envOptions{cfg: Config{CVVTTL: shortTTL}}, testAttachedCVVTTL},
	{"a transit outage attaches nothing and keeps the session", envOptions{}, testAttachOutage},
	{"of concurrent redeems exactly one attaches", envOptions{}, testConcurrentRedeem},
	{"an attach over a record changed since it was read writes nothing, and AttachCVV reads again", envOptions{}, testAttachCompareAndSet},
}

func runCVVSuite(t *testing.T, newEnv newEnvFunc) {
	for _, tc := range cvvTests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newEnv(t, tc.opts)) })
	}
}

func TestCVVSessionsMiniredisLocalCipher(t *testing.T) {
	runCVVSuite(t, func(t *testing.T, o envOptions) *env { return newUnitEnv(t, o) })
}

func TestCVVSessionsRedisServerVault(t *testing.T) {
	runCVVSuite(t, realEnvs(t, true))
}

// freshCVV is a test CVV other than the one a Visa token is tokenized with.
func freshCVV(t testing.TB) (string, card.CVV) {
	t.Helper()
	s := testcards.CVVMastercard
	if s == visaCVV {
		t.Fatal("the test needs two distinct test CVVs")
	}
	c, err := card.ParseCVV(s, card.Visa)
	noErr(t, err, "ParseCVV")
	return s, c
}

func openSession(t *testing.T, e *env, tok string) CVVSession {
	t.Helper()
	s, err := e.v.NewCVVSession(bg, "m_alpha", tok)
	noErr(t, err, "NewCVVSession")
	if !ValidCVVSessionID(s.ID) || !strings.HasPrefix(s.ID, "cvs_") {
		t.Fatalf("got session id %q, want cvs_ and 26 base32 characters", s.ID)
	}
	if want := e.clock.Now().Add(CVVSessionTTL); !s.ExpiresAt.Equal(want) {
		t.Fatalf("got session expiry %v, want %v", s.ExpiresAt, want)
	}
	return s
}

func testAttachThenRevealOnce(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", holderName))
	noErr(t, err, "TokenizeCard")
	digits, cvv := freshCVV(t)
	s := openSession(t, e, m.Token)
	e.advance(time.Minute)
	got, err := e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
	noErr(t, err, "RedeemCVVSession")
	if !got.HasCVV || got.CVVExpiresAt == nil || !got.CVVExpiresAt.Equal(e.clock.Now().Add(e.v.cvvTTL)) || got.Token != m.Token {
		t.Fatalf("got %+v, want the token with a CVV until now+10m", got)
	}
	sec, err := detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "detokenize with the attached CVV")
	if string(sec.CVV.Reveal()) != digits || string(sec.PAN.Reveal()) != visaPAN || sec.Holder.Reveal() != holderName ||
		sec.Expiry != (card.Expiry{Month: 3, Year: 2031}) {
		t.Fatal("the token does not give back its card and the attached CVV")
	}
	_, err = detokenize(e.v, "m_alpha", m.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "second detokenize with CVV")
	// The token still pays without a CVV, and takes another fresh one.
	_, err = detokenize(e.v, "m_alpha", m.Token, false)
	noErr(t, err, "detokenize without CVV")
	_, err = e.v.AttachCVV(bg, "m_alpha", m.Token, cvv)
	noErr(t, err, "AttachCVV again")
	if meta, _ := e.v.Metadata(bg, "m_alpha", m.Token); !meta.HasCVV {
		t.Fatal("a second attach left no CVV")
	}
}

func testSessionSingleUse(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	_, cvv := freshCVV(t)
	s := openSession(t, e, m.Token)
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
	noErr(t, err, "RedeemCVVSession")
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
	wantErr(t, err, ErrCVVSessionNotFound, "second redeem")
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", "cvs_"+strings.Repeat("A", 26), cvv)
	wantErr(t, err, ErrCVVSessionNotFound, "unknown session")
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", "cvs_x", cvv)
	wantErr(t, err, ErrCVVSessionNotFound, "malformed session")
}

func testSessionOtherMerchant(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", ""))
	noErr(t, err, "TokenizeCard")
	_, err = e.v.NewCVVSession(bg, "m_beta", m.Token)
	wantErr(t, err, ErrTokenNotFound, "another merchant's token")
	_, err = e.v.NewCVVSession(bg, "m_alpha", "tok_"+strings.Repeat("a", 22))
	wantErr(t, err, ErrTokenNotFound, "an unknown token")
	_, cvv := freshCVV(t)
	s := openSession(t, e, m.Token)
	_, err = e.v.RedeemCVVSession(bg, "m_beta", s.ID, cvv)
	wantErr(t, err, ErrCVVSessionNotFound, "another merchant's session")
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
	noErr(t, err, "the owner redeems after another merchant tried")
}

func testSessionWallet(t *testing.T, e *env) {
	m, err := e.v.TokenizeWallet(bg, "m_alpha", mustWallet(t, token.ApplePay))
	noErr(t, err, "TokenizeWallet")
	_, err = e.v.NewCVVSession(bg, "m_alpha", m.Token)
	wantErr(t, err, ErrNotCard, "a wallet token")
	_, cvv := freshCVV(t)
	_, err = e.v.AttachCVV(bg, "m_alpha", m.Token, cvv)
	wantErr(t, err, ErrNotCard, "AttachCVV on a wallet token")
}

// testSessionTTL reads the session key's TTL in Redis (a real server cannot be
// fast-forwarded by 10 minutes); testSessionEndsWithToken lets one run out.
func testSessionTTL(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", ""))
	noErr(t, err, "TokenizeCard")
	s := openSession(t, e, m.Token)
	ttl, err := e.rdb.PTTL(bg, e.store.sessionKey("m_alpha", s.ID)).Result()
	noErr(t, err, "PTTL")
	if ttl <= CVVSessionTTL-5*time.Second || ttl > CVVSessionTTL {
		t.Fatalf("got the session key's TTL %v, want %v", ttl, CVVSessionTTL)
	}
	if v, _ := e.rdb.Get(bg, e.store.sessionKey("m_alpha", s.ID)).Result(); v != m.Token {
		t.Fatal("the session key does not hold its token id alone")
	}
}

func testSessionEndsWithToken(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", ""))
	noErr(t, err, "TokenizeCard")
	_, cvv := freshCVV(t)
	s, err := e.v.NewCVVSession(bg, "m_alpha", m.Token)
	noErr(t, err, "NewCVVSession")
	if !s.ExpiresAt.Equal(m.ExpiresAt) {
		t.Fatalf("got session expiry %v, want the token's %v", s.ExpiresAt, m.ExpiresAt)
	}
	e.advance(shortTTL + 50*time.Millisecond)
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
	wantErr(t, err, ErrCVVSessionNotFound, "an expired session")
	if n, _ := e.rdb.Exists(bg, e.store.sessionKey("m_alpha", s.ID)).Result(); n != 0 {
		t.Fatal("the expired session key is still in Redis")
	}
}

func testAttachWrongLength(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	s := openSession(t, e, m.Token)
	four, err := card.ParseCVV(amexCVV, card.Amex)
	noErr(t, err, "ParseCVV")
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, four)
	wantErr(t, err, card.ErrCVV, "a 4-digit CVV for a Visa card")
	sec, err := detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "detokenize")
	if string(sec.CVV.Reveal()) != visaCVV {
		t.Fatal("a refused attach changed the CVV")
	}
	_, cvv := freshCVV(t)
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
	noErr(t, err, "redeeming the session kept after a refused CVV")
}

func testAttachedCVVTTL(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", ""))
	noErr(t, err, "TokenizeCard")
	_, cvv := freshCVV(t)
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", openSession(t, e, m.Token).ID, cvv)
	noErr(t, err, "RedeemCVVSession")
	e.advance(shortTTL + 50*time.Millisecond)
	if meta, _ := e.v.Metadata(bg, "m_alpha", m.Token); meta.HasCVV {
		t.Fatal("the attached CVV outlived the CVV TTL")
	}
	_, err = detokenize(e.v, "m_alpha", m.Token, true)
	wantErr(t, err, ErrCVVUnavailable, "detokenize with an expired attached CVV")
	_, err = detokenize(e.v, "m_alpha", m.Token, false)
	noErr(t, err, "detokenize without CVV after the attached CVV expired")
}

func testAttachOutage(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	s := openSession(t, e, m.Token)
	_, cvv := freshCVV(t)
	for _, op := range []string{"encrypt:cvv", "decrypt:card", "encrypt:card"} {
		e.faults.fail(op, &TransitError{Op: op, Status: 503, Reason: "down (simulated)", err: ErrUnavailable})
		_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
		wantErr(t, err, ErrUnavailable, "redeem while "+op+" fails")
		e.faults.fail(op, nil)
	}
	sec, err := detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "detokenize after the outage")
	if string(sec.CVV.Reveal()) != visaCVV {
		t.Fatal("a failed attach changed the CVV")
	}
	_, err = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv)
	noErr(t, err, "redeeming the session kept through the outage")
}

func testConcurrentRedeem(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", ""))
	noErr(t, err, "TokenizeCard")
	s := openSession(t, e, m.Token)
	_, cvv := freshCVV(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = e.v.RedeemCVVSession(bg, "m_alpha", s.ID, cvv) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantErr(t, err, ErrCVVSessionNotFound, "a losing redeem")
		}
	}
	if ok != 1 {
		t.Fatalf("got %d successful redeems, want 1", ok)
	}
}

func testAttachCompareAndSet(t *testing.T, e *env) {
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	_, st, err := e.v.load(bg, "m_alpha", m.Token, false)
	noErr(t, err, "load")
	// A payment takes the CVV: the record loses its nonce.
	_, err = detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "detokenize")
	ok, err := e.store.attachCVV(bg, "m_alpha", m.Token, st.rec, []byte(`{"v":2}`), "vault:v1:x", time.Minute)
	noErr(t, err, "attachCVV")
	if ok {
		t.Fatal("attachCVV wrote over a record that changed since it was read")
	}
	if n, _ := e.rdb.Exists(bg, e.store.key("cvv", "m_alpha", m.Token)).Result(); n != 0 {
		t.Fatal("a refused attachCVV left a CVV key")
	}
	digits, cvv := freshCVV(t)
	_, err = e.v.AttachCVV(bg, "m_alpha", m.Token, cvv)
	noErr(t, err, "AttachCVV")
	sec, err := detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "detokenize the attached CVV")
	if string(sec.CVV.Reveal()) != digits {
		t.Fatal("the attached CVV is not the one revealed")
	}
}
