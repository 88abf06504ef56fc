package testenv

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// AppRole sets up AppRole login for a test with the root token: AppRole auth
// at approle/ (enabled once), the ACL policy named policy with hcl, and role
// with that policy (plus Vault's default one, which allows renew-self) and the
// given token TTLs ("3s", "10s"). It writes role_id and secret_id files into dir
// and returns their paths.
func (v *VaultServer) AppRole(dir, role, policy, hcl, tokenTTL, maxTTL string) (roleIDFile, secretIDFile string, err error) {
	var mounts map[string]any
	if err := v.do(http.MethodGet, "/v1/sys/auth", nil, &mounts); err != nil {
		return "", "", err
	}
	if _, ok := mounts["approle/"]; !ok {
		if err := v.do(http.MethodPost, "/v1/sys/auth/approle", map[string]any{"type": "approle"}, nil); err != nil {
			return "", "", err
		}
	}
	if err := v.do(http.MethodPut, "/v1/sys/policies/acl/"+policy, map[string]any{"policy": hcl}, nil); err != nil {
		return "", "", err
	}
	rp := "/v1/auth/approle/role/" + role
	in := map[string]any{"token_policies": []string{policy}, "token_ttl": tokenTTL, "token_max_ttl": maxTTL, "token_type": "service"}
	if err := v.do(http.MethodPost, rp, in, nil); err != nil {
		return "", "", err
	}
	var rid, sid struct {
		Data struct {
			RoleID   string `json:"role_id"`
			SecretID string `json:"secret_id"`
		} `json:"data"`
	}
	if err := v.do(http.MethodGet, rp+"/role-id", nil, &rid); err != nil {
		return "", "", err
	}
	if err := v.do(http.MethodPost, rp+"/secret-id", map[string]any{}, &sid); err != nil {
		return "", "", err
	}
	roleIDFile, secretIDFile = filepath.Join(dir, "role_id"), filepath.Join(dir, "secret_id")
	if err := os.WriteFile(roleIDFile, []byte(rid.Data.RoleID+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return roleIDFile, secretIDFile, os.WriteFile(secretIDFile, []byte(sid.Data.SecretID+"\n"), 0o600)
}

// RevokeTokensWithPolicy revokes, through their accessors, every token that
// holds policy, and returns how many it revoked.
func (v *VaultServer) RevokeTokensWithPolicy(policy string) (int, error) {
	var list struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := v.do("LIST", "/v1/auth/token/accessors", nil, &list); err != nil {
		return 0, err
	}
	n := 0
	for _, acc := range list.Data.Keys {
		var look struct {
			Data struct {
				Policies []string `json:"policies"`
			} `json:"data"`
		}
		if err := v.do(http.MethodPost, "/v1/auth/token/lookup-accessor", map[string]any{"accessor": acc}, &look); err != nil {
			if strings.Contains(err.Error(), "invalid accessor") {
				continue // revoked or expired meanwhile
			}
			return n, err
		}
		if !slices.Contains(look.Data.Policies, policy) {
			continue
		}
		if err := v.do(http.MethodPost, "/v1/auth/token/revoke-accessor", map[string]any{"accessor": acc}, nil); err != nil {
			return n, fmt.Errorf("revoke-accessor: %w", err)
		}
		n++
	}
	return n, nil
}

// ChildToken creates a token holding policies only (no default policy), with ttl.
func (v *VaultServer) ChildToken(policies []string, ttl string) (string, error) {
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	in := map[string]any{"policies": policies, "no_default_policy": true, "ttl": ttl}
	if err := v.do(http.MethodPost, "/v1/auth/token/create", in, &out); err != nil {
		return "", err
	}
	if out.Auth.ClientToken == "" {
		return "", fmt.Errorf("auth/token/create: no token in the answer")
	}
	return out.Auth.ClientToken, nil
}
