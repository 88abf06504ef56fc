package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeVault is an httptest transit endpoint: it records what arrived and
// answers with a canned status and body.
type fakeVault struct {
	mu     sync.Mutex
	status int
	body   string
	delay  time.Duration
	got    []*http.Request
	bodies []string
	srv    *httptest.Server
}

func newFakeVault(t *testing.T, status int, body string) *fakeVault {
	f := &fakeVault{status: status, body: body}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, r)
		f.bodies = append(f.bodies, string(b))
		status, body, delay := f.status, f.body, f.delay
		f.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVault) transit(t *testing.T, timeout time.Duration) *VaultTransit {
	t.Helper()
	tr, err := NewVaultTransit(VaultTransitConfig{Address: f.srv.URL, Token: "s.explicit", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (f *fakeVault) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

const leakyBody = `{"errors":["1 error occurred:\n\t* secret 4012000000003010 m_alpha at http://vault/v1/transit\n\n"]}`

func TestVaultTransitMapsStatusesToErrors(t *testing.T) {
	for _, tc := range []struct {
		status       int
		wantSentinel error // nil: refused request, not an outage
	}{
		{http.StatusServiceUnavailable, ErrUnavailable}, // sealed
		{http.StatusInternalServerError, ErrUnavailable},
		{http.StatusBadGateway, ErrUnavailable},
		{http.StatusTooManyRequests, ErrUnavailable},
		{http.StatusForbidden, nil},
		{http.StatusNotFound, nil},
		{http.StatusBadRequest, nil},
	} {
		t.Run(fmt.Sprintf("status %d", tc.status), func(t *testing.T) {
			f := newFakeVault(t, tc.status, leakyBody)
			_, err := f.transit(t, time.Second).Encrypt(bg, KeyCard, []EncryptItem{{Plaintext: []byte(visaPAN), Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
			var te *TransitError
			if !errors.As(err, &te) || te.Status != tc.status {
				t.Fatalf("got %v, want a TransitError with status %d", err, tc.status)
			}
			if tc.wantSentinel != nil && !errors.Is(err, tc.wantSentinel) {
				t.Fatalf("got %v, want it to match %v", err, tc.wantSentinel)
			}
			if tc.wantSentinel == nil && errors.Is(err, ErrUnavailable) {
				t.Fatalf("got %v matching ErrUnavailable for a refused request", err)
			}
			clean(t, err, f.srv.URL, "127.0.0.1", "secret", "error occurred")
			if f.requests() != 1 {
				t.Fatalf("got %d requests, want 1 (no retries)", f.requests())
			}
		})
	}
}

func TestVaultTransitTimesOutWithErrTimeout(t *testing.T) {
	f := newFakeVault(t, 200, `{}`)
	f.delay = 2 * time.Second
	tr := f.transit(t, 100*time.Millisecond)
	start := time.Now()
	_, err := tr.Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: "vault:v1:AAAA", Context: []byte("m")}})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrTimeout (which is also ErrUnavailable)", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v, want about the 100ms timeout", d)
	}
	clean(t, err, f.srv.URL)

	// A caller that gave up is not an outage.
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err = tr.Decrypt(ctx, KeyCard, []DecryptItem{{Ciphertext: "vault:v1:AAAA", Context: []byte("m")}})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want context.Canceled and not ErrUnavailable", err)
	}
}

func TestVaultTransitUnreachableIsErrUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tr, err := NewVaultTransit(VaultTransitConfig{Address: "http://" + addr, Token: "s.x"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = tr.HMAC(bg, []HMACItem{{Context: []byte("m_alpha"), Input: []byte(visaPAN)}})
	wantErr(t, err, ErrUnavailable, "HMAC with nothing listening")
	clean(t, err, addr)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v to fail, want fast", d)
	}
}

func TestVaultTransitSendsBatchesWithExplicitSettingsOnly(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "s.from-env")
	t.Setenv("VAULT_NAMESPACE", "env-ns")
	t.Setenv("VAULT_HEADERS", `{"X-From-Env":"1"}`)
	t.Setenv("VAULT_MAX_RETRIES", "5")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	f := newFakeVault(t, 200, `{"data":{"batch_results":[{"ciphertext":"vault:v3:AAAA","key_version":3},{"error":"bad"}]}}`)
	tr := f.transit(t, time.Second)
	res, err := tr.Encrypt(bg, KeyCVV, []EncryptItem{
		{Plaintext: []byte("737"), Context: []byte("m_alpha"), AAD: []byte("tok_a")},
		{Plaintext: []byte("123"), Context: []byte("m_alpha"), AAD: []byte("tok_b")},
	})
	noErr(t, err, "Encrypt")
	if res[0].Ciphertext != "vault:v3:AAAA" || res[0].KeyVersion != 3 || res[0].Err != nil {
		t.Fatalf("got first result %+v", res[0])
	}
	var te *TransitError
	if !errors.As(res[1].Err, &te) || errors.Is(res[1].Err, ErrIntegrity) {
		t.Fatalf("got second result error %v, want a refused-item TransitError", res[1].Err)
	}

	r := f.got[0]
	if r.URL.Path != "/v1/transit/encrypt/"+defaultCVVKeyName {
		t.Fatalf("got path %q", r.URL.Path)
	}
	if r.Header.Get("X-Vault-Token") != "s.explicit" || r.Header.Get("X-Vault-Namespace") != "" || r.Header.Get("X-From-Env") != "" {
		t.Fatalf("got token %q namespace %q env header %q: the environment leaked in",
			r.Header.Get("X-Vault-Token"), r.Header.Get("X-Vault-Namespace"), r.Header.Get("X-From-Env"))
	}
	if r.Header.Get("X-Vault-Request") != "true" {
		t.Fatal("the X-Vault-Request header is missing")
	}
	var body struct {
		BatchInput []map[string]string `json:"batch_input"`
		Partial    int                 `json:"partial_failure_response_code"`
	}
	if err := json.Unmarshal([]byte(f.bodies[0]), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"plaintext": "NzM3", "context": "bV9hbHBoYQ==", "associated_data": "dG9rX2E="}
	if len(body.BatchInput) != 2 || fmt.Sprint(body.BatchInput[0]) != fmt.Sprint(want) || body.Partial != 200 {
		t.Fatalf("got request body %s, want a batch of 2 whose first item is %v", f.bodies[0], want)
	}

	// Namespaces are sent when configured.
	ns, err := NewVaultTransit(VaultTransitConfig{Address: f.srv.URL, Token: "s.explicit", Namespace: "team-a"})
	noErr(t, err, "NewVaultTransit")
	ns.Encrypt(bg, KeyCard, []EncryptItem{{Plaintext: []byte("x"), Context: []byte("m")}})
	if got := f.got[1].Header.Get("X-Vault-Namespace"); got != "team-a" {
		t.Fatalf("got namespace %q, want team-a", got)
	}
}

func TestVaultTransitPerItemFailuresOn400(t *testing.T) {
	f := newFakeVault(t, 400, `{"data":{"batch_results":[{"error":"cipher: message authentication failed"}]}}`)
	res, err := f.transit(t, time.Second).Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: "vault:v1:AAAA", Context: []byte("m")}})
	noErr(t, err, "Decrypt")
	wantErr(t, res[0].Err, ErrIntegrity, "item Vault could not authenticate")
	clean(t, res[0].Err, "message authentication failed")

	// A 400 without batch results is a refused request.
	f2 := newFakeVault(t, 400, `{"errors":["encryption key not found"]}`)
	_, err = f2.transit(t, time.Second).Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: "vault:v1:AAAA", Context: []byte("m")}})
	var te *TransitError
	if !errors.As(err, &te) || te.Status != 400 {
		t.Fatalf("got %v, want a 400 TransitError", err)
	}
	// So is an answer with the wrong number of results.
	f3 := newFakeVault(t, 200, `{"data":{"batch_results":[]}}`)
	_, err = f3.transit(t, time.Second).Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: "vault:v1:AAAA", Context: []byte("m")}})
	wantErr(t, err, ErrUnavailable, "answer with no results")
}

func TestVaultTransitHMACSendsScopedInputAndParsesVersions(t *testing.T) {
	f := newFakeVault(t, 200, `{"data":{"batch_results":[{"hmac":"vault:v2:AQID"},{"hmac":"garbage"}]}}`)
	res, err := f.transit(t, time.Second).HMAC(bg, []HMACItem{{Context: []byte("m_alpha"), Input: []byte("in")}, {Context: []byte("m"), Input: []byte("x")}})
	noErr(t, err, "HMAC")
	if string(res[0].Sum) != "\x01\x02\x03" || res[0].KeyVersion != 2 || res[1].Err == nil {
		t.Fatalf("got results %+v", res)
	}
	if !strings.Contains(f.bodies[0], `"input":"bV9hbHBoYQBpbg=="`) { // "m_alpha\x00in"
		t.Fatalf("got body %s, want input = base64(merchant 0x00 input)", f.bodies[0])
	}
	if f.got[0].URL.Path != "/v1/transit/hmac/"+defaultHMACKeyName+"/sha2-256" {
		t.Fatalf("got path %q", f.got[0].URL.Path)
	}
}

func TestNewVaultTransitChecksItsConfig(t *testing.T) {
	for name, cfg := range map[string]VaultTransitConfig{
		"no address":         {Token: "t"},
		"not a URL":          {Address: "vault:8200", Token: "t"},
		"credentials in URL": {Address: "https://u:p@vault", Token: "t"},
		"no token":           {Address: "https://vault"},
		"bad mount":          {Address: "https://vault", Token: "t", Mount: "../sys"},
		"bad key":            {Address: "https://vault", Token: "t", CardKey: "a/b"},
		"same card/cvv key":  {Address: "https://vault", Token: "t", CardKey: "k", CVVKey: "k"},
		"bad CA":             {Address: "https://vault", Token: "t", CACertPEM: []byte("not pem")},
		"missing CA file":    {Address: "https://vault", Token: "t", CACertFile: "/nonexistent/ca.pem"},
	} {
		if _, err := NewVaultTransit(cfg); err == nil {
			t.Errorf("%s: NewVaultTransit accepted it", name)
		}
	}
	tr, err := NewVaultTransit(VaultTransitConfig{Address: "https://vault.internal:8200/", Token: "s.secret-token"})
	noErr(t, err, "NewVaultTransit")
	for _, s := range []string{fmt.Sprint(tr), fmt.Sprintf("%+v", tr), fmt.Sprintf("%#v", tr)} {
		if strings.Contains(s, "s.secret-token") {
			t.Fatalf("%q prints the token", s)
		}
	}
}

func TestVaultTransitTrustsTheConfiguredCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data":{"batch_results":[{"hmac":"vault:v1:AQID"}]}}`)
	}))
	defer srv.Close()
	// Without the CA: the certificate is refused (no answer → ErrUnavailable).
	plain, err := NewVaultTransit(VaultTransitConfig{Address: srv.URL, Token: "t"})
	noErr(t, err, "NewVaultTransit")
	wantErr(t, plain.Ping(bg), ErrUnavailable, "Ping of an untrusted certificate")

	ca := pemOf(srv.Certificate().Raw)
	trusted, err := NewVaultTransit(VaultTransitConfig{Address: srv.URL, Token: "t", CACertPEM: ca})
	noErr(t, err, "NewVaultTransit")
	noErr(t, trusted.Ping(bg), "Ping with the CA configured")
}
