package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// seedKeys is how many keys of each kind the purge test gives each merchant.
const seedKeys = 1000

// `chdproxy purge` on a real redis-server with two merchants, one id a prefix of the
// other: it refuses without a confirmation, an operator or while the merchant is
// configured, deleting nothing; then it deletes every key of m_1 and none of m_10,
// prints a count line (and no progress bar without a terminal), puts the purge with
// its operator and counts on the audit trail, and a second run finds nothing.
func TestPurgeCommandDeletesOneMerchantOnRedisServer(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	rs := testenv.Redis(t)
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{rs.Addr}})
	defer rdb.Close()
	ctx := context.Background()
	p := rdb.Pipeline()
	for _, m := range []string{"m_1", "m_10"} {
		spaces, err := vault.NewStore(rdb, vault.StoreOptions{}).MerchantSpaces(m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range seedKeys {
			for _, sp := range append(spaces, vault.KeySpace{Prefix: proxy.IdempotencyKeyPrefix(m) + "sk_0a1b2c3d:"}) {
				p.Set(ctx, fmt.Sprintf("%s{tok_seed%05d}", sp.Prefix, i), "x", time.Hour)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	c := newTestConfig(t, rs.Addr, "http://127.0.0.1:1", "unused", "")
	cfg := c.write("", merchantWithKey("m_10", "pk_"+strings.Repeat("a", 32)))
	run := func(args string, stdin string, interactive bool) (string, string, error) {
		var out, errb bytes.Buffer
		err := purge(ctx, strings.Fields(args+" --config "+cfg), strings.NewReader(stdin), interactive, &out, &errb)
		return out.String(), errb.String(), err
	}
	t.Setenv("USER", "")
	refusals := []struct{ name, args, stdin, want string }{
		{"without --yes and a terminal", "--merchant m_1 --operator alice", "", "pass --yes"},
		{"without an operator", "--merchant m_1 --yes", "", "--operator NAME is required"},
		{"with a merchant that is configured", "--merchant m_10 --yes --operator alice", "", "still in"},
		{"with a merchant id that is a pattern", "--merchant m_* --yes --operator alice", "", "not a merchant id"},
	}
	for _, r := range refusals {
		if _, _, err := run(r.args, r.stdin, false); err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: got %v, want an error with %q", r.name, err, r.want)
		}
	}
	if _, prompt, err := run("--merchant m_1 --operator alice", "m_10\n", true); err == nil || !strings.Contains(prompt, "merchant m_1") {
		t.Errorf("a wrong answer at the prompt: got %v after %q, want a refusal after a prompt naming m_1", err, prompt)
	}
	if n := rdb.DBSize(ctx).Val(); n != 10*seedKeys {
		t.Fatalf("after the refusals: %d keys, want all %d", n, 10*seedKeys)
	}

	out, progress, err := run("--merchant m_1 --yes --operator alice --batch 300", "", false)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("purged merchant m_1: %[1]d records, %[1]d cvvs, %[1]d wallet_used, %[1]d cvv_sessions, %[1]d idempotency (%[2]d keys)\n", seedKeys, 5*seedKeys)
	if out != want || progress != "" {
		t.Errorf("got %q and %q on stderr, want %q and nothing on stderr (not a terminal)", out, progress, want)
	}
	left, _ := rdb.Keys(ctx, "*").Result()
	if len(left) != 5*seedKeys || strings.Contains(strings.Join(left, " "), ":m_1:") {
		t.Errorf("after the purge: %d keys, want the %d of m_10 only", len(left), 4*seedKeys)
	}
	if out, _, err := run("--merchant m_1 --operator alice", "m_1\n", true); err != nil || !strings.HasSuffix(out, "(0 keys)\n") {
		t.Errorf("a second run, confirmed at the prompt: got %q, %v; want 0 keys", out, err)
	}

	recs, _ := c.audit()
	purges := events(recs, "purge")
	if len(purges) != 4 { // attempt and success, twice
		t.Fatalf("got %d purge records, want 4: %v", len(purges), purges)
	}
	deleted, _ := purges[1]["detail"].(map[string]any)["deleted"].(map[string]any)
	if r := purges[1]; purges[0]["outcome"] != "attempt" || r["outcome"] != "success" || r["merchant"] != "m_1" ||
		r["operator"] != "alice" || r["listener"] != "cli" || deleted["records"] != float64(seedKeys) {
		t.Errorf("the purge records: got %v, want an attempt then a success by alice for m_1 with %d records", purges[:2], seedKeys)
	}
}
