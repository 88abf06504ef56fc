package proxy_test

// Hostile-input suite (see hostile_body_test.go): a leaked key revoked by a reload of
// the keys and merchants (serve does it at SIGHUP), without a restart.

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

// harnessMerchants are the merchants newHarness starts with.
func harnessMerchants() []proxy.Merchant {
	return []proxy.Merchant{{ID: merchantA, Origins: []string{originA}}, {ID: merchantB, Origins: []string{originB}}}
}

// reload swaps the harness's keys for ring (whose secrets are keys) and merchants.
func (h *harness) reload(t testing.TB, ring *proxy.Keys, keys map[string]map[proxy.Role]string, merchants []proxy.Merchant) {
	t.Helper()
	if err := h.listeners.Reload(ring, merchants); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	h.keys = keys
}

// wantKeysWork checks merchant A's current keys on their three listeners: each works
// (want), or each gets a 401.
func (h *harness) wantKeysWork(t testing.TB, tok string, want bool) {
	t.Helper()
	answers := map[string]*response{
		"collect pk_": h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), nil),
		"forward sk_": h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil),
		"admin ak_":   h.do(t, http.MethodGet, h.admin+"/v1/policy", nil, h.bearer(merchantA, proxy.RoleAdmin)),
	}
	for name, r := range answers {
		if !want {
			wantError(t, r, http.StatusUnauthorized, "unauthorized")
		} else if r.status >= 300 {
			t.Errorf("%s: got %d %s, want it to work", name, r.status, r.body)
		}
	}
}

// Both directions: after a reload the old keys get a 401 on every listener, and the
// new ones work; tokens stay their merchant's.
func TestHostile_LeakedKeysAreRefusedOnceAReloadRevokesThem(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	leaked := h.keys
	ring, fresh := generateKeys(t, merchantA, merchantB)
	h.reload(t, ring, fresh, harnessMerchants())
	h.wantKeysWork(t, tok, true)
	h.keys = leaked
	h.wantKeysWork(t, tok, false)
}

// A key set that fails its checks changes nothing: the keys in force keep working,
// the refused set's keys do not.
func TestHostile_AReloadThatFailsChangesNothing(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	inForce := h.keys
	ring, refused := generateKeys(t, merchantA, merchantB)
	if err := h.listeners.Reload(nil, harnessMerchants()); err == nil {
		t.Error("Reload without keys: got no error")
	}
	if err := h.listeners.Reload(ring, append(harnessMerchants(), proxy.Merchant{ID: merchantA})); err == nil {
		t.Error("Reload with a merchant listed twice: got no error")
	}
	h.wantKeysWork(t, tok, true)
	h.keys = refused
	h.wantKeysWork(t, tok, false)
	h.keys = inForce
}

// An origin the reload drops can neither preflight nor tokenize, with the same key.
func TestHostile_AnOriginDroppedByAReloadIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	wantStatus(t, h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Origin": originA}), http.StatusCreated)
	ring, keys := generateKeys(t, merchantA, merchantB)
	h.reload(t, ring, keys, []proxy.Merchant{{ID: merchantA}, {ID: merchantB, Origins: []string{originB}}})
	r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Origin": originA})
	wantError(t, r, http.StatusForbidden, "origin_not_allowed")
	pre := h.do(t, http.MethodOptions, h.collect+"/v1/tokens", nil, headers{"Origin": originA, "Access-Control-Request-Method": "POST"})
	wantError(t, pre, http.StatusForbidden, "origin_not_allowed")
	for _, r := range []*response{r, pre} {
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin: got %q, want none for a dropped origin", got)
		}
	}
}

// Swapping the key ring under load never fails a request whose key is in both sets
// (and -race sees no unsynchronised access to the ring or the merchant table).
func TestHostile_ReloadsUnderLoadNeverFailAKeyInBothSets(t *testing.T) {
	h := newHarness(t, harnessOptions{limits: proxy.Limits{PerClientRate: 1000, PerClientBurst: 1000}})
	kept := h.keys
	rings := make([]*proxy.Keys, 2)
	for i := range rings {
		rings[i] = &proxy.Keys{}
		for m, roles := range kept {
			for role, secret := range roles {
				if err := rings[i].Add(m, role, proxy.KeyDigest(secret)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := rings[i].Generate(merchantA, proxy.RoleSecret); err != nil { // one key that differs
			t.Fatal(err)
		}
	}
	body := mustJSON(t, cardFields(testcards.Success, testcards.CVV))
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Go(func() {
			for range 10 {
				r, err := h.send(http.MethodPost, h.collect+"/v1/tokens", body, "application/json", h.bearer(merchantA, proxy.RolePublishable))
				if err == nil && r.status != http.StatusCreated {
					err = fmt.Errorf("got %d %s, want 201", r.status, r.body)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range 200 {
		if err := h.listeners.Reload(rings[i%2], harnessMerchants()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
