package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/vault"
)

// serveConfig is the production configuration file (see deploy/chdproxy.example.yaml).
// Secrets are read from files, never written in it.
type serveConfig struct {
	Policy string `yaml:"policy"`
	// Audit is the audit trail: a file path (appended, fsynced in group commits) or "stdout"
	// (a stream of its own: the logs go to stderr).
	Audit  string `yaml:"audit"`
	Listen struct {
		Collect listenConfig `yaml:"collect"`
		Forward listenConfig `yaml:"forward"`
		Admin   listenConfig `yaml:"admin"`
	} `yaml:"listen"`
	Vault struct {
		Address string `yaml:"address"`
		// TokenFile is the earlier form of auth: {method: token_file, token_file: …}.
		TokenFile  string           `yaml:"token_file"`
		Auth       vault.AuthConfig `yaml:"auth"`
		CAFile     string           `yaml:"ca_file"`
		Mount      string           `yaml:"mount"`
		CardKey    string           `yaml:"card_key"`
		CVVKey     string           `yaml:"cvv_key"`
		HMACKey    string           `yaml:"hmac_key"`
		CreateKeys bool             `yaml:"create_keys"`
		Timeout    time.Duration    `yaml:"timeout"`
	} `yaml:"vault"`
	Redis struct {
		Addrs        []string `yaml:"addrs"`
		MasterName   string   `yaml:"master_name"`
		Username     string   `yaml:"username"`
		PasswordFile string   `yaml:"password_file"`
		TLS          bool     `yaml:"tls"`
		CAFile       string   `yaml:"ca_file"`
		Prefix       string   `yaml:"prefix"`
	} `yaml:"redis"`
	Idempotency struct {
		SecretFile string        `yaml:"secret_file"` // HMAC key of request bodies; the same on every replica
		TTL        time.Duration `yaml:"ttl"`
	} `yaml:"idempotency"`
	Limits struct {
		PerKeyRate     float64 `yaml:"per_key_rate"`
		PerKeyBurst    int     `yaml:"per_key_burst"`
		PerClientRate  float64 `yaml:"per_client_rate"`
		PerClientBurst int     `yaml:"per_client_burst"`
		Upstream       int     `yaml:"upstream_in_flight"`
		Vault          int     `yaml:"vault_in_flight"`
	} `yaml:"limits"`
	// TrustedProxies are the load balancers whose X-Forwarded-For names the client
	// (CIDR prefixes or single addresses); empty: the TCP peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`

	Upstream struct {
		CAFile          string        `yaml:"ca_file"` // extra CA bundle (tests, private PKI)
		ConnectTimeout  time.Duration `yaml:"connect_timeout"`
		ResponseTimeout time.Duration `yaml:"response_timeout"`
	} `yaml:"upstream"`
	// Shutdown: on SIGTERM /readyz answers 503 "draining" for Delay (default 5s, so a
	// load balancer stops sending), then the listeners stop accepting and the requests
	// in flight get DrainTimeout to finish (default, and at least, the write timeout:
	// the longest a request runs).
	Shutdown struct {
		DrainTimeout time.Duration  `yaml:"drain_timeout"`
		Delay        *time.Duration `yaml:"delay"`
	} `yaml:"shutdown"`
	Merchants []struct {
		ID      string   `yaml:"id"`
		Origins []string `yaml:"origins"`
		// ClientCerts: "sha256:<hex>" of the SubjectPublicKeyInfo of each client certificate
		// its backends present to the forward listener (listen.forward.client_auth).
		ClientCerts []string `yaml:"client_certs"`
		Keys        []struct {
			Role   proxy.Role `yaml:"role"`
			Digest string     `yaml:"digest"` // "sha256:<hex>" of the key; the key itself is never stored
		} `yaml:"keys"`
	} `yaml:"merchants"`
}

type listenConfig struct {
	Addr    string `yaml:"addr"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// ClientCA and ClientAuth (forward only): with client_auth "require" every connection
	// needs a certificate issued by a CA of the PEM bundle client_ca ("off", the default: none).
	ClientCA   string `yaml:"client_ca"`
	ClientAuth string `yaml:"client_auth"`
}

// runServe runs production chdproxy: real Vault transit, real Redis, TLS listeners.
// It refuses the dev cipher, an unsafe policy and plain-text listeners off loopback.
func runServe(args []string) error {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args)
}

// serveGCPercent is serve's GOGC. A request allocates much and keeps little, and
// at Go's 100 the collector was a tenth of chdproxy's CPU under load; at 200 the
// CPU per forward fell by about a tenth (c=1, 170/s, c=256) and the peak RSS at
// 256 connections stayed under 80 MB (issue 15, docs/bench.md).
const serveGCPercent = 200

// tuneGC sets serveGCPercent unless the operator chose with GOGC or GOMEMLIMIT.
func tuneGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}

// serve runs until ctx ends.
func serve(ctx context.Context, args []string) error {
	flags, err := parseServeFlags(args) // --check-config was acted on before (runServeCommand)
	if err != nil {
		return err
	}
	cfg, err := loadServeConfig(flags.config)
	if err != nil {
		return err
	}
	pol, err := policy.Load(cfg.Policy, policy.LintOptions{})
	if err != nil {
		return err
	}
	log := redact.NewLogger(os.Stderr, redact.New(pol.RedactRules()), pol.Hash)
	redis.SetLogger(redisLogger{log})
	stopProfile, err := startCPUProfileListener(log)
	if err != nil {
		return err
	}
	defer stopProfile()
	rdb, err := cfg.redisClient()
	if err != nil {
		return err
	}
	defer rdb.Close()
	v, err := cfg.vault(ctx, pol, rdb, log)
	if err != nil {
		return err
	}
	pc, err := cfg.proxyConfig()
	if err != nil {
		return err
	}
	audit, closeAudit, err := openAudit(cfg.Audit, pol.Hash)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer closeAudit() // flushes queued outcome records, once the listeners have stopped
	pc.Policy, pc.Vault, pc.Log, pc.Audit, pc.Redis = pol, v, log, audit, rdb
	ls, err := proxy.New(pc)
	if err != nil {
		return err
	}
	defer ls.Close()
	rl := &reloader{path: flags.config, started: cfg, policyHash: pol.Hash, ls: ls, log: log, audit: audit}
	defer reopenOnHUP(log, audit, func() { _ = rl.reload() })()
	served := []listener{
		{name: "collect", addr: cfg.Listen.Collect.Addr, handler: ls.Collect},
		{name: "forward", addr: cfg.Listen.Forward.Addr, handler: ls.Forward},
		{name: "admin", addr: cfg.Listen.Admin.Addr, handler: ls.Admin},
	}
	for i, lc := range []listenConfig{cfg.Listen.Collect, cfg.Listen.Forward, cfg.Listen.Admin} {
		if served[i].wrapLn, err = tlsListener(served[i].name, lc); err != nil {
			return err
		}
		if notAfter, ok := certExpiry(lc); ok {
			ls.CertificateExpires(served[i].name, notAfter)
		}
	}
	if err := v.Ping(ctx); err != nil {
		log.WithError(err).Warn("vault or redis not ready yet; /readyz reports it")
	}
	b, err := bind(served)
	if err != nil {
		return err
	}
	b.timeouts = proxy.ServerTimeouts(pc)
	b.shutdown = cfg.shutdownPlan(log, ls, b.timeouts.Write)
	log.Info("chdproxy serving")
	return serveRecorded(ctx, b, ls, log, audit, "serve", len(pc.Merchants), pc.Keys.Len())
}

// shutdownPlan is the configured shutdown. A drain shorter than the longest request
// deadline (the write timeout, longest) would cut payments that are still waiting on
// the upstream: it is raised.
func (cfg *serveConfig) shutdownPlan(log *logrus.Logger, ls *proxy.Listeners, longest time.Duration) shutdown {
	sd := shutdown{drain: ls.Drain, delay: 5 * time.Second, timeout: cfg.Shutdown.DrainTimeout, probes: "admin"}
	if cfg.Shutdown.Delay != nil {
		sd.delay = *cfg.Shutdown.Delay
	}
	if sd.timeout < longest {
		if sd.timeout != 0 {
			log.WithFields(logrus.Fields{"drain_timeout": sd.timeout.String(), "raised_to": longest.String()}).
				Warn("shutdown.drain_timeout is shorter than the longest request deadline (the write timeout): raised")
		}
		sd.timeout = longest
	}
	return sd
}

// redisClient connects to the configured Redis (password from its file, TLS when asked).
func (cfg *serveConfig) redisClient() (redis.UniversalClient, error) {
	ropts := vault.RedisOptions{Addrs: cfg.Redis.Addrs, MasterName: cfg.Redis.MasterName, Username: cfg.Redis.Username}
	var err error
	if cfg.Redis.PasswordFile != "" {
		if ropts.Password, err = readSecretFile(cfg.Redis.PasswordFile); err != nil {
			return nil, fmt.Errorf("redis password: %w", err)
		}
	}
	if cfg.Redis.TLS {
		pool, err := certPool(cfg.Redis.CAFile)
		if err != nil {
			return nil, err
		}
		ropts.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return vault.NewRedisClient(ropts), nil
}

// vault is the token vault on Vault transit (never the dev cipher) and rdb. With
// log nil (serve --check-config) it contacts nothing: the credential files are only
// read. Otherwise it logs in, keeps the token valid until ctx ends (telling log) and
// creates the keys when asked.
func (cfg *serveConfig) vault(ctx context.Context, pol *policy.Policy, rdb redis.UniversalClient, log logrus.FieldLogger) (*vault.Vault, error) {
	auth := cfg.vaultAuth()
	if err := auth.CheckFiles(); err != nil {
		return nil, fmt.Errorf("vault token: %w", err)
	}
	auth.Report = authReporter(log)
	transit, err := vault.NewVaultTransit(vault.VaultTransitConfig{
		Address: cfg.Vault.Address, Auth: auth, Mount: cfg.Vault.Mount, CACertFile: cfg.Vault.CAFile,
		CardKey: cfg.Vault.CardKey, CVVKey: cfg.Vault.CVVKey, HMACKey: cfg.Vault.HMACKey, Timeout: cfg.Vault.Timeout,
	})
	if err != nil {
		return nil, err
	}
	if log != nil {
		if err := cfg.startVault(ctx, transit, log); err != nil {
			return nil, err
		}
	}
	return vault.New(vault.Config{
		Transit: vault.Coalesce(transit, vault.CoalesceOptions{}), Store: vault.NewStore(rdb, vault.StoreOptions{Prefix: cfg.Redis.Prefix}),
		TokenTTL: pol.Tokens.Card, CVVTTL: pol.Tokens.CVV, WalletTTL: pol.Tokens.Wallet,
	})
}

// startVault logs in (Vault refusing the credentials stops serve; Vault unreachable
// or sealed does not: the login is retried and /readyz reports it) and creates the
// keys when create_keys asks.
func (cfg *serveConfig) startVault(ctx context.Context, transit *vault.VaultTransit, log logrus.FieldLogger) error {
	if err := transit.Login(ctx); err != nil {
		if !errors.Is(err, vault.ErrUnavailable) {
			return fmt.Errorf("vault login: %w", err)
		}
		log.WithError(err).Warn("vault login failed; retrying in the background, /readyz reports it")
	}
	if cfg.Vault.CreateKeys {
		if err := transit.EnsureKeys(ctx); err != nil {
			return fmt.Errorf("vault keys: %w", err)
		}
	}
	return nil
}

// vaultAuth is vault.auth, or vault.token_file as the method token_file.
func (cfg *serveConfig) vaultAuth() vault.AuthConfig {
	if cfg.Vault.TokenFile != "" {
		return vault.AuthConfig{Method: vault.AuthTokenFile, TokenFile: cfg.Vault.TokenFile}
	}
	return cfg.Vault.Auth
}

// vaultAuthProblems lists what is wrong with vault.auth (or vault.token_file).
func (cfg *serveConfig) vaultAuthProblems() []error {
	a := cfg.Vault.Auth
	if cfg.Vault.TokenFile != "" && (a.Method != "" || a.TokenFile != "" || a.AppRole != nil || a.Kubernetes != nil || a.PollInterval != 0) {
		return []error{errors.New("vault: give token_file or auth, not both")}
	}
	a = cfg.vaultAuth()
	var errs []error
	for _, p := range a.Problems() {
		errs = append(errs, errors.New("vault.auth: "+p))
	}
	return errs
}

// authReporter logs what happens to the Vault token (never the token).
func authReporter(log logrus.FieldLogger) func(event string, err error) {
	if log == nil {
		return nil
	}
	return func(event string, err error) {
		switch {
		case err != nil:
			log.WithError(err).Warn(event)
		case event == vault.EventRenewed:
			log.Debug(event)
		default:
			log.Info(event)
		}
	}
}

// proxyConfig is the part of proxy.Config the file gives: merchants, keys (the
// file's and CHDPROXY_KEYS), limits, the upstream client and the idempotency secret.
// The error lists every problem (serve --check-config shows them all).
func (cfg *serveConfig) proxyConfig() (proxy.Config, error) {
	pc := proxy.Config{Keys: &proxy.Keys{}, Limits: limits(cfg), IdempotencyTTL: cfg.Idempotency.TTL}
	var errs []error
	for _, s := range cfg.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies: %q is not an address or a CIDR prefix", s))
		}
		pc.TrustedProxies = append(pc.TrustedProxies, p)
	}
	for _, m := range cfg.Merchants {
		pc.Merchants = append(pc.Merchants, proxy.Merchant{ID: m.ID, Origins: m.Origins, ClientCerts: m.ClientCerts})
		for _, k := range m.Keys {
			if err := pc.Keys.Add(m.ID, k.Role, k.Digest); err != nil {
				errs = append(errs, fmt.Errorf("merchant %s: %w", m.ID, err))
			}
		}
	}
	if err := addEnvKeys(pc.Keys, os.Getenv("CHDPROXY_KEYS")); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, cfg.clientCertProblems(os.Getenv("CHDPROXY_KEYS"))...)
	upCAs, err := certPool(cfg.Upstream.CAFile)
	if err != nil {
		errs = append(errs, err)
	}
	pc.Upstream = proxy.UpstreamOptions{RootCAs: upCAs, ConnectTimeout: cfg.Upstream.ConnectTimeout, ResponseTimeout: cfg.Upstream.ResponseTimeout}
	pc.VaultTimeout = cmp.Or(cfg.Vault.Timeout, 2*time.Second) + time.Second // a transit call (its default 2s) plus Redis's (NewRedisClient: 1s)
	secret, err := readSecretFile(cfg.Idempotency.SecretFile)
	if err != nil || len(secret) < 32 {
		errs = append(errs, errors.New("idempotency.secret_file: needs a file with at least 32 characters"))
	}
	pc.IdempotencySecret = []byte(secret)
	return pc, errors.Join(errs...)
}

// openAudit opens the audit trail: a file path, or "stdout" (a stream of its own:
// the logs go to stderr). closeAudit writes the queued outcome records first.
func openAudit(where, policyHash string) (_ *proxy.JSONLAudit, closeAudit func() error, _ error) {
	if where == "stdout" {
		a := proxy.NewJSONLAudit(os.Stdout, policyHash)
		return a, func() error { a.Flush(); return nil }, nil
	}
	a, f, err := proxy.OpenAuditFile(where, policyHash)
	if err != nil {
		return nil, nil, err
	}
	return a, f.Close, nil
}

func loadServeConfig(path string) (*serveConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg serveConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	if cfg.Policy == "" {
		errs = append(errs, errors.New("policy: required"))
	}
	if cfg.Audit == "" {
		errs = append(errs, errors.New("audit: required (a file path or \"stdout\")"))
	}
	if cfg.Vault.Address == "" {
		errs = append(errs, errors.New("vault.address: required"))
	}
	errs = append(errs, cfg.vaultAuthProblems()...)
	if len(cfg.Redis.Addrs) == 0 {
		errs = append(errs, errors.New("redis: addrs required"))
	}
	for name, l := range map[string]listenConfig{"collect": cfg.Listen.Collect, "forward": cfg.Listen.Forward, "admin": cfg.Listen.Admin} {
		if l.Addr == "" {
			errs = append(errs, fmt.Errorf("listen.%s.addr: required", name))
		}
	}
	errs = append(errs, cfg.unsafeProblems()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", path, errors.Join(errs...))
	}
	return &cfg, nil
}

// unsafeProblems lists every setting serve refuses to run with: card data or
// credentials in clear off the machine, merchant ids the vault cannot hold,
// origins any site could claim, and one key for two roles or merchants.
func (cfg *serveConfig) unsafeProblems() []error {
	var errs []error
	if u, err := url.Parse(cfg.Vault.Address); err == nil && u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		errs = append(errs, errors.New("vault.address: plain http is allowed on loopback only (the encrypt calls carry the PAN, and the Vault token goes with every call); use https"))
	}
	for i, a := range cfg.Redis.Addrs {
		if host, _, err := net.SplitHostPort(a); !cfg.Redis.TLS && (err != nil || !loopbackHost(host)) {
			errs = append(errs, fmt.Errorf("redis.addrs[%d]: tls: true is required off loopback (the password, card ciphertexts and one-time CVVs cross that link)", i))
		}
	}
	ids, digests := map[string]string{}, map[string]string{} // → where first listed
	for i, m := range cfg.Merchants {
		mp := fmt.Sprintf("merchants[%d]", i)
		if !vault.ValidMerchantID(m.ID) {
			errs = append(errs, fmt.Errorf("%s.id: use 1-64 characters of A-Z, a-z, 0-9, '_', '-' and '.'", mp))
		} else if first, dup := ids[m.ID]; dup {
			errs = append(errs, fmt.Errorf("%s.id: the same merchant id as %s", mp, first))
		}
		ids[m.ID] = cmp.Or(ids[m.ID], mp)
		for j, o := range m.Origins {
			if msg := originProblem(o); msg != "" {
				errs = append(errs, fmt.Errorf("%s.origins[%d]: %s", mp, j, msg))
			}
		}
		for j, k := range m.Keys {
			kp, d := fmt.Sprintf("%s.keys[%d]", mp, j), strings.ToLower(k.Digest) // hex in either case is one digest
			if first, dup := digests[d]; dup {
				errs = append(errs, fmt.Errorf("%s: %w (also %s)", kp, proxy.ErrDuplicateKey, first))
			}
			digests[d] = cmp.Or(digests[d], kp)
		}
	}
	return errs
}

// originProblem says why o cannot be a merchant's CORS origin, "" when it can.
func originProblem(o string) string {
	switch o {
	case "*":
		return `"*" would let any site tokenize with the merchant's publishable key`
	case "null":
		return `"null" is sent by sandboxed frames and local files of any site`
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Contains(u.Host, "*") ||
		o != u.Scheme+"://"+u.Host || o != strings.ToLower(o) {
		return "not an origin: use scheme://host[:port] in lowercase, with no path, query or trailing '/'"
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return "plain http is allowed for localhost only: the page that collects cards must be served over https"
	}
	return ""
}

// loopbackHost reports whether host (no port) is localhost or a loopback IP.
func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback()
}

// tlsListener wraps a listener in TLS. Plain text is allowed only on loopback
// (behind a local TLS-terminating sidecar).
func tlsListener(name string, lc listenConfig) (func(net.Listener) net.Listener, error) {
	if err := clientAuthProblem(name, lc); err != nil {
		return nil, err
	}
	if lc.TLSCert == "" && lc.TLSKey == "" {
		host, _, err := net.SplitHostPort(lc.Addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("listen.%s: tls_cert and tls_key are required off loopback", name)
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(lc.TLSCert, lc.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("listen.%s: %w", name, err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if err := requireClientCerts(conf, name, lc); err != nil {
		return nil, err
	}
	return func(ln net.Listener) net.Listener { return tls.NewListener(ln, conf) }, nil
}

// certExpiry is when a listener's certificate expires (for the metric that alerts
// before it does); ok is false without TLS.
func certExpiry(lc listenConfig) (time.Time, bool) {
	cert, err := tls.LoadX509KeyPair(lc.TLSCert, lc.TLSKey)
	if err != nil || cert.Leaf == nil {
		return time.Time{}, false
	}
	return cert.Leaf.NotAfter, true
}

// certPool returns the system roots plus the PEM file's CAs (nil, nil for no file).
func certPool(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", file)
	}
	return pool, nil
}

func readSecretFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("no file named")
	}
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// limits takes the configured limits; proxy.New puts each zero one at its default.
func limits(cfg *serveConfig) proxy.Limits {
	c := cfg.Limits
	return proxy.Limits{
		PerKeyRate: c.PerKeyRate, PerKeyBurst: c.PerKeyBurst, PerClientRate: c.PerClientRate, PerClientBurst: c.PerClientBurst,
		Upstream: c.Upstream, Vault: c.Vault,
	}
}

// parsePrefix reads a CIDR prefix, or a single address as its own prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// addEnvKeys adds keys given in the environment as a comma-separated list of
// "merchant:role:sha256:<hex>" (for secret stores that inject environment variables).
func addEnvKeys(keys *proxy.Keys, env string) error {
	for _, item := range strings.Split(env, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.SplitN(item, ":", 3)
		if len(parts) != 3 {
			return errors.New("CHDPROXY_KEYS: each item is merchant:role:sha256:<hex>")
		}
		if err := keys.Add(parts[0], proxy.Role(parts[1]), parts[2]); err != nil {
			return fmt.Errorf("CHDPROXY_KEYS: %w", err)
		}
	}
	return nil
}
