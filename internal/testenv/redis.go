package testenv

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisServer is a running redis-server on loopback, without persistence.
type RedisServer struct {
	Addr string // "127.0.0.1:port"
	p    *proc
}

// redisBin locates redis-server: $CHDPROXY_REDIS_BIN, else PATH.
func redisBin() string {
	if b := os.Getenv("CHDPROXY_REDIS_BIN"); b != "" {
		return b
	}
	b, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return b
}

// Redis starts a redis-server for t (`--port N --bind 127.0.0.1 --save ""
// --appendonly no`), waits until it answers PING and stops it when t ends.
// It skips t when redis-server is missing (fails under CI=true).
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	bin := redisBin()
	if bin == "" {
		missing(t, "redis-server not found (install it or set CHDPROXY_REDIS_BIN)")
		return nil
	}
	dir := t.TempDir()
	var lastErr error
	for range 3 { // a port taken between freePort and bind: try another
		port := freePort(t, false)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := start(t, "redis-server", bin, []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--protected-mode", "yes", "--daemonize", "no",
		}, childEnv(dir))
		if err != nil {
			t.Fatalf("testenv: start redis-server: %v", err)
		}
		if lastErr = p.waitFor(10*time.Second, func() error { return redisPing(addr) }); lastErr == nil {
			return &RedisServer{Addr: addr, p: p}
		}
		p.stop()
		t.Logf("testenv: redis-server output:\n%s", p.out.String())
	}
	t.Fatalf("testenv: redis-server did not start: %v", lastErr)
	return nil
}

// redisPing sends an inline PING and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return &net.OpError{Op: "ping", Net: "tcp", Err: errString("unexpected answer")}
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

// Stop kills the server now (to test an outage); the port stays dead.
func (r *RedisServer) Stop() { r.p.stop() }

// Output returns what the server wrote so far.
func (r *RedisServer) Output() string { return r.p.out.String() }
