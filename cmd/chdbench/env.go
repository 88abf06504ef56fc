package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/smartpay"
	"github.com/chdproxy/chdproxy/vault"
)

// This file starts what the benchmark measures against: redis-server, a Vault
// dev server (both by internal/testenv), the SmartPayments sandbox over TLS
// and `chdproxy serve`, all on loopback, each process logging into the work
// folder.

// grace is how long a process may take to end after an interrupt.
const grace = 5 * time.Second

// transit returns a VaultTransit on v with the default key names.
func transit(v *testenv.VaultServer) (*vault.VaultTransit, error) {
	return vault.NewVaultTransit(vault.VaultTransitConfig{Address: v.Addr, Token: v.Token})
}

// tlsFiles is a fresh CA and a server certificate for 127.0.0.1 signed by it.
type tlsFiles struct {
	caFile string
	pool   *x509.CertPool
	cert   tls.Certificate
}

func newTLS(dir string) (*tlsFiles, error) {
	ca, err := testenv.NewCA()
	if err != nil {
		return nil, err
	}
	cert, err := ca.Leaf()
	if err != nil {
		return nil, err
	}
	f := &tlsFiles{caFile: filepath.Join(dir, "ca.pem"), pool: ca.Pool, cert: cert}
	return f, os.WriteFile(f.caFile, ca.PEM(), 0o600)
}

// startSandbox serves the SmartPayments sandbox over TLS on loopback.
func startSandbox(t *tlsFiles) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	url = "https://" + ln.Addr().String()
	sb := smartpay.NewSandbox(smartpay.Options{BaseURL: url, DisableRecording: true})
	srv := &http.Server{
		Handler:           sb.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{t.cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          quietLog(),
	}
	go srv.ServeTLS(ln, "", "")
	return url, func() { srv.Close(); sb.Close() }, nil
}

// benchKeys are the API keys of the one benchmark merchant.
type benchKeys struct {
	merchant, pk, sk, ak string
}

func newKeys() benchKeys {
	return benchKeys{merchant: "m_bench", pk: "pk_" + testenv.RandomHex(16), sk: "sk_" + testenv.RandomHex(16), ak: "ak_" + testenv.RandomHex(16)}
}

// chdproxyEnv is a running chdproxy: its listeners and, when it runs as a
// subprocess, the process.
type chdproxyEnv struct {
	collect, forward, admin string
	pprof                   string        // base URL of the CPU profile listener; "" in-process
	proc                    *testenv.Proc // nil in-process
	stop                    func()
}

// benchPolicy is deploy/policy.yaml with both upstreams on the sandbox.
func benchPolicy(dir, sandboxURL string) (string, error) {
	s := string(deploy.PolicyYAML)
	for _, host := range []string{"https://chd-api.smartcore.pro", "https://api-gateway.smartcore.pro"} {
		if !strings.Contains(s, "base_url: "+host) {
			return "", fmt.Errorf("deploy/policy.yaml has no upstream %s any more; update chdbench", host)
		}
		s = strings.Replace(s, "base_url: "+host, "base_url: "+sandboxURL, 1)
	}
	// The file names the sandbox as the card-data host: policy lint wants that acknowledged.
	s = strings.ReplaceAll(s, "    upstream: chd-api\n", "    upstream: chd-api\n    acknowledge: [nonstandard_host]\n")
	path := filepath.Join(dir, "policy.yaml")
	return path, os.WriteFile(path, []byte(s), 0o600)
}

// serveConfig writes chdproxy's configuration: plain-text listeners on
// loopback, the benchmark Vault and Redis, the sandbox's CA, key digests only,
// an audit file (group-committed fsync, as in production) and per-key rate
// limits high enough not to refuse the load generator.
func serveConfig(dir, policyPath string, v *testenv.VaultServer, redisAddr string, t *tlsFiles, k benchKeys) (path string, ports [3]int, err error) {
	for i := range ports {
		if ports[i], err = testenv.FreePort(false); err != nil {
			return "", ports, err
		}
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err == nil {
			err = os.WriteFile(p, []byte(content), 0o600)
		}
		return p
	}
	tokenFile := write("vault-token", v.Token)
	idemFile := write("idempotency-secret", testenv.RandomHex(32))
	cfg := map[string]any{
		"policy": policyPath,
		"audit":  filepath.Join(dir, "audit.jsonl"),
		"listen": map[string]any{
			"collect": map[string]string{"addr": "127.0.0.1:" + strconv.Itoa(ports[0])},
			"forward": map[string]string{"addr": "127.0.0.1:" + strconv.Itoa(ports[1])},
			"admin":   map[string]string{"addr": "127.0.0.1:" + strconv.Itoa(ports[2])},
		},
		"vault":       map[string]any{"address": v.Addr, "token_file": tokenFile, "timeout": "2s"},
		"redis":       map[string]any{"addrs": []string{redisAddr}},
		"idempotency": map[string]any{"secret_file": idemFile},
		"limits":      map[string]any{"per_key_rate": 1e9, "per_key_burst": 1000000000, "per_client_rate": 1e9, "per_client_burst": 1000000000},
		"upstream":    map[string]any{"ca_file": t.caFile},
		"merchants": []any{map[string]any{
			"id": k.merchant, "origins": []string{benchOrigin},
			"keys": []any{
				map[string]string{"role": "publishable", "digest": proxy.KeyDigest(k.pk)},
				map[string]string{"role": "secret", "digest": proxy.KeyDigest(k.sk)},
				map[string]string{"role": "admin", "digest": proxy.KeyDigest(k.ak)},
			},
		}},
	}
	// JSON is YAML: no second encoder needed.
	b, jerr := json.MarshalIndent(cfg, "", "  ")
	if jerr != nil {
		return "", ports, jerr
	}
	path = write("chdproxy.yaml", string(b))
	return path, ports, err
}

const benchOrigin = "https://shop.example"

// startChdproxy runs `chdproxy serve --config cfg`, with its CPU profile
// listener on (a build without -tags production has one), and waits for /healthz.
func startChdproxy(dir, bin, cfg string, ports [3]int) (*chdproxyEnv, error) {
	pprofPort, err := testenv.FreePort(false)
	if err != nil {
		return nil, err
	}
	pprofAddr := "127.0.0.1:" + strconv.Itoa(pprofPort)
	env := append(testenv.ChildEnv(dir), "CHDPROXY_PPROF_ADDR="+pprofAddr)
	p, err := testenv.StartProc("chdproxy", bin, []string{"serve", "--config", cfg}, env, filepath.Join(dir, "chdproxy.log"))
	if err != nil {
		return nil, err
	}
	e := &chdproxyEnv{
		collect: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		forward: "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		admin:   "http://127.0.0.1:" + strconv.Itoa(ports[2]),
		pprof:   "http://" + pprofAddr,
		proc:    p, stop: func() { p.Shutdown(grace) },
	}
	if err := p.WaitFor(30*time.Second, func() error { return ready(e.admin) }); err != nil {
		p.Shutdown(grace)
		return nil, fmt.Errorf("%w; its log:\n%s", err, p.Output())
	}
	return e, nil
}

// ready reports nil when chdproxy's admin listener says it is ready.
func ready(admin string) error { return testenv.GetOK("readyz", admin+"/readyz") }

// buildChdproxy builds the chdproxy binary of this module into dir.
func buildChdproxy(dir string) (string, error) {
	out := filepath.Join(dir, "chdproxy")
	cmd := exec.Command("go", "build", "-o", out, "github.com/chdproxy/chdproxy/cmd/chdproxy")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build chdproxy: %v\n%s", err, stderr.String())
	}
	return out, nil
}

// ensureKeys creates the transit keys chdproxy and the floor client use.
func ensureKeys(v *testenv.VaultServer) error {
	tr, err := transit(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tr.EnsureKeys(ctx)
}
