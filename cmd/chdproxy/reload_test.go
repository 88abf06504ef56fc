package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
)

// testConfig is a serve configuration file in a folder of the test's: its files
// (policy, secrets, audit trail) and every setting but the merchants.
type testConfig struct {
	t                       *testing.T
	dir, path               string
	collect, forward, admin string // listen addresses on loopback
	base                    string
}

// newTestConfig points a configuration at Redis and Vault (any address: the
// commands that connect to it need it up); extra settings are added to it.
func newTestConfig(t *testing.T, redisAddr, vaultAddr, vaultToken, extra string) *testConfig {
	c := &testConfig{t: t, dir: t.TempDir()}
	c.path = filepath.Join(c.dir, "chdproxy.yaml")
	for _, a := range []*string{&c.collect, &c.forward, &c.admin} {
		p, err := testenv.FreePort(false)
		if err != nil {
			t.Fatal(err)
		}
		*a = fmt.Sprintf("127.0.0.1:%d", p)
	}
	c.base = fmt.Sprintf(`policy: ../../deploy/policy.yaml
audit: %s
listen: {collect: {addr: "%s"}, forward: {addr: "%s"}, admin: {addr: "%s"}}
vault: {address: "%s", token_file: %s, create_keys: true, timeout: 5s}
redis: {addrs: ["%s"]}
idempotency: {secret_file: %s}
%s`, filepath.Join(c.dir, "audit.jsonl"), c.collect, c.forward, c.admin, vaultAddr, c.file("vault-token", vaultToken),
		redisAddr, c.file("idem", strings.Repeat("k", 40)), extra)
	return c
}

// file writes a file of the configuration and returns its path.
func (c *testConfig) file(name, content string) string {
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// write (re)writes the configuration file with these merchants (YAML list items).
func (c *testConfig) write(extra, merchants string) string {
	return c.file("chdproxy.yaml", c.base+extra+"merchants:\n"+merchants)
}

// audit is the audit trail's records, and its raw bytes.
func (c *testConfig) audit() ([]map[string]any, []byte) {
	b, err := os.ReadFile(filepath.Join(c.dir, "audit.jsonl"))
	if err != nil && !os.IsNotExist(err) {
		c.t.Fatal(err)
	}
	var recs []map[string]any
	for line := range bytes.SplitSeq(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if len(line) > 0 && json.Unmarshal(line, &m) == nil {
			recs = append(recs, m)
		}
	}
	return recs, b
}

// events is the audit records of event.
func events(recs []map[string]any, event string) []map[string]any {
	return slices.DeleteFunc(slices.Clone(recs), func(r map[string]any) bool { return r["event"] != event })
}

// merchantWithKey is a merchant list of m1 with one publishable key.
func merchantWithKey(id, pk string) string {
	return fmt.Sprintf("  - id: %s\n    keys: [{role: publishable, digest: %q}]\n", id, proxy.KeyDigest(pk))
}

// A leaked key is revoked without a restart: serve runs with key A; the file gets
// key B instead; at SIGHUP A gets a 401 and B works. A broken file changes nothing
// (B keeps working). Start, both reloads and stop are on the audit trail, without
// a digest, and a changed setting that needs a restart is named.
func TestSIGHUPReloadsTheKeysAndMerchantsOfServe(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	rs, vs := testenv.Redis(t), testenv.Vault(t)
	c := newTestConfig(t, rs.Addr, vs.Addr, vs.Token, "")
	keyA, keyB := "pk_"+strings.Repeat("a", 32), "pk_"+strings.Repeat("c", 32)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", c.write("", merchantWithKey("m1", keyA))}) }()
	defer cancel()
	waitReady(t, "http://"+c.admin+"/readyz", done)

	tokenize := func(pk string) int {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth,
			"card_exp_year": testcards.ExpYear, "card_cvv": testcards.CVV})
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.collect+"/v1/tokens", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+pk)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	want := func(step string, a, b int) {
		t.Helper()
		if gotA, gotB := tokenize(keyA), tokenize(keyB); gotA != a || gotB != b {
			t.Fatalf("%s: key A got %d, key B got %d; want %d and %d", step, gotA, gotB, a, b)
		}
	}
	hup := func(n int) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if recs, _ := c.audit(); len(events(recs, "reload")) == n {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("no reload record %d within 10s of SIGHUP", n)
			}
		}
	}
	want("at start", http.StatusCreated, http.StatusUnauthorized)
	c.write("limits: {per_key_rate: 50}\n", merchantWithKey("m1", keyB))
	hup(1)
	want("after the reload", http.StatusUnauthorized, http.StatusCreated)
	c.write("", merchantWithKey("m 1", keyA))
	hup(2)
	want("after a broken file", http.StatusUnauthorized, http.StatusCreated)

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	recs, raw := c.audit()
	reloads := events(recs, "reload")
	ok, failed := reloads[0], reloads[1]
	if d, _ := ok["detail"].(map[string]any); ok["outcome"] != "success" || d["merchants"] != 1.0 || d["keys"] != 1.0 ||
		fmt.Sprint(d["restart_needed"]) != "[limits]" {
		t.Errorf("the reload record: got %v, want success, 1 merchant, 1 key, restart_needed [limits]", ok)
	}
	if failed["outcome"] != "failure" || failed["code"] != "invalid_config" {
		t.Errorf("the refused reload's record: got %v, want failure invalid_config", failed)
	}
	start, stop := events(recs, "start"), events(recs, "stop")
	if len(start) != 1 || len(stop) != 1 || start[0]["detail"].(map[string]any)["version"] == nil || stop[0]["outcome"] != "success" {
		t.Errorf("start and stop records: got %v and %v, want one each, start with the version", start, stop)
	}
	if recs[0]["event"] != "start" || recs[len(recs)-1]["event"] != "stop" {
		t.Errorf("the trail runs from %v to %v, want from start to stop", recs[0]["event"], recs[len(recs)-1]["event"])
	}
	for _, k := range []string{keyA, keyB} {
		if d := proxy.KeyDigest(k); bytes.Contains(raw, []byte(d[7:])) || bytes.Contains(raw, []byte(k)) {
			t.Errorf("the audit trail holds a key or its digest")
		}
	}
}

// waitReady waits for url to answer 200, failing when serve stopped (done).
func waitReady(t *testing.T, url string, done <-chan error) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve never became ready")
		}
	}
}
