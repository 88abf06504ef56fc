package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Defaults of VaultTransitConfig.
const (
	DefaultTransitMount   = "transit"
	DefaultCardKeyName    = "chdproxy-card"
	DefaultCVVKeyName     = "chdproxy-cvv"
	DefaultHMACKeyName    = "chdproxy-fingerprint"
	DefaultTransitTimeout = 2 * time.Second

	// maxTransitAnswer bounds the bytes read from one transit answer.
	maxTransitAnswer = 64 << 20
)

// VaultTransitConfig configures VaultTransit. Everything is explicit: no
// VAULT_* environment variable changes what VaultTransit does (the api
// package reads some of them; NewVaultTransit overrides every one that could
// matter: address, token, namespace, headers, TLS, retries, timeouts,
// redirects, rate limit, agent address).
type VaultTransitConfig struct {
	// Address is Vault's URL, e.g. "https://vault.internal:8200". Required.
	Address string
	// Token authenticates every call. Required. It is never printed.
	Token string
	// Namespace is the Vault Enterprise namespace, "" for none.
	Namespace string
	// Mount is the transit engine's mount path (default "transit").
	Mount string
	// Key names (defaults DefaultCardKeyName, DefaultCVVKeyName,
	// DefaultHMACKeyName). The card and CVV keys must be derived
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
}

var transitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
var mountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$`)

// NewVaultTransit checks cfg and returns a client. It does not contact Vault.
func NewVaultTransit(cfg VaultTransitConfig) (*VaultTransit, error) {
	if cfg.Mount == "" {
		cfg.Mount = DefaultTransitMount
	}
	if cfg.CardKey == "" {
		cfg.CardKey = DefaultCardKeyName
	}
	if cfg.CVVKey == "" {
		cfg.CVVKey = DefaultCVVKeyName
	}
	if cfg.HMACKey == "" {
		cfg.HMACKey = DefaultHMACKeyName
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTransitTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = 64
	}
	var problems []string
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		problems = append(problems, "address must be an http(s) URL with a host")
	}
	if cfg.Token == "" {
		problems = append(problems, "token is required")
	}
	if !mountName.MatchString(cfg.Mount) {
		problems = append(problems, "mount is not a valid path")
	}
	for _, k := range []string{cfg.CardKey, cfg.CVVKey, cfg.HMACKey} {
		if !transitName.MatchString(k) {
			problems = append(problems, "key names must match "+transitName.String())
			break
		}
	}
	if cfg.CardKey == cfg.CVVKey {
		problems = append(problems, "card and CVV keys must differ")
	}
	if len(problems) > 0 {
		return nil, errors.New("vault transit config: " + strings.Join(problems, "; "))
	}

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName}
	if len(cfg.CACertPEM) > 0 || cfg.CACertFile != "" {
		pem := cfg.CACertPEM
		if cfg.CACertFile != "" {
			b, err := os.ReadFile(cfg.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("vault transit config: CA file: %w", err)
			}
			pem = append(append([]byte(nil), pem...), b...)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("vault transit config: CA bundle holds no PEM certificate")
		}
		tlsConf.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:                 nil, // no HTTP(S)_PROXY environment magic either
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   cfg.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          cfg.MaxIdleConns,
		MaxIdleConnsPerHost:   cfg.MaxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	hc := &http.Client{
		Transport: transport,
		// A backstop only: the per-call context deadline is what counts.
		Timeout: cfg.Timeout + time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	// Built by hand, not from api.DefaultConfig's result, so VAULT_ADDR,
	// VAULT_CACERT, VAULT_SKIP_VERIFY, VAULT_MAX_RETRIES, VAULT_RATE_LIMIT,
	// VAULT_AGENT_ADDR … are not read into it. (api.NewClient still calls
	// DefaultConfig internally for fallbacks; every field it could fall back
	// on is set here.)
	ac := &api.Config{
		Address:          strings.TrimRight(cfg.Address, "/"),
		HttpClient:       hc,
		MaxRetries:       0,
		MinRetryWait:     time.Millisecond,
		MaxRetryWait:     time.Millisecond,
		Timeout:          0, // per call, through the context (see call)
		DisableRedirects: true,
	}
	c, err := api.NewClient(ac)
	if err != nil {
		// api's messages can quote environment values; keep ours fixed.
		return nil, errors.New("vault transit config: cannot create the Vault client (check the address and any malformed VAULT_* environment variable)")
	}
	// NewClient picks up VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS;
	// replace all three.
	h := http.Header{}
	h.Set(api.RequestHeaderName, "true")
	c.SetHeaders(h)
	c.SetToken(cfg.Token)
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	} else {
		c.ClearNamespace()
	}
	return &VaultTransit{
		c:       c,
		mount:   strings.Trim(cfg.Mount, "/"),
		keys:    [3]string{cfg.CardKey, cfg.CVVKey, cfg.HMACKey},
		timeout: cfg.Timeout,
	}, nil
}

// String does not print the token.
func (t *VaultTransit) String() string {
	return "VaultTransit(" + t.c.Address() + ", mount=" + t.mount + ", token:true)"
}

// GoString does not print the token either (%#v).
func (t *VaultTransit) GoString() string { return t.String() }

func (t *VaultTransit) keyName(k Key) (string, bool) {
	switch k {
	case KeyCard:
		return t.keys[0], true
	case KeyCVV:
		return t.keys[1], true
	}
	return "", false
}

// Wire types of answers. A response's base64 plaintext is decoded straight
// into []byte, with no immutable string copy of the card data on the way.
// Requests are written by hand (see body) into one buffer that is wiped.
type (
	batchResp[T any] struct {
		Data struct {
			BatchResults []T `json:"batch_results"`
		} `json:"data"`
	}
	encryptOut struct {
		Ciphertext string `json:"ciphertext"`
		KeyVersion int    `json:"key_version"`
		Error      string `json:"error"`
	}
	decryptOut struct {
		Plaintext []byte `json:"plaintext"`
		Error     string `json:"error"`
	}
	hmacOut struct {
		HMAC  string `json:"hmac"`
		Error string `json:"error"`
	}
)

// call PUTs body to path and decodes the answer into out. The request body
// and the response bytes are wiped before returning. When Vault answers 400
// with a batch_results list of n items (every item failed), call decodes it
// into out and returns nil so items can carry their own errors.
func (t *VaultTransit) call(ctx context.Context, op, path string, body []byte, out any, n int) error {
	defer wipe(body)
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	resp, err := t.c.Logical().WriteRawWithContext(cctx, path, body)
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			if re.StatusCode == http.StatusBadRequest && n > 0 && resp != nil && resp.Body != nil {
				// Every item failed (no plaintext inside): per-item errors.
				if decodeBatch(resp.Body, out, n) {
					return nil
				}
			}
			return transitStatusErr(op, re.StatusCode)
		}
		return t.transportErr(ctx, cctx, op, err)
	}
	if resp == nil || resp.Body == nil {
		return &TransitError{Op: op, Reason: "empty answer", err: ErrUnavailable}
	}
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n < maxTransitAnswer {
		buf.Grow(int(n) + bytes.MinRead) // one allocation: no unwiped copies left by growth
	}
	_, rerr := buf.ReadFrom(io.LimitReader(resp.Body, maxTransitAnswer))
	b := buf.Bytes()
	defer wipe(b[:cap(b)])
	if rerr != nil {
		return t.transportErr(ctx, cctx, op, rerr)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &TransitError{Op: op, Status: resp.StatusCode, Reason: "malformed answer", err: ErrUnavailable}
	}
	return nil
}

// transportErr classifies an error without an HTTP answer.
func (t *VaultTransit) transportErr(ctx, cctx context.Context, op string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller went away; keep that visible (not an outage).
		return &TransitError{Op: op, Reason: "canceled", err: context.Canceled}
	case errors.Is(cctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded), isNetTimeout(err):
		return &TransitError{Op: op, Reason: "timeout", err: ErrTimeout}
	}
	return &TransitError{Op: op, Reason: "no answer", err: ErrUnavailable}
}

func decodeBatch(r io.Reader, out any, n int) bool {
	b, err := io.ReadAll(io.LimitReader(r, maxTransitAnswer))
	defer wipe(b)
	if err != nil || json.Unmarshal(b, out) != nil {
		return false
	}
	switch o := out.(type) {
	case *batchResp[encryptOut]:
		return len(o.Data.BatchResults) == n
	case *batchResp[decryptOut]:
		return len(o.Data.BatchResults) == n
	case *batchResp[hmacOut]:
		return len(o.Data.BatchResults) == n
	}
	return false
}

func itemErr(op string, integrity bool) error {
	if integrity {
		return &TransitError{Op: op, Status: http.StatusBadRequest, Reason: "ciphertext does not authenticate", err: ErrIntegrity}
	}
	return &TransitError{Op: op, Status: http.StatusBadRequest, Reason: "item refused"}
}

func countErr(op string, got, want int) error {
	return &TransitError{Op: op, Reason: "answer has " + strconv.Itoa(got) + " results for " + strconv.Itoa(want) + " items", err: ErrUnavailable}
}

// Encrypt implements Transit (POST {mount}/encrypt/{key} with batch_input).
func (t *VaultTransit) Encrypt(ctx context.Context, key Key, items []EncryptItem) ([]EncryptResult, error) {
	name, ok := t.keyName(key)
	if !ok {
		return nil, &TransitError{Op: "encrypt", Reason: "unknown key"}
	}
	if len(items) == 0 {
		return nil, nil
	}
	b := newBody(len(items), true)
	for i, it := range items {
		b.item(i)
		b.field("plaintext", it.Plaintext, false)
		b.field("context", it.Context, true)
		b.field("associated_data", it.AAD, true)
		b.end()
	}
	body := b.done()
	var out batchResp[encryptOut]
	if err := t.call(ctx, "encrypt", t.mount+"/encrypt/"+name, body, &out, len(items)); err != nil {
		return nil, err
	}
	if len(out.Data.BatchResults) != len(items) {
		return nil, countErr("encrypt", len(out.Data.BatchResults), len(items))
	}
	res := make([]EncryptResult, len(items))
	for i, r := range out.Data.BatchResults {
		if r.Error != "" || r.Ciphertext == "" {
			res[i].Err = itemErr("encrypt", false)
			continue
		}
		res[i] = EncryptResult{Ciphertext: r.Ciphertext, KeyVersion: r.KeyVersion}
	}
	return res, nil
}

// Decrypt implements Transit (POST {mount}/decrypt/{key} with batch_input).
func (t *VaultTransit) Decrypt(ctx context.Context, key Key, items []DecryptItem) ([]DecryptResult, error) {
	name, ok := t.keyName(key)
	if !ok {
		return nil, &TransitError{Op: "decrypt", Reason: "unknown key"}
	}
	if len(items) == 0 {
		return nil, nil
	}
	res := make([]DecryptResult, len(items))
	b := newBody(len(items), true)
	var sent []int // indexes of the items sent
	for i, it := range items {
		if !vaultCiphertext(it.Ciphertext) {
			res[i].Err = itemErr("decrypt", true) // not even shaped like one
			continue
		}
		b.item(len(sent))
		b.raw("ciphertext", it.Ciphertext)
		b.field("context", it.Context, true)
		b.field("associated_data", it.AAD, true)
		b.end()
		sent = append(sent, i)
	}
	if len(sent) == 0 {
		return res, nil
	}
	body := b.done()
	var out batchResp[decryptOut]
	if err := t.call(ctx, "decrypt", t.mount+"/decrypt/"+name, body, &out, len(sent)); err != nil {
		return nil, err
	}
	if len(out.Data.BatchResults) != len(sent) {
		for _, r := range out.Data.BatchResults {
			wipe(r.Plaintext)
		}
		return nil, countErr("decrypt", len(out.Data.BatchResults), len(sent))
	}
	for k, r := range out.Data.BatchResults {
		i := sent[k]
		if r.Error != "" {
			wipe(r.Plaintext)
			res[i].Err = itemErr("decrypt", true)
			continue
		}
		res[i].Plaintext = r.Plaintext
	}
	return res, nil
}

// HMAC implements Transit (POST {mount}/hmac/{key}/sha2-256 with
// batch_input of context || 0x00 || input).
func (t *VaultTransit) HMAC(ctx context.Context, items []HMACItem) ([]HMACResult, error) {
	if len(items) == 0 {
		return nil, nil
	}
	b := newBody(len(items), false)
	for i, it := range items {
		m := hmacMessage(it.Context, it.Input)
		b.item(i)
		b.field("input", m, false)
		b.end()
		wipe(m)
	}
	body := b.done()
	var out batchResp[hmacOut]
	if err := t.call(ctx, "hmac", t.mount+"/hmac/"+t.keys[2]+"/sha2-256", body, &out, len(items)); err != nil {
		return nil, err
	}
	if len(out.Data.BatchResults) != len(items) {
		return nil, countErr("hmac", len(out.Data.BatchResults), len(items))
	}
	res := make([]HMACResult, len(items))
	for i, r := range out.Data.BatchResults {
		sum, ver, ok := parseVaultValue(r.HMAC)
		if r.Error != "" || !ok {
			res[i].Err = itemErr("hmac", false)
			continue
		}
		res[i] = HMACResult{Sum: sum, KeyVersion: ver}
	}
	return res, nil
}

// body writes a batch request as JSON by hand: every value is base64 or a
// checked ciphertext, so no escaping is needed, and the plaintexts land in
// one buffer that call wipes (encoding/json would leave copies in its pooled
// encoder buffers).
type body struct{ b []byte }

func newBody(n int, partial bool) *body {
	b := &body{b: make([]byte, 0, 64+n*160)}
	b.b = append(b.b, '{')
	if partial {
		// 200 when some items fail: the answer (with the other items'
		// plaintexts) then stays in call's wiped buffer instead of the
		// api package's error buffer.
		b.b = append(b.b, `"partial_failure_response_code":200,`...)
	}
	b.b = append(b.b, `"batch_input":[`...)
	return b
}

func (b *body) item(i int) {
	if i > 0 {
		b.b = append(b.b, ',')
	}
	b.b = append(b.b, '{')
}

func (b *body) key(k string) {
	if b.b[len(b.b)-1] != '{' {
		b.b = append(b.b, ',')
	}
	b.b = append(b.b, '"')
	b.b = append(b.b, k...)
	b.b = append(b.b, `":"`...)
}

// field writes k: base64(v); omitted when v is empty and omitEmpty.
func (b *body) field(k string, v []byte, omitEmpty bool) {
	if len(v) == 0 && omitEmpty {
		return
	}
	b.key(k)
	b.b = base64.StdEncoding.AppendEncode(b.b, v)
	b.b = append(b.b, '"')
}

// raw writes k: v for a v known to need no escaping.
func (b *body) raw(k, v string) {
	b.key(k)
	b.b = append(b.b, v...)
	b.b = append(b.b, '"')
}

func (b *body) end() { b.b = append(b.b, '}') }

func (b *body) done() []byte { return append(b.b, "]}"...) }

// vaultCiphertext reports whether s has the form "vault:v<N>:<base64>",
// which also makes it safe to write into JSON unescaped.
func vaultCiphertext(s string) bool {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return false
	}
	v, b64, ok := strings.Cut(rest, ":")
	if !ok || v == "" || b64 == "" || len(b64)%4 != 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	for i := 0; i < len(b64); i++ {
		c := b64[i]
		if !isBase62(c) && c != '+' && c != '/' && c != '=' {
			return false
		}
	}
	return true
}

// parseVaultValue splits "vault:v<N>:<base64>".
func parseVaultValue(s string) ([]byte, int, bool) {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return nil, 0, false
	}
	v, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, 0, false
	}
	ver, err := strconv.Atoi(v)
	if err != nil || ver < 1 {
		return nil, 0, false
	}
	sum, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sum) == 0 {
		return nil, 0, false
	}
	return sum, ver, true
}

// Ping implements Transit: one HMAC through the fingerprint key, which
// checks reachability, unsealing, the token and the key in one call.
func (t *VaultTransit) Ping(ctx context.Context) error {
	res, err := t.HMAC(ctx, []HMACItem{{Context: []byte("chdproxy"), Input: []byte("readiness")}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// EnsureKeys creates the card, CVV and fingerprint keys when missing (card
// and CVV: derived aes256-gcm96; fingerprint: hmac, 32 bytes) and checks
// that existing card and CVV keys are derived aes256-gcm96 keys — a
// non-derived key would not bind ciphertexts to the merchant. Call it only
// when the operator asked for key creation (it needs create/read rights on
// {mount}/keys/* that production tokens should not hold).
func (t *VaultTransit) EnsureKeys(ctx context.Context) error {
	specs := []struct {
		name string
		data map[string]any
	}{
		{t.keys[0], map[string]any{"type": "aes256-gcm96", "derived": true}},
		{t.keys[1], map[string]any{"type": "aes256-gcm96", "derived": true}},
		{t.keys[2], map[string]any{"type": "hmac", "key_size": 32}},
	}
	for i, s := range specs {
		path := t.mount + "/keys/" + s.name
		sec, err := t.logical(ctx, func(c context.Context) (*api.Secret, error) {
			return t.c.Logical().ReadWithContext(c, path)
		})
		if err != nil {
			return err
		}
		if sec == nil || sec.Data == nil {
			if _, err := t.logical(ctx, func(c context.Context) (*api.Secret, error) {
				return t.c.Logical().WriteWithContext(c, path, s.data)
			}); err != nil {
				return err
			}
			continue
		}
		if i < 2 {
			typ, _ := sec.Data["type"].(string)
			derived, _ := sec.Data["derived"].(bool)
			if typ != "aes256-gcm96" || !derived {
				return &TransitError{Op: "keys", Reason: "key " + s.name + " is not a derived aes256-gcm96 key"}
			}
		}
	}
	return nil
}

func (t *VaultTransit) logical(ctx context.Context, f func(context.Context) (*api.Secret, error)) (*api.Secret, error) {
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	sec, err := f(cctx)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			e := transitStatusErr("keys", re.StatusCode)
			return nil, e
		}
		return nil, t.transportErr(ctx, cctx, "keys", err)
	}
	return sec, nil
}
