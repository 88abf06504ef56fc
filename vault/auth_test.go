package vault

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/internal/testenv"
)

// events records what Auth reports.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) report(event string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		event += ": " + err.Error()
	}
	e.list = append(e.list, event)
}

func (e *events) count(event string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.list {
		if strings.HasPrefix(s, event) {
			n++
		}
	}
	return n
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.list, "\n")
}

// authVault is a real Vault with chdproxy's keys (made with the root token), a
// token vault over a transit client that authenticates with auth, and what auth reported.
func authVault(t *testing.T, vs *testenv.VaultServer, auth AuthConfig) (*Vault, *events) {
	t.Helper()
	newVaultTransit(t, vs)
	ev := &events{}
	auth.Report = ev.report
	tr, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Auth: auth, Timeout: 5 * time.Second})
	noErr(t, err, "NewVaultTransit")
	ctx, cancel := context.WithCancel(bg)
	t.Cleanup(cancel)
	noErr(t, tr.Login(ctx), "Login")
	rdb := NewRedisClient(RedisOptions{Addrs: []string{testenv.Redis(t).Addr}})
	t.Cleanup(func() { rdb.Close() })
	v, err := New(Config{Transit: tr, Store: NewStore(rdb, StoreOptions{})})
	noErr(t, err, "New")
	return v, ev
}

// appRole makes the AppRole "chdproxy" with the shipped policy and token TTLs.
func appRole(t *testing.T, vs *testenv.VaultServer, ttl, maxTTL string) AuthConfig {
	t.Helper()
	roleID, secretID, err := vs.AppRole(t.TempDir(), "chdproxy", "chdproxy", string(deploy.VaultPolicyHCL), ttl, maxTTL)
	noErr(t, err, "AppRole set-up")
	return AuthConfig{Method: AuthAppRole, AppRole: &AppRoleAuth{RoleIDFile: roleID, SecretIDFile: secretID}}
}

func tokenize(t *testing.T, v *Vault) error {
	t.Helper()
	_, err := v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, holderName))
	return err
}

func TestAppRoleLoginThenTokenize(t *testing.T) {
	vs := testenv.Vault(t)
	v, ev := authVault(t, vs, appRole(t, vs, "1m", "10m"))
	noErr(t, tokenize(t, v), "TokenizeCard after an AppRole login")
	noErr(t, v.Ping(bg), "Ping")
	if got := ev.count(EventLogin); got != 1 {
		t.Errorf("got %d logins, want 1; events:\n%s", got, ev)
	}
}

// A 3s token must be renewed several times, and replaced by a new login when its
// 10s max TTL nears, while traffic never fails.
func TestShortTTLTokenIsRenewedAndReplacedWithoutAFailedCall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 13s")
	}
	vs := testenv.Vault(t)
	v, ev := authVault(t, vs, appRole(t, vs, "3s", "10s"))
	calls, failed := 0, 0
	for end := time.Now().Add(13 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		calls++
		if err := tokenize(t, v); err != nil {
			failed++
			t.Errorf("call %d: %v", calls, err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d calls failed; events:\n%s", failed, calls, ev)
	}
	if got := ev.count(EventRenewed); got < 2 {
		t.Errorf("got %d renewals, want at least 2; events:\n%s", got, ev)
	}
	if got := ev.count(EventLogin); got < 2 {
		t.Errorf("got %d logins, want at least 2 (a new login before the max TTL); events:\n%s", got, ev)
	}
}

func TestRevokedTokenLogsInAgainAndTrafficContinues(t *testing.T) {
	vs := testenv.Vault(t)
	cfg := appRole(t, vs, "1m", "10m")
	v, ev := authVault(t, vs, cfg)
	noErr(t, tokenize(t, v), "TokenizeCard")
	time.Sleep(reloginGap) // a token refused right after its login is a policy refusal: no re-login
	if n, err := vs.RevokeTokensWithPolicy("chdproxy"); err != nil || n != 1 {
		t.Fatalf("revoke: revoked %d, %v; want 1", n, err)
	}
	noErr(t, tokenize(t, v), "TokenizeCard after the token was revoked (one re-login, one retry)")
	if got := ev.count(EventLogin); got != 2 {
		t.Errorf("got %d logins, want 2; events:\n%s", got, ev)
	}

	// Revoked again, and the credentials no longer work: an outage (503), and
	// readiness says forbidden.
	time.Sleep(reloginGap)
	if err := os.WriteFile(cfg.AppRole.SecretIDFile, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := vs.RevokeTokensWithPolicy("chdproxy"); err != nil || n != 1 {
		t.Fatalf("revoke: revoked %d, %v; want 1", n, err)
	}
	err := tokenize(t, v)
	if !errors.Is(err, ErrUnavailable) || TransitFault(err) != FaultForbidden {
		t.Errorf("got %v (fault %q), want ErrUnavailable with fault %q", err, TransitFault(err), FaultForbidden)
	}
	if got := ev.count(EventLoginFailed); got < 1 {
		t.Errorf("no failed login reported; events:\n%s", ev)
	}
}

func TestTokenFileRewrittenWithANewTokenIsPickedUp(t *testing.T) {
	for _, c := range []struct {
		name string
		poll time.Duration
	}{
		{"by its periodic check, before any call is refused", 100 * time.Millisecond},
		{"at once when Vault refuses the old token", time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			vs := testenv.Vault(t)
			if err := vs.Do(http.MethodPut, "/v1/sys/policies/acl/chdproxy", map[string]any{"policy": string(deploy.VaultPolicyHCL)}, nil); err != nil {
				t.Fatal(err)
			}
			oldTok, newTok := childToken(t, vs), childToken(t, vs)
			file := filepath.Join(t.TempDir(), "vault-token")
			writeAtomically(t, file, oldTok)
			v, ev := authVault(t, vs, AuthConfig{Method: AuthTokenFile, TokenFile: file, PollInterval: c.poll})
			noErr(t, tokenize(t, v), "TokenizeCard with the first token")

			time.Sleep(reloginGap)
			writeAtomically(t, file, newTok) // as Vault Agent does: a new file renamed into place
			if c.poll < time.Second {
				waitFor(t, func() bool { return ev.count(EventTokenFileChanged) == 2 }, "the new token file read")
			}
			if err := vs.Do(http.MethodPost, "/v1/auth/token/revoke", map[string]any{"token": oldTok}, nil); err != nil {
				t.Fatal(err)
			}
			noErr(t, tokenize(t, v), "TokenizeCard after the old token was revoked")
			if got := ev.count(EventTokenFileChanged); got != 2 {
				t.Errorf("got %d token reads, want 2; events:\n%s", got, ev)
			}
		})
	}
}

func childToken(t *testing.T, vs *testenv.VaultServer) string {
	t.Helper()
	tok, err := vs.ChildToken([]string{"chdproxy"}, "10m")
	noErr(t, err, "create a token")
	return tok
}

func writeAtomically(t *testing.T, file, content string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// fakeK8sVault stands in for Vault (no Kubernetes API server here for Vault's
// kubernetes auth to review tokens with): it records each login and answers
// with token-1, token-2, …; HMAC calls answer 403 for tokens in refuse.
type fakeK8sVault struct {
	mu     sync.Mutex
	logins []map[string]string
	used   []string // the token of each HMAC call
	refuse []string
}

func (f *fakeK8sVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/v1/auth/k8s-prod/login":
		var in map[string]string
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.Header.Get("X-Vault-Token") != "" {
			http.Error(w, `{"errors":["bad login"]}`, http.StatusBadRequest)
			return
		}
		f.logins = append(f.logins, in)
		tok := "token-" + string(rune('0'+len(f.logins)))
		json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": tok, "lease_duration": 3600, "renewable": false}})
	case strings.HasPrefix(r.URL.Path, "/v1/transit/hmac/"):
		tok := r.Header.Get("X-Vault-Token")
		f.used = append(f.used, tok)
		if slices.Contains(f.refuse, tok) {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		io.WriteString(w, `{"data":{"batch_results":[{"hmac":"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}}`)
	default:
		http.NotFound(w, r)
	}
}

// The kubernetes method sends the role and the service account JWT as the file
// holds it at each login (Kubernetes rotates projected tokens), to its mount.
func TestKubernetesLoginSendsTheRoleAndTheCurrentJWT(t *testing.T) {
	f := &fakeK8sVault{refuse: []string{"token-1"}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	jwt := filepath.Join(t.TempDir(), "token")
	writeAtomically(t, jwt, "eyJhbGciOiJSUzI1NiJ9.first.sig")
	tr, err := NewVaultTransit(VaultTransitConfig{Address: srv.URL, Timeout: 2 * time.Second, Auth: AuthConfig{
		Method: AuthKubernetes, Kubernetes: &KubernetesAuth{Role: "chdproxy", JWTFile: jwt, Mount: "k8s-prod"},
	}})
	noErr(t, err, "NewVaultTransit")
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	noErr(t, tr.Login(ctx), "Login")
	writeAtomically(t, jwt, "eyJhbGciOiJSUzI1NiJ9.second.sig")
	time.Sleep(reloginGap)
	noErr(t, tr.Ping(bg), "Ping (token-1 refused: a new login, then a retry)")

	f.mu.Lock()
	defer f.mu.Unlock()
	want := []map[string]string{{"role": "chdproxy", "jwt": "eyJhbGciOiJSUzI1NiJ9.first.sig"}, {"role": "chdproxy", "jwt": "eyJhbGciOiJSUzI1NiJ9.second.sig"}}
	if len(f.logins) != 2 || !maps.Equal(f.logins[0], want[0]) || !maps.Equal(f.logins[1], want[1]) {
		t.Errorf("got logins %v, want %v", f.logins, want)
	}
	if !slices.Equal(f.used, []string{"token-1", "token-2"}) {
		t.Errorf("got HMAC calls with %q, want token-1 then token-2", f.used)
	}
}

func TestAuthConfigProblems(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  AuthConfig
		want []string // pieces of the problems, in order; none: valid
	}{
		{name: "a token file is valid", cfg: AuthConfig{Method: AuthTokenFile, TokenFile: "/t"}},
		{name: "AppRole with both files is valid", cfg: AuthConfig{Method: AuthAppRole, AppRole: &AppRoleAuth{RoleIDFile: "/r", SecretIDFile: "/s"}}},
		{name: "Kubernetes with a role is valid", cfg: AuthConfig{Method: AuthKubernetes, Kubernetes: &KubernetesAuth{Role: "chdproxy"}}},
		{name: "no method is refused", cfg: AuthConfig{}, want: []string{"method: use token_file, approle or kubernetes"}},
		{name: "an unknown method is refused", cfg: AuthConfig{Method: "userpass"}, want: []string{"method: use"}},
		{name: "a token file method without the file is refused", cfg: AuthConfig{Method: AuthTokenFile}, want: []string{"token_file: required"}},
		{name: "AppRole without the secret id file is refused", cfg: AuthConfig{Method: AuthAppRole, AppRole: &AppRoleAuth{RoleIDFile: "/r"}}, want: []string{"approle: role_id_file and secret_id_file"}},
		{name: "Kubernetes without a role is refused", cfg: AuthConfig{Method: AuthKubernetes, Kubernetes: &KubernetesAuth{}}, want: []string{"kubernetes.role: required"}},
		{name: "a bad mount is refused", cfg: AuthConfig{Method: AuthKubernetes, Kubernetes: &KubernetesAuth{Role: "r", Mount: "../x"}}, want: []string{"kubernetes.mount"}},
		{name: "two methods at once are refused, every problem listed", cfg: AuthConfig{Method: AuthAppRole, TokenFile: "/t", Kubernetes: &KubernetesAuth{Role: "r"}},
			want: []string{`token_file is given but method is "approle"`, `kubernetes is given but method is "approle"`, "approle: role_id_file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.cfg.Problems()
			if len(got) != len(c.want) {
				t.Fatalf("got %q, want %d problems %q", got, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d: got %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// A token file is put into a header: control characters, spaces and non-ASCII
// are refused (never quoted in the error), not sent.
func TestHostileTokenFileContentIsRefusedUnquoted(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"", " \n", "hvs.abc\r\nX-Evil: 1", "hvs.a b", "hvs.é", "hvs.\x00"} {
		file := filepath.Join(dir, "tok")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := readCredential(file)
		if !errors.Is(err, errNoCredential) {
			t.Errorf("%q: got %v, want errNoCredential", content, err)
		} else if strings.Contains(err.Error(), "hvs") {
			t.Errorf("%q: the error quotes the file: %v", content, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ok"), []byte("  hvs.CAESIabc-_.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readCredential(filepath.Join(dir, "ok")); err != nil || got != "hvs.CAESIabc-_." {
		t.Errorf("got %q, %v; want the trimmed token", got, err)
	}
}
