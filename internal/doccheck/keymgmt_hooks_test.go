package doccheck

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
)

// hooks are what the test does before a block (what the reader does between the
// commands: edit the configuration, have a token) and the checks after it that
// the block did what the page says.
func (e *keyMgmtEnv) hooks() (before map[string]func(), after map[string]func(out string)) {
	var oldSecretID, oldIdem, oldRedis string
	before = map[string]func(){
		"setup":              func() { e.writeConfig(e.sk) },
		"rotate-transit":     func() { e.env["TOKEN_ID"] = e.tokenize() },
		"api-key-retire":     func() { e.writeConfig(e.skNew) },
		"idempotency-secret": func() { oldIdem = e.readSecret("idempotency-secret") },
		"vault-credentials":  func() { oldSecretID = e.readSecret("secret_id") },
		"redis-credentials":  func() { oldRedis = e.redisUser() },
		"purge":              e.seedOffboardedMerchant,
	}
	after = map[string]func(string){
		"setup": func(string) {
			e.startServe()
			e.env["TOKEN_ID"] = e.tokenize()
		},
		"rotate-transit": func(out string) {
			e.match(out, `rewrap: \d+ scanned, [1-9]\d* rewrapped, \d+ already current, \d+ skipped \(changed meanwhile\), 0 failed`)
			for _, k := range []string{"chdproxy-card", "chdproxy-cvv"} {
				if latest, _, _ := e.keyInfo(k); latest != 2 {
					e.t.Fatalf("%s: latest version %d after the rotation, want 2", k, latest)
				}
			}
		},
		"retire-transit": func(out string) {
			e.match(out, `rewrap: (\d+) scanned, 0 rewrapped, (\d+) already current, 0 skipped \(changed meanwhile\), 0 failed`)
			for _, k := range []string{"chdproxy-card", "chdproxy-cvv"} {
				latest, minDec, versions := e.keyInfo(k)
				if minDec != latest || !slices.Equal(versions, []string{strconv.Itoa(latest)}) {
					e.t.Fatalf("%s: min_decryption_version %d, versions %q; want %d and only it kept", k, minDec, versions, latest)
				}
			}
			e.tokenize() // encryption goes on under the newest version
		},
		"rotate-fingerprint": func(string) {
			if latest, _, _ := e.keyInfo("chdproxy-fingerprint"); latest != 2 {
				e.t.Fatalf("chdproxy-fingerprint: latest version %d, want 2", latest)
			}
			e.eventually("readyz after the fingerprint rotation (its check is an HMAC)", 5*time.Second,
				func() error { return e.status(http.MethodGet, e.admin+"/readyz", "", "", 200) })
		},
		"api-key-issue":  e.checkIssuedKey,
		"api-key-reload": func(string) { e.checkKeys(map[string]int{e.sk: 200, e.skNew: 200}) },
		"api-key-retire": func(string) { e.checkKeys(map[string]int{e.sk: 401, e.skNew: 200}) },
		"idempotency-secret": func(string) {
			if s := e.readSecret("idempotency-secret"); len(s) < 32 || s == oldIdem {
				e.t.Fatalf("idempotency secret: %d characters, changed %v; want at least 32 and a new one", len(s), s != oldIdem)
			}
		},
		"tls-key": func(string) {
			for _, f := range []string{"forward.chdproxy.test.key", "forward.chdproxy.test.csr"} {
				if st, err := os.Stat(filepath.Join(e.dir, "work", f)); err != nil || st.Size() == 0 {
					e.t.Fatalf("%s: %v; want the new key and its request", f, err)
				}
			}
		},
		"vault-credentials": func(string) { e.checkVaultCredentials(oldSecretID) },
		"redis-credentials": func(string) { e.checkRedisPasswords(oldRedis) },
		"token-delete": func(string) {
			if err := e.status(http.MethodGet, e.forward+"/v1/tokens/"+e.env["TOKEN_ID"], e.skNew, "", 404); err != nil {
				e.t.Fatalf("the deleted token: %v", err)
			}
		},
		"purge": e.checkPurged,
		"vault-barrier": func(string) {
			e.eventually("readyz after the barrier rotation", 5*time.Second,
				func() error { return e.status(http.MethodGet, e.admin+"/readyz", "", "", 200) })
		},
	}
	return before, after
}

// match fails the test unless out matches the pattern.
func (e *keyMgmtEnv) match(out, pattern string) {
	e.t.Helper()
	if !regexp.MustCompile(pattern).MatchString(out) {
		e.t.Fatalf("output %q: want a line matching %q", out, pattern)
	}
}

// checkIssuedKey reads the key `keys generate` wrote and puts its digest next to
// the old one, as the page tells the reader to.
func (e *keyMgmtEnv) checkIssuedKey(string) {
	work := filepath.Join(e.dir, "work")
	key, err := os.ReadFile(filepath.Join(work, "sk.new"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.skNew = strings.TrimSpace(string(key))
	digest, err := os.ReadFile(filepath.Join(work, "sk.digest"))
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.HasPrefix(e.skNew, "sk_") || len(e.skNew) != 35 || !strings.Contains(string(digest), proxy.KeyDigest(e.skNew)) {
		e.t.Fatalf("keys generate: key of %d characters, digest line %q; want sk_ + 32 and its digest", len(e.skNew), digest)
	}
	e.writeConfig(e.sk, e.skNew)
}

// checkKeys waits until each secret key gets its status on the forward listener.
func (e *keyMgmtEnv) checkKeys(want map[string]int) {
	e.t.Helper()
	e.eventually("keys after SIGHUP", 10*time.Second, func() error {
		for key, code := range want {
			if err := e.status(http.MethodGet, e.forward+"/v1/tokens/"+e.env["TOKEN_ID"], key, "", code); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkVaultCredentials: the old secret_id no longer logs in, and serve, its
// token revoked, logs in again with the new one and tokenizes.
func (e *keyMgmtEnv) checkVaultCredentials(old string) {
	if s := e.readSecret("secret_id"); s == old || s == "" {
		e.t.Fatal("secret_id: unchanged")
	}
	err := e.vs.Do(http.MethodPost, "/v1/auth/approle/login", map[string]any{"role_id": e.readSecret("role_id"), "secret_id": old}, nil)
	if err == nil {
		e.t.Fatal("login with the destroyed secret_id: succeeded, want refused")
	}
	body := `{"card_number":"` + testcards.Success + `","card_exp_month":"12","card_exp_year":"2031"}`
	e.eventually("tokenize after the Vault token was revoked", 15*time.Second, func() error {
		return e.status(http.MethodPost, e.collect+"/v1/tokens", e.pk, body, http.StatusCreated)
	})
}

// redisUser makes the ACL user chdproxy with a password in $SECRETS, as the
// deployment has it (the test's serve itself uses the default user).
func (e *keyMgmtEnv) redisUser() string {
	pw := testenv.RandomHex(16)
	if err := os.WriteFile(filepath.Join(e.secrets, "redis-password"), []byte(pw), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if out, err := e.redisCLI("ACL", "SETUSER", "chdproxy", "on", ">"+pw, "~chd:*", "+@all"); err != nil || out != "OK" {
		e.t.Fatalf("ACL SETUSER: %q, %v", out, err)
	}
	return pw
}

// checkRedisPasswords: the new password authenticates user chdproxy, the old one not.
func (e *keyMgmtEnv) checkRedisPasswords(old string) {
	auth := func(pw string) string {
		out, _ := e.redisCLI("--no-auth-warning", "--user", "chdproxy", "--pass", pw, "PING")
		return out
	}
	nw := e.readSecret("redis-password")
	if nw == old || auth(nw) != "PONG" || auth(old) == "PONG" {
		e.t.Fatalf("redis passwords: new (%d characters) answers %q, old answers %q; want PONG and a refusal", len(nw), auth(nw), auth(old))
	}
}

// seedOffboardedMerchant writes keys of merchant m_gone (no longer in the
// configuration) and one of m1 that the purge must leave.
func (e *keyMgmtEnv) seedOffboardedMerchant() {
	for _, k := range []string{"chd:rec:m_gone:{tok_a}", "chd:idem:m_gone:k:x", "chd:rec:m1:{tok_keep}"} {
		if out, err := e.redisCLI("SET", k, "x"); err != nil || out != "OK" {
			e.t.Fatalf("SET %s: %q, %v", k, out, err)
		}
	}
}

// checkPurged: m_gone's keys are gone, m1's stays, the purge is on the audit trail.
func (e *keyMgmtEnv) checkPurged(out string) {
	for k, want := range map[string]string{"chd:rec:m_gone:{tok_a}": "0", "chd:idem:m_gone:k:x": "0", "chd:rec:m1:{tok_keep}": "1"} {
		if got, err := e.redisCLI("EXISTS", k); err != nil || got != want {
			e.t.Errorf("after purge, EXISTS %s: %q (%v), want %s", k, got, err, want)
		}
	}
	audit, err := os.ReadFile(filepath.Join(e.dir, "audit.jsonl"))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, want := range []string{`"event":"purge","outcome":"attempt"`, `"event":"purge","outcome":"success"`, `"operator":"key-custodian"`} {
		if !strings.Contains(string(audit), want) {
			e.t.Errorf("audit trail: no %s", want)
		}
	}
	if !strings.Contains(out, "purged merchant m_gone:") {
		e.t.Errorf("purge output %q: want the count line", out)
	}
}
