package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vault.auth: one method, the earlier token_file still accepted, every problem listed.
func TestServeVaultAuthConfig(t *testing.T) {
	const rest = `policy: policy.yaml
audit: stdout
listen: {collect: {addr: "127.0.0.1:1"}, forward: {addr: "127.0.0.1:2"}, admin: {addr: "127.0.0.1:3"}}
redis: {addrs: ["127.0.0.1:6379"]}
`
	for _, c := range []struct {
		name, vault string
		want        []string // pieces of the error; none: accepted
	}{
		{name: "the earlier token_file is accepted", vault: `{address: "https://v:8200", token_file: /t}`},
		{name: "auth token_file is accepted", vault: `{address: "https://v:8200", auth: {method: token_file, token_file: /t, poll_interval: 2s}}`},
		{name: "auth approle is accepted", vault: `{address: "https://v:8200", auth: {method: approle, approle: {role_id_file: /r, secret_id_file: /s, wrapped_secret_id: true}}}`},
		{name: "auth kubernetes is accepted", vault: `{address: "https://v:8200", auth: {method: kubernetes, kubernetes: {role: chdproxy}}}`},
		{name: "no credentials are refused", vault: `{address: "https://v:8200"}`, want: []string{"vault.auth: method: use token_file, approle or kubernetes"}},
		{name: "token_file and auth together are refused", vault: `{address: "https://v:8200", token_file: /t, auth: {method: kubernetes, kubernetes: {role: r}}}`,
			want: []string{"vault: give token_file or auth, not both"}},
		{name: "an unknown field of auth is refused", vault: `{address: "https://v:8200", auth: {method: approle, approle: {role_id: x}}}`, want: []string{"field role_id not found"}},
		{name: "every problem is listed at once", vault: `{auth: {method: approle, approle: {role_id_file: /r}, kubernetes: {role: r}}}`,
			want: []string{"vault.address: required", `vault.auth: kubernetes is given but method is "approle"`, "vault.auth: approle: role_id_file and secret_id_file are required"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "chdproxy.yaml")
			if err := os.WriteFile(file, []byte(rest+"vault: "+c.vault+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			wantConfigProblems(t, file, c.want)
		})
	}
}

// wantConfigProblems loads file and checks it is accepted (want empty) or refused
// with an error holding every piece of want; it returns that error.
func wantConfigProblems(t *testing.T, file string, want []string) error {
	t.Helper()
	_, err := loadServeConfig(file)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("got %v, want the config accepted", err)
		}
		return nil
	}
	if err == nil {
		t.Fatalf("got the config accepted, want an error with %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("got %q, want it to contain %q", err, w)
		}
	}
	return err
}
