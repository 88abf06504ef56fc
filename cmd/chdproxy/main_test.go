package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/proxy"
)

func TestTheExampleServeConfigLoads(t *testing.T) {
	cfg, err := loadServeConfig("../../deploy/chdproxy.example.yaml")
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if got, want := len(cfg.Merchants[0].Keys), 3; got != want {
		t.Fatalf("got %d keys, want %d", got, want)
	}
}

func TestServeConfigRejectsUnknownKeysAndListsMissingOnes(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key": "policy: p.yaml\nvault: {address: x, token_file: y, tokn: z}\n",
		"missing":     "policy: p.yaml\n",
	} {
		f := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadServeConfig(f); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}

func TestServeRefusesPlainTextListenersOffLoopback(t *testing.T) {
	if _, err := tlsListener("collect", listenConfig{Addr: ":8443"}); err == nil {
		t.Fatal("got no error for a plain-text listener on all interfaces")
	}
	if wrap, err := tlsListener("admin", listenConfig{Addr: "127.0.0.1:9090"}); err != nil || wrap != nil {
		t.Fatalf("loopback admin: got (%v, %v), want plain text allowed", wrap != nil, err)
	}
}

func TestPolicyLintExitsZeroOnTheShippedPolicyAndOneOnAnUnsafeOne(t *testing.T) {
	if err := runPolicy([]string{"lint", "../../deploy/policy.yaml"}); err != nil {
		t.Fatalf("shipped policy: got %v, want no error", err)
	}
	b, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	unsafe := strings.Replace(string(b), "https://chd-api.smartcore.pro", "http://chd-api.smartcore.pro", 1)
	unsafe = strings.Replace(unsafe, "cvv_ttl: 10m", "cvv_ttl: 2h", 1)
	f := filepath.Join(t.TempDir(), "unsafe.yaml")
	if err := os.WriteFile(f, []byte(unsafe), 0o600); err != nil {
		t.Fatal(err)
	}
	var ec exitCode
	if err := runPolicy([]string{"lint", f}); !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("unsafe policy: got %v, want exit status 1", err)
	}
}

func TestKeysFromTheEnvironmentAuthenticate(t *testing.T) {
	keys := &proxy.Keys{}
	env := "m1:secret:" + proxy.KeyDigest("sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") + ", m1:secret:" + proxy.KeyDigest("sk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	if err := addEnvKeys(keys, env); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"} {
		if got, err := keys.Authenticate(k, proxy.RoleSecret); err != nil || got.Merchant != "m1" {
			t.Errorf("got (%v, %v), want merchant m1", got, err)
		}
	}
	if err := addEnvKeys(keys, "m1:secret:"+proxy.KeyDigest("sk_third")); err == nil {
		t.Error("a third secret key for one merchant: got no error, want one (two per role for rotation)")
	}
	if err := addEnvKeys(keys, "m1:secret"); err == nil {
		t.Error("a malformed item: got no error, want one")
	}
}
