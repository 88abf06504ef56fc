package vault

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/internal/testenv"
)

// rotate rotates transit keys with the root token, as the operator does.
func rotate(t testing.TB, vs *testenv.VaultServer, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := vs.Do(http.MethodPost, "/v1/transit/keys/"+k+"/rotate", map[string]any{}, nil); err != nil {
			t.Fatalf("rotate %s: %v", k, err)
		}
	}
}

// rewrapEnv is a vault on a real Vault and redis-server holding n card
// tokens, every one with a CVV.
type rewrapEnv struct {
	vs     *testenv.VaultServer
	tr     *VaultTransit
	rdb    redis.UniversalClient
	v      *Vault
	tokens []string
}

func newRewrapEnv(t *testing.T, n int) *rewrapEnv {
	t.Helper()
	e := &rewrapEnv{vs: testenv.Vault(t)}
	e.tr = newVaultTransit(t, e.vs)
	e.rdb = NewRedisClient(RedisOptions{Addrs: []string{testenv.Redis(t).Addr}, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { e.rdb.Close() })
	var err error
	e.v, err = New(Config{Transit: e.tr, Store: NewStore(e.rdb, StoreOptions{}), TokenTTL: time.Hour, CVVTTL: time.Hour})
	noErr(t, err, "New")
	e.tokens = make([]string, n)
	in := mustCard(t, visaPAN, visaCVV, holderName)
	e.parallel(t, func(i int) error {
		m, err := e.v.TokenizeCard(bg, "m_alpha", in)
		e.tokens[i] = m.Token
		return err
	})
	return e
}

// parallel runs f for every token index on 16 goroutines.
func (e *rewrapEnv) parallel(t *testing.T, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(e.tokens); i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil && failed.Add(1) == 1 {
					t.Errorf("item %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
}

// versions returns the key versions of a token's card and CVV ciphertexts (0: none).
func (e *rewrapEnv) versions(t *testing.T, tok string) (card, cvv int) {
	t.Helper()
	st, err := e.v.store.read(bg, "m_alpha", tok, true)
	noErr(t, err, "read")
	rec, _, err := e.v.load(bg, "m_alpha", tok, false)
	noErr(t, err, "load")
	return ctVersion(rec.Ciphertext), ctVersion(st.cvv)
}

// TestRewrapRotatesThousandsOfRecordsResumablyBesideLiveTraffic: 3,000 tokens,
// both keys rotated, a rewrap killed after 5 batches, then a rerun while live
// traffic consumes CVVs and deletes tokens; every record ends at the newest
// versions and still detokenizes; min_decryption_version then refuses an old
// ciphertext put back.
func TestRewrapRotatesThousandsOfRecordsResumablyBesideLiveTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 records on a real Vault")
	}
	const n = 3000
	e := newRewrapEnv(t, n)
	oldRec, err := e.rdb.Get(bg, e.v.store.key("rec", "m_alpha", e.tokens[0])).Result()
	noErr(t, err, "keep an old record")
	rotate(t, e.vs, defaultCardKeyName, defaultCVVKeyName)

	ctx, cancel := context.WithCancel(bg)
	batches := 0
	c, err := e.v.Rewrap(ctx, e.tr, RewrapOptions{Batch: 100, Progress: func(RewrapCount) {
		if batches++; batches == 5 {
			cancel() // killed halfway
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) || c.Rewrapped != 500 || c.Scanned != 500 {
		t.Fatalf("first run: got %+v, %v; want 500 rewrapped, then canceled", c, err)
	}

	// Live traffic during the rerun: the first 100 tokens have their CVV
	// consumed, the next 100 are deleted.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			var err error
			if i < 100 {
				_, err = detokenize(e.v, "m_alpha", e.tokens[i], true) // rewrapped meanwhile or not
			} else {
				err = e.v.Delete(bg, "m_alpha", e.tokens[i])
			}
			if err != nil {
				t.Errorf("live traffic %d: %v", i, err)
			}
		}
	})
	start := time.Now()
	c, err = e.v.Rewrap(bg, e.tr, RewrapOptions{Batch: 100})
	took := time.Since(start)
	wg.Wait()
	noErr(t, err, "rerun")
	t.Logf("rerun: %+v in %s", c, took)
	if c.Failed != 0 || c.Current < 400 || c.Scanned > n || c.Rewrapped+c.Current+c.Changed != c.Scanned {
		t.Errorf("rerun: got %+v, want the 500 of the first run current, none failed, every record counted", c)
	}
	e.checkAllRewrapped(t)

	for _, k := range []string{defaultCardKeyName, defaultCVVKeyName} {
		if err := e.vs.Do(http.MethodPost, "/v1/transit/keys/"+k+"/config", map[string]any{"min_decryption_version": 2}, nil); err != nil {
			t.Fatalf("min_decryption_version: %v", err)
		}
	}
	if _, err := detokenize(e.v, "m_alpha", e.tokens[n-1], false); err != nil {
		t.Errorf("a rewrapped token after min_decryption_version=2: %v", err)
	}
	noErr(t, e.rdb.Set(bg, e.v.store.key("rec", "m_alpha", e.tokens[0]), oldRec, time.Hour).Err(), "put the old record back")
	if _, err := detokenize(e.v, "m_alpha", e.tokens[0], false); !errors.Is(err, ErrIntegrity) {
		t.Errorf("an old v1 ciphertext after min_decryption_version=2: got %v, want ErrIntegrity", err)
	}
}

// checkAllRewrapped: tokens 0–99 keep no CVV, 100–199 stay deleted, the rest
// are at version 2 for card and CVV and detokenize with their CVV.
func (e *rewrapEnv) checkAllRewrapped(t *testing.T) {
	t.Helper()
	e.parallel(t, func(i int) error {
		tok := e.tokens[i]
		switch {
		case i < 100:
			if card, cvv := e.versions(t, tok); card != 2 || cvv != 0 {
				t.Errorf("token %d: versions %d/%d, want 2 and no CVV (consumed)", i, card, cvv)
			}
			return nil
		case i < 200:
			if _, err := e.v.Metadata(bg, "m_alpha", tok); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("deleted token %d came back: %v", i, err)
			}
			return nil
		}
		if card, cvv := e.versions(t, tok); card != 2 || cvv != 2 {
			t.Errorf("token %d: versions %d/%d, want 2/2", i, card, cvv)
		}
		s, err := detokenize(e.v, "m_alpha", tok, true)
		if err == nil && (string(s.PAN.Reveal()) != visaPAN || string(s.CVV.Reveal()) != visaCVV) {
			t.Errorf("token %d detokenizes to another card", i)
		}
		return err
	})
}

// TestRewrapNeverOverwritesARecordChangedMeanwhile reads a batch, lets live
// traffic consume one CVV and delete one token, and another writer rewrite a
// third record, then writes: all three are left as they were made (counted as
// changed), the fourth is rewrapped.
func TestRewrapNeverOverwritesARecordChangedMeanwhile(t *testing.T) {
	e := newRewrapEnv(t, 4)
	rotate(t, e.vs, defaultCardKeyName, defaultCVVKeyName)
	s := e.v.store
	keys := []string{s.key("rec", "m_alpha", e.tokens[0]), s.key("rec", "m_alpha", e.tokens[1]), s.key("rec", "m_alpha", e.tokens[2]),
		s.key("rec", "m_alpha", e.tokens[3])}
	items, err := s.readForRewrap(bg, keys)
	noErr(t, err, "read")
	for _, it := range items {
		noErr(t, json.Unmarshal([]byte(it.old), &it.rec), "decode")
	}
	noErr(t, e.v.reencrypt(bg, KeyCard, items), "card")
	noErr(t, e.v.reencrypt(bg, KeyCVV, items), "cvv")
	_, err = detokenize(e.v, "m_alpha", e.tokens[0], true) // consumes the CVV
	noErr(t, err, "detokenize")
	noErr(t, e.v.Delete(bg, "m_alpha", e.tokens[1]), "delete")
	other := strings.Replace(items[3].old, `"v":2`, `"v":2 `, 1) // same record, other bytes
	noErr(t, e.rdb.Set(bg, keys[3], other, redis.KeepTTL).Err(), "another writer")
	var c RewrapCount
	refused, err := s.writeRewrapped(bg, items, &c)
	noErr(t, err, "write")
	if c != (RewrapCount{Rewrapped: 1, Changed: 3}) || len(refused) != 2 || refused[0] != keys[0] || refused[1] != keys[3] {
		t.Errorf("got %+v, %d to retry; want 1 rewrapped, 3 changed, the consumed and the rewritten one to retry", c, len(refused))
	}
	if got := e.rdb.Get(bg, keys[3]).Val(); got != other {
		t.Error("rewrap overwrote a record another writer changed meanwhile")
	}
	if card, cvv := e.versions(t, e.tokens[0]); card != 1 || cvv != 0 {
		t.Errorf("consumed token: versions %d/%d, want its record as consumption left it (v1, no CVV)", card, cvv)
	}
	if _, err := e.v.Metadata(bg, "m_alpha", e.tokens[1]); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("the deleted token came back: %v", err)
	}
	if card, cvv := e.versions(t, e.tokens[2]); card != 2 || cvv != 2 {
		t.Errorf("untouched token: versions %d/%d, want 2/2", card, cvv)
	}
	if ttl := e.rdb.PTTL(bg, keys[2]).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("rewrapped record TTL %s, want its own TTL kept", ttl)
	}
}

// A payment that read its token just before a rewrap rewrote it still gets the CVV
// (the same CVV: its nonce did not change), exactly once.
func TestRevealTakesTheCVVOfARecordRewrappedSinceItsLookup(t *testing.T) {
	e := newRewrapEnv(t, 1)
	tok := e.tokens[0]
	rec, err := e.v.Lookup(bg, "m_alpha", tok)
	noErr(t, err, "Lookup")
	dec, err := e.v.Decrypt(bg, rec, true)
	noErr(t, err, "Decrypt")
	rotate(t, e.vs, defaultCardKeyName, defaultCVVKeyName)
	c, err := e.v.Rewrap(bg, e.tr, RewrapOptions{Batch: 10})
	noErr(t, err, "Rewrap")
	if c.Rewrapped != 1 {
		t.Fatalf("rewrap: got %+v, want the one record rewrapped", c)
	}
	sec, err := dec.Reveal()
	noErr(t, err, "Reveal after the record was rewrapped")
	if sec.CVV.IsZero() {
		t.Fatal("Reveal returned no CVV")
	}
	if card, cvv := e.versions(t, tok); card != 2 || cvv != 0 {
		t.Errorf("after Reveal: versions %d/%d, want the rewrapped record and no CVV left", card, cvv)
	}
	_, err = detokenize(e.v, "m_alpha", tok, true)
	wantErr(t, err, ErrCVVUnavailable, "a second use of the CVV")
}
