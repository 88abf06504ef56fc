package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// loadLimits lift the per-key and per-client rate limits, which a load run from one
// key and one address would hit.
var loadLimits = proxy.Limits{PerKeyRate: 1e6, PerKeyBurst: 1e6, PerClientRate: 1e6, PerClientBurst: 1e6, Upstream: 256, Vault: 256, SlotWait: time.Second}

// loadResult is what one tokenize request of a load run got.
type loadResult struct {
	status  int
	code    string
	token   string
	elapsed time.Duration
}

// tokenizeLoad runs workers that tokenize as fast as they can until stop closes, and
// returns every answer. Transport errors count as status 0.
func tokenizeLoad(h *harness, workers int, stop <-chan struct{}) []loadResult {
	body, _ := json.Marshal(cardFields(testcards.Success, testcards.CVV))
	var (
		mu  sync.Mutex
		out []loadResult
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, h.collect+"/v1/tokens", strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+h.keys[merchantA][proxy.RolePublishable])
				start := time.Now()
				res := loadResult{}
				resp, err := testClient.Do(req)
				if err == nil {
					var m struct {
						Token string `json:"token"`
						Error struct {
							Code string `json:"code"`
						} `json:"error"`
					}
					_ = json.NewDecoder(resp.Body).Decode(&m)
					resp.Body.Close()
					res = loadResult{status: resp.StatusCode, code: m.Error.Code, token: m.Token}
				}
				res.elapsed = time.Since(start)
				mu.Lock()
				out = append(out, res)
				mu.Unlock()
			}
		})
	}
	<-stop
	wg.Wait()
	return out
}

// checkOutageAnswers asserts that every answer of a load run through an outage was a
// success or a clean 503/504 with a stable code, fast, and that some of each happened.
func checkOutageAnswers(t *testing.T, res []loadResult) (tokens []string) {
	t.Helper()
	var ok, unavailable int
	for _, r := range res {
		switch {
		case r.status == http.StatusCreated && vault.ValidTokenID(r.token):
			ok++
			tokens = append(tokens, r.token)
		case (r.status == http.StatusServiceUnavailable || r.status == http.StatusGatewayTimeout) &&
			(r.code == "vault_unavailable" || r.code == "vault_timeout" || r.code == "vault_busy"):
			unavailable++
		default:
			t.Errorf("got status %d code %q, want 201 or a clean 503/504", r.status, r.code)
		}
		if r.elapsed > 6*time.Second {
			t.Errorf("an answer took %s, want fast failure", r.elapsed.Round(time.Millisecond))
		}
	}
	if ok == 0 || unavailable == 0 {
		t.Errorf("got %d tokens and %d 503/504s, want both (the outage must fall inside the run)", ok, unavailable)
	}
	t.Logf("%d requests: %d tokens, %d clean 503/504", len(res), ok, unavailable)
	return tokens
}

// TestOutageDuringLoadGivesClean503sAndNoHalfWrittenTokens seals a real Vault, and
// kills a real redis-server, in the middle of a tokenize load run.
func TestOutageDuringLoadGivesClean503sAndNoHalfWrittenTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	t.Run("Vault sealed mid-run: every stored record belongs to a 201", func(t *testing.T) {
		transit, vs := realVault(t, 2*time.Second)
		h := newHarness(t, harnessOptions{transit: transit, realRedis: true, limits: loadLimits})

		stop := make(chan struct{})
		go func() {
			time.Sleep(700 * time.Millisecond)
			if err := vs.Seal(); err != nil {
				t.Errorf("seal: %v", err)
			}
			time.Sleep(700 * time.Millisecond)
			close(stop)
		}()
		tokens := checkOutageAnswers(t, tokenizeLoad(h, 8, stop))

		// No half-written token: the records in Redis are exactly the 201s, each whole.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		records, err := h.rdb.Keys(ctx, "chd:rec:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		cvvs, err := h.rdb.Keys(ctx, "chd:cvv:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(records) != len(tokens) || len(cvvs) != len(tokens) {
			t.Errorf("got %d records and %d CVVs in Redis, want %d of each (one per 201)", len(records), len(cvvs), len(tokens))
		}
		joined := strings.Join(records, " ")
		for _, tok := range tokens {
			if !strings.Contains(joined, tok) {
				t.Errorf("token %s was answered 201 but has no record", tok)
			}
		}
	})

	t.Run("redis-server killed mid-run: fast 503s, and tokens answered 201 were written", func(t *testing.T) {
		h := newHarness(t, harnessOptions{realRedis: true, limits: loadLimits})

		var before []string
		stop := make(chan struct{})
		go func() {
			time.Sleep(700 * time.Millisecond)
			// What Redis holds just before it dies, to compare with the 201s.
			before, _ = h.rdb.Keys(context.Background(), "chd:rec:*").Result()
			h.closeRedis() // the redis-server is killed: nothing left to scan afterwards
			time.Sleep(700 * time.Millisecond)
			close(stop)
		}()
		tokens := checkOutageAnswers(t, tokenizeLoad(h, 8, stop))
		// A 201 is only ever sent after the record was written, so every token
		// answered before the kill is in the snapshot (those in flight may race it).
		if len(before) == 0 || len(before) > len(tokens) {
			t.Errorf("got %d records before the kill and %d tokens answered, want 0 < records <= tokens", len(before), len(tokens))
		}
	})
}
