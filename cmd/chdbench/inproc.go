package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/vault"
)

// startInProcess serves chdproxy's collect, forward and admin handlers inside
// chdbench, wired as `chdproxy serve` wires them, so that one CPU profile
// (-cpuprofile) shows the proxy beside the load generator. Its numbers are
// for profiling only: the report comes from the real binary.
func startInProcess(dir, policyPath string, vs *testenv.VaultServer, redisAddr string, tf *tlsFiles, k benchKeys, ports [3]int) (*chdproxyEnv, error) {
	pol, err := policy.Load(policyPath, policy.LintOptions{})
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "chdproxy.log"))
	if err != nil {
		return nil, err
	}
	log := redact.NewLogger(logFile, redact.New(pol.RedactRules()), pol.Hash)
	tr, err := transit(vs)
	if err != nil {
		return nil, err
	}
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{redisAddr}})
	v, err := vault.New(vault.Config{
		Transit: vault.Coalesce(tr, vault.CoalesceOptions{}), Store: vault.NewStore(rdb, vault.StoreOptions{}),
		TokenTTL: pol.Tokens.Card, CVVTTL: pol.Tokens.CVV, WalletTTL: pol.Tokens.Wallet,
	})
	if err != nil {
		return nil, err
	}
	keys := &proxy.Keys{}
	for role, key := range map[proxy.Role]string{proxy.RolePublishable: k.pk, proxy.RoleSecret: k.sk, proxy.RoleAdmin: k.ak} {
		if err := keys.Add(k.merchant, role, proxy.KeyDigest(key)); err != nil {
			return nil, err
		}
	}
	audit, auditFile, err := proxy.OpenAuditFile(filepath.Join(dir, "audit.jsonl"), pol.Hash)
	if err != nil {
		return nil, err
	}
	lim := proxy.DefaultLimits
	lim.PerKeyRate, lim.PerKeyBurst = 1e9, 1e9
	lim.PerClientRate, lim.PerClientBurst = 1e9, 1e9 // every bench request comes from loopback
	ls, err := proxy.New(proxy.Config{
		Policy: pol, Vault: v, Keys: keys, Merchants: []proxy.Merchant{{ID: k.merchant, Origins: []string{benchOrigin}}},
		Log: log, Audit: audit, Redis: rdb, IdempotencySecret: []byte(testenv.RandomHex(32)),
		Limits: lim, Upstream: proxy.UpstreamOptions{RootCAs: tf.pool},
	})
	if err != nil {
		return nil, err
	}
	handlers := []http.Handler{ls.Collect, ls.Forward, ls.Admin}
	ctx, cancel := context.WithCancel(context.Background())
	for i, h := range handlers {
		addr := "127.0.0.1:" + strconv.Itoa(ports[i])
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			cancel()
			return nil, err
		}
		go proxy.Serve(ctx, proxy.NewServer(addr, h, log, proxy.DefaultTimeouts), ln)
	}
	e := &chdproxyEnv{
		collect: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		forward: "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		admin:   "http://127.0.0.1:" + strconv.Itoa(ports[2]),
		stop: func() {
			cancel()
			ls.Close()
			rdb.Close()
			auditFile.Close()
			logFile.Close()
		},
	}
	return e, ready(e.admin)
}
