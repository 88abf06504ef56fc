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
	mask := redact.MaskLast4
	if pol.Logging.PANMask == policy.PANMaskBINLast4 {
		mask = redact.MaskBINLast4
	}
	red := redact.New(redact.Rules{PANMask: mask, Fields: pol.Redaction.Fields, Headers: pol.Redaction.Headers})
	log := redact.NewLogger(logFile, red, pol.Hash)
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
	client, err := proxy.NewUpstreamClient(pol, proxy.UpstreamOptions{RootCAs: tf.pool})
	if err != nil {
		return nil, err
	}
	audit, auditFile, err := proxy.OpenAuditFile(filepath.Join(dir, "audit.jsonl"), pol.Hash)
	if err != nil {
		return nil, err
	}
	lim := proxy.DefaultLimits
	lim.PerKeyRate, lim.PerKeyBurst = 1e9, 1e9
	deps := proxy.Deps{
		Vault: v, Keys: keys, Merchants: map[string]proxy.Merchant{k.merchant: {ID: k.merchant, Origins: []string{benchOrigin}}},
		Log: log, Audit: audit, Limiter: proxy.NewLimiter(lim), Idempotency: proxy.NewIdempotency(rdb, []byte(testenv.RandomHex(32)), 0),
	}
	handlers := []http.Handler{
		proxy.CollectHandler(deps),
		proxy.ForwardHandler(proxy.ForwardDeps{Deps: deps, Policy: pol, Redactor: red, Client: client}),
		proxy.AdminHandler(deps, policy.Explain(pol)),
	}
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
			rdb.Close()
			auditFile.Close()
			logFile.Close()
		},
	}
	return e, ready(e.admin)
}
