//go:build !production

package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestPprofListenerRefusesAnAddressOffLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "[::]:6060", "192.0.2.1:6060", "localhost:6060"} {
		t.Setenv(pprofAddrEnv, addr)
		if stop, err := startCPUProfileListener(logrus.New()); err == nil {
			stop()
			t.Errorf("%s=%s: started, want an error", pprofAddrEnv, addr)
		}
	}
	t.Setenv(pprofAddrEnv, "")
	stop, err := startCPUProfileListener(logrus.New())
	if err != nil {
		t.Fatalf("unset: %v, want no listener and no error", err)
	}
	stop()
}

// The listener serves a CPU profile (gzipped protobuf) and nothing else of pprof.
func TestPprofListenerServesOnlyTheCPUProfile(t *testing.T) {
	ln, err := listenCPUProfile("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := cpuProfileServer()
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/debug/pprof/"
	resp, err := http.Get(base + "profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Errorf("profile: status %d, body %.40q; want 200 and a gzipped profile", resp.StatusCode, body)
	}
	for _, name := range []string{"goroutine?debug=2", "heap", "cmdline", ""} {
		resp, err := http.Get(base + name)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", strings.TrimSuffix(base+name, "/"), resp.StatusCode)
		}
	}
}
