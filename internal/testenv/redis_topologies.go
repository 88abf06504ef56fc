package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisSet is several redis processes on loopback that clients see as one
// Redis: a Sentinel set (Addrs are the sentinels, MasterName the monitored
// master) or a Cluster (Addrs are its masters). Stop kills every process.
type RedisSet struct {
	Addrs      []string
	MasterName string // Sentinel only
	procs      []*Proc
}

// Stop kills every process of the set now.
func (s *RedisSet) Stop() {
	for _, p := range s.procs {
		p.Stop()
	}
}

// Output is every process's output, each under its name.
func (s *RedisSet) Output() string {
	var b strings.Builder
	for _, p := range s.procs {
		fmt.Fprintf(&b, "== %s (%s)\n%s\n", p.name, filepath.Base(filepath.Dir(p.log)), p.Output())
	}
	return b.String()
}

// start starts one redis-server of the set in dir/name with extra arguments.
func (s *RedisSet) start(dir, name string, pair bool, extra func(port int) []string) (*RedisServer, error) {
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o700); err != nil {
		return nil, err
	}
	rs, err := startRedisWith(sub, pair, extra)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, rs.Proc)
	return rs, nil
}

// RedisSentinel starts a Sentinel set for t (see StartRedisSentinel).
func RedisSentinel(t testing.TB) *RedisSet {
	t.Helper()
	return startFor(t, "redis sentinel set", StartRedisSentinel)
}

// StartRedisSentinel starts a master, a replica of it and three sentinels
// (quorum 2) monitoring it as "chdproxy", and waits until every sentinel
// names the master. Sentinels run as `redis-sentinel` when installed, else
// as `redis-server --sentinel` (the same program).
func StartRedisSentinel(dir string) (_ *RedisSet, err error) {
	s := &RedisSet{MasterName: "chdproxy"}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	master, err := s.start(dir, "master", false, nil)
	if err != nil {
		return nil, err
	}
	host, mport, _ := strings.Cut(master.Addr, ":")
	if _, err = s.start(dir, "replica", false, func(int) []string { return []string{"--replicaof", host, mport} }); err != nil {
		return nil, err
	}
	for i := range 3 {
		sub := filepath.Join(dir, "sentinel-"+strconv.Itoa(i))
		if err = os.MkdirAll(sub, 0o700); err != nil {
			return nil, err
		}
		p, port, err := startSentinel(sub, master.Addr, s.MasterName)
		if err != nil {
			return nil, err
		}
		s.procs = append(s.procs, p)
		s.Addrs = append(s.Addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	return s, nil
}

// startSentinel starts one sentinel in dir (it rewrites its own config file there).
func startSentinel(dir, masterAddr, name string) (*Proc, int, error) {
	bin, args := RedisBin(), []string{"--sentinel"}
	if b, err := exec.LookPath("redis-sentinel"); err == nil {
		bin, args = b, nil
	}
	host, mport, _ := strings.Cut(masterAddr, ":")
	conf := filepath.Join(dir, "sentinel.conf")
	return startServer("redis-sentinel", bin, dir, "sentinel.log", false, 10*time.Second, func(port int) []string {
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\nsentinel down-after-milliseconds %[3]s 5000\n",
			port, dir, name, host, mport)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil
		}
		return append([]string{conf}, args...)
	}, func(port int) error {
		out, err := redisCLI("127.0.0.1:"+strconv.Itoa(port), "SENTINEL", "get-master-addr-by-name", name)
		if err != nil || !strings.Contains(out, mport) {
			return fmt.Errorf("sentinel does not name the master yet: %v %q", err, out)
		}
		return nil
	})
}

// RedisCluster starts a three-master Cluster for t (see StartRedisCluster).
func RedisCluster(t testing.TB) *RedisSet {
	t.Helper()
	return startFor(t, "redis cluster", StartRedisCluster)
}

// StartRedisCluster starts three cluster-enabled redis-servers (bus port =
// port+1), joins them with `redis-cli --cluster create` (all 16384 slots,
// no replicas) and waits until each says cluster_state:ok.
func StartRedisCluster(dir string) (_ *RedisSet, err error) {
	s := &RedisSet{}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	for i := range 3 {
		rs, err := s.start(dir, "node-"+strconv.Itoa(i), true, func(port int) []string {
			return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "3000", "--cluster-port", strconv.Itoa(port + 1)}
		})
		if err != nil {
			return nil, err
		}
		s.Addrs = append(s.Addrs, rs.Addr)
	}
	args := append([]string{"--cluster", "create"}, s.Addrs...)
	if out, err := exec.Command(redisCLIBin(), append(args, "--cluster-yes")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range s.Addrs {
		if err := s.procs[0].WaitFor(15*time.Second, func() error {
			out, err := redisCLI(a, "CLUSTER", "INFO")
			if err != nil || !strings.Contains(out, "cluster_state:ok") {
				return errors.New("cluster_state is not ok")
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// redisCLIBin is redis-cli next to redis-server, else on PATH.
func redisCLIBin() string {
	if b := filepath.Join(filepath.Dir(RedisBin()), "redis-cli"); fileExists(b) {
		return b
	}
	return "redis-cli"
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// redisCLI runs one command with redis-cli against addr.
func redisCLI(addr string, args ...string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command(redisCLIBin(), append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return string(out), err
}
