//go:build !production

package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
)

// pprofAddrEnv names the loopback address of the CPU profile listener
// (chdbench sets it). Unset: no listener. A production build has none of this
// (production.go stands in).
const pprofAddrEnv = "CHDPROXY_PPROF_ADDR"

// startCPUProfileListener serves /debug/pprof/profile, and nothing else, on the
// address in CHDPROXY_PPROF_ADDR. Only CPU samples: heap and goroutine dumps are
// left out because a goroutine's arguments could carry card data. stop closes it.
func startCPUProfileListener(log logrus.FieldLogger) (stop func(), err error) {
	addr := os.Getenv(pprofAddrEnv)
	if addr == "" {
		return func() {}, nil
	}
	ln, err := listenCPUProfile(addr)
	if err != nil {
		return nil, err
	}
	srv := cpuProfileServer()
	go srv.Serve(ln)
	log.WithField("addr", ln.Addr().String()).Warn("CPU profile listener on (" + pprofAddrEnv + "): not for production")
	return func() { srv.Close() }, nil
}

// listenCPUProfile listens on addr if it is a loopback IP and port: a profile
// tells an attacker much about the process, so it never leaves the machine.
func listenCPUProfile(addr string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: want a loopback IP and port, such as 127.0.0.1:6060: %v", pprofAddrEnv, addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, errors.New(pprofAddrEnv + "=" + addr + ": refused, not a loopback address (the profile listener is for this machine only)")
	}
	return net.Listen("tcp", ap.String())
}

// cpuProfileServer has no write timeout: a profile takes as long as its ?seconds=.
// It uses runtime/pprof, not net/http/pprof, whose import would register every
// profile (heap, goroutine dumps) on http.DefaultServeMux.
func cpuProfileServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/profile", serveCPUProfile)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

// serveCPUProfile answers a CPU profile of ?seconds= (default 30, at most 300),
// in the gzipped protobuf format go tool pprof and github.com/google/pprof read.
func serveCPUProfile(w http.ResponseWriter, r *http.Request) {
	secs, err := strconv.Atoi(r.URL.Query().Get("seconds"))
	if err != nil || secs <= 0 || secs > 300 {
		secs = 30
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil { // one at a time
		http.Error(w, "a CPU profile is already running", http.StatusConflict)
		return
	}
	defer pprof.StopCPUProfile()
	select {
	case <-time.After(time.Duration(secs) * time.Second):
	case <-r.Context().Done():
	}
}
