package testenv

import (
	"net/http"
	"testing"
	"time"
)

func TestRedisStartsAnswersAndStops(t *testing.T) {
	r := Redis(t)
	if err := redisPing(r.Addr); err != nil {
		t.Fatalf("PING: %v", err)
	}
	r.Stop()
	r.Stop() // twice is fine
	if err := redisPing(r.Addr); err == nil {
		t.Fatal("PING answered after Stop")
	}
}

func TestVaultStartsWithTransitAndSeals(t *testing.T) {
	v := Vault(t)
	if err := v.Do(http.MethodPost, "/v1/transit/keys/probe", map[string]any{"type": "aes256-gcm96"}, nil); err != nil {
		t.Fatalf("create a transit key: %v", err)
	}
	var out struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"data"`
	}
	if err := v.Do(http.MethodPost, "/v1/transit/encrypt/probe", map[string]any{"plaintext": "aGVsbG8="}, &out); err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	if out.Data.Ciphertext == "" {
		t.Fatal("encrypt returned no ciphertext")
	}
	if err := v.Seal(); err != nil {
		t.Fatalf("seal: %v", err)
	}
	err := v.healthy()
	if err == nil {
		t.Fatal("health is OK after Seal")
	}
}

func TestFreePortPairIsFree(t *testing.T) {
	start := time.Now()
	p, err := FreePort(true)
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p >= 65535 {
		t.Fatalf("got port %d", p)
	}
	if time.Since(start) > time.Second {
		t.Fatal("freePort is slow")
	}
}
