package vault

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Key rotation. Vault's transit/rewrap would re-encrypt without the plaintext
// leaving Vault, but it takes no associated_data (Vault 1.21; hashicorp/vault
// issues 29532 and 31791, PR 31842 unmerged): every ciphertext here is bound
// to its record by associated data (payload.go), so rewrap answers "message
// authentication failed". Rewrap therefore decrypts and encrypts again in one
// batch each, with the same context and associated data, inside this process:
// plaintexts live for the length of one batch, are wiped after the encrypt
// call and are never logged. Dropping the binding to use Vault's rewrap would
// reopen the ciphertext-swapping attacks the binding closes.

// KeyVersions tells rewrap the newest version of a transit key
// (VaultTransit reads it from {mount}/keys/{name}).
type KeyVersions interface {
	LatestVersion(ctx context.Context, key Key) (int, error)
}

// RewrapOptions configures Rewrap.
type RewrapOptions struct {
	// Batch is the number of records per transit call (default 100).
	Batch int
	// Progress, when set, is called after every batch with the counts so far.
	Progress func(RewrapCount)
}

// RewrapCount is what a rewrap run did to the records it scanned.
type RewrapCount struct {
	Scanned   int // record keys seen
	Rewrapped int // written back under the newest key versions
	Current   int // already under the newest versions: nothing to do
	Changed   int // deleted, consumed or rewritten meanwhile: left as they are
	Failed    int // did not decrypt (tampered, or a version below min_decryption_version)
}

// Rewrap re-encrypts every record (card or wallet ciphertext, and the CVV
// ciphertext) whose key version is older than the newest one, batch by batch
// over a SCAN of the record keys. A record already current is skipped, so a
// run stopped at any point is finished by running it again. Each record is
// written back with a compare-and-set (rewrapScript): one that changed since
// it was read (a consumed CVV, a deleted token) is left alone, so it is safe
// beside live traffic. It stops at the first error of Redis or Vault, or when
// ctx ends, with the counts so far.
func (v *Vault) Rewrap(ctx context.Context, kv KeyVersions, opts RewrapOptions) (RewrapCount, error) {
	var c RewrapCount
	var latest [3]int // by Key
	for _, k := range []Key{KeyCard, KeyCVV} {
		n, err := kv.LatestVersion(ctx, k)
		if err != nil {
			return c, err
		}
		latest[k] = n
	}
	batch := cmp.Or(opts.Batch, 100)
	var keys, retry []string
	flush := func() error {
		refused, err := v.rewrapBatch(ctx, latest, keys, &c)
		keys, retry = keys[:0], append(retry, refused...)
		if err == nil && opts.Progress != nil {
			opts.Progress(c)
		}
		return err
	}
	err := v.store.scanRecords(ctx, batch, func(found []string) error {
		for _, k := range found {
			if keys = append(keys, k); len(keys) == batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return ctx.Err()
	})
	if err == nil && len(keys) > 0 {
		err = flush()
	}
	// A record live traffic rewrote meanwhile (a consumed CVV) is read again:
	// a few passes, as each can lose to traffic once more.
	for pass := 0; pass < 3 && err == nil && len(retry) > 0; pass++ {
		keys, retry = retry, nil
		c.Scanned -= len(keys) // counted once, by their last outcome
		c.Changed -= len(keys)
		for len(keys) > 0 && err == nil {
			n := min(batch, len(keys))
			chunk := keys[:n]
			keys = keys[n:]
			var refused []string
			refused, err = v.rewrapBatch(ctx, latest, chunk, &c)
			retry = append(retry, refused...)
		}
	}
	return c, err
}

// CountRecords counts the record keys (the total of a rewrap's progress).
func (v *Vault) CountRecords(ctx context.Context) (int, error) {
	n := 0
	err := v.store.scanRecords(ctx, 1000, func(keys []string) error { n += len(keys); return nil })
	return n, err
}

// rewrapItem is one record of a batch on its way through rewrap.
type rewrapItem struct {
	key, merchant, token string
	old, cvv             string // as read
	rec                  storedRecord
	newCard, newCVV      string // new ciphertexts, "" when not rewrapped
	cardVer              int
	failed               bool
}

// rewrapBatch rewraps the records of keys; refused are the keys of records
// that changed between the read and the write and still exist.
func (v *Vault) rewrapBatch(ctx context.Context, latest [3]int, keys []string, c *RewrapCount) (refused []string, err error) {
	c.Scanned += len(keys)
	items, err := v.store.readForRewrap(ctx, keys)
	if err != nil {
		return nil, err
	}
	var card, cvv []*rewrapItem
	for _, it := range items {
		switch {
		case it == nil:
			c.Changed++ // gone since the scan
		case json.Unmarshal([]byte(it.old), &it.rec) != nil || it.rec.V != recordVersion || it.rec.Merchant != it.merchant:
			c.Failed++
		default:
			needCard := ctVersion(it.rec.Ciphertext) < latest[KeyCard]
			needCVV := it.cvv != "" && ctVersion(it.cvv) < latest[KeyCVV]
			if needCard {
				card = append(card, it)
			}
			if needCVV {
				cvv = append(cvv, it)
			}
			if !needCard && !needCVV {
				c.Current++
			}
		}
	}
	if err := v.reencrypt(ctx, KeyCard, card); err != nil {
		return nil, err
	}
	if err := v.reencrypt(ctx, KeyCVV, cvv); err != nil {
		return nil, err
	}
	return v.store.writeRewrapped(ctx, dedupe(card, cvv), c)
}

// reencrypt decrypts and encrypts its items' ciphertexts of key in one batch
// call each, with each record's own context and associated data.
func (v *Vault) reencrypt(ctx context.Context, key Key, items []*rewrapItem) error {
	if len(items) == 0 {
		return nil
	}
	din := make([]DecryptItem, len(items))
	for i, it := range items {
		din[i] = DecryptItem{Ciphertext: it.ciphertext(key), Context: []byte(it.merchant), AAD: it.aad(key)}
	}
	dres, err := v.transit.Decrypt(ctx, key, din)
	if err != nil {
		return err
	}
	ein := make([]EncryptItem, 0, len(items))
	var sent []*rewrapItem
	for i, r := range dres {
		if r.Err != nil {
			items[i].failed = true
			continue
		}
		ein = append(ein, EncryptItem{Plaintext: r.Plaintext, Context: din[i].Context, AAD: din[i].AAD})
		sent = append(sent, items[i])
	}
	eres, err := v.transit.Encrypt(ctx, key, ein)
	for _, it := range ein {
		wipe(it.Plaintext)
	}
	if err != nil {
		return err
	}
	for i, r := range eres {
		switch {
		case r.Err != nil:
			sent[i].failed = true
		case key == KeyCard:
			sent[i].newCard, sent[i].cardVer = r.Ciphertext, r.KeyVersion
		default:
			sent[i].newCVV = r.Ciphertext
		}
	}
	return nil
}

func (it *rewrapItem) ciphertext(key Key) string {
	if key == KeyCard {
		return it.rec.Ciphertext
	}
	return it.cvv
}

func (it *rewrapItem) aad(key Key) []byte {
	if key == KeyCard {
		return it.rec.cardAAD(it.token)
	}
	return it.rec.cvvAAD(it.token)
}

// dedupe merges the two lists (a record may be in both), in order.
func dedupe(a, b []*rewrapItem) []*rewrapItem {
	seen := make(map[*rewrapItem]bool, len(a)+len(b))
	var out []*rewrapItem
	for _, it := range append(a, b...) {
		if !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out
}

// ctVersion is the key version in a "vault:v<N>:…" ciphertext, 0 when there is none.
func ctVersion(ct string) int {
	_, ver, ok := parseVaultValue(ct)
	if !ok {
		return 0
	}
	return ver
}

// splitRecordKey reads merchant and token out of "{prefix}:rec:{merchant}:{tok_…}".
func (s *Store) splitRecordKey(key string) (merchant, token string, ok bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+":rec:")
	if !ok {
		return "", "", false
	}
	merchant, tag, ok := strings.Cut(rest, ":{")
	token, ok2 := strings.CutSuffix(tag, "}")
	return merchant, token, ok && ok2 && validMerchantID(merchant) && ValidTokenID(token)
}

// scanRecords calls fn with the record keys, a SCAN page at a time, on every
// master of a Cluster (one after the other) or on the one server.
func (s *Store) scanRecords(ctx context.Context, count int, fn func([]string) error) error {
	match := s.prefix + ":rec:*"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, int64(count)).Result()
			if err != nil {
				return storeErr("scan", ctx, err)
			}
			if err := fn(keys); err != nil {
				return err
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, s.c)
	}
	var mu sync.Mutex // ForEachMaster runs concurrently; fn need not be safe for it
	return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		return scan(ctx, c)
	})
}

// readForRewrap reads each record and its CVV ciphertext in one pipeline; an
// item is nil when its record is gone (or its key is not one of ours).
func (s *Store) readForRewrap(ctx context.Context, keys []string) ([]*rewrapItem, error) {
	p := s.c.Pipeline()
	items := make([]*rewrapItem, len(keys))
	recs, cvvs := make([]*redis.StringCmd, len(keys)), make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		merchant, token, ok := s.splitRecordKey(k)
		if !ok {
			continue
		}
		items[i] = &rewrapItem{key: k, merchant: merchant, token: token}
		recs[i] = p.Get(ctx, k)
		cvvs[i] = p.Get(ctx, s.key("cvv", merchant, token))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("get", ctx, err)
	}
	for i, it := range items {
		if it == nil {
			continue
		}
		if it.old = recs[i].Val(); it.old == "" {
			items[i] = nil
			continue
		}
		it.cvv = cvvs[i].Val()
	}
	return items, nil
}

// rewrapScript writes a rewrapped record and CVV ciphertext, keeping their
// TTLs, only while both still hold exactly what rewrap read: a record deleted,
// consumed or rewritten meanwhile is left as live traffic made it.
// ARGV: old record, new record ("" to keep), old CVV, new CVV ("" to keep).
var rewrapScript = redis.NewScript(`
local rec = redis.call('GET', KEYS[1])
if not rec then
  return 0
end
if rec ~= ARGV[1] then
  return 2
end
if ARGV[4] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[3] then
    return 2
  end
  redis.call('SET', KEYS[2], ARGV[4], 'KEEPTTL')
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1
`)

// writeRewrapped writes the batch's re-encrypted records in one pipeline and
// counts them; refused are the keys of records changed meanwhile (the script
// answers 2 when the record still exists, 0 when it is gone).
func (s *Store) writeRewrapped(ctx context.Context, items []*rewrapItem, c *RewrapCount) (refused []string, err error) {
	p := s.c.Pipeline()
	cmds := make([]*redis.Cmd, len(items))
	for i, it := range items {
		if it.failed {
			continue
		}
		newRec := ""
		if it.newCard != "" {
			r := it.rec
			r.Ciphertext, r.KeyVersion = it.newCard, it.cardVer
			b, err := json.Marshal(&r)
			if err != nil {
				return nil, err
			}
			newRec = string(b)
		}
		keys := []string{it.key, s.key("cvv", it.merchant, it.token)}
		cmds[i] = rewrapScript.EvalSha(ctx, p, keys, it.old, newRec, it.cvv, it.newCVV)
	}
	if err := rewrapScript.Load(ctx, s.c).Err(); err != nil {
		return nil, storeErr("rewrap", ctx, err)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("rewrap", ctx, err)
	}
	for i, it := range items {
		switch {
		case it.failed:
			c.Failed++
		case cmds[i].Val() == int64(1):
			c.Rewrapped++
		case cmds[i].Val() == int64(2):
			c.Changed++
			refused = append(refused, it.key)
		default:
			c.Changed++
		}
	}
	return refused, nil
}
