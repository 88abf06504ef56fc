package main

import (
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

const own = "github.com/chdproxy/chdproxy/"

// synthetic builds a CPU profile of one sample per stack (leaf first; "a+b"
// is one location with a inlined into b), the i-th worth (i+1) ms.
func synthetic(stacks [][]string) *profile.Profile {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	funcs := map[string]*profile.Function{}
	fn := func(name string) *profile.Function {
		if f, ok := funcs[name]; ok {
			return f
		}
		f := &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
		funcs[name] = f
		p.Function = append(p.Function, f)
		return f
	}
	for i, st := range stacks {
		s := &profile.Sample{Value: []int64{1, int64(i+1) * 1e6}}
		for _, frame := range st {
			loc := &profile.Location{ID: uint64(len(p.Location) + 1)}
			for _, name := range strings.Split(frame, "+") {
				loc.Line = append(loc.Line, profile.Line{Function: fn(name)})
			}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

func TestProfileSamplesGoToTheirArea(t *testing.T) {
	cases := []struct {
		want  string
		stack []string
	}{
		{areaGC, []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}},
		{areaGC, []string{"runtime.gcAssistAlloc1", "runtime.gcAssistAlloc", "runtime.mallocgc", "encoding/json.Marshal", "github.com/sirupsen/logrus.(*Entry).write"}},
		{areaScheduler, []string{"runtime.futex", "runtime.futexsleep", "runtime.notesleep", "runtime.stopm", "runtime.findRunnable", "runtime.schedule", "runtime.park_m", "runtime.mcall"}},
		// A wake-up is the scheduler's whoever asked for it.
		{areaScheduler, []string{"runtime.futex", "runtime.futexwakeup", "runtime.notewakeup", "runtime.startm", "runtime.wakep", "runtime.ready", "runtime.chansend", "github.com/sirupsen/logrus.(*Entry).log"}},
		{areaStack, []string{"runtime.memmove", "runtime.copystack", "runtime.newstack", "runtime.morestack", own + "proxy.(*forward).ServeHTTP"}},
		// JSON under a component is the component's; under chdproxy's own code, JSON.
		{"access log (logrus, redact formatter)", []string{"encoding/json.(*encodeState).string", "encoding/json.Marshal", own + "redact.(*formatter).Format", "github.com/sirupsen/logrus.(*Entry).write"}},
		{areaJSON, []string{"encoding/json.(*decodeState).object", "encoding/json.Unmarshal", own + "proxy.(*forward).splice", own + "proxy.(*forward).ServeHTTP", "net/http.serverHandler.ServeHTTP", "net/http.(*conn).serve"}},
		{areaJSON, []string{"encoding/json.checkValid+" + own + "proxy.parseBody", own + "proxy.(*forward).ServeHTTP", "net/http.(*conn).serve"}},
		// The inbound server at the root does not take its handler's samples.
		{areaOwn, []string{"runtime.memeqbody", own + "redact.(*Scanner).scan", own + "proxy.(*forward).ServeHTTP", "net/http.serverHandler.ServeHTTP", "net/http.(*conn).serve"}},
		{"inbound HTTP server (net/http, mux)", []string{"syscall.Syscall", "internal/poll.(*FD).Read", "net.(*conn).Read", "net/http.(*connReader).Read", "bufio.(*Reader).fill", "net/http.(*conn).readRequest", "net/http.(*conn).serve"}},
		{"audit trail: fsync", []string{"internal/runtime/syscall.Syscall6", "syscall.Fsync", "internal/poll.(*FD).Fsync", "os.(*File).Sync", own + "proxy.writeSync", own + "proxy.(*JSONLAudit).flushOne"}},
		{"audit trail: the rest", []string{"encoding/json.Marshal", own + "proxy.(*JSONLAudit).line", own + "proxy.(*JSONLAudit).Write", own + "proxy.(*forward).ServeHTTP"}},
		{"Redis client (go-redis)", []string{"syscall.Syscall", "github.com/redis/go-redis/v9/internal/pool.(*Conn).Write", own + "vault.(*Store).Get", own + "proxy.(*forward).ServeHTTP"}},
		{"Vault client (vault/api, HTTP/1.1)", []string{"syscall.Syscall", "internal/poll.(*FD).Write", "net/http.(*persistConn).writeLoop"}},
		{"upstream TLS (crypto/tls)", []string{"crypto/internal/fips140/aes/gcm.seal", "crypto/tls.(*halfConn).encrypt", "crypto/tls.(*Conn).Write", "net/http.(*http2ClientConn).writeHeaders"}},
		{"upstream HTTP/2", []string{"net/http.(*http2Framer).ReadFrame", "net/http.(*http2clientConnReadLoop).run"}},
		{"metrics (prometheus)", []string{"runtime.memclrNoHeapPointers", "runtime.mallocgc", "github.com/prometheus/client_golang/prometheus.(*histogram).Observe", own + "proxy.(*forward).ServeHTTP"}},
		{areaOther, []string{"runtime.memclrNoHeapPointers", "runtime.mallocgc", "os/signal.loop"}},
	}
	var stacks [][]string
	want := map[string]int64{}
	for _, c := range cases {
		stacks = append(stacks, c.stack)
	}
	p := synthetic(stacks)
	for i, c := range cases {
		want[c.want] += int64(i+1) * 1e6
		if got := chdproxyClassifier.classify(stack(p.Sample[i])); got != c.want {
			t.Errorf("stack %d (%s …): got %q, want %q", i, c.stack[0], got, c.want)
		}
	}
	got, err := chdproxyClassifier.cpuByArea(p)
	if err != nil {
		t.Fatal(err)
	}
	for area, ns := range want {
		if got[area] != ns {
			t.Errorf("%s: got %d ns, want %d", area, got[area], ns)
		}
	}
	for area := range got {
		if !strings.Contains(strings.Join(chdproxyClassifier.areaNames(), "\n"), area) {
			t.Errorf("area %q is not in the table's rows", area)
		}
	}
}

func TestVaultSamplesGoToCoarserAreas(t *testing.T) {
	p := synthetic([][]string{
		{"crypto/internal/fips140/aes.encryptBlock", "crypto/cipher.(*gcm).Seal", "github.com/hashicorp/vault/builtin/logical/transit.(*backend).pathEncryptWrite", "net/http.(*conn).serve"},
		{"encoding/json.Marshal", "github.com/hashicorp/vault/http.respondOk", "net/http.(*conn).serve"},
		{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"},
		{"github.com/hashicorp/go-hclog.(*intLogger).log", "github.com/hashicorp/vault/vault.(*Core).handleRequest", "net/http.(*conn).serve"},
		{"github.com/hashicorp/vault/vault.(*ExpirationManager).Tidy"},
		{"runtime.mapaccess2", "github.com/hashicorp/vault/vault.(*TokenStore).lookupInternal", "github.com/hashicorp/vault/vault.(*Core).handleRequest", "net/http.(*conn).serve"},
		{"sync.(*Mutex).Lock", "github.com/hashicorp/vault/vault/quotas.(*Manager).ApplyQuota", "github.com/hashicorp/vault/http.handler.rateLimitQuotaWrapping.func57", "net/http.(*conn).serve"},
		{"runtime.memmove", "github.com/hashicorp/vault/vault.(*Router).routeCommon", "github.com/hashicorp/vault/vault.(*Core).handleRequest", "net/http.(*conn).serve"},
	}) // 1 to 8 ms
	pp, err := vaultClassifier.summarize(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"transit: key derivation and encryption": 0.5, "request and answer JSON": 1, areaGC: 1.5,
		"logging and audit": 2, areaOther: 2.5, "token lookup and policy check": 3, "quotas and request limits": 3.5,
		"HTTP server and routing": 4, areaScheduler: 0,
	}
	for area, ms := range want {
		if got := pp.area(area); got.MsPerReq != ms {
			t.Errorf("%s: got %.3f ms/req, want %.3f", area, got.MsPerReq, ms)
		}
	}
	if pp.MsPerReq != 18 || pp.area(areaOther).Percent != 13.9 {
		t.Errorf("total %.3f ms/req, other %.1f%%: want 18 and 13.9%%", pp.MsPerReq, pp.area(areaOther).Percent)
	}
}
