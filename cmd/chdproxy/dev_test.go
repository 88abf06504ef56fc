//go:build !production

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
)

// TestDevTokenizesAndPaysWithTheKeysOfDevJSON is `make run` in a test: dev starts,
// writes dev.json, tokenizes the sandbox's success card with the publishable key, pays
// with the secret key, and nothing it prints or logs holds the PAN or the CVV.
func TestDevTokenizesAndPaysWithTheKeysOfDevJSON(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	for range 5 {
		p, err := testenv.FreePort(false)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	var out, logs testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dev(ctx, []string{"--state-dir", dir, "--collect-addr", addrs[0], "--forward-addr", addrs[1],
			"--admin-addr", addrs[2], "--sandbox-addr", addrs[3], "--demo-addr", addrs[4]}, &out, &logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev returned %v, want nil after the context ended", err)
		}
		for _, secret := range []string{testcards.Success, `"` + testcards.CVV + `"`, "=" + testcards.CVV} {
			if strings.Contains(out.String()+logs.String(), secret) {
				t.Errorf("dev's output or logs hold %s", secret)
			}
		}
		audit, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
		if len(audit) == 0 || bytes.Contains(audit, []byte(testcards.Success)) {
			t.Errorf("audit.jsonl: got %d bytes, want records without the PAN", len(audit))
		}
	}()

	var st devState
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, "dev.json"))
		if err == nil && json.Unmarshal(b, &st) == nil {
			if resp, err := http.Get(st.AdminURL + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("dev did not come up within 10s")
		}
	}
	if want := "http://localhost:" + strings.TrimPrefix(addrs[4], "127.0.0.1:") + "/"; st.CheckoutURL != want {
		t.Errorf("checkout_url: got %q, want %q (the demo's origin, as registered)", st.CheckoutURL, want)
	}
	post := func(url, hdr, key string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if hdr == "Proxy-Authorization" { // the backend's own SmartPayments credentials go upstream
			req.Header.Set("Authorization", testcards.BasicAuth)
		}
		req.Header.Set(hdr, "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status, tok := post(st.CollectURL+"/v1/tokens", "Authorization", st.PublishableKey, map[string]string{
		"card_number": testcards.Success, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear, "card_cvv": testcards.CVV,
	})
	card, _ := tok["card"].(map[string]any)
	last4 := testcards.Success[len(testcards.Success)-4:]
	if status != http.StatusCreated || card["last4"] != last4 || card["brand"] != "visa" || !strings.HasPrefix(fmt.Sprint(tok["token"]), "tok_") {
		t.Fatalf("tokenize: got %d %v, want 201 with last4 %s, brand visa and a tok_ id", status, tok, last4)
	}
	id := tok["token"].(string)
	status, paid := post(st.ForwardURL+"/initPaymentHost2Host", "Proxy-Authorization", st.SecretKey, map[string]any{
		"account": "EUR-sandbox", "amount": 1000, "currency": "EUR", "order_id": "dev-1", "merchant_site": "https://merchant.site",
		"customer_first_name": "John", "customer_last_name": "Doe", "customer_address": "10 Downing Street",
		"customer_city": "London", "customer_zip_code": "121165", "customer_country": "GB", "customer_phone": "+442079460612",
		"customer_email": "john@example.com", "customer_ip_address": "127.0.0.1", "card_holder": testcards.Holder,
		"card_number": id, "card_cvv": id,
	})
	if status != http.StatusOK || paid["status"] != 2.0 {
		t.Fatalf("pay: got %d %v, want 200 with status 2", status, paid)
	}
}

// TestDevRefusesListenAddressesOffLoopback: dev runs the dev cipher, so each of
// its listeners stays on this machine. The context is already over: without
// the check dev would start, stop at once and return nil.
func TestDevRefusesListenAddressesOffLoopback(t *testing.T) {
	for _, tt := range []struct{ flag, addr string }{
		{"--collect-addr", "0.0.0.0:0"},
		{"--forward-addr", ":0"},
		{"--admin-addr", "[::]:0"},
		{"--sandbox-addr", "192.0.2.1:0"},
		{"--demo-addr", "0.0.0.0:3000"},
		{"--collect-addr", "shop.example:0"},
		{"--forward-addr", "127.0.0.1"}, // no port: not an address at all
	} {
		t.Run(tt.flag+" "+tt.addr, func(t *testing.T) {
			args := []string{"--state-dir", t.TempDir()}
			for _, f := range []string{"--collect-addr", "--forward-addr", "--admin-addr", "--sandbox-addr", "--demo-addr"} {
				if f != tt.flag {
					args = append(args, f, "127.0.0.1:0")
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := dev(ctx, append(args, tt.flag, tt.addr), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.flag+" ") || !strings.Contains(err.Error(), "loopback only") {
				t.Errorf("got %v, want an error naming %s and loopback", err, tt.flag)
			}
		})
	}
}
