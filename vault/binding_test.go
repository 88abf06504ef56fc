package vault

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/token"
)

// Tests of record v2: what a record asserts is bound into what transit
// authenticates (payload.go), and a consumed CVV stays consumed. Both run in
// the suite, over miniredis + LocalCipher and a real redis-server + Vault.

// editRecord rewrites a token's record in Redis through f, as an attacker
// with Redis write access could, and returns the record as it was.
func editRecord(t *testing.T, e *env, tok string, f func(r map[string]any)) string {
	t.Helper()
	before := rawGet(t, e, "rec", "m_alpha", tok)
	var r map[string]any
	if err := json.Unmarshal([]byte(before), &r); err != nil {
		t.Fatal(err)
	}
	f(r)
	rawSet(t, e, "rec", "m_alpha", tok, mustJSON(t, r))
	return before
}

// later returns f that moves the RFC 3339 time at r[k] (or r[k1][k2]) by d.
func later(k string, d time.Duration) func(r map[string]any) {
	return func(r map[string]any) {
		ts, _ := time.Parse(time.RFC3339Nano, r[k].(string))
		r[k] = ts.Add(d).Format(time.RFC3339Nano)
	}
}

func setCard(k, v string) func(r map[string]any) {
	return func(r map[string]any) { r["card"].(map[string]any)[k] = v }
}

func testTamperedRecord(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	cases := []struct {
		name   string
		wallet bool
		edit   func(r map[string]any)
	}{
		{"expires_at extended", false, later("expires_at", 24*time.Hour)},
		{"created_at moved", false, later("created_at", -time.Hour)},
		{"cvv_expires_at extended", false, later("cvv_expires_at", time.Hour)},
		{"kind changed to a wallet kind", false, func(r map[string]any) { r["kind"] = string(token.ApplePay) }},
		{"BIN changed", false, setCard("bin", "51000000")},
		{"last4 changed", false, setCard("last4", "0004")},
		{"brand changed", false, setCard("brand", "mastercard")},
		{"expiry year changed", false, setCard("exp_year", "2039")},
		{"record version set back to 1", false, func(r map[string]any) { r["v"] = 1 }},
		{"wallet expires_at extended", true, later("expires_at", time.Hour)},
		{"wallet kind changed", true, func(r map[string]any) { r["kind"] = string(token.GooglePay) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, w := cardAndWallet(t, e)
			tok := c.Token
			if tc.wallet {
				tok = w.Token
			}
			before := editRecord(t, e, tok, tc.edit)
			for _, withCVV := range []bool{false, true} {
				_, err := detokenize(e.v, "m_alpha", tok, withCVV)
				wantErr(t, err, ErrIntegrity, "Detokenize of a tampered record")
			}
			// Put back as it was, the token works in full: the refusals
			// consumed nothing, and the edit alone made them.
			rawSet(t, e, "rec", "m_alpha", tok, before)
			useBoth(t, e, c, w, "after the record was put back")
		})
	}
}

func testRestoredCVV(t *testing.T, newEnv newEnvFunc) {
	e := newEnv(t, envOptions{})
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(t, visaPAN, visaCVV, ""))
	noErr(t, err, "TokenizeCard")
	oldRec, oldCVV := rawGet(t, e, "rec", "m_alpha", m.Token), rawGet(t, e, "cvv", "m_alpha", m.Token)
	_, err = detokenize(e.v, "m_alpha", m.Token, true)
	noErr(t, err, "Detokenize with CVV")

	t.Run("the consumed CVV put back alone is not available", func(t *testing.T) {
		rawSet(t, e, "cvv", "m_alpha", m.Token, oldCVV)
		if got, err := e.v.Metadata(bg, "m_alpha", m.Token); err != nil || got.HasCVV {
			t.Fatalf("Metadata: got has_cvv=%v (%v), want false", got.HasCVV, err)
		}
		_, err := detokenize(e.v, "m_alpha", m.Token, true)
		wantErr(t, err, ErrCVVUnavailable, "Detokenize of a restored CVV")
	})
	t.Run("the consumed CVV put back with a forged nonce does not decrypt", func(t *testing.T) {
		rawSet(t, e, "cvv", "m_alpha", m.Token, oldCVV)
		editRecord(t, e, m.Token, func(r map[string]any) { r["cvv_nonce"] = "FORGEDNONCEFORGEDNONCEFORG" })
		_, err := detokenize(e.v, "m_alpha", m.Token, true)
		wantErr(t, err, ErrIntegrity, "Detokenize of a restored CVV under a forged nonce")
	})
	t.Run("the card itself still decrypts", func(t *testing.T) {
		s, err := detokenize(e.v, "m_alpha", m.Token, false)
		noErr(t, err, "Detokenize without CVV")
		if string(s.PAN.Reveal()) != visaPAN {
			t.Fatal("the card was lost with its CVV")
		}
	})
	// The residual risk docs/pci/threat-model.md states: a full snapshot of
	// record and CVV, put back within the CVV's lifetime, is the token as it
	// was. Redis ACLs and TLS keep write access from an attacker.
	t.Run("a full snapshot of record and CVV is the token as it was", func(t *testing.T) {
		rawSet(t, e, "rec", "m_alpha", m.Token, oldRec)
		rawSet(t, e, "cvv", "m_alpha", m.Token, oldCVV)
		_, err := detokenize(e.v, "m_alpha", m.Token, true)
		noErr(t, err, "Detokenize of a restored snapshot")
	})
}
