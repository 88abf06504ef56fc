package proxy_test

// The backend the harness runs on, chosen once per test binary by
// CHDPROXY_SUITE_BACKEND: unset (or "miniredis") is miniredis and the dev
// cipher; "real" is a redis-server per harness and one Vault dev server for
// the whole run (`make test` runs the hostile suite a second time that way).
// One Vault per run, not per test: a Vault dev server takes seconds to start,
// a redis-server milliseconds.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/vault"
)

const backendEnv = "CHDPROXY_SUITE_BACKEND"

// suiteReal is set by TestMain when backendEnv is "real".
var suiteReal bool

func TestMain(m *testing.M) {
	switch b := os.Getenv(backendEnv); b {
	case "", "miniredis":
	case "real":
		suiteReal = true
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: want \"real\" or \"miniredis\" (or unset)\n", backendEnv, b)
		os.Exit(2)
	}
	code := m.Run()
	stopSuiteVault(code != 0)
	os.Exit(code)
}

// suiteVault is the run's Vault dev server in the real mode, started by the
// first harness that needs it; its transit has a per-call deadline like
// production's, and faultTransit wraps it in each harness.
var suiteVault struct {
	once    sync.Once
	dir     string
	server  *testenv.VaultServer
	transit vault.Transit
	err     error
}

// suiteTransit returns the run's Vault transit, starting the server on first
// use. Without a Vault binary it skips t, or fails it under CI=true, as
// internal/testenv does.
func suiteTransit(t testing.TB) vault.Transit {
	t.Helper()
	suiteVault.once.Do(startSuiteVault)
	var me *testenv.MissingError
	switch err := suiteVault.err; {
	case err == nil:
		return suiteVault.transit
	case errors.As(err, &me) && os.Getenv("CI") != "true":
		t.Skipf("%s=real: %s; skipping", backendEnv, me.What)
	case errors.As(err, &me):
		t.Fatalf("%s=real: %s (CI=true: the real backend must not be skipped)", backendEnv, me.What)
	default:
		t.Fatalf("%s=real: the suite's Vault: %v", backendEnv, err)
	}
	return nil
}

func startSuiteVault() {
	s := &suiteVault
	if s.dir, s.err = os.MkdirTemp("", "chdproxy-suite-vault-"); s.err != nil {
		return
	}
	if s.server, s.err = testenv.StartVault(s.dir); s.err != nil {
		return
	}
	s.transit, s.err = transitOf(s.server, 5*time.Second)
}

// stopSuiteVault stops the run's Vault, if one was started, showing its
// output when the run failed, and removes its folder.
func stopSuiteVault(failed bool) {
	s := &suiteVault
	if s.server != nil {
		s.server.Stop()
		if failed {
			fmt.Fprintf(os.Stderr, "the suite's Vault output:\n%s\n", s.server.Output())
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// A harness runs on the backend the switch names: a suite that silently fell
// back to miniredis and the dev cipher would prove nothing about the real ones.
func TestHostileHarness_RunsOnTheChosenBackend(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.cardToken(t, testcards.Success, testcards.CVV)
	if real := h.rs != nil && h.mr == nil; real != suiteReal {
		t.Errorf("a redis-server: got %v, want %v", real, suiteReal)
	}
	if dev := h.transit.DevOnly(); dev == suiteReal {
		t.Errorf("the dev cipher: got %v, want %v", dev, !suiteReal)
	}
	want, other := "dev:v", "vault:v" // each transit's ciphertext form
	if suiteReal {
		want, other = other, want
	}
	keys := h.recKeys()
	if len(keys) != 2 {
		t.Fatalf("got %d record keys, want a card and a CVV record", len(keys))
	}
	for _, k := range keys {
		v := h.rdb.Get(context.Background(), k).Val()
		if !strings.Contains(v, want) || strings.Contains(v, other) {
			t.Errorf("%s holds no %q ciphertext", k, want)
		}
	}
}
