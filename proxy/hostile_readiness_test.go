package proxy_test

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/vault"
)

// Readiness names the dependency that failed and how, so on-call knows whether
// to unseal Vault, renew a token or restart Redis. Each case breaks one thing
// on a real Vault or redis-server where one exists.

// wantReady checks /readyz answers status with exactly body, within the 2s
// readiness deadline plus slack.
func (h *harness) wantReady(t *testing.T, status int, body string) {
	t.Helper()
	start := time.Now()
	r := h.do(t, http.MethodGet, h.admin+"/readyz", nil, nil)
	if r.status != status || string(r.body) != body+"\n" {
		t.Errorf("readyz: got %d %s, want %d %s", r.status, r.body, status, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("readyz answered after %s, want under 3s", d)
	}
}

const readyBody = `{"status":"ready","checks":{"vault":"ok","redis":"ok","audit":"ok"}}`

func TestHostile_ReadinessVaultForbidden(t *testing.T) {
	_, vs := realVault(t, 2*time.Second)
	for _, c := range []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"a token without chdproxy's policy", func(t *testing.T) string { return childToken(t, vs, []string{"default"}) }},
		{"a revoked token", func(t *testing.T) string {
			tok := childToken(t, vs, []string{"root"})
			if err := vs.Do(http.MethodPost, "/v1/auth/token/revoke", map[string]any{"token": tok}, nil); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			return tok
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{Address: vs.Addr, Token: c.token(t), Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, harnessOptions{transit: tr})
			h.wantReady(t, http.StatusServiceUnavailable, `{"status":"unavailable","checks":{"vault":"forbidden","redis":"ok","audit":"ok"}}`)
		})
	}
}

// childToken makes a token with policies (and no default policy unless named).
func childToken(t *testing.T, vs interface {
	Do(method, path string, in, out any) error
}, policies []string) string {
	t.Helper()
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	in := map[string]any{"policies": policies, "no_default_policy": true, "ttl": "10m"}
	if err := vs.Do(http.MethodPost, "/v1/auth/token/create", in, &out); err != nil || out.Auth.ClientToken == "" {
		t.Fatalf("create a token: %v", err)
	}
	return out.Auth.ClientToken
}

func TestHostile_ReadinessVaultTimeout(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.transit.setHang(5 * time.Second)
	h.wantReady(t, http.StatusServiceUnavailable, `{"status":"unavailable","checks":{"vault":"timeout","redis":"ok","audit":"ok"}}`)
}

// One dependency down never hides the state of the other: each is checked apart.
func TestHostile_ReadinessOneDownTheOtherStillChecked(t *testing.T) {
	for _, c := range []struct {
		name string
		stop func(h *harness, vs interface{ Stop() })
		want string
	}{
		{"vault stopped", func(_ *harness, vs interface{ Stop() }) { vs.Stop() },
			`{"status":"unavailable","checks":{"vault":"unreachable","redis":"ok","audit":"ok"}}`},
		{"redis stopped", func(h *harness, _ interface{ Stop() }) { h.closeRedis() },
			`{"status":"unavailable","checks":{"vault":"ok","redis":"unreachable","audit":"ok"}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, vs := realVault(t, 2*time.Second)
			h := newHarness(t, harnessOptions{transit: tr, realRedis: true})
			h.wantReady(t, http.StatusOK, readyBody)
			c.stop(h, vs)
			h.wantReady(t, http.StatusServiceUnavailable, c.want)
		})
	}
}

func TestHostile_ReadinessRedisHungIsTimeout(t *testing.T) {
	h := newHarness(t, harnessOptions{realRedis: true})
	h.wantReady(t, http.StatusOK, readyBody)
	if err := syscall.Kill(h.rs.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(h.rs.Pid(), syscall.SIGCONT)
	h.wantReady(t, http.StatusServiceUnavailable, `{"status":"unavailable","checks":{"vault":"ok","redis":"timeout","audit":"ok"}}`)
}

func TestHostile_ReadinessRedisRefusesCredentials(t *testing.T) {
	needsMiniredis(t, "RequireAuth")
	h := newHarness(t, harnessOptions{})
	h.mr.RequireAuth("a password chdproxy was not given")
	h.wantReady(t, http.StatusServiceUnavailable, `{"status":"unavailable","checks":{"vault":"ok","redis":"auth_failed","audit":"ok"}}`)
}
