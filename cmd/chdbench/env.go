package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chdproxy/chdproxy/deploy"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/smartpay"
	"github.com/chdproxy/chdproxy/vault"
)

// This file starts what the benchmark measures against: redis-server, a Vault
// dev server, the SmartPayments sandbox over TLS and `chdproxy serve`, all on
// loopback. (internal/testenv does the same for tests, tied to testing.TB.)

// proc is a started child process; its output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = out, out, env
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 5s.
func (p *proc) stop() {
	p.once.Do(func() {
		if p.exited() {
			return
		}
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// waitFor polls ready until it succeeds, the process exits, or d passes.
func (p *proc) waitFor(d time.Duration, ready func() error) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited during start-up (see its log)", p.name)
		}
		if last = ready(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", p.name, d, last)
}

// freePort returns a loopback port that was free a moment ago; with pair,
// its successor too (Vault dev mode takes port+1 for its cluster listener).
func freePort(pair bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !pair {
			l.Close()
			return port, nil
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// childEnv is our environment without VAULT_* and REDIS* variables, HOME=dir.
func childEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "VAULT_") || strings.HasPrefix(k, "REDIS") || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// findBin returns the first of env var, candidates and PATH lookup that exists.
func findBin(envVar string, candidates []string, name string) string {
	if b := os.Getenv(envVar); b != "" {
		return b
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if b, err := exec.LookPath(name); err == nil {
		return b
	}
	return ""
}

func startRedis(dir string) (*proc, string, error) {
	bin := findBin("CHDPROXY_REDIS_BIN", nil, "redis-server")
	if bin == "" {
		return nil, "", errors.New("redis-server not found (install it or set CHDPROXY_REDIS_BIN)")
	}
	port, err := freePort(false)
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc("redis-server", bin, []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "yes", "--daemonize", "no",
	}, childEnv(dir), filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, "", err
	}
	err = p.waitFor(10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "+PONG" {
			return errors.New("no PONG")
		}
		return nil
	})
	if err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}

const vaultVersion = "v1.21.0" // as internal/testenv and tools/vault pin it

type vaultServer struct {
	*proc
	addr, token string
}

func startVault(dir string) (*vaultServer, error) {
	home, _ := os.UserHomeDir()
	bin := findBin("CHDPROXY_VAULT_BIN", []string{filepath.Join(home, ".cache", "chdproxy", "vault-"+vaultVersion)}, "vault")
	if bin == "" {
		return nil, errors.New("no Vault server binary (set CHDPROXY_VAULT_BIN or run `make vault`)")
	}
	port, err := freePort(true)
	if err != nil {
		return nil, err
	}
	v := &vaultServer{addr: "http://127.0.0.1:" + strconv.Itoa(port), token: "root-" + randomHex(16)}
	v.proc, err = startProc("vault", bin, []string{
		"server", "-dev", "-dev-root-token-id=" + v.token,
		"-dev-listen-address=127.0.0.1:" + strconv.Itoa(port), "-dev-no-store-token", "-log-level=warn",
	}, childEnv(dir), filepath.Join(dir, "vault.log"))
	if err != nil {
		return nil, err
	}
	if err := v.waitFor(60*time.Second, v.healthy); err != nil {
		v.stop()
		return nil, err
	}
	if err := v.do(http.MethodPost, "/v1/sys/mounts/transit", `{"type":"transit"}`); err != nil {
		v.stop()
		return nil, err
	}
	return v, nil
}

var setupClient = &http.Client{Timeout: 10 * time.Second}

func (v *vaultServer) healthy() error {
	resp, err := setupClient.Get(v.addr + "/v1/sys/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: status %d", resp.StatusCode)
	}
	return nil
}

func (v *vaultServer) do(method, path, body string) error {
	req, err := http.NewRequest(method, v.addr+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.token)
	resp, err := setupClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("vault %s %s: status %d: %s", method, path, resp.StatusCode, b)
	}
	return nil
}

// transit returns a VaultTransit on v with the default key names.
func (v *vaultServer) transit() (*vault.VaultTransit, error) {
	return vault.NewVaultTransit(vault.VaultTransitConfig{Address: v.addr, Token: v.token})
}

// tlsFiles is a fresh CA and a server certificate for 127.0.0.1 signed by it.
type tlsFiles struct {
	caFile string
	pool   *x509.CertPool
	cert   tls.Certificate
}

func newTLS(dir string) (*tlsFiles, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chdbench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	f := &tlsFiles{caFile: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	f.pool.AppendCertsFromPEM(caPEM)
	f.cert = tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
	return f, os.WriteFile(f.caFile, caPEM, 0o600)
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
	return benchKeys{merchant: "m_bench", pk: "pk_" + randomHex(16), sk: "sk_" + randomHex(16), ak: "ak_" + randomHex(16)}
}

// chdproxyEnv is a running chdproxy: its listeners and, when it runs as a
// subprocess, the process.
type chdproxyEnv struct {
	collect, forward, admin string
	proc                    *proc // nil in-process
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
	path := filepath.Join(dir, "policy.yaml")
	return path, os.WriteFile(path, []byte(s), 0o600)
}

// serveConfig writes chdproxy's configuration: plain-text listeners on
// loopback, the benchmark Vault and Redis, the sandbox's CA, key digests only,
// an audit file (fsynced per record, as in production) and per-key rate
// limits high enough not to refuse the load generator.
func serveConfig(dir, policyPath string, v *vaultServer, redisAddr string, t *tlsFiles, k benchKeys) (path string, ports [3]int, err error) {
	for i := range ports {
		if ports[i], err = freePort(false); err != nil {
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
	tokenFile := write("vault-token", v.token)
	idemFile := write("idempotency-secret", randomHex(32))
	cfg := map[string]any{
		"policy": policyPath,
		"audit":  filepath.Join(dir, "audit.jsonl"),
		"listen": map[string]any{
			"collect": map[string]string{"addr": "127.0.0.1:" + strconv.Itoa(ports[0])},
			"forward": map[string]string{"addr": "127.0.0.1:" + strconv.Itoa(ports[1])},
			"admin":   map[string]string{"addr": "127.0.0.1:" + strconv.Itoa(ports[2])},
		},
		"vault":       map[string]any{"address": v.addr, "token_file": tokenFile, "timeout": "2s"},
		"redis":       map[string]any{"addrs": []string{redisAddr}},
		"idempotency": map[string]any{"secret_file": idemFile},
		"limits":      map[string]any{"per_key_rate": 1e9, "per_key_burst": 1000000000},
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

// startChdproxy runs `chdproxy serve --config cfg` and waits for /healthz.
func startChdproxy(dir, bin, cfg string, ports [3]int) (*chdproxyEnv, error) {
	p, err := startProc("chdproxy", bin, []string{"serve", "--config", cfg}, childEnv(dir), filepath.Join(dir, "chdproxy.log"))
	if err != nil {
		return nil, err
	}
	e := &chdproxyEnv{
		collect: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		forward: "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		admin:   "http://127.0.0.1:" + strconv.Itoa(ports[2]),
		proc:    p, stop: p.stop,
	}
	if err := p.waitFor(30*time.Second, func() error { return ready(e.admin) }); err != nil {
		p.stop()
		return nil, err
	}
	return e, nil
}

func ready(admin string) error {
	resp, err := setupClient.Get(admin + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: status %d", resp.StatusCode)
	}
	return nil
}

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
func ensureKeys(v *vaultServer) error {
	tr, err := v.transit()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tr.EnsureKeys(ctx)
}
