package vault

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
)

// Methods of AuthConfig.
const (
	AuthTokenFile  = "token_file"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// Events given to AuthConfig.Report. None carries the token.
const (
	EventLogin            = "vault: logged in"
	EventLoginFailed      = "vault: login failed; retrying"
	EventRenewed          = "vault: token renewed"
	EventRenewalEnded     = "vault: token renewal ended (failed or max TTL near); logging in again"
	EventTokenFileChanged = "vault: token file changed; new token in use"
	EventTokenFileFailed  = "vault: token file unreadable or empty; keeping the current token"
)

// DefaultKubernetesJWTFile is where Kubernetes mounts the pod's service account token.
const DefaultKubernetesJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

const (
	defaultPollInterval = 5 * time.Second
	// reloginGap: a token this fresh that Vault refuses is refused by policy, not
	// expiry; logging in again would not help, so a 403 storm cannot become a login storm.
	reloginGap      = time.Second
	minLoginBackoff = 500 * time.Millisecond
	maxLoginBackoff = 30 * time.Second
	maxTokenFile    = 64 << 10
)

// AuthConfig is how VaultTransit gets and keeps its Vault token: exactly one
// method, each reading its credentials from files (re-read at every login, so
// rotated credentials are picked up).
//
//   - token_file: a file holding the token (Vault Agent's sink, a mounted secret).
//     Re-read when it changes (checked every PollInterval) and at once when Vault
//     refuses the token. Its writer owns the token's lifetime (Vault Agent renews it).
//   - approle: role_id_file + secret_id_file (with wrapped_secret_id, the file holds
//     a response-wrapping token, which works once: its writer must refresh it).
//   - kubernetes: role + the pod's service account JWT (jwt_file).
//
// Logged-in tokens are renewed through Vault's lifetime watcher; when renewal fails
// or the max TTL nears, chdproxy logs in again, with backoff while that fails.
type AuthConfig struct {
	Method     string          `yaml:"method"`
	TokenFile  string          `yaml:"token_file"`
	AppRole    *AppRoleAuth    `yaml:"approle"`
	Kubernetes *KubernetesAuth `yaml:"kubernetes"`
	// PollInterval is how often token_file is checked for a change (default 5s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Report, when set, hears what happens to the token (Event… constants); err
	// is one of this package's errors, never a Vault message.
	Report func(event string, err error) `yaml:"-"`
}

// AppRoleAuth is the approle method's credentials.
type AppRoleAuth struct {
	RoleIDFile      string `yaml:"role_id_file"`
	SecretIDFile    string `yaml:"secret_id_file"`
	WrappedSecretID bool   `yaml:"wrapped_secret_id"`
	Mount           string `yaml:"mount"` // default "approle"
}

// KubernetesAuth is the kubernetes method's role and service account JWT.
type KubernetesAuth struct {
	Role    string `yaml:"role"`
	JWTFile string `yaml:"jwt_file"` // default DefaultKubernetesJWTFile
	Mount   string `yaml:"mount"`    // default "kubernetes"
}

// Problems lists everything wrong with a, all at once.
func (a *AuthConfig) Problems() []string {
	var p []string
	for _, g := range []struct {
		method string
		given  bool
	}{{AuthTokenFile, a.TokenFile != ""}, {AuthAppRole, a.AppRole != nil}, {AuthKubernetes, a.Kubernetes != nil}} {
		if g.given && g.method != a.Method {
			p = append(p, g.method+" is given but method is "+quoteOr(a.Method, "empty")) // one method, never a guess
		}
	}
	switch a.Method {
	case AuthTokenFile:
		if a.TokenFile == "" {
			p = append(p, "token_file: required")
		}
	case AuthAppRole:
		r := a.AppRole
		if r == nil || r.RoleIDFile == "" || r.SecretIDFile == "" {
			p = append(p, "approle: role_id_file and secret_id_file are required")
		} else if r.Mount != "" && !mountName.MatchString(r.Mount) {
			p = append(p, "approle.mount is not a valid path")
		}
	case AuthKubernetes:
		k := a.Kubernetes
		if k == nil || k.Role == "" {
			p = append(p, "kubernetes.role: required")
		} else if k.Mount != "" && !mountName.MatchString(k.Mount) {
			p = append(p, "kubernetes.mount is not a valid path")
		}
	default:
		p = append(p, "method: use token_file, approle or kubernetes")
	}
	if a.PollInterval < 0 {
		p = append(p, "poll_interval: must not be negative")
	}
	return p
}

func quoteOr(s, empty string) string {
	if s == "" {
		return empty
	}
	return `"` + s + `"`
}

// CheckFiles reads every credential file of a and reports the first that is
// unreadable or empty, without contacting Vault (serve --check-config).
func (a *AuthConfig) CheckFiles() error {
	var files []string
	switch a.Method {
	case AuthTokenFile:
		files = []string{a.TokenFile}
	case AuthAppRole:
		files = []string{a.AppRole.RoleIDFile, a.AppRole.SecretIDFile}
	case AuthKubernetes:
		files = []string{a.kubernetesJWTFile()}
	}
	for _, f := range files {
		if _, err := readCredential(f); err != nil {
			return err
		}
	}
	return nil
}

func (a *AuthConfig) kubernetesJWTFile() string {
	if a.Kubernetes.JWTFile != "" {
		return a.Kubernetes.JWTFile
	}
	return DefaultKubernetesJWTFile
}

// errNoCredential: a credential file is empty or holds something that cannot be a
// token (its content is never quoted).
var errNoCredential = errors.New("vault: credential file is empty or not printable ASCII")

// readCredential reads a credential file: at most 64 KiB, trimmed, printable
// ASCII only (a token goes into a header; a CR/LF must never reach one).
func readCredential(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			s = ""
		}
	}
	if s == "" {
		return "", &fs.PathError{Op: "read", Path: path, Err: errNoCredential}
	}
	return s, nil
}

// auth holds VaultTransit's token and keeps it valid. The token lives in the
// api.Client (SetToken and every request's read of it are under the client's
// lock); gen counts tokens so that callers refused with an old one retry with
// the new one instead of logging in again.
type auth struct {
	c       *api.Client // the transit client: its token is swapped
	cfg     AuthConfig
	timeout time.Duration
	gen     atomic.Uint64 // 0: no token yet
	lock    chan struct{} // one login or file read at a time (ctx-aware mutex)
	kick    chan struct{} // wakes run: a new token, or one is needed
	started atomic.Bool

	// Under lock:
	tried  time.Time   // last login or file read
	secret *api.Secret // the last login's answer, renewed by run
	stamp  os.FileInfo // token_file when last read
}

func newAuth(c *api.Client, cfg AuthConfig, timeout time.Duration) *auth {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPollInterval
	}
	a := &auth{c: c, cfg: cfg, timeout: timeout, lock: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
	if cfg.Method == "" {
		a.gen.Store(1) // a static token (VaultTransitConfig.Token), already set
	}
	return a
}

func (a *auth) report(event string, err error) {
	if a.cfg.Report != nil {
		a.cfg.Report(event, err)
	}
}

func (a *auth) acquire(ctx context.Context) bool {
	select {
	case a.lock <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (a *auth) release() { <-a.lock }

func (a *auth) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// do runs f, a transit call with the current token. When there is no token yet,
// or Vault refuses f's token (403: expired or revoked), it gets a new one (a
// login, or a re-read of token_file) and runs f once more: transit encrypt,
// decrypt and HMAC are idempotent and a refused call returned nothing, so the
// retry is safe. With a login method, a 403 that survives this is ErrUnavailable
// (503: the credentials may come back), with Status 403 (readiness: forbidden).
func (a *auth) do(ctx context.Context, op string, f func() error) error {
	gen := a.gen.Load()
	if gen != 0 {
		err := f()
		if a.cfg.Method == "" || !isForbidden(err) {
			return err
		}
	}
	if a.refresh(ctx, gen) {
		if err := f(); !isForbidden(err) {
			return err
		}
	}
	return &TransitError{Op: op, Status: 403, Reason: "Vault refused the token and no new one was obtained", err: ErrUnavailable}
}

func isForbidden(err error) bool {
	var te *TransitError
	return errors.As(err, &te) && te.Status == 403
}

// refresh gets a new token when gen is still the current one, unless the last
// attempt was under reloginGap ago. It reports whether a newer token than gen is in use.
func (a *auth) refresh(ctx context.Context, gen uint64) bool {
	if !a.acquire(ctx) {
		return false
	}
	defer a.release()
	if a.gen.Load() != gen {
		return true
	}
	if time.Since(a.tried) < reloginGap {
		return false
	}
	if err := a.renewLocked(ctx); err != nil {
		a.report(EventLoginFailed, err)
	}
	return a.gen.Load() != gen
}

// renewLocked logs in or re-reads token_file; the caller holds lock.
func (a *auth) renewLocked(ctx context.Context) error {
	a.tried = time.Now()
	if a.cfg.Method == AuthTokenFile {
		return a.readTokenFileLocked()
	}
	return a.loginLocked(ctx)
}

func (a *auth) setTokenLocked(token string) {
	a.c.SetToken(token)
	a.gen.Add(1)
	a.wake()
}

// readTokenFileLocked swaps in token_file's token when it is a new one.
func (a *auth) readTokenFileLocked() error {
	fi, err := os.Stat(a.cfg.TokenFile)
	if err != nil {
		return err
	}
	tok, err := readCredential(a.cfg.TokenFile)
	if err != nil {
		return err
	}
	a.stamp = fi
	if a.gen.Load() != 0 && tok == a.c.Token() {
		return nil
	}
	a.setTokenLocked(tok)
	a.report(EventTokenFileChanged, nil)
	return nil
}

// loginLocked logs in with a fresh token-less client (an unwrap sets the client's
// token) and credentials read now (rotated files and JWTs are picked up).
func (a *auth) loginLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	m, err := a.method()
	if err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	s, err := m.Login(ctx, cl)
	if err != nil {
		return loginErr(err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return &TransitError{Op: "login", Reason: "answer without a token", err: ErrUnavailable}
	}
	a.secret = s
	a.setTokenLocked(s.Auth.ClientToken)
	a.report(EventLogin, nil)
	return nil
}

// client is a copy of the transit client without its token.
func (a *auth) client() (*api.Client, error) {
	cl, err := a.c.CloneWithHeaders()
	if err != nil {
		return nil, &TransitError{Op: "login", Reason: "cannot copy the Vault client", err: ErrUnavailable}
	}
	cl.ClearToken()
	return cl, nil
}

// method builds the login from the credential files as they are now.
func (a *auth) method() (api.AuthMethod, error) {
	if a.cfg.Method == AuthKubernetes {
		k := a.cfg.Kubernetes
		jwt, err := readCredential(a.cfg.kubernetesJWTFile())
		if err != nil {
			return nil, err
		}
		return kubernetes.NewKubernetesAuth(k.Role, kubernetes.WithServiceAccountToken(jwt), kubernetes.WithMountPath(orDefault(k.Mount, "kubernetes")))
	}
	r := a.cfg.AppRole
	roleID, err := readCredential(r.RoleIDFile)
	if err != nil {
		return nil, err
	}
	secretID, err := readCredential(r.SecretIDFile)
	if err != nil {
		return nil, err
	}
	opts := []approle.LoginOption{approle.WithMountPath(orDefault(r.Mount, "approle"))}
	if r.WrappedSecretID {
		opts = append(opts, approle.WithWrappingToken())
	}
	return approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: secretID}, opts...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return strings.Trim(s, "/")
}

// loginErr keeps a login failure's status or class, never Vault's text (it can
// quote the request).
func loginErr(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		e := transitStatusErr("login", re.StatusCode)
		if e.err == nil {
			e.Reason = "credentials refused"
		}
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) || isNetTimeout(err) {
		return &TransitError{Op: "login", Reason: "timeout", err: ErrTimeout}
	}
	return &TransitError{Op: "login", Reason: "no answer", err: ErrUnavailable}
}

// start gets the first token now and keeps it valid in the background until
// ctx ends. It returns the first attempt's error; the background goes on trying.
func (a *auth) start(ctx context.Context) error {
	if a.cfg.Method == "" || a.started.Swap(true) {
		return nil
	}
	var err error
	if a.acquire(ctx) {
		err = a.renewLocked(ctx)
		a.release()
	}
	if a.cfg.Method == AuthTokenFile {
		go a.watchFile(ctx)
	} else {
		go a.keepLoggedIn(ctx)
	}
	return err
}

// watchFile re-reads token_file when its identity, size or mtime change (Vault
// Agent renames a new sink file into place; Kubernetes swaps a symlink).
func (a *auth) watchFile(ctx context.Context) {
	tick := time.NewTicker(a.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !a.acquire(ctx) {
			return
		}
		if fi, err := os.Stat(a.cfg.TokenFile); err != nil || a.stamp == nil || !os.SameFile(fi, a.stamp) ||
			!fi.ModTime().Equal(a.stamp.ModTime()) || fi.Size() != a.stamp.Size() {
			if err := a.readTokenFileLocked(); err != nil {
				a.report(EventTokenFileFailed, err)
			}
		}
		a.release()
	}
}

// keepLoggedIn renews the logged-in token and logs in again when renewal ends,
// with exponential backoff (and jitter) while logins fail.
func (a *auth) keepLoggedIn(ctx context.Context) {
	backoff := minLoginBackoff
	for ctx.Err() == nil {
		if s := a.current(ctx); s != nil {
			a.watch(ctx, s)
			continue
		}
		if !a.acquire(ctx) {
			return
		}
		err := a.renewLocked(ctx)
		a.release()
		if err == nil {
			backoff = minLoginBackoff
			continue
		}
		a.report(EventLoginFailed, err)
		sleep(ctx, backoff/2+rand.N(backoff/2))
		backoff = min(2*backoff, maxLoginBackoff)
	}
}

func (a *auth) current(ctx context.Context) *api.Secret {
	if !a.acquire(ctx) {
		return nil
	}
	defer a.release()
	return a.secret
}

// watch renews s until its lifetime watcher stops (renewal failed, max TTL near),
// another login replaced it, or ctx ends.
func (a *auth) watch(ctx context.Context, s *api.Secret) {
	cl, err := a.client()
	if err != nil {
		a.forget(ctx, s)
		return
	}
	behavior := api.RenewBehaviorErrorOnErrors
	if !s.Auth.Renewable {
		behavior = api.RenewBehaviorIgnoreErrors // waits out the TTL (an error would loop at once)
	}
	w, err := cl.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s, Increment: s.Auth.LeaseDuration, RenewBehavior: behavior})
	if err != nil {
		a.forget(ctx, s)
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
			if a.current(ctx) != s {
				return
			}
		case <-w.RenewCh():
			a.report(EventRenewed, nil)
		case err := <-w.DoneCh():
			if err != nil {
				err = loginErr(err)
			}
			a.report(EventRenewalEnded, err)
			a.forget(ctx, s)
			return
		}
	}
}

// forget drops s so keepLoggedIn logs in again; the token stays in use meanwhile.
func (a *auth) forget(ctx context.Context, s *api.Secret) {
	if a.acquire(ctx) {
		if a.secret == s {
			a.secret = nil
		}
		a.release()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
