package proxy

import (
	"io"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/vault"
)

// devConfig is a complete Config on miniredis and the dev-only cipher.
func devConfig(t *testing.T) Config {
	t.Helper()
	pol, err := policy.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{miniredis.RunT(t).Addr()}})
	t.Cleanup(func() { rdb.Close() })
	cipher, err := vault.NewLocalCipher()
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(vault.Config{Transit: cipher, Store: vault.NewStore(rdb, vault.StoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Policy: pol, Vault: v, Keys: &Keys{}, Log: redact.NewLogger(io.Discard, redact.New(pol.RedactRules()), pol.Hash),
		Audit: NewJSONLAudit(io.Discard, pol.Hash), Redis: rdb, IdempotencySecret: make([]byte, 32), Dev: true,
	}
}

func TestNewBuildsTheThreeListeners(t *testing.T) {
	ls, err := New(devConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if ls.Collect == nil || ls.Forward == nil || ls.Admin == nil {
		t.Fatalf("got %+v, want three handlers", ls)
	}
}

func TestNewRefusesWhatProductionMustNotRun(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"the dev-only cipher outside dev", func(c *Config) { c.Dev = false }, "dev-only cipher"},
		{"a short idempotency secret", func(c *Config) { c.IdempotencySecret = c.IdempotencySecret[:31] }, "at least 32 bytes"},
		{"no audit trail", func(c *Config) { c.Audit = nil }, "Config.Audit is required"},
		{"a merchant listed twice", func(c *Config) { c.Merchants = []Merchant{{ID: "m_1"}, {ID: "m_1"}} }, "listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := devConfig(t)
			c.change(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}
