package vault

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hashicorp/vault/api"
)

// EnsureKeys creates the card, CVV and fingerprint keys when missing (card
// and CVV: derived aes256-gcm96; fingerprint: hmac, 32 bytes) and checks
// that existing card and CVV keys are derived aes256-gcm96 keys — a
// non-derived key would not bind ciphertexts to the merchant. Call it only
// when the operator asked for key creation (it needs create/read rights on
// {mount}/keys/* that production tokens should not hold).
func (t *VaultTransit) EnsureKeys(ctx context.Context) error {
	specs := []struct {
		name string
		data map[string]any
	}{
		{t.keys[0], map[string]any{"type": "aes256-gcm96", "derived": true}},
		{t.keys[1], map[string]any{"type": "aes256-gcm96", "derived": true}},
		{t.keys[2], map[string]any{"type": "hmac", "key_size": 32}},
	}
	for i, s := range specs {
		path := t.mount + "/keys/" + s.name
		sec, err := t.logical(ctx, func(c context.Context) (*api.Secret, error) {
			return t.c.Logical().ReadWithContext(c, path)
		})
		if err != nil {
			return err
		}
		if sec == nil || sec.Data == nil {
			if _, err := t.logical(ctx, func(c context.Context) (*api.Secret, error) {
				return t.c.Logical().WriteWithContext(c, path, s.data)
			}); err != nil {
				return err
			}
			continue
		}
		if i < 2 {
			typ, _ := sec.Data["type"].(string)
			derived, _ := sec.Data["derived"].(bool)
			if typ != "aes256-gcm96" || !derived {
				return &TransitError{Op: "keys", Reason: "key " + s.name + " is not a derived aes256-gcm96 key"}
			}
		}
	}
	return nil
}

func (t *VaultTransit) logical(ctx context.Context, f func(context.Context) (*api.Secret, error)) (*api.Secret, error) {
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	sec, err := f(cctx)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			e := transitStatusErr("keys", re.StatusCode)
			return nil, e
		}
		return nil, t.transportErr(ctx, cctx, "keys", err)
	}
	return sec, nil
}

// LatestVersion reads the newest version of a transit key (GET
// {mount}/keys/{name}: metadata only, never key material). It needs read on
// that path, which the serving policy does not grant: rewrap runs with an
// operator token (deploy/vault-policy-rewrap.hcl).
func (t *VaultTransit) LatestVersion(ctx context.Context, key Key) (int, error) {
	name, ok := t.keyName(key)
	if !ok {
		return 0, &TransitError{Op: "keys", Reason: "unknown key"}
	}
	sec, err := t.logical(ctx, func(c context.Context) (*api.Secret, error) {
		return t.c.Logical().ReadWithContext(c, t.mount+"/keys/"+name)
	})
	if err != nil {
		return 0, err
	}
	if sec == nil || sec.Data == nil {
		return 0, &TransitError{Op: "keys", Reason: "key " + name + " not found"}
	}
	n, _ := sec.Data["latest_version"].(json.Number)
	v, err := n.Int64()
	if err != nil || v < 1 {
		return 0, &TransitError{Op: "keys", Reason: "malformed key metadata", err: ErrUnavailable}
	}
	return int(v), nil
}
