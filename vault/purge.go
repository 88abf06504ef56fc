package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// KeySpace is a set of Redis keys by the start they share, named for the counts of
// Purge (and its audit record).
type KeySpace struct {
	Name   string // records, cvvs, wallet_used, idempotency, …
	Prefix string // ends with the ':' that closes the merchant id
}

var errMerchantID = errors.New("vault: not a merchant id (1-64 characters of A-Z, a-z, 0-9, '_', '-' and '.')")

// PurgeOptions tunes Purge.
type PurgeOptions struct {
	// Batch is the SCAN COUNT hint and the most keys one UNLINK round trip carries
	// (default 1000): small enough that Redis serves live traffic in between.
	Batch int
	// Progress, when set, hears the running total of deleted keys after each batch.
	Progress func(deleted int64)
}

// Purge deletes every key of spaces (offboarding a merchant): a SCAN … MATCH per
// space, each batch it returns UNLINKed in one round trip (Redis frees the values in
// the background); on a Cluster every master is scanned. SCAN returns the
// keys that exist for the whole scan, so keys written while it runs may be left: stop
// the writers first (take the merchant out of the configuration); a second run then
// finds nothing. The counts are per space name, also on error (what was deleted by then).
func Purge(ctx context.Context, c redis.UniversalClient, spaces []KeySpace, opts PurgeOptions) (map[string]int64, error) {
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	for _, sp := range spaces {
		// Without its delimiter a prefix of "m_1" would take the keys of "m_10" too.
		if !strings.HasSuffix(sp.Prefix, ":") || strings.Count(sp.Prefix, ":") < 2 {
			return nil, fmt.Errorf("vault: purge %s: a key prefix must end with the ':' after the merchant id", sp.Name)
		}
	}
	counts := make(map[string]int64, len(spaces))
	for _, sp := range spaces {
		counts[sp.Name] = 0 // every space is counted, found or not
	}
	var total int64
	for _, sp := range spaces {
		err := scanBatches(ctx, c, globEscape(sp.Prefix)+"*", opts.Batch, func(keys []string) error {
			n, err := unlink(ctx, c, keys)
			counts[sp.Name] += n
			if total += n; opts.Progress != nil {
				opts.Progress(total)
			}
			if err != nil {
				return err
			}
			return ctx.Err() // Ctrl-C stops between batches
		})
		if err != nil {
			return counts, storeErr("purge", ctx, err)
		}
	}
	return counts, nil
}

// scanBatches calls fn with each batch of the keys matching match that SCAN returns,
// on every master of a Cluster one after the other, until fn fails.
func scanBatches(ctx context.Context, c redis.UniversalClient, match string, count int, fn func([]string) error) error {
	scan := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, int64(count)).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := fn(keys); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, c)
	}
	var mu sync.Mutex // ForEachMaster runs concurrently; fn need not be safe for it
	return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		return scan(ctx, node)
	})
}

// unlink deletes keys in one pipelined round trip, one UNLINK each: a Cluster refuses
// a multi-key command across hash slots (the token id is each key's hash tag), and its
// client routes each command of a pipeline to the key's master.
func unlink(ctx context.Context, c redis.Cmdable, keys []string) (int64, error) {
	p := c.Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = p.Unlink(ctx, k)
	}
	_, err := p.Exec(ctx)
	var n int64
	for _, cmd := range cmds {
		n += cmd.Val() // 0 for a key that expired since SCAN saw it
	}
	return n, err
}

// globEscape quotes the characters MATCH treats as a pattern.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`).Replace(s)
}
