package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testenv"
)

// Integration: the same suite against a real redis-server, with LocalCipher
// and with a real Vault dev server. Missing binaries skip (fail under CI=true).

// newVaultTransit returns a VaultTransit on vs with its keys created.
func newVaultTransit(t testing.TB, vs *testenv.VaultServer) *VaultTransit {
	t.Helper()
	tr, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Token: vs.Token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("NewVaultTransit: %v", err)
	}
	if err := tr.EnsureKeys(bg); err != nil {
		t.Fatalf("EnsureKeys: %v", err)
	}
	return tr
}

// redisStarter starts a real Redis for t: how to reach it, and how to kill it.
type redisStarter func(t testing.TB) (RedisOptions, func())

func singleRedis(t testing.TB) (RedisOptions, func()) {
	rs := testenv.Redis(t)
	return RedisOptions{Addrs: []string{rs.Addr}}, rs.Stop
}

// realEnvs returns a newEnvFunc on real servers, one redis-server.
func realEnvs(parent *testing.T, withVault bool) newEnvFunc {
	return realEnvsOn(parent, withVault, singleRedis)
}

// realEnvsOn returns a newEnvFunc on real servers, Redis from startRedis.
// Servers shared by the subtests start once, with parent; dedicated ones per subtest.
func realEnvsOn(parent *testing.T, withVault bool, startRedis redisStarter) newEnvFunc {
	sharedRedis, _ := startRedis(parent)
	var sharedVault *testenv.VaultServer
	var sharedTransit Transit
	if withVault {
		sharedVault = testenv.Vault(parent)
		sharedTransit = newVaultTransit(parent, sharedVault)
	}
	return func(t *testing.T, o envOptions) *env {
		ropts, tr := sharedRedis, sharedTransit
		stop := func() { t.Fatal("stopRedis needs a dedicated env") }
		var vs *testenv.VaultServer
		if o.dedicated {
			ropts, stop = startRedis(t)
		}
		if withVault && o.ownTransit {
			vs = testenv.Vault(t)
			tr = newVaultTransit(t, vs)
		}
		if !withVault {
			lc, err := NewLocalCipher()
			if err != nil {
				t.Fatal(err)
			}
			tr = lc
		}
		rdb := NewRedisClient(ropts)
		t.Cleanup(func() { rdb.Close() })
		prefix := "it" + strconv.FormatInt(envSeq.Add(1), 10)
		e := buildEnv(t, o, rdb, tr, prefix, func(d time.Duration) { time.Sleep(d) })
		e.stopRedis = stop
		e.sealTransit = func() {
			if vs == nil {
				if withVault {
					t.Fatal("sealTransit needs an env with its own transit")
				}
				for _, op := range []string{"encrypt:card", "encrypt:cvv", "decrypt:card", "decrypt:cvv", "hmac", "ping"} {
					e.faults.fail(op, &TransitError{Op: op, Status: 503, Reason: "sealed (simulated)", err: ErrUnavailable})
				}
				return
			}
			if err := vs.Seal(); err != nil {
				t.Fatalf("seal: %v", err)
			}
		}
		return e
	}
}

func TestSuiteRedisServerLocalCipher(t *testing.T) {
	runSuite(t, realEnvs(t, false))
}

func TestSuiteRedisServerVault(t *testing.T) {
	runSuite(t, realEnvs(t, true))
}

// The fingerprint is exactly transit HMAC-SHA256 of merchant || 0x00 || PAN
// under the fingerprint key: checked against Vault's own answer.
func TestVaultFingerprintIsTransitHMACOfMerchantAndPAN(t *testing.T) {
	vs := testenv.Vault(t)
	rs := testenv.Redis(t)
	tr := newVaultTransit(t, vs)
	rdb := NewRedisClient(RedisOptions{Addrs: []string{rs.Addr}})
	defer rdb.Close()
	v, err := New(Config{Transit: tr, Store: NewStore(rdb, StoreOptions{})})
	noErr(t, err, "New")
	m, err := v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, "", ""))
	noErr(t, err, "TokenizeCard")

	var out struct {
		Data struct {
			HMAC string `json:"hmac"`
		} `json:"data"`
	}
	in := base64.StdEncoding.EncodeToString([]byte("m_alpha\x00" + visaPAN))
	if err := vs.Do(http.MethodPost, "/v1/transit/hmac/"+defaultHMACKeyName+"/sha2-256", map[string]any{"input": in}, &out); err != nil {
		t.Fatal(err)
	}
	sum, ver, ok := parseVaultValue(out.Data.HMAC)
	if !ok || ver != 1 {
		t.Fatalf("got Vault HMAC %q", out.Data.HMAC)
	}
	if want := fingerprint(HMACResult{Sum: sum}); m.Fingerprint != want {
		t.Fatalf("got fingerprint %q, want %q", m.Fingerprint, want)
	}
}

func TestVaultTransitAgainstVault(t *testing.T) {
	vs := testenv.Vault(t)
	tr := newVaultTransit(t, vs)

	t.Run("EnsureKeys made derived aes256-gcm96 keys and an hmac key, and is idempotent", func(t *testing.T) {
		for name, want := range map[string]string{defaultCardKeyName: "aes256-gcm96", defaultCVVKeyName: "aes256-gcm96", defaultHMACKeyName: "hmac"} {
			var out struct {
				Data struct {
					Type    string `json:"type"`
					Derived bool   `json:"derived"`
				} `json:"data"`
			}
			if err := vs.Do(http.MethodGet, "/v1/transit/keys/"+name, nil, &out); err != nil {
				t.Fatal(err)
			}
			if out.Data.Type != want || (want != "hmac" && !out.Data.Derived) {
				t.Fatalf("key %s: got type %q derived %v, want %q derived", name, out.Data.Type, out.Data.Derived, want)
			}
		}
		if err := tr.EnsureKeys(bg); err != nil {
			t.Fatalf("second EnsureKeys: %v", err)
		}
	})

	t.Run("EnsureKeys refuses a non-derived card key", func(t *testing.T) {
		if err := vs.Do(http.MethodPost, "/v1/transit/keys/flat", map[string]any{"type": "aes256-gcm96"}, nil); err != nil {
			t.Fatal(err)
		}
		bad, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Token: vs.Token, CardKey: "flat"})
		noErr(t, err, "NewVaultTransit")
		if err := bad.EnsureKeys(bg); err == nil {
			t.Fatal("EnsureKeys accepted a non-derived card key")
		}
	})

	t.Run("a batch answers per item; a bad item does not fail the others", func(t *testing.T) {
		enc, err := tr.Encrypt(bg, KeyCard, []EncryptItem{
			{Plaintext: []byte(visaPAN), Context: []byte("m_alpha"), AAD: []byte("tok_a")},
			{Plaintext: []byte(mcPAN), Context: []byte("m_alpha"), AAD: []byte("tok_b")},
		})
		noErr(t, err, "Encrypt")
		for _, r := range enc {
			noErr(t, r.Err, "Encrypt item")
			if !isCiphertext(r.Ciphertext) || r.KeyVersion != 1 {
				t.Fatalf("got ciphertext %q version %d", r.Ciphertext, r.KeyVersion)
			}
		}
		dec, err := tr.Decrypt(bg, KeyCard, []DecryptItem{
			{Ciphertext: enc[0].Ciphertext, Context: []byte("m_alpha"), AAD: []byte("tok_a")},
			{Ciphertext: enc[1].Ciphertext, Context: []byte("m_alpha"), AAD: []byte("tok_a")}, // wrong AAD
			{Ciphertext: enc[1].Ciphertext, Context: []byte("m_beta"), AAD: []byte("tok_b")},  // wrong merchant
		})
		noErr(t, err, "Decrypt (partial failure)")
		if string(dec[0].Plaintext) != visaPAN || dec[0].Err != nil {
			t.Fatal("the good item of a partly failed batch did not decrypt")
		}
		wantErr(t, dec[1].Err, ErrIntegrity, "item with another token's AAD")
		wantErr(t, dec[2].Err, ErrIntegrity, "item with another merchant's context")

		// Every item failing: Vault answers 400 with batch_results.
		dec, err = tr.Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: enc[1].Ciphertext, Context: []byte("m_alpha"), AAD: []byte("tok_x")}})
		noErr(t, err, "Decrypt (all items failing)")
		wantErr(t, dec[0].Err, ErrIntegrity, "only item with a wrong AAD")

		// The CVV key does not open card ciphertexts.
		dec, err = tr.Decrypt(bg, KeyCVV, []DecryptItem{{Ciphertext: enc[0].Ciphertext, Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
		noErr(t, err, "Decrypt with the CVV key")
		wantErr(t, dec[0].Err, ErrIntegrity, "card ciphertext under the CVV key")
	})

	t.Run("a refused request keeps its status and drops Vault's text", func(t *testing.T) {
		other, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Token: vs.Token, HMACKey: "no-such-key"})
		noErr(t, err, "NewVaultTransit")
		_, err = other.HMAC(bg, []HMACItem{{Context: []byte("m_alpha"), Input: []byte(visaPAN)}})
		var te *TransitError
		if !errors.As(err, &te) || te.Status != http.StatusBadRequest || errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want a 400 TransitError that is not ErrUnavailable", err)
		}
		clean(t, err, vs.Addr, "no-such-key", "127.0.0.1", "not found")

		wrongToken, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Token: "s.bogus"})
		noErr(t, err, "NewVaultTransit")
		err = wrongToken.Ping(bg)
		if !errors.As(err, &te) || te.Status != http.StatusForbidden {
			t.Fatalf("got %v, want a 403 TransitError", err)
		}
		clean(t, err, vs.Addr, "permission denied")
	})

	t.Run("VAULT_* environment variables change nothing", func(t *testing.T) {
		t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
		t.Setenv("VAULT_TOKEN", "s.from-the-environment")
		t.Setenv("VAULT_NAMESPACE", "elsewhere")
		t.Setenv("VAULT_MAX_RETRIES", "7")
		t.Setenv("VAULT_HEADERS", `{"X-Injected":"yes"}`)
		t.Setenv("VAULT_AGENT_ADDR", "http://127.0.0.1:2")
		t.Setenv("HTTPS_PROXY", "http://127.0.0.1:3")
		t.Setenv("HTTP_PROXY", "http://127.0.0.1:3")
		explicit, err := NewVaultTransit(VaultTransitConfig{Address: vs.Addr, Token: vs.Token})
		noErr(t, err, "NewVaultTransit")
		noErr(t, explicit.Ping(bg), "Ping with hostile VAULT_* variables")
	})

	t.Run("a sealed Vault is ErrUnavailable, fast", func(t *testing.T) {
		own := testenv.Vault(t)
		otr := newVaultTransit(t, own)
		noErr(t, otr.Ping(bg), "Ping before sealing")
		if err := own.Seal(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := otr.Encrypt(bg, KeyCard, []EncryptItem{{Plaintext: []byte(visaPAN), Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
		var te *TransitError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &te) || te.Status != http.StatusServiceUnavailable {
			t.Fatalf("got %v, want a 503 TransitError matching ErrUnavailable", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a sealed Vault took %v to refuse, want under 1s (no retries)", d)
		}
		clean(t, err, own.Addr)
		own.Stop()
		_, err = otr.Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: "vault:v1:AAAA", Context: []byte("m_alpha")}})
		wantErr(t, err, ErrUnavailable, "Decrypt with Vault stopped")
	})

	t.Run("a caller deadline is ErrTimeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(bg, time.Nanosecond)
		defer cancel()
		time.Sleep(time.Millisecond)
		_, err := tr.HMAC(ctx, []HMACItem{{Context: []byte("m"), Input: []byte("x")}})
		wantErr(t, err, ErrTimeout, "HMAC past the deadline")
	})
}

// BenchmarkTokenizeCardRealVault measures TokenizeCard on a real Vault and
// redis-server (3 concurrent transit calls + 1 Redis round trip each).
func BenchmarkTokenizeCardRealVault(b *testing.B) {
	vs, rs := testenv.Vault(b), testenv.Redis(b)
	tr := newVaultTransit(b, vs)
	rdb := NewRedisClient(RedisOptions{Addrs: []string{rs.Addr}})
	defer rdb.Close()
	v, err := New(Config{Transit: tr, Store: NewStore(rdb, StoreOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	in := mustCard(b, visaPAN, visaCVV, holderName)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.TokenizeCard(bg, "m_alpha", in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
