package vault

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/token"
)

// purgeKeys is how many raw keys per space and merchant the purge test adds to the
// real tokens: thousands of keys, many SCAN batches.
const purgeKeys = 1500

// seedMerchant stores real tokens of merchant (cards with CVVs, a used wallet token)
// and purgeKeys more keys in each of its spaces, idempotency records included. It
// returns the ids of the card tokens.
func seedMerchant(t *testing.T, v *Vault, s *Store, merchant string) []string {
	t.Helper()
	var ids []string
	for range 5 {
		m, err := v.TokenizeCard(bg, merchant, mustCard(t, testcards.Visa, testcards.CVV, testcards.Holder))
		noErr(t, err, "TokenizeCard")
		ids = append(ids, m.Token)
	}
	w, err := v.TokenizeWallet(bg, merchant, mustWallet(t, token.ApplePay))
	noErr(t, err, "TokenizeWallet")
	if _, err := detokenize(v, merchant, w.Token, false); err != nil { // leaves the wallet-used marker
		t.Fatalf("detokenize wallet: %v", err)
	}
	if _, err := v.NewCVVSession(bg, merchant, ids[0]); err != nil { // an open CVV session names a token
		t.Fatalf("NewCVVSession: %v", err)
	}
	p := s.c.Pipeline()
	for i := range purgeKeys {
		tok := fmt.Sprintf("tok_seed%05d", i)
		for _, space := range []string{"rec", "cvv", "used"} {
			p.Set(bg, s.key(space, merchant, tok), "x", time.Hour)
		}
		p.Set(bg, fmt.Sprintf("chd:idem:%s:sk_0a1b2c3d:%032x", merchant, i), "x", time.Hour)
	}
	if _, err := p.Exec(bg); err != nil {
		t.Fatal(err)
	}
	return ids
}

// dump is every key matching pattern with its value.
func dump(t *testing.T, s *Store, pattern string) map[string]string {
	t.Helper()
	keys, err := scanKeys(s.c, pattern)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k] = s.c.Get(bg, k).Val()
	}
	return out
}

// Offboarding on a real redis-server: purging "m_1" deletes every record, CVV,
// wallet-used marker and idempotency record of m_1, batch by batch, and nothing of
// "m_10" (its id starts with "m_1"), nor of m_1 under another deployment's prefix.
// A second run finds nothing.
func TestPurgeDeletesOneMerchantOnRedisServer(t *testing.T) {
	rs := testenv.Redis(t)
	rdb := NewRedisClient(RedisOptions{Addrs: []string{rs.Addr}})
	defer rdb.Close()
	lc, err := NewLocalCipher()
	noErr(t, err, "NewLocalCipher")
	store, other := NewStore(rdb, StoreOptions{}), NewStore(rdb, StoreOptions{Prefix: "chd2"})
	v, err := New(Config{Transit: lc, Store: store})
	noErr(t, err, "New")
	v2, err := New(Config{Transit: lc, Store: other})
	noErr(t, err, "New")
	gone := seedMerchant(t, v, store, "m_1")
	kept := seedMerchant(t, v, store, "m_10")
	seedMerchant(t, v2, other, "m_1")
	before := dump(t, store, "*")

	spaces, err := store.MerchantSpaces("m_1")
	noErr(t, err, "MerchantSpaces")
	spaces = append(spaces, KeySpace{"idempotency", "chd:idem:m_1:"})
	var progress []int64
	counts, err := Purge(bg, rdb, spaces, PurgeOptions{Batch: 200, Progress: func(n int64) { progress = append(progress, n) }})
	noErr(t, err, "Purge")

	// 5 cards (record and CVV), the used wallet (its marker; its record was taken)
	want := map[string]int64{"records": purgeKeys + 5, "cvvs": purgeKeys + 5, "wallet_used": purgeKeys + 1, "cvv_sessions": 1, "idempotency": purgeKeys}
	if !maps.Equal(counts, want) {
		t.Errorf("counts: got %v, want %v", counts, want)
	}
	var total int64
	for _, n := range want {
		total += n
	}
	if len(progress) < 4*purgeKeys/200 || progress[len(progress)-1] != total {
		t.Errorf("progress: got %d calls ending at %v, want one a batch ending at %d", len(progress), progress[len(progress)-1:], total)
	}
	after := dump(t, store, "*")
	for k, val := range before {
		mine := strings.Contains(k, ":m_1:") && !strings.HasPrefix(k, "chd2:")
		if _, left := after[k]; mine && left {
			t.Fatalf("%s survived the purge", k)
		} else if !mine && after[k] != val {
			t.Fatalf("%s of another merchant or deployment changed: got %q, want %q", k, after[k], val)
		}
	}
	for _, id := range kept {
		if _, err := detokenize(v, "m_10", id, true); err != nil {
			t.Fatalf("a token of m_10 after the purge of m_1: %v", err)
		}
	}
	for _, id := range gone {
		if _, err := v.Lookup(bg, "m_1", id); !errors.Is(err, ErrTokenNotFound) {
			t.Fatalf("a purged token: got %v, want ErrTokenNotFound", err)
		}
	}
	again, err := Purge(bg, rdb, spaces, PurgeOptions{})
	noErr(t, err, "Purge again")
	if again["records"]+again["cvvs"]+again["wallet_used"]+again["cvv_sessions"]+again["idempotency"] != 0 {
		t.Errorf("a second purge: got %v, want nothing deleted", again)
	}
}

// A Store prefix with glob characters names itself only: "c[h]d" as a pattern
// would match "chd".
func TestPurgeQuotesGlobCharactersOfThePrefix(t *testing.T) {
	rs := testenv.Redis(t)
	rdb := NewRedisClient(RedisOptions{Addrs: []string{rs.Addr}})
	defer rdb.Close()
	odd, plain := NewStore(rdb, StoreOptions{Prefix: "c[h]d"}), NewStore(rdb, StoreOptions{})
	for _, s := range []*Store{odd, plain} {
		if err := rdb.Set(bg, s.key("rec", "m_1", "tok_a"), "x", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	spaces, err := odd.MerchantSpaces("m_1")
	noErr(t, err, "MerchantSpaces")
	counts, err := Purge(bg, rdb, spaces, PurgeOptions{})
	noErr(t, err, "Purge")
	if counts["records"] != 1 || rdb.Exists(bg, plain.key("rec", "m_1", "tok_a")).Val() != 1 {
		t.Errorf("got %v and the chd record gone, want 1 record deleted and the chd one kept", counts)
	}
}

// Nothing is scanned for a merchant id that is not one, nor for a prefix without the
// delimiter that keeps "m_1" from matching "m_10".
func TestPurgeRefusesPrefixesWithoutTheirDelimiter(t *testing.T) {
	s := NewStore(nil, StoreOptions{})
	for _, m := range []string{"", "m_1*", "m:1", "m_[1]", strings.Repeat("m", 65)} {
		if _, err := s.MerchantSpaces(m); err == nil {
			t.Errorf("MerchantSpaces(%q): got no error, want a refusal", m)
		}
	}
	for _, p := range []string{"chd:rec:m_1", "chd:idem:m_1", "", "chd:"} {
		if _, err := Purge(bg, nil, []KeySpace{{"records", p}}, PurgeOptions{}); err == nil || !strings.Contains(err.Error(), "':'") {
			t.Errorf("Purge with prefix %q: got %v, want a refusal naming the delimiter", p, err)
		}
	}
}
