package vault

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store keeps token records in Redis. It holds no card data in the clear:
// a record is JSON with the card ciphertext and non-sensitive metadata
// (BIN, last4, brand, expiry, fingerprints, network, times, key version).
//
// Keys, per merchant, with the token id as hash tag so a token's keys share a
// Cluster slot (and a Lua script or pipeline may touch them together):
//
//	{prefix}:rec:{merchant}:{tok_…}   the record            PX = token TTL
//	{prefix}:cvv:{merchant}:{tok_…}   the CVV ciphertext    PX = CVV TTL (≤ 60m)
//	{prefix}:used:{merchant}:{tok_…}  "wallet token used"   PX = rest of its TTL
//
// Because the merchant is in the key, another merchant's token is a missing
// key: the same answer, the same code path, and it cannot consume or delete
// anything of the owner's.
type Store struct {
	c      redis.UniversalClient
	prefix string
	obs    observer // metrics; also hears the vault's token events (observer.go)
}

// StoreOptions configures NewStore.
type StoreOptions struct {
	// Prefix of every key (default "chd"). Give two deployments sharing a
	// Redis different prefixes.
	Prefix string
}

// NewStore returns a Store on c. The caller owns c (and closes it).
func NewStore(c redis.UniversalClient, opts StoreOptions) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "chd"
	}
	return &Store{c: c, prefix: opts.Prefix}
}

func (s *Store) key(space, merchant, token string) string {
	return s.prefix + ":" + space + ":" + merchant + ":{" + token + "}"
}

// MerchantSpaces are the keyspaces of merchant's token keys (for Purge): records (with
// their fingerprints), CVVs, wallet-used markers and open CVV sessions (they name a
// token), each by the start of its keys. The
// ':' after the id, which cannot hold one, keeps "m_1" from naming the keys of "m_10".
func (s *Store) MerchantSpaces(merchant string) ([]KeySpace, error) {
	if !validMerchantID(merchant) {
		return nil, errMerchantID
	}
	at := func(space string) string { return strings.TrimSuffix(s.key(space, merchant, ""), "{}") } // one layout: key's
	return []KeySpace{{"records", at("rec")}, {"cvvs", at("cvv")}, {"wallet_used", at("used")}, {"cvv_sessions", at("cvs")}}, nil
}

// ping checks Redis.
func (s *Store) ping(ctx context.Context) error {
	start := time.Now()
	err := s.c.Ping(ctx).Err()
	s.took("ping", start, err)
	if err != nil {
		return storeErr("ping", ctx, err)
	}
	return nil
}

// putScript writes the record only if its key is free, and the CVV only
// together with it, atomically, in one round trip. Rewriting the identical
// record counts as success, so a go-redis retry after a lost reply is safe.
var putScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if ARGV[3] ~= '' then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  end
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
`)

// put stores a new record (and its CVV ciphertext, when cvv != "").
// ErrConflict when the token id is taken.
func (s *Store) put(ctx context.Context, merchant, token string, rec []byte, ttl time.Duration, cvv string, cvvTTL time.Duration) error {
	keys := []string{s.key("rec", merchant, token), s.key("cvv", merchant, token)}
	start := time.Now()
	n, err := putScript.Run(ctx, s.c, keys, rec, ttl.Milliseconds(), cvv, cvvTTL.Milliseconds()).Int()
	s.took("put", start, err)
	if err != nil {
		return storeErr("put", ctx, err)
	}
	if n != 1 {
		return ErrConflict
	}
	return nil
}

// snapshot is what read found in its one round trip.
type snapshot struct {
	rec       []byte // nil: no record
	cvv       string // the CVV ciphertext, when asked for and present
	hasCVV    bool
	walletUse bool // the consumption marker of a wallet token exists
}

// read fetches a token's record, its CVV ciphertext (withCVV) or only whether
// one exists, and the wallet consumption marker, in one pipeline.
func (s *Store) read(ctx context.Context, merchant, token string, withCVV bool) (snapshot, error) {
	var st snapshot
	p := s.c.Pipeline()
	rec := p.Get(ctx, s.key("rec", merchant, token))
	var cvv *redis.StringCmd
	var cvvExists *redis.IntCmd
	if withCVV {
		cvv = p.Get(ctx, s.key("cvv", merchant, token))
	} else {
		cvvExists = p.Exists(ctx, s.key("cvv", merchant, token))
	}
	used := p.Exists(ctx, s.key("used", merchant, token))
	start := time.Now()
	_, err := ignoreNil(p.Exec(ctx))
	s.took("get", start, err)
	if err != nil {
		return st, storeErr("get", ctx, err)
	}
	if b, err := rec.Bytes(); err == nil {
		st.rec = b
	}
	if withCVV {
		if v, err := cvv.Result(); err == nil {
			st.cvv, st.hasCVV = v, true
		}
	} else {
		st.hasCVV = cvvExists.Val() == 1
	}
	st.walletUse = used.Val() == 1
	return st, nil
}

// luaReplace defines replace(key, value) for the scripts below: SET that keeps
// the key's TTL (KEEPTTL without needing Redis 6).
const luaReplace = `
local function replace(key, val)
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then
    redis.call('SET', key, val, 'PX', ttl)
  else
    redis.call('SET', key, val)
  end
end
`

// takeCVVScript consumes a CVV: when the CVV key holds the ciphertext the
// caller read (or whatever it holds, for an empty ARGV[1]), it is deleted and, in
// the same step, the record is replaced by its consumed form (no CVV nonce),
// keeping its TTL. A record that changed since it was read fails the take,
// and the CVV is gone all the same.
var takeCVVScript = redis.NewScript(luaReplace + `
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
replace(KEYS[1], ARGV[3])
return 1
`)

// restoreCVVScript undoes one takeCVVScript: only while the CVV key is still
// absent and the record is still the consumed form that take wrote, it puts
// back the ciphertext (ARGV[1], for ARGV[2] ms) and the record as it was
// (ARGV[3], with the nonce), keeping the record's TTL.
var restoreCVVScript = redis.NewScript(luaReplace + `
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('GET', KEYS[1]) ~= ARGV[4] then
  return 0
end
replace(KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`)

// restoreRecordScript undoes one takeScript: only while the record is absent
// and the consumption marker is there, it puts the record back (for ARGV[2]
// ms) and removes the marker.
var restoreRecordScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
`)

// restoreCVV puts back the CVV ciphertext ct (for ttl) and the record before
// (with its nonce) that takeCVV replaced by spent; ok is false when anything
// changed since (deleted, expired, restored or consumed again).
func (s *Store) restoreCVV(ctx context.Context, merchant, token, ct string, ttl time.Duration, before, spent []byte) (bool, error) {
	keys := []string{s.key("rec", merchant, token), s.key("cvv", merchant, token)}
	return s.runRestore(ctx, "restore_cvv", restoreCVVScript, keys, ct, max(ttl.Milliseconds(), 1), before, spent)
}

// restoreRecord puts back a wallet record that takeRecord took (for ttl) and
// removes the consumption marker; ok is false when anything changed since.
func (s *Store) restoreRecord(ctx context.Context, merchant, token string, rec []byte, ttl time.Duration) (bool, error) {
	keys := []string{s.key("rec", merchant, token), s.key("used", merchant, token)}
	return s.runRestore(ctx, "restore_wallet", restoreRecordScript, keys, rec, max(ttl.Milliseconds(), 1))
}

func (s *Store) runRestore(ctx context.Context, op string, script *redis.Script, keys []string, args ...any) (bool, error) {
	start := time.Now()
	n, err := script.Run(ctx, s.c, keys, args...).Int()
	s.took(op, start, err)
	if err != nil {
		return false, storeErr("restore", ctx, err)
	}
	return n == 1, nil
}

// takeCVV deletes the CVV ciphertext ct and rewrites the record rec as
// spent, atomically; ok is false when either is no longer what was read
// (consumed by another caller, expired, deleted).
func (s *Store) takeCVV(ctx context.Context, merchant, token, ct string, rec, spent []byte) (bool, error) {
	keys := []string{s.key("rec", merchant, token), s.key("cvv", merchant, token)}
	start := time.Now()
	n, err := takeCVVScript.Run(ctx, s.c, keys, ct, rec, spent).Int()
	s.took("take_cvv", start, err)
	if err != nil {
		return false, storeErr("getdel", ctx, err)
	}
	if n == 1 {
		s.obs.get().Token(CVVConsumed, cardKind)
	}
	return n == 1, nil
}

// takeScript deletes and returns the record, leaving the consumption marker.
var takeScript = redis.NewScript(`
local v = redis.call('GETDEL', KEYS[1])
if v then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
end
return v
`)

// takeRecord deletes and returns a wallet record, marking the token used
// for markTTL; ok is false when another caller took it first (or it expired).
func (s *Store) takeRecord(ctx context.Context, merchant, token string, markTTL time.Duration) ([]byte, bool, error) {
	keys := []string{s.key("rec", merchant, token), s.key("used", merchant, token)}
	start := time.Now()
	v, err := takeScript.Run(ctx, s.c, keys, max(markTTL.Milliseconds(), 1)).Text()
	_, nerr := ignoreNil(v, err)
	s.took("take_wallet", start, nerr)
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, storeErr("getdel", ctx, err)
	}
	return []byte(v), true, nil
}

// del removes a token's keys; found reports whether the record existed.
func (s *Store) del(ctx context.Context, merchant, token string) (bool, error) {
	p := s.c.TxPipeline()
	rec := p.Del(ctx, s.key("rec", merchant, token))
	p.Del(ctx, s.key("cvv", merchant, token))
	p.Del(ctx, s.key("used", merchant, token))
	start := time.Now()
	_, err := p.Exec(ctx)
	s.took("del", start, err)
	if err != nil {
		return false, storeErr("del", ctx, err)
	}
	if rec.Val() == 1 {
		s.obs.get().Token(TokenDeleted, "")
	}
	return rec.Val() == 1, nil
}
