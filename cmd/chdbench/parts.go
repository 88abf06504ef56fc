package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/vault"
)

// part is the latency of one building block of chdproxy's request paths,
// measured alone, one call at a time: what a request at low load cannot go
// below.
type part struct {
	Name string  `json:"name"`
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
}

const (
	partDecrypt        = "Vault transit decrypt, 1 item"
	partDecryptTwoKeys = "Vault transit decrypt under the card and the CVV keys at once (2 calls, as a forward)"
)

// measureParts times each block n times in a row (after a few unrecorded calls).
func (b *bench) measureParts(dir string, vs *testenv.VaultServer, redisAddr string) []part {
	const n = 1000
	ctx := context.Background()
	time1 := func(name string, f func() error) part {
		for range 20 {
			_ = f()
		}
		lat := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			if err := f(); err != nil {
				logf("part %q: %v", name, err)
				return part{Name: name + " (failed)"}
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return part{Name: name, N: n, P50: quantile(lat, 0.5), P99: quantile(lat, 0.99)}
	}
	var parts []part

	tr, err := transit(vs)
	if err != nil {
		return nil
	}
	item := func() []vault.EncryptItem {
		return []vault.EncryptItem{{Plaintext: []byte("0123456789abcdef0123"), Context: []byte(b.keys.merchant), AAD: []byte("tok_parts")}}
	}
	enc, err := tr.Encrypt(ctx, vault.KeyCard, item())
	if err != nil || enc[0].Err != nil {
		return nil
	}
	parts = append(parts, time1("Vault transit encrypt, 1 item", func() error {
		_, err := tr.Encrypt(ctx, vault.KeyCard, item())
		return err
	}))
	decrypt := func(key vault.Key, ciphertext string) error {
		_, err := tr.Decrypt(ctx, key, []vault.DecryptItem{{Ciphertext: ciphertext, Context: []byte(b.keys.merchant), AAD: []byte("tok_parts")}})
		return err
	}
	parts = append(parts, time1(partDecrypt, func() error { return decrypt(vault.KeyCard, enc[0].Ciphertext) }))
	// A forward with a CVV decrypts under both keys at once: what the CVV's own
	// key costs over one call.
	if cvv, err := tr.Encrypt(ctx, vault.KeyCVV, item()); err == nil && cvv[0].Err == nil {
		parts = append(parts, time1(partDecryptTwoKeys, func() error {
			errc := make(chan error, 1)
			go func() { errc <- decrypt(vault.KeyCVV, cvv[0].Ciphertext) }()
			return errors.Join(decrypt(vault.KeyCard, enc[0].Ciphertext), <-errc)
		}))
	}

	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{redisAddr}})
	defer rdb.Close()
	rdb.Set(ctx, "chdbench:parts", string(make([]byte, 600)), time.Minute)
	parts = append(parts, time1("Redis round trip (GET of a 600-byte value)", func() error {
		return rdb.Get(ctx, "chdbench:parts").Err()
	}))
	parts = append(parts, time1("Redis pipeline of GET + 2 EXISTS (how a token is read)", func() error {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Get(ctx, "chdbench:parts")
			p.Exists(ctx, "chdbench:parts:cvv")
			p.Exists(ctx, "chdbench:parts:used")
			return nil
		})
		return err
	}))

	f, err := os.OpenFile(filepath.Join(dir, "parts-audit.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		line := append(make([]byte, 399), '\n')
		parts = append(parts, time1("append 400 bytes + fsync (an audit record, same file system)", func() error {
			if _, err := f.Write(line); err != nil {
				return err
			}
			return f.Sync()
		}))
		f.Close()
	}

	parts = append(parts, time1("HTTP round trip to chdproxy (GET /healthz on the admin listener)", func() error {
		req, _ := http.NewRequest(http.MethodGet, b.cp.admin+"/healthz", nil)
		return b.do(b.plain, req, http.StatusOK, nil)
	}))
	parts = append(parts, time1("HTTPS round trip to the sandbox (GET of an unknown path, 404)", func() error {
		req, _ := http.NewRequest(http.MethodGet, b.sandboxURL+"/chdbench-parts", nil)
		resp, err := b.tls.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}))
	return parts
}
