package proxy

import (
	"strings"
	"testing"
)

// PCI DSS 8.3.6: a key that is not of the generated form (prefix + 32 base62
// characters) opens nothing, even when its digest is configured.
func TestAuthenticateAcceptsOnlyKeysOfTheGeneratedForm(t *testing.T) {
	ks := &Keys{}
	good, err := ks.Generate("m1", RoleSecret)
	if err != nil {
		t.Fatal(err)
	}
	weak := []string{"sk_1", "sk_" + strings.Repeat("a", 31), "sk_" + strings.Repeat("a", 33), "sk_" + strings.Repeat("a", 31) + "-"}
	for _, k := range weak {
		if err := ks.Add("m"+k, RoleSecret, KeyDigest(k)); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Authenticate(k, RoleSecret); err != ErrUnauthorized {
			t.Errorf("%d-character key with its digest configured: %v, want refused", len(k), err)
		}
	}
	if k, err := ks.Authenticate(good, RoleSecret); err != nil || k.Merchant != "m1" {
		t.Fatalf("generated key refused: %v", err)
	}
	if _, err := ks.Authenticate("pk_"+strings.TrimPrefix(good, "sk_"), RoleSecret); err != ErrUnauthorized {
		t.Fatalf("a key with another role's prefix: %v", err)
	}
}
