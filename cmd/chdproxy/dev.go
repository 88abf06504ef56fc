//go:build !production

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chdproxy/chdproxy/demo"
	"github.com/chdproxy/chdproxy/hosted"
	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/smartpay"
	"github.com/chdproxy/chdproxy/vault"
)

// devMerchant is the one merchant `chdproxy dev` knows.
const devMerchant = "merchant_dev"

// devState is DIR/dev.json: where everything listens and the keys to use.
type devState struct {
	CollectURL     string `json:"collect_url"`
	ForwardURL     string `json:"forward_url"`
	AdminURL       string `json:"admin_url"`
	SandboxURL     string `json:"sandbox_url"`
	CheckoutURL    string `json:"checkout_url"`
	Merchant       string `json:"merchant"`
	PublishableKey string `json:"publishable_key"`
	SecretKey      string `json:"secret_key"`
	AdminKey       string `json:"admin_key"`
}

// runDev runs the embedded default: miniredis, the dev-only cipher, the SmartPayments
// sandbox as both upstreams and the three listeners, all on loopback in one process.
func runDev(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return dev(ctx, args, os.Stdout, os.Stderr)
}

// devFlags are dev's command line: every address on loopback.
type devFlags struct {
	stateDir, collectAddr, forwardAddr, adminAddr, sandboxAddr, demoAddr string
	origins                                                              multiFlag
}

func parseDevFlags(args []string) (*devFlags, error) {
	fs := newFlagSet("dev", "dev [--state-dir DIR] [--origin ORIGIN]... [--collect-addr|--forward-addr|--admin-addr|--sandbox-addr|--demo-addr ADDR]")
	f := &devFlags{}
	fs.StringVar(&f.stateDir, "state-dir", ".dev", "folder for dev.json")
	fs.StringVar(&f.collectAddr, "collect-addr", "127.0.0.1:8080", "collect listener")
	fs.StringVar(&f.forwardAddr, "forward-addr", "127.0.0.1:8081", "forward listener")
	fs.StringVar(&f.adminAddr, "admin-addr", "127.0.0.1:8082", "admin listener")
	fs.StringVar(&f.sandboxAddr, "sandbox-addr", "127.0.0.1:8083", "SmartPayments sandbox")
	fs.StringVar(&f.demoAddr, "demo-addr", "127.0.0.1:3000", "the demo checkout, served as http://localhost:PORT (checkout_url)")
	fs.Var(&f.origins, "origin", "another browser origin allowed to tokenize (repeatable; the demo checkout's is always allowed)")
	if err := fs.parse(args, 0); err != nil {
		return nil, err
	}
	if err := loopbackOnly(map[string]string{"collect-addr": f.collectAddr, "forward-addr": f.forwardAddr, "admin-addr": f.adminAddr, "sandbox-addr": f.sandboxAddr, "demo-addr": f.demoAddr}); err != nil {
		return nil, err
	}
	if o := demoOrigin(f.demoAddr); !slices.Contains(f.origins, o) {
		f.origins = append(f.origins, o) // registered exactly as the browser spells the page's origin
	}
	return f, nil
}

// dev runs until ctx ends, printing the walk-through to out and logging to logw.
func dev(ctx context.Context, args []string, out, logw io.Writer) error {
	f, err := parseDevFlags(args)
	if err != nil {
		return err
	}
	checkoutOrigin := demoOrigin(f.demoAddr)
	sandboxURL := "http://" + f.sandboxAddr
	pol, err := devPolicy(sandboxURL)
	if err != nil {
		return err
	}
	log := redact.NewLogger(logw, redact.New(pol.RedactRules()), pol.Hash)
	redis.SetLogger(redisLogger{log})

	v, rdb, stopStore, err := devVault(pol)
	if err != nil {
		return err
	}
	defer stopStore()

	st := devState{
		CollectURL: "http://" + f.collectAddr, ForwardURL: "http://" + f.forwardAddr,
		AdminURL: "http://" + f.adminAddr, SandboxURL: sandboxURL, CheckoutURL: checkoutOrigin + "/", Merchant: devMerchant,
	}
	keys, err := devKeys(&st)
	if err != nil {
		return err
	}
	checkout, err := devCheckout(st, checkoutOrigin, log)
	if err != nil {
		return err
	}
	sandbox := smartpay.NewSandbox(smartpay.Options{BaseURL: sandboxURL, Logger: log})
	defer sandbox.Close()

	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		return err
	}
	audit, auditFile, err := proxy.OpenAuditFile(filepath.Join(f.stateDir, "audit.jsonl"), pol.Hash)
	if err != nil {
		return err
	}
	defer auditFile.Close()
	defer reopenOnHUP(log, audit, nil)()
	pc := proxy.Config{
		Policy: pol, Vault: v, Keys: keys, Merchants: []proxy.Merchant{{ID: devMerchant, Origins: f.origins}},
		Log: log, Audit: audit, Redis: rdb, IdempotencySecret: randomSecret(), Dev: true,
	}
	ls, err := proxy.New(pc)
	if err != nil {
		return err
	}
	defer ls.Close()
	served := []listener{
		{name: "collect", addr: f.collectAddr, handler: ls.Collect},
		{name: "forward", addr: f.forwardAddr, handler: ls.Forward},
		{name: "admin", addr: f.adminAddr, handler: ls.Admin},
		{name: "sandbox", addr: f.sandboxAddr, handler: sandbox.Handler()},
		{name: "demo", addr: f.demoAddr, handler: checkout},
	}
	b, err := bind(served) // dev.json only once every address is ours: its keys then work
	if err != nil {
		return err
	}
	if err := writeDevState(f.stateDir, st); err != nil {
		b.close()
		return err
	}
	b.timeouts = proxy.ServerTimeouts(pc)                   // as serve: no server cuts a request its deadline allows
	b.shutdown = shutdown{drain: ls.Drain, probes: "admin"} // no load balancer to wait for
	printWalkthrough(out, filepath.Join(f.stateDir, "dev.json"), st)
	log.WithField("state", filepath.Join(f.stateDir, "dev.json")).Info("chdproxy dev is up (dev cipher, miniredis: nothing here is for real card data)")
	return serveRecorded(ctx, b, ls, log, audit, "dev", 1, keys.Len())
}

// loopbackOnly refuses listen addresses (by flag name) off loopback: dev runs
// the dev cipher and keeps keys in a file, fit for one machine only.
func loopbackOnly(addrs map[string]string) error {
	var errs []error
	for _, flag := range slices.Sorted(maps.Keys(addrs)) {
		if host, _, err := net.SplitHostPort(addrs[flag]); err != nil || !loopbackHost(host) {
			errs = append(errs, fmt.Errorf("--%s %q: dev listens on loopback only (127.0.0.1, ::1 or localhost)", flag, addrs[flag]))
		}
	}
	return errors.Join(errs...)
}

// demoOrigin is the demo checkout's origin for its listen address: localhost and
// the port, as a developer types it (dev listens on loopback only).
func demoOrigin(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "http://localhost:" + port
}

// devCheckout is the demo merchant's checkout page and backend (package demo),
// on its own origin: the page gets the pk_, the backend keeps the sk_.
func devCheckout(st devState, origin string, log *logrus.Logger) (*demo.Demo, error) {
	return demo.New(demo.Config{
		Origin: origin, CollectURL: st.CollectURL, ForwardURL: st.ForwardURL,
		PublishableKey: st.PublishableKey, SecretKey: st.SecretKey, Log: log,
		UpstreamAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte(smartpay.DefaultMerchantKey+":"+smartpay.DefaultMerchantSecret)),
		Account:      "EUR-sandbox",
		// the pinned version with its published hash, as a merchant's page loads it
		ScriptPath: "/collect/v" + hosted.Version + "/collect.js", Integrity: hosted.SRI(),
	})
}

// devPolicy is the embedded policy with every upstream at the sandbox.
func devPolicy(sandboxURL string) (*policy.Policy, error) {
	pol, err := policy.LoadDefault()
	if err != nil {
		return nil, err
	}
	return pol.WithUpstreams(map[string]string{"chd-api": sandboxURL, "api-gateway": sandboxURL, "transaction-export": sandboxURL}, policy.LintOptions{Dev: true})
}

// devKeys makes the dev merchant's three keys and notes them in st.
func devKeys(st *devState) (*proxy.Keys, error) {
	keys := &proxy.Keys{}
	for role, dst := range map[proxy.Role]*string{proxy.RolePublishable: &st.PublishableKey, proxy.RoleSecret: &st.SecretKey, proxy.RoleAdmin: &st.AdminKey} {
		var err error
		if *dst, err = keys.Generate(devMerchant, role); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// devVault is a vault on the dev-only cipher and an in-process miniredis; stop
// closes both.
func devVault(pol *policy.Policy) (_ *vault.Vault, _ redis.UniversalClient, stop func(), _ error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, nil, nil, err
	}
	rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{mr.Addr()}})
	stop = func() { rdb.Close(); mr.Close() }
	cipher, err := vault.NewLocalCipher()
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	v, err := vault.New(vault.Config{
		Transit: vault.Coalesce(cipher, vault.CoalesceOptions{}), Store: vault.NewStore(rdb, vault.StoreOptions{}),
		TokenTTL: pol.Tokens.Card, CVVTTL: pol.Tokens.CVV, WalletTTL: pol.Tokens.Wallet,
	})
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return v, rdb, stop, nil
}

func writeDevState(dir string, st devState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "dev.json"), append(b, '\n'), 0o600)
}

// printWalkthrough shows, on stdout, the shortest path from a card to a payment.
// The sandbox's test card numbers are in README.md; none is printed from code.
func printWalkthrough(w io.Writer, path string, st devState) {
	fmt.Fprintf(w, `chdproxy dev: collect %s  forward %s  admin %s  sandbox %s
Keys and addresses: %s (audit trail: audit.jsonl beside it)

  Demo checkout (hosted card fields, pays through the forward listener): %[8]s

  # 1. tokenize a card (the browser's job), e.g. the sandbox's success card from README.md
  curl -s %[1]s/v1/tokens -H 'Authorization: Bearer %[6]s' \
    -d card_number=CARD -d card_exp_month=12 -d card_exp_year=2030 -d card_cvv=123 -d 'card_holder=John Doe'
  # 2. pay with the token (the backend's job); README.md has the whole request
  curl -s %[2]s/initPaymentHost2Host -H 'Proxy-Authorization: Bearer %[7]s' -u test:qwerty \
    -H 'Content-Type: application/json' -d '{..., "card_number":"tok_...", "card_cvv":"tok_..."}'
  # 3. check it
  curl -s %[2]s/check -H 'Proxy-Authorization: Bearer %[7]s' -u test:qwerty \
    -H 'Content-Type: application/json' -d '{"order_id":"..."}'

Ctrl-C stops. Nothing here is for real card data: dev cipher, in-memory Redis.
`, st.CollectURL, st.ForwardURL, st.AdminURL, st.SandboxURL, path, st.PublishableKey, st.SecretKey, st.CheckoutURL)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// randomSecret is a fresh 32-byte key for what dev keeps only in memory.
func randomSecret() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
