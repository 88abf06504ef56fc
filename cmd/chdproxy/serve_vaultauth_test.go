package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/smartpay"
)

// vault.auth: one method, the earlier token_file still accepted, every problem listed.
func TestServeVaultAuthConfig(t *testing.T) {
	const rest = `policy: policy.yaml
audit: stdout
listen: {collect: {addr: "127.0.0.1:1"}, forward: {addr: "127.0.0.1:2"}, admin: {addr: "127.0.0.1:3"}}
redis: {addrs: ["127.0.0.1:6379"]}
`
	for _, c := range []struct {
		name, vault string
		want        []string // pieces of the error; none: accepted
	}{
		{name: "the earlier token_file is accepted", vault: `{address: "https://v:8200", token_file: /t}`},
		{name: "auth token_file is accepted", vault: `{address: "https://v:8200", auth: {method: token_file, token_file: /t, poll_interval: 2s}}`},
		{name: "auth approle is accepted", vault: `{address: "https://v:8200", auth: {method: approle, approle: {role_id_file: /r, secret_id_file: /s, wrapped_secret_id: true}}}`},
		{name: "auth kubernetes is accepted", vault: `{address: "https://v:8200", auth: {method: kubernetes, kubernetes: {role: chdproxy}}}`},
		{name: "no credentials are refused", vault: `{address: "https://v:8200"}`, want: []string{"vault.auth: method: use token_file, approle or kubernetes"}},
		{name: "token_file and auth together are refused", vault: `{address: "https://v:8200", token_file: /t, auth: {method: kubernetes, kubernetes: {role: r}}}`,
			want: []string{"vault: give token_file or auth, not both"}},
		{name: "an unknown field of auth is refused", vault: `{address: "https://v:8200", auth: {method: approle, approle: {role_id: x}}}`, want: []string{"field role_id not found"}},
		{name: "every problem is listed at once", vault: `{auth: {method: approle, approle: {role_id_file: /r}, kubernetes: {role: r}}}`,
			want: []string{"vault.address: required", `vault.auth: kubernetes is given but method is "approle"`, "vault.auth: approle: role_id_file and secret_id_file are required"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "chdproxy.yaml")
			if err := os.WriteFile(file, []byte(rest+"vault: "+c.vault+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			wantConfigProblems(t, file, c.want)
		})
	}
}

// wantConfigProblems loads file and checks it is accepted (want empty) or refused
// with an error holding every piece of want; it returns that error.
func wantConfigProblems(t *testing.T, file string, want []string) error {
	t.Helper()
	_, err := loadServeConfig(file)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("got %v, want the config accepted", err)
		}
		return nil
	}
	if err == nil {
		t.Fatalf("got the config accepted, want an error with %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("got %q, want it to contain %q", err, w)
		}
	}
	return err
}

// bootstrapVault runs deploy/vault/bootstrap.sh on vs with the root token (and env's
// extra variables) and returns the folder with the AppRole's role_id and secret_id.
func bootstrapVault(t *testing.T, vs *testenv.VaultServer, env ...string) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("bash", "../../deploy/vault/bootstrap.sh", out)
	cmd.Env = append(append(testenv.ChildEnv(t.TempDir()), "VAULT="+testenv.VaultBin(), "VAULT_ADDR="+vs.Addr, "VAULT_TOKEN="+vs.Token), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bootstrap.sh: %v\n%s", err, b)
	}
	return out
}

// newVaultAuthEnv is serve's configuration on vs as bootstrap.sh left it (keys made,
// the shipped policy, no key admin: create_keys off), logging in with auth (a
// vault.auth mapping), on a real redis-server and the sandbox over TLS; the limits
// are out of the way of a load test.
func newVaultAuthEnv(t *testing.T, vs *testenv.VaultServer, auth string) *serveEnv {
	t.Helper()
	rs := testenv.Redis(t)
	sandbox := smartpay.NewSandbox(smartpay.Options{})
	t.Cleanup(func() { sandbox.Close() })
	up, caPEM := tlsUpstream(t, sandbox.Handler(), nil)
	dir, write := checkConfigFixture(t)
	polText := shippedPolicyFor(t, up.URL)
	e := &serveEnv{audit: filepath.Join(dir, "audit.jsonl"), pk: "pk_" + strings.Repeat("e", 32), sk: "sk_" + strings.Repeat("f", 32), redis: rs.Addr}
	for _, a := range []*string{&e.collect, &e.forward, &e.admin} {
		p, err := testenv.FreePort(false)
		if err != nil {
			t.Fatal(err)
		}
		*a = fmt.Sprintf("127.0.0.1:%d", p)
	}
	e.cfg = write("chdproxy.yaml", fmt.Sprintf(`policy: %s
audit: %s
listen: {collect: {addr: "%s"}, forward: {addr: "%s"}, admin: {addr: "%s"}}
vault: {address: "%s", auth: %s, create_keys: false, timeout: 5s}
redis: {addrs: ["%s"]}
idempotency: {secret_file: %s}
upstream: {ca_file: %s}
limits: {per_key_rate: 100000, per_key_burst: 100000, per_client_rate: 100000, per_client_burst: 100000}
shutdown: {delay: 0s}
merchants:
  - id: m1
    keys: [{role: publishable, digest: "%s"}, {role: secret, digest: "%s"}]
`, write("policy.yaml", polText), e.audit, e.collect, e.forward, e.admin, vs.Addr, auth, rs.Addr,
		write("idem", strings.Repeat("k", 40)), write("ca.pem", string(caPEM)), proxy.KeyDigest(e.pk), proxy.KeyDigest(e.sk)))
	return e
}

// serveInProcess runs serve on e's configuration in this process until t ends, and
// waits until it is ready (which takes a Vault login and a transit call).
func serveInProcess(t *testing.T, e *serveEnv) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", e.cfg}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v, want nil after its context ended", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s of its context ending")
		}
	})
	waitReady(t, "http://"+e.admin+"/readyz", done)
}

// tokenizeAndPay pays with tok, tokenizing a card first when tok is empty; it
// returns the token and the outcome of the first step that did not succeed ("" when
// both did).
func tokenizeAndPay(e *serveEnv, order, tok string) (_ string, op string, status int, code string) {
	if tok == "" {
		status, body, err := e.call("http://"+e.collect+"/v1/tokens", "Bearer "+e.pk, nil, successCard())
		if err != nil || status != http.StatusCreated {
			return "", "tokenize", status, answerCode(body, err)
		}
		tok, _ = body["token"].(string)
	}
	status, body, err := e.pay(order, tok, nil)
	if err != nil || status != http.StatusOK || body["status"] != 2.0 {
		return tok, "pay", status, answerCode(body, err)
	}
	return tok, "", status, ""
}

func successCard() map[string]string {
	return map[string]string{
		"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear,
		"card_cvv": testcards.CVV, "card_holder": testcards.Holder,
	}
}

// answerCode is the stable error code of an answer, or what went wrong instead.
func answerCode(body map[string]any, err error) string {
	if err != nil {
		return "transport: " + err.Error()
	}
	if e, ok := body["error"].(map[string]any); ok {
		code, _ := e["code"].(string)
		return code
	}
	return fmt.Sprintf("no error code (status field %v)", body["status"])
}

// loadOutcome is one payment attempt of the load test.
type loadOutcome struct {
	at          time.Time
	tok, op     string
	status      int
	code, order string
}

// Hostile: chdproxy's Vault token is revoked three times (the last right after a
// re-login) while 8 clients tokenize and
// pay as fast as they can (real Vault, AppRole from bootstrap.sh, the shipped
// policy). Every request either succeeds or gets a clean 503 vault_unavailable,
// and only within a few seconds of a revocation (one re-login); never a 500 or
// another error. A payment refused with 503 lost nothing: its CVV pays afterwards.
// Traffic after the last re-login succeeds.
func TestServeUnderLoadKeepsPayingWhenItsVaultTokenIsRevoked(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: load on a real Vault")
	}
	vs := testenv.Vault(t)
	creds := bootstrapVault(t, vs)
	e := newVaultAuthEnv(t, vs, fmt.Sprintf("{method: approle, approle: {role_id_file: %s, secret_id_file: %s}}",
		filepath.Join(creds, "role_id"), filepath.Join(creds, "secret_id")))
	serveInProcess(t, e)

	const workers, window = 8, 3 * time.Second // window: the re-login gap (1s), the login, slack for 2 cores
	pool := make(chan string, 60*workers)      // tokens made before: payments alone fill the first seconds
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range cap(pool) / workers {
				pool <- e.token(t)
			}
		})
	}
	wg.Wait()
	start, end := time.Now(), time.Now().Add(9*time.Second)
	var mu sync.Mutex
	var got []loadOutcome
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(end); i++ {
				order, tok := fmt.Sprintf("revoke-%d-%d", w, i), ""
				select {
				case tok = <-pool:
				default:
				}
				tok, op, status, code := tokenizeAndPay(e, order, tok)
				mu.Lock()
				got = append(got, loadOutcome{at: time.Now(), tok: tok, op: op, status: status, code: code, order: order})
				mu.Unlock()
			}
		})
	}
	revoked := revokeDuringLoad(t, vs, start)
	wg.Wait()

	paid, refused, repaid, late := 0, 0, 0, 0
	for _, o := range got {
		switch {
		case o.op == "":
			paid++
			if o.at.After(revoked[len(revoked)-1].Add(window)) {
				late++
			}
		case o.status == http.StatusServiceUnavailable && o.code == "vault_unavailable":
			refused++
			if !withinAWindow(o.at, revoked, window) {
				t.Errorf("%s %s: 503 at %v, not within %v of a revocation", o.op, o.order, o.at.Sub(start), window)
			}
			if o.op == "pay" {
				payAgain(t, e, o)
				repaid++
			}
		default:
			t.Errorf("%s %s: got %d %q, want success or 503 vault_unavailable", o.op, o.order, o.status, o.code)
		}
	}
	t.Logf("%d attempts: %d paid, %d refused with 503 (%d of them payments, paid again since); %d paid after the last re-login window",
		len(got), paid, refused, repaid, late)
	if late == 0 {
		t.Error("no payment succeeded after the last revocation: traffic did not continue after the re-login")
	}
	if paid < 2*workers {
		t.Errorf("only %d payments succeeded", paid)
	}
}

// revokeDuringLoad revokes chdproxy's token 1s after start, again at 2.5s, and
// the token of the re-login that follows as soon as it exists: a token refused
// under a second after its login is not replaced at once, so that one gives 503s
// until the next login. It returns when each revocation happened.
func revokeDuringLoad(t *testing.T, vs *testenv.VaultServer, start time.Time) []time.Time {
	t.Helper()
	var revoked []time.Time
	revoke := func() int {
		n, err := vs.RevokeTokensWithPolicy("chdproxy")
		if err != nil {
			t.Errorf("revoke: %v", err)
		}
		if n > 0 {
			revoked = append(revoked, time.Now())
		}
		return n
	}
	for _, after := range []time.Duration{time.Second, 2500 * time.Millisecond} {
		time.Sleep(time.Until(start.Add(after)))
		if revoke() < 1 {
			t.Errorf("revoke at %v: no token of chdproxy's", after)
		}
	}
	for deadline := time.Now().Add(3 * time.Second); revoke() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("no re-login within 3s of the second revocation")
			break
		}
	}
	return revoked
}

// payAgain pays again with a token whose payment was refused: its CVV must still be there.
func payAgain(t *testing.T, e *serveEnv, o loadOutcome) {
	t.Helper()
	status, body, err := e.pay(o.order+"-again", o.tok, nil)
	if err != nil || status != http.StatusOK || body["status"] != 2.0 {
		t.Errorf("%s: paying again after the 503: got %d %q, want success (the refusal must not spend the CVV)", o.order, status, answerCode(body, err))
	}
}

func withinAWindow(at time.Time, starts []time.Time, window time.Duration) bool {
	for _, s := range starts {
		if !at.Before(s) && at.Before(s.Add(window)) {
			return true
		}
	}
	return false
}

// serve's kubernetes method on a real Vault: bootstrap.sh configures Kubernetes
// auth (CHDPROXY_K8S_*) against a TokenReview endpoint over TLS; serve logs in
// with the service account JWT, works under the shipped policy (readiness, a
// payment), and logs in again after its token is revoked. Vault accepts no JWT
// of another service account, nor one the API server did not sign.
func TestServeLogsInWithKubernetesAuthOnARealVault(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	vs, k8s := testenv.Vault(t), testenv.TokenReview(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bootstrapVault(t, vs, "CHDPROXY_K8S_HOST="+k8s.URL, "CHDPROXY_K8S_CA_FILE="+write("k8s-ca.pem", string(k8s.CAPEM)))
	jwt := write("token", k8s.JWT("chdproxy", "chdproxy", "vault"))
	e := newVaultAuthEnv(t, vs, fmt.Sprintf("{method: kubernetes, kubernetes: {role: chdproxy, jwt_file: %s}}", jwt))
	serveInProcess(t, e)
	if _, op, status, code := tokenizeAndPay(e, "k8s-1", ""); op != "" {
		t.Fatalf("%s after the Kubernetes login: got %d %q", op, status, code)
	}
	reviews := k8s.Reviews()
	time.Sleep(time.Second) // a token refused right after its login is a policy refusal: no re-login
	if n, err := vs.RevokeTokensWithPolicy("chdproxy"); err != nil || n != 1 {
		t.Fatalf("revoke: revoked %d, %v; want 1", n, err)
	}
	if _, op, status, code := tokenizeAndPay(e, "k8s-2", ""); op != "" {
		t.Fatalf("%s after the token was revoked: got %d %q, want a re-login and success", op, status, code)
	}
	if k8s.Reviews() <= reviews {
		t.Error("no new TokenReview after the revocation: serve did not log in again")
	}

	for name, token := range map[string]string{
		"another service account":           k8s.JWT("chdproxy", "intruder", "vault"),
		"another namespace":                 k8s.JWT("default", "chdproxy", "vault"),
		"another audience":                  k8s.JWT("chdproxy", "chdproxy", "other"),
		"a JWT the API server did not sign": k8s.JWT("chdproxy", "chdproxy", "vault")[:40] + "x.y.z",
	} {
		err := vs.Do(http.MethodPost, "/v1/auth/kubernetes/login", map[string]any{"role": "chdproxy", "jwt": token}, nil)
		if err == nil {
			t.Errorf("%s: Vault logged it in", name)
		}
	}
}
