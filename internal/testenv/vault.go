package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// VaultVersion is the Vault server version the repository pins (see
// tools/vault) and the name of the cached binary, vault-<VaultVersion>.
const VaultVersion = "v1.21.0"

// VaultServer is a running Vault server in dev mode (in-memory, unsealed,
// root token known) with a transit engine mounted at "transit". Stop kills it
// now (to test an outage), Output returns what it wrote so far.
type VaultServer struct {
	Addr  string // base URL, "http://127.0.0.1:port"
	Token string // the root token
	*Proc
}

// VaultBin locates the Vault server binary: $CHDPROXY_VAULT_BIN, else
// $HOME/.cache/chdproxy/vault-<VaultVersion>, else `vault` on PATH. It
// returns "" when there is none.
func VaultBin() string {
	if b := os.Getenv("CHDPROXY_VAULT_BIN"); b != "" {
		return b
	}
	if home, err := os.UserHomeDir(); err == nil {
		b := filepath.Join(home, ".cache", "chdproxy", "vault-"+VaultVersion)
		if fi, err := os.Stat(b); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return b
		}
	}
	if b, err := exec.LookPath("vault"); err == nil {
		return b
	}
	return ""
}

// Vault starts a Vault dev server for t (see StartVault) and stops it when t
// ends. It skips t when no Vault binary is found (fails under CI=true).
func Vault(t testing.TB) *VaultServer {
	t.Helper()
	return startFor(t, "vault", StartVault)
}

// StartVault starts a Vault dev server on a free loopback port in dir, its
// output in dir/vault.log, waits until it is healthy and mounts transit. It
// returns a *MissingError when no Vault binary is found.
func StartVault(dir string) (*VaultServer, error) {
	bin := VaultBin()
	if bin == "" {
		return nil, &MissingError{"Vault server binary not found (set CHDPROXY_VAULT_BIN, or build it into ~/.cache/chdproxy/vault-" + VaultVersion + ")"}
	}
	v := &VaultServer{Token: "root-" + RandomHex(16)}
	p, _, err := startServer("vault", bin, dir, "vault.log", true, 30*time.Second, func(port int) []string {
		return []string{
			"server", "-dev",
			"-dev-root-token-id=" + v.Token,
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(port),
			"-dev-no-store-token",
			"-log-level=warn",
		}
	}, func(port int) error {
		v.Addr = "http://127.0.0.1:" + strconv.Itoa(port)
		return v.healthy()
	})
	if err != nil {
		return nil, err
	}
	v.Proc = p
	if err := v.do(http.MethodPost, "/v1/sys/mounts/transit", map[string]any{"type": "transit"}, nil); err != nil {
		p.Stop()
		return nil, fmt.Errorf("mount transit: %v\n%s", err, p.Output())
	}
	return v, nil
}

var client = &http.Client{Timeout: 5 * time.Second}

// healthy reports nil when /v1/sys/health says initialized, unsealed, active.
func (v *VaultServer) healthy() error {
	return GetOK("health", v.Addr+"/v1/sys/health")
}

// GetOK sends GET url and reports nil when the answer is 200 OK, else an
// error that names what.
func GetOK(what, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", what, resp.StatusCode)
	}
	return nil
}

// do sends an authenticated request and decodes a JSON answer into out.
func (v *VaultServer) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, v.Addr+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Do sends an authenticated request to the server with the root token (for
// tests that set Vault up: keys, policies, tokens).
func (v *VaultServer) Do(method, path string, in, out any) error {
	return v.do(method, path, in, out)
}

// Seal seals the server (PUT /v1/sys/seal): every later request gets 503.
// A dev server cannot be unsealed again without its key; start a new one.
func (v *VaultServer) Seal() error {
	return v.do(http.MethodPut, "/v1/sys/seal", nil, nil)
}
