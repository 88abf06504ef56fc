// Package testenv starts real dependencies: a redis-server and a Vault server
// in dev mode, each on a free loopback port. StartRedis and StartVault are for
// any program (cmd/chdbench); Redis and Vault wrap them for a test, stopping
// the server when the test ends.
//
// When a server binary is missing the test is skipped, except under CI=true
// where it fails: CI must run the integration tests, not skip them.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MissingError reports that a server binary is not installed.
type MissingError struct{ What string }

func (e *MissingError) Error() string { return e.What }

// missing skips t, or fails it under CI=true.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: %s (CI=true: integration tests must not be skipped)", what)
	}
	t.Skipf("testenv: %s; skipping integration test", what)
}

// server is what StartRedis and StartVault return.
type server interface {
	Stop()
	Output() string
}

// startFor starts a server for t in a folder of t's: it skips t when the
// server binary is missing (fails it under CI=true), stops the server when t
// ends, and shows its output then if t failed.
func startFor[S server](t testing.TB, name string, start func(dir string) (S, error)) S {
	t.Helper()
	s, err := start(t.TempDir())
	if err != nil {
		var me *MissingError
		if errors.As(err, &me) {
			missing(t, me.What)
		} else {
			t.Fatalf("testenv: %v", err)
		}
		return s
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("testenv: %s output:\n%s", name, s.Output())
		}
	})
	return s
}

// FreePort returns a loopback port that was free a moment ago; with pair,
// its successor too (Vault dev mode listens on port+1 for its cluster).
func FreePort(pair bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("no free port: %w", err)
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
	return 0, errors.New("no free pair of ports")
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Proc is a started server process; its output goes to a log file.
type Proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	once      sync.Once
}

// StartProc starts bin with args and env, its standard output and error
// written to the file logPath.
func StartProc(name, bin string, args, env []string, logPath string) (*Proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Proc{name: name, log: logPath, done: make(chan struct{})}
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

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop kills the process now (to test an outage) and waits for it.
func (p *Proc) Stop() { p.Shutdown(0) }

// Shutdown interrupts the process, kills it if it has not ended after grace
// (at once with grace 0) and waits for it. Only the first Stop or Shutdown
// does anything.
func (p *Proc) Shutdown(grace time.Duration) {
	p.once.Do(func() {
		if p.exited() {
			return
		}
		if grace > 0 {
			p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
				return
			case <-time.After(grace):
			}
		}
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
}

// Output returns what the process wrote so far (the first MiB: a runaway log
// is no help).
func (p *Proc) Output() string {
	f, err := os.Open(p.log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

// WaitFor polls ready until it succeeds, the process exits, or d passes.
func (p *Proc) WaitFor(d time.Duration, ready func() error) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited during start-up", p.name)
		}
		if last = ready(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", p.name, d, last)
}

// startServer runs bin with args(port) on a free loopback port (with pair,
// port+1 is free too), in dir with its output in dir/logName, and waits up
// to d for ready(port). A port can be taken between FreePort and the
// server's bind, so it tries three.
func startServer(name, bin, dir, logName string, pair bool, d time.Duration, args func(port int) []string, ready func(port int) error) (*Proc, int, error) {
	var errs []error
	for range 3 {
		port, err := FreePort(pair)
		if err != nil {
			return nil, 0, err
		}
		p, err := StartProc(name, bin, args(port), ChildEnv(dir), filepath.Join(dir, logName))
		if err != nil {
			return nil, 0, err
		}
		if err = p.WaitFor(d, func() error { return ready(port) }); err == nil {
			return p, port, nil
		}
		p.Stop()
		errs = append(errs, fmt.Errorf("%v; %s output:\n%s", err, name, p.Output()))
	}
	return nil, 0, fmt.Errorf("%s did not start: %w", name, errors.Join(errs...))
}

// ChildEnv is the environment for a server: ours without variables that
// would change its behaviour (VAULT_*, REDIS_*), HOME pointed at dir.
func ChildEnv(dir string) []string {
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
