package vault

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Defaults of VaultTransitConfig.
const (
	defaultTransitMount   = "transit"
	defaultCardKeyName    = "chdproxy-card"
	defaultCVVKeyName     = "chdproxy-cvv"
	defaultHMACKeyName    = "chdproxy-fingerprint"
	defaultTransitTimeout = 2 * time.Second
	defaultDialTimeout    = time.Second
	defaultMaxIdleConns   = 64
)

// VaultTransitConfig configures VaultTransit. Everything is explicit: no
// VAULT_* environment variable changes what VaultTransit does (the api
// package reads some of them; NewVaultTransit overrides every one that could
// matter: address, token, namespace, headers, TLS, retries, timeouts,
// redirects, rate limit, agent address).
type VaultTransitConfig struct {
	// Address is Vault's URL, e.g. "https://vault.internal:8200". Required.
	Address string
	// Token authenticates every call: a static token, never renewed. It is
	// never printed. Give either Token or Auth.
	Token string
	// Auth gets the token and keeps it valid (token file, AppRole, Kubernetes;
	// see AuthConfig). VaultTransit.Login starts it.
	Auth AuthConfig
	// Namespace is the Vault Enterprise namespace, "" for none.
	Namespace string
	// Mount is the transit engine's mount path (default "transit").
	Mount string
	// Key names (defaults "chdproxy-card", "chdproxy-cvv",
	// "chdproxy-fingerprint"). The card and CVV keys must be derived
	// aes256-gcm96 keys; EnsureKeys creates and checks them.
	CardKey, CVVKey, HMACKey string

	// CACertPEM is a PEM bundle of CAs trusted for Vault's certificate;
	// CACertFile names a file holding one. Empty both: the system roots.
	CACertPEM  []byte
	CACertFile string
	// TLSServerName overrides the name checked in Vault's certificate.
	TLSServerName string

	// Timeout bounds every transit call, connection included (default 2s).
	// A caller's earlier context deadline wins.
	Timeout time.Duration
	// DialTimeout bounds connecting (default 1s).
	DialTimeout time.Duration
	// MaxIdleConns is the number of kept-alive connections (default 64).
	MaxIdleConns int
}

// VaultTransit is the production Transit: Vault's transit secrets engine
// through github.com/hashicorp/vault/api. Items go out as one batch_input
// request per call. It fails fast: no retries (a retry hides an outage behind
// seconds of latency; the caller decides), no redirects, a per-call deadline.
//
// Error mapping: no answer, 429, 5xx (503 = sealed) → ErrUnavailable;
// deadline → ErrTimeout; any other status → *TransitError with the status and
// no text from Vault (api.ResponseError embeds the URL and the body). A batch
// item Vault refused to decrypt → ErrIntegrity.
type VaultTransit struct {
	c       *api.Client
	mount   string
	keys    [3]string // card, cvv, hmac
	timeout time.Duration
	obs     observer // metrics (observer.go)
	auth    *auth    // the token (auth.go)
}

var transitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
var mountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$`)

// NewVaultTransit checks cfg and returns a client. It does not contact Vault.
func NewVaultTransit(cfg VaultTransitConfig) (*VaultTransit, error) {
	cfg.setDefaults()
	if problems := cfg.problems(); len(problems) > 0 {
		return nil, errors.New("vault transit config: " + strings.Join(problems, "; "))
	}
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	c, err := newAPIClient(&cfg, newHTTPClient(&cfg, tlsConf))
	if err != nil {
		return nil, err
	}
	return &VaultTransit{
		c:       c,
		mount:   strings.Trim(cfg.Mount, "/"),
		keys:    [3]string{cfg.CardKey, cfg.CVVKey, cfg.HMACKey},
		timeout: cfg.Timeout,
		auth:    newAuth(c, cfg.Auth, cfg.Timeout),
	}, nil
}

// Login starts Auth: it gets the first token now (logs in, or reads the token
// file) and keeps it valid until ctx ends (renewal, re-login, file re-reads). It
// returns the first attempt's error; the background goes on trying (a transit
// call made before a token exists tries too). With a static Token it does nothing.
func (t *VaultTransit) Login(ctx context.Context) error { return t.auth.start(ctx) }

func (c *VaultTransitConfig) setDefaults() {
	c.Mount = cmp.Or(c.Mount, defaultTransitMount)
	c.CardKey = cmp.Or(c.CardKey, defaultCardKeyName)
	c.CVVKey = cmp.Or(c.CVVKey, defaultCVVKeyName)
	c.HMACKey = cmp.Or(c.HMACKey, defaultHMACKeyName)
	if c.Timeout <= 0 {
		c.Timeout = defaultTransitTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.MaxIdleConns <= 0 {
		c.MaxIdleConns = defaultMaxIdleConns
	}
}

// problems lists everything wrong with c at once, so one run shows it all.
func (c *VaultTransitConfig) problems() []string {
	var problems []string
	u, err := url.Parse(c.Address)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		problems = append(problems, "address must be an http(s) URL with a host")
	}
	switch {
	case c.Token == "" && c.Auth.Method == "":
		problems = append(problems, "token or auth is required")
	case c.Token != "" && c.Auth.Method != "":
		problems = append(problems, "give token or auth, not both")
	case c.Auth.Method != "":
		for _, p := range c.Auth.Problems() {
			problems = append(problems, "auth: "+p)
		}
	}
	if !mountName.MatchString(c.Mount) {
		problems = append(problems, "mount is not a valid path")
	}
	for _, k := range []string{c.CardKey, c.CVVKey, c.HMACKey} {
		if !transitName.MatchString(k) {
			problems = append(problems, "key names must match "+transitName.String())
			break
		}
	}
	if c.CardKey == c.CVVKey {
		problems = append(problems, "card and CVV keys must differ")
	}
	return problems
}

// tlsConfig trusts the configured CAs, or the system roots when none is given.
func (c *VaultTransitConfig) tlsConfig() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if len(c.CACertPEM) == 0 && c.CACertFile == "" {
		return conf, nil
	}
	pem := c.CACertPEM
	if c.CACertFile != "" {
		b, err := os.ReadFile(c.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("vault transit config: CA file: %w", err)
		}
		pem = append(append([]byte(nil), pem...), b...)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("vault transit config: CA bundle holds no PEM certificate")
	}
	conf.RootCAs = pool
	return conf, nil
}

// newHTTPClient follows no redirect and reads no HTTP(S)_PROXY.
func newHTTPClient(c *VaultTransitConfig, tlsConf *tls.Config) *http.Client {
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   c.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          c.MaxIdleConns,
		MaxIdleConnsPerHost:   c.MaxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: c.Timeout,
	}
	return &http.Client{
		Transport: transport,
		// A backstop only: the per-call context deadline is what counts.
		Timeout: c.Timeout + time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// newAPIClient builds the api.Config by hand, not from api.DefaultConfig's
// result, so VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY, VAULT_MAX_RETRIES,
// VAULT_RATE_LIMIT, VAULT_AGENT_ADDR … are not read into it. (api.NewClient
// still calls DefaultConfig internally for fallbacks; every field it could
// fall back on is set here.)
func newAPIClient(c *VaultTransitConfig, hc *http.Client) (*api.Client, error) {
	ac, err := api.NewClient(&api.Config{
		Address:          strings.TrimRight(c.Address, "/"),
		HttpClient:       hc,
		MaxRetries:       0,
		MinRetryWait:     time.Millisecond,
		MaxRetryWait:     time.Millisecond,
		Timeout:          0, // per call, through the context (see call)
		DisableRedirects: true,
	})
	if err != nil {
		// api's messages can quote environment values; keep ours fixed.
		return nil, errors.New("vault transit config: cannot create the Vault client (check the address and any malformed VAULT_* environment variable)")
	}
	// NewClient picks up VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS;
	// replace all three.
	h := http.Header{}
	h.Set(api.RequestHeaderName, "true")
	ac.SetHeaders(h)
	ac.SetToken(c.Token)
	if c.Namespace != "" {
		ac.SetNamespace(c.Namespace)
	} else {
		ac.ClearNamespace()
	}
	return ac, nil
}

// String does not print the token.
func (t *VaultTransit) String() string {
	return "VaultTransit(" + t.c.Address() + ", mount=" + t.mount + ", auth=" + cmp.Or(t.auth.cfg.Method, "token") + ", token:true)"
}

// GoString does not print the token either (%#v).
func (t *VaultTransit) GoString() string { return t.String() }
