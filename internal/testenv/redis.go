package testenv

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisServer is a running redis-server on loopback, without persistence.
// Stop kills it now (to test an outage; the port stays dead), Output returns
// what it wrote so far.
type RedisServer struct {
	Addr string // "127.0.0.1:port"
	*Proc
	start func() (*Proc, error) // the same server again: same port, folder and arguments
}

// RedisBin locates redis-server: $CHDPROXY_REDIS_BIN, else PATH. It returns
// "" when there is none.
func RedisBin() string {
	if b := os.Getenv("CHDPROXY_REDIS_BIN"); b != "" {
		return b
	}
	b, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return b
}

// Redis starts a redis-server for t (see StartRedis) and stops it when t
// ends. It skips t when redis-server is missing (fails under CI=true).
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return startFor(t, "redis-server", StartRedis)
}

// StartRedis starts a redis-server (`--port N --bind 127.0.0.1 --save ""
// --appendonly no`) in dir, its output in dir/redis.log, and waits until it
// answers PING. It returns a *MissingError when redis-server is not found.
func StartRedis(dir string) (*RedisServer, error) {
	return startRedisWith(dir, false, nil)
}

// startRedisWith is StartRedis with more arguments, extra(port); with pair,
// port+1 is free too (a Cluster node's bus port).
func startRedisWith(dir string, pair bool, extra func(port int) []string) (*RedisServer, error) {
	bin := RedisBin()
	if bin == "" {
		return nil, &MissingError{"redis-server not found (install it or set CHDPROXY_REDIS_BIN)"}
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	args := func(port int) []string {
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--protected-mode", "yes", "--daemonize", "no",
		}
		if extra != nil {
			args = append(args, extra(port)...)
		}
		return args
	}
	p, port, err := startServer("redis-server", bin, dir, "redis.log", pair, 10*time.Second, args, func(port int) error { return redisPing(addr(port)) })
	if err != nil {
		return nil, err
	}
	restarts := 0
	return &RedisServer{Addr: addr(port), Proc: p, start: func() (*Proc, error) {
		restarts++
		p, err := StartProc("redis-server", bin, args(port), ChildEnv(dir), filepath.Join(dir, "redis."+strconv.Itoa(restarts)+".log"))
		if err != nil {
			return nil, err
		}
		if err := p.WaitFor(10*time.Second, func() error { return redisPing(addr(port)) }); err != nil {
			p.Stop()
			return nil, err
		}
		return p, nil
	}}, nil
}

// RedisDurable is Redis with an append-only file fsynced at every write, as a
// production Redis keeps its data: after Stop (SIGKILL) and Restart it holds every
// write it acknowledged.
func RedisDurable(t testing.TB) *RedisServer {
	t.Helper()
	return RedisWith(t, "--appendonly", "yes", "--appendfsync", "always")
}

// Restart starts the server again after Stop (a kill), on the same address, in the
// same folder and with the same arguments, and waits until it answers PING; a
// RedisDurable comes back with its data, any other empty. It fails if the port was
// taken meanwhile. Not safe to call concurrently with Stop.
func (s *RedisServer) Restart() error {
	if !s.exited() {
		return errString("redis-server restart: it is still running (Stop it first)")
	}
	p, err := s.start()
	if err != nil {
		return err
	}
	s.Proc = p
	return nil
}

// redisPing sends an inline PING and expects +PONG (or NOAUTH).
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
	// NOAUTH: up, with the default user off (an ACL file).
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return &net.OpError{Op: "ping", Net: "tcp", Err: errString("unexpected answer")}
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

// RedisWith is Redis with more redis-server arguments (an ACL file, TLS).
func RedisWith(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	return startFor(t, "redis-server", func(dir string) (*RedisServer, error) {
		return startRedisWith(dir, false, func(int) []string { return args })
	})
}
