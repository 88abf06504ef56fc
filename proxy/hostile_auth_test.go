package proxy_test

// Hostile-input suite (see hostile_body_test.go): keys, token enumeration and
// other merchants' tokens, CORS, rate limits.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

func TestHostile_TokenEnumerationGivesUniform404s(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	bodies := map[string]int{}
	headerSets := map[string]int{}
	note := func(r *response) {
		t.Helper()
		wantError(t, r, http.StatusNotFound, "token_not_found")
		bodies[string(r.body)]++
		var names []string
		for k := range r.header {
			names = append(names, k)
		}
		slices.Sort(names)
		headerSets[strings.Join(names, ",")]++
	}
	for range 40 {
		id := randomTokenID(t, tok)
		note(h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil))
	}
	for range 10 {
		id := randomTokenID(t, tok)
		note(h.fwd(t, merchantA, http.MethodDelete, "/v1/tokens/"+id, nil, nil))
		note(h.do(t, http.MethodDelete, h.admin+"/v1/tokens/"+id, nil, h.bearer(merchantA, proxy.RoleAdmin)))
	}
	malformed := []string{
		"tok_", "tok_x", tok[:len(tok)-1], tok + "A", strings.ToUpper(tok), "TOK_" + tok[4:], "tok_" + strings.Repeat("a", 300),
		tok[:10] + "-" + tok[11:], url.PathEscape("tok_' OR '1'='1"), url.PathEscape("tok_<script>"), url.PathEscape("tok_äöü"),
		"%00", "*", "tok_*", testcards.Success, url.PathEscape(tok + "\x00"), "..;", "~",
	}
	for _, id := range malformed {
		note(h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil))
	}
	if len(bodies) != 1 {
		t.Errorf("got %d different 404 bodies for unknown and malformed ids, want 1: %v", len(bodies), bodies)
	}
	if len(headerSets) != 1 {
		t.Errorf("got %d different header sets, want 1: %v", len(headerSets), headerSets)
	}
	// And the real token still answers.
	wantStatus(t, h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, nil), http.StatusOK)
}

func TestHostile_CrossMerchantTokenMetadataAndDelete(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	unknown := h.fwd(t, merchantB, http.MethodGet, "/v1/tokens/"+randomTokenID(t, tok), nil, nil)
	wantError(t, unknown, http.StatusNotFound, "token_not_found")
	for _, r := range []*response{
		h.fwd(t, merchantB, http.MethodGet, "/v1/tokens/"+tok, nil, nil),
		h.fwd(t, merchantB, http.MethodDelete, "/v1/tokens/"+tok, nil, nil),
		h.do(t, http.MethodDelete, h.admin+"/v1/tokens/"+tok, nil, h.bearer(merchantB, proxy.RoleAdmin)),
	} {
		wantError(t, r, http.StatusNotFound, "token_not_found")
		if !bytes.Equal(r.body, unknown.body) {
			t.Errorf("another merchant's token: got body %q, want the unknown-token body %q", r.body, unknown.body)
		}
	}
	if !h.hasCVV(t, merchantA, tok) {
		t.Error("merchant B's requests touched merchant A's token")
	}
}

func TestHostile_CrossMerchantTokenInjection(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	unknown := h.fwd(t, merchantB, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), randomTokenID(t, tok)), nil)
	wantError(t, unknown, http.StatusNotFound, "token_not_found")
	for _, path := range []string{"/initPaymentHost2Host", "/authorize"} {
		r := h.fwd(t, merchantB, http.MethodPost, path, cardPayment(h.orderID(), tok), nil)
		wantError(t, r, http.StatusNotFound, "token_not_found")
		if !bytes.Equal(r.body, unknown.body) {
			t.Errorf("%s with another merchant's token: got %q, want the unknown-token body %q", path, r.body, unknown.body)
		}
	}
	wd := map[string]any{"account": "EUR-sandbox-payout", "order_id": h.orderID(), "amount": 100, "payment_method": "card", "customer_card_number": tok}
	wantError(t, h.fwd(t, merchantB, http.MethodPost, "/withdrawal/init", wd, nil), http.StatusNotFound, "token_not_found")
	h.wantUpstreamCalls(t, "", 0)
	if !h.hasCVV(t, merchantA, tok) {
		t.Error("merchant B's request consumed merchant A's CVV")
	}
	wantStatus(t, h.post(t, "/initPaymentHost2Host", cardPayment(h.orderID(), tok)), http.StatusOK)
}

func TestHostile_PublishableKeyOnForward(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	pk := headers{"Proxy-Authorization": "Bearer " + h.keys[merchantA][proxy.RolePublishable]}
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), pk), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+tok, nil, pk), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.fwd(t, merchantA, http.MethodDelete, "/v1/tokens/"+tok, nil, pk), http.StatusUnauthorized, "unauthorized")
	h.wantUpstreamCalls(t, "", 0)
	if !h.hasCVV(t, merchantA, tok) {
		t.Error("the CVV was consumed")
	}
}

// One digest listed for two roles or two merchants would let one key open both
// (the public pk_ the forward listener): Add refuses it, whichever comes first,
// and the key keeps only the role and merchant it was first added with.
func TestHostile_OneKeyDigestForTwoRolesOrMerchants(t *testing.T) {
	ring, keys := generateKeys(t, merchantA)
	pk, sk := keys[merchantA][proxy.RolePublishable], keys[merchantA][proxy.RoleSecret]
	attempts := []struct {
		merchant string
		role     proxy.Role
		secret   string
	}{
		{merchantA, proxy.RoleSecret, pk},      // the public key as a secret key
		{merchantA, proxy.RoleAdmin, pk},       // … or as an admin key
		{merchantB, proxy.RoleSecret, pk},      // … or as another merchant's secret key
		{merchantA, proxy.RolePublishable, sk}, // the secret key as a publishable key
		{merchantB, proxy.RoleSecret, sk},      // the same secret key for two merchants
	}
	for _, a := range attempts {
		if err := ring.Add(a.merchant, a.role, proxy.KeyDigest(a.secret)); !errors.Is(err, proxy.ErrDuplicateKey) {
			t.Errorf("Add(%s, %s, digest of the %s key): got %v, want ErrDuplicateKey", a.merchant, a.role, a.secret[:3], err)
		}
	}
	for _, role := range []proxy.Role{proxy.RoleSecret, proxy.RoleAdmin} {
		if _, err := ring.Authenticate(pk, role); err == nil {
			t.Errorf("the publishable key authenticates for the %s role", role)
		}
	}
	for secret, role := range map[string]proxy.Role{pk: proxy.RolePublishable, sk: proxy.RoleSecret} {
		if k, err := ring.Authenticate(secret, role); err != nil || k.Merchant != merchantA {
			t.Errorf("Authenticate(%s key): got %v, %v, want merchant %s", role, k, err, merchantA)
		}
	}
}

func TestHostile_SecretKeyOnCollect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	sk := h.bearer(merchantA, proxy.RoleSecret)
	wantError(t, h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), sk), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), h.bearer(merchantA, proxy.RoleAdmin)),
		http.StatusUnauthorized, "unauthorized")
	h.wantTokenKeys(t, 0)
}

func TestHostile_AdminKeyOnForward(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	ak := headers{"Proxy-Authorization": "Bearer " + h.keys[merchantA][proxy.RoleAdmin]}
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), ak), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": "x"}, ak), http.StatusUnauthorized, "unauthorized")
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_CollectAndForwardKeysOnAdmin(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, role := range []proxy.Role{proxy.RolePublishable, proxy.RoleSecret} {
		hdr := h.bearer(merchantA, role)
		wantError(t, h.do(t, http.MethodDelete, h.admin+"/v1/tokens/"+tok, nil, hdr), http.StatusUnauthorized, "unauthorized")
		wantError(t, h.do(t, http.MethodGet, h.admin+"/v1/policy", nil, hdr), http.StatusUnauthorized, "unauthorized")
	}
	if !h.hasCVV(t, merchantA, tok) {
		t.Error("the token was deleted")
	}
}

func TestHostile_MissingOrGarbageAuth(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	sk := h.keys[merchantA][proxy.RoleSecret]
	values := []string{
		"", "Bearer", "Bearer ", "Bearer sk_", "Bearer sk_" + strings.Repeat("A", 32), "Bearer " + sk + "x", "Bearer " + sk[:len(sk)-1],
		"Bearer " + strings.ToUpper(sk), "Basic " + base64.StdEncoding.EncodeToString([]byte(sk+":")), "Token " + sk, sk,
		"Bearer " + strings.Repeat("k", 8<<10), "Bearer\t" + sk, "Bearer " + sk + "\u200b", "Bearer " + sk + ",Bearer " + sk,
	}
	var bodies = map[string]int{}
	for _, v := range values {
		r := h.fwd(t, merchantA, http.MethodPost, "/initPaymentHost2Host", cardPayment(h.orderID(), tok), headers{"Proxy-Authorization": v})
		wantError(t, r, http.StatusUnauthorized, "unauthorized")
		bodies[string(r.body)]++
	}
	// The secret key in the merchant's Authorization header is not chdproxy's credential.
	r := h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": "x"}, headers{"Proxy-Authorization": "", "Authorization": "Bearer " + sk})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	bodies[string(r.body)]++
	// A publishable key in Proxy-Authorization is not the collect credential either.
	r = h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Authorization": "", "Proxy-Authorization": "Bearer " + h.keys[merchantA][proxy.RolePublishable]})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	bodies[string(r.body)]++
	r = h.do(t, http.MethodGet, h.admin+"/v1/policy", nil, headers{"Authorization": "Bearer ak_" + strings.Repeat("0", 32)})
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	bodies[string(r.body)]++
	if len(bodies) != 1 {
		t.Errorf("got %d different 401 bodies, want 1", len(bodies))
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_KeysAreStoredOnlyAsDigests(t *testing.T) {
	ks := &proxy.Keys{}
	sec, err := ks.Generate(merchantA, proxy.RoleSecret)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ks.Authenticate(sec, proxy.RoleSecret)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if key.ID != keyID(sec) || strings.Contains(key.ID, sec[3:]) {
		t.Errorf("key id: got %q, want %q (role prefix and digest prefix, nothing of the secret)", key.ID, keyID(sec))
	}
	secretForms := []string{sec, sec[3:], hex.EncodeToString([]byte(sec)), base64.StdEncoding.EncodeToString([]byte(sec))}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for _, v := range []any{key, &key, ks, *ks, []proxy.Key{key}, struct{ K proxy.Key }{key}} {
			out := fmt.Sprintf(verb, v)
			for _, s := range secretForms {
				if strings.Contains(out, s) {
					t.Errorf("fmt %s of %T shows the secret", verb, v)
				}
			}
		}
	}
	if b, _ := json.Marshal(key); bytes.Contains(b, []byte(sec[3:])) {
		t.Error("the JSON of a Key shows the secret")
	}
	// A configuration holds digests: a raw secret is refused, and the error
	// does not repeat it.
	other := &proxy.Keys{}
	if err := other.Add(merchantA, proxy.RoleSecret, sec); err == nil || strings.Contains(err.Error(), sec[3:]) {
		t.Errorf("Add with a raw secret: got %v, want an error that does not show it", err)
	}
	if err := other.Add(merchantA, proxy.RoleSecret, proxy.KeyDigest(sec)); err != nil {
		t.Fatalf("Add with a digest: %v", err)
	}
	if _, err := other.Authenticate(sec, proxy.RoleSecret); err != nil {
		t.Errorf("a key added by digest does not authenticate: %v", err)
	}
	if _, err := other.Authenticate(proxy.KeyDigest(sec), proxy.RoleSecret); err == nil {
		t.Error("the digest itself authenticates as the key")
	}
	if _, err := other.Authenticate(sec, proxy.RolePublishable); err == nil {
		t.Error("a secret key authenticates for the publishable role")
	}
	// Two keys per role for rotation, not three.
	if _, err := other.Generate(merchantA, proxy.RoleSecret); err != nil {
		t.Errorf("second key for rotation: %v", err)
	}
	if _, err := other.Generate(merchantA, proxy.RoleSecret); err == nil {
		t.Error("a third secret key was accepted")
	}
	// Through the listeners: logs and audit name the key id, never the key.
	h := newHarness(t, harnessOptions{})
	h.cardToken(t, testcards.Success, testcards.CVV)
	h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+randomTokenID(t, "tok_"+strings.Repeat("a", 22)), nil, nil)
	h.waitAudit(t, func(r []map[string]any) bool { return len(r) >= 2 })
	var all []string
	for _, m := range h.keys {
		for _, s := range m {
			all = append(all, s[3:])
		}
	}
	if !bytes.Contains(h.logs.Bytes(), []byte(keyID(h.keys[merchantA][proxy.RoleSecret]))) {
		t.Error("the access log does not name the key id")
	}
	h.assertNoCardData(t, all...)
}

func TestHostile_CORSFromUnknownOrigin(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r := h.do(t, http.MethodOptions, h.collect+"/v1/tokens", nil, headers{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	wantError(t, r, http.StatusForbidden, "origin_not_allowed")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("a preflight from an unknown origin was allowed")
	}
	r = h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Origin": "null"})
	wantError(t, r, http.StatusForbidden, "origin_not_allowed")
	h.wantTokenKeys(t, 0)
}

func TestHostile_CORSOriginOfAnotherMerchant(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// Merchant B's page using merchant A's publishable key.
	r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"Origin": originB})
	wantError(t, r, http.StatusForbidden, "origin_not_allowed")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the answer allows merchant B's origin")
	}
	h.wantTokenKeys(t, 0)
}

func TestHostile_RateLimit(t *testing.T) {
	h := newHarness(t, harnessOptions{limits: proxy.Limits{PerKeyRate: 0.2, PerKeyBurst: 2, Upstream: 16, Vault: 16, SlotWait: time.Second}})
	id := randomTokenID(t, "tok_"+strings.Repeat("a", 22))
	for range 2 {
		wantError(t, h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil), http.StatusNotFound, "token_not_found")
	}
	r := h.fwd(t, merchantA, http.MethodGet, "/v1/tokens/"+id, nil, nil)
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After: got %q, want whole seconds ≥ 1", r.header.Get("Retry-After"))
	}
	// Limits are per key: merchant B is not affected.
	wantError(t, h.fwd(t, merchantB, http.MethodGet, "/v1/tokens/"+id, nil, nil), http.StatusNotFound, "token_not_found")
	// A rate-limited tokenize stores nothing.
	for range 2 {
		wantStatus(t, h.col(t, merchantB, cardFields(testcards.Success, testcards.CVV), nil), http.StatusCreated)
	}
	wantError(t, h.col(t, merchantB, cardFields(testcards.Success, testcards.CVV), nil), http.StatusTooManyRequests, "rate_limited")
	h.wantTokenKeys(t, 4) // two tokens with CVV
}
