package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// This file sorts the CPU samples of a profile (chdproxy's, through its
// CHDPROXY_PPROF_ADDR listener, or Vault's, through sys/pprof) into areas: the
// part of the path that holds the CPU. Go's collector and scheduler come first,
// anywhere on the stack (a wake-up costs the same whoever asked for it); then
// the leaf-most frame that names a component decides.

// area is one row of a profile table: a name and the function-name prefixes
// that claim a sample for it.
type area struct {
	name     string
	prefixes []string
}

func (a area) matches(fn string) bool {
	for _, p := range a.prefixes {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

const (
	areaGC        = "Go GC"
	areaScheduler = "Go scheduler: parking, waking, spinning"
	areaStack     = "stack growth"
	areaJSON      = "JSON (encoding/json, outside the components above)"
	areaOwn       = "chdproxy's own work (scan, plan, splice, validation)"
	areaOther     = "other"
	chdproxyPkg   = "github.com/chdproxy/chdproxy/"
)

// runtimeAreas are checked on the whole stack, before any component.
var runtimeAreas = []area{
	{areaGC, []string{
		"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.gcDrain", "runtime.markroot", "runtime.scanobject",
		"runtime.scanstack", "runtime.bgsweep", "runtime.bgscavenge", "runtime.sweepone", "runtime.deductSweepCredit",
		"runtime.gcStart", "runtime.gcMarkDone", "runtime.gcMarkTermination", "runtime.wbBufFlush", "runtime.gcWriteBarrier",
		"runtime.GC", "runtime.(*mheap).reclaim", "runtime.(*gcWork)", "runtime.(*sweepLocked)",
	}},
	// Goroutine start and exit count here too: each hand-off pays them.
	{areaScheduler, []string{
		"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.gopark", "runtime.goready", "runtime.ready",
		"runtime.wakep", "runtime.startm", "runtime.stopm", "runtime.mPark", "runtime.handoffp", "runtime.note",
		"runtime.netpoll", "runtime.injectglist", "runtime.goschedImpl", "runtime.gosched_m", "runtime.goschedguarded",
		"runtime.exitsyscall0", "runtime.entersyscallblock", "runtime.sysmon", "runtime.resetspinning",
		"runtime.newproc", "runtime.goexit0", "runtime.osyield",
	}},
}

// chdproxyAreas are the components of chdproxy's path, tried frame by frame
// from the leaf up. A chdproxy frame that none claims ends the walk (its own
// work, or JSON when encoding/json was below it): the inbound server sits at
// the root of every request's stack and must not take its handler's samples.
var chdproxyAreas = []area{
	{areaStack, []string{"runtime.newstack", "runtime.morestack", "runtime.copystack"}},
	{"access log (logrus, redact formatter)", []string{"github.com/sirupsen/logrus", chdproxyPkg + "redact.(*formatter)"}},
	{"audit trail: fsync", []string{"syscall.Fsync", "internal/poll.(*FD).Fsync", "os.(*File).Sync"}},
	{"audit trail: the rest", []string{chdproxyPkg + "proxy.(*JSONLAudit)", chdproxyPkg + "proxy.(*auditBatch)", chdproxyPkg + "proxy.writeSync"}},
	{"Redis client (go-redis)", []string{"github.com/redis/go-redis/"}},
	// The only HTTP/1.1 client in chdproxy is Vault's: persistConn is it.
	{"Vault client (vault/api, HTTP/1.1)", []string{
		"github.com/hashicorp/vault/api", "github.com/hashicorp/go-retryablehttp", "github.com/hashicorp/go-cleanhttp",
		chdproxyPkg + "vault.(*VaultTransit)", chdproxyPkg + "vault.(*Coalescer)", "net/http.(*persistConn)",
	}},
	{"upstream TLS (crypto/tls)", []string{"crypto/tls."}},
	{"upstream HTTP/2", []string{"net/http.(*http2", "net/http.http2", "golang.org/x/net/http2", chdproxyPkg + "proxy.(*forward).roundTrip"}},
	{"metrics (prometheus)", []string{"github.com/prometheus/"}},
	{"inbound HTTP server (net/http, mux)", []string{
		"net/http.(*conn)", "net/http.(*response)", "net/http.(*connReader)", "net/http.(*chunkWriter)", "net/http.readRequest",
		"net/http.(*Server)", "net/http.serverHandler", "net/http.(*expectContinueReader)", "github.com/gorilla/mux",
	}},
}

// vaultAreas are coarser: Vault is not ours to change, only to tell apart
// what its transit work costs from what every request to it costs.
var vaultAreas = []area{
	{"transit: key derivation and encryption", []string{
		"crypto/", "golang.org/x/crypto/", "github.com/hashicorp/vault/builtin/logical/transit", "github.com/hashicorp/vault/sdk/helper/keysutil",
	}},
	{"token lookup and policy check", []string{
		"github.com/hashicorp/vault/vault.(*TokenStore)", "github.com/hashicorp/vault/vault.(*Core).LookupToken",
		"github.com/hashicorp/vault/vault.(*Core).PopulateTokenEntry", "github.com/hashicorp/vault/vault.(*Core).CheckToken",
		"github.com/hashicorp/vault/vault.(*ACL)", "github.com/hashicorp/vault/vault.(*PolicyStore)",
	}},
	{"quotas and request limits", []string{
		"github.com/hashicorp/vault/vault/quotas", "github.com/hashicorp/vault/http.jsonLimitsValidation",
		"github.com/hashicorp/vault/sdk/helper/jsonutil.VerifyMaxDepth", "github.com/hashicorp/vault/http.hitRateLimitQuota",
	}},
	{"request and answer JSON", []string{"encoding/json.", "github.com/hashicorp/vault/sdk/helper/jsonutil"}},
	{"logging and audit", []string{"github.com/hashicorp/go-hclog", "github.com/hashicorp/vault/audit", "github.com/hashicorp/eventlogger"}},
	{"HTTP server and routing", []string{"net/http.", "github.com/hashicorp/vault/http.", "github.com/hashicorp/vault/vault.(*Core)", "github.com/hashicorp/vault/vault.(*Router)", "github.com/hashicorp/vault/sdk/framework"}},
}

// classifier sorts stacks into areas: components are tried leaf-up; with own
// set, a frame starting with own that no component claims ends the walk.
type classifier struct {
	components []area
	own        string
}

var (
	chdproxyClassifier = classifier{components: chdproxyAreas, own: chdproxyPkg}
	vaultClassifier    = classifier{components: vaultAreas}
)

// areaNames lists the classifier's areas in table order.
func (c classifier) areaNames() []string {
	names := []string{areaGC, areaScheduler}
	for _, a := range c.components {
		names = append(names, a.name)
	}
	if c.own != "" {
		names = append(names, areaJSON, areaOwn)
	}
	return append(names, areaOther)
}

// classify names the area of one stack, leaf first.
func (c classifier) classify(stack []string) string {
	for _, a := range runtimeAreas {
		if slices.ContainsFunc(stack, a.matches) {
			return a.name
		}
	}
	sawJSON := false
	for _, fn := range stack {
		for _, a := range c.components {
			if a.matches(fn) {
				return a.name
			}
		}
		if c.own == "" {
			continue
		}
		if strings.HasPrefix(fn, "encoding/json.") {
			sawJSON = true
		} else if strings.HasPrefix(fn, c.own) {
			if sawJSON {
				return areaJSON
			}
			return areaOwn
		}
	}
	if sawJSON {
		return areaJSON
	}
	return areaOther
}

// stack returns a sample's function names, leaf first, inlined frames included.
func stack(s *profile.Sample) []string {
	var out []string
	for _, loc := range s.Location {
		for _, line := range loc.Line { // Line[0] is the innermost
			if line.Function != nil {
				out = append(out, line.Function.Name)
			}
		}
	}
	return out
}

// cpuByArea sums a CPU profile's sample time (nanoseconds) by area.
func (c classifier) cpuByArea(p *profile.Profile) (map[string]int64, error) {
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, fmt.Errorf("not a CPU profile: sample types %v", p.SampleType)
	}
	out := map[string]int64{}
	for _, s := range p.Sample {
		out[c.classify(stack(s))] += s.Value[vi]
	}
	return out, nil
}

// samples counts a profile's samples (each holds one or more SIGPROF ticks).
func samples(p *profile.Profile) int {
	n := 0
	for _, s := range p.Sample {
		n += int(s.Value[0])
	}
	return n
}

// areaCPU is one area's CPU per request and share of the process's profiled CPU.
type areaCPU struct {
	Area     string  `json:"area"`
	MsPerReq float64 `json:"cpu_ms_per_req"`
	Percent  float64 `json:"percent"`
}

// processProfile is one process's profile during a profile phase.
type processProfile struct {
	MsPerReq float64 `json:"cpu_ms_per_req"` // the profile's total sample time per request
	Samples  int     `json:"samples"`        // one per 10 ms of CPU: the figures' resolution
	// ProcMsPerReq is the same from /proc/PID/stat, for comparison: what the
	// profile missed (the kernel's work outside the process's threads, lost
	// samples) shows as the difference.
	ProcMsPerReq float64   `json:"proc_cpu_ms_per_req"`
	Areas        []areaCPU `json:"areas"`
	Error        string    `json:"error,omitempty"`
}

// summarize turns a profile into CPU per request by area, in table order.
func (c classifier) summarize(p *profile.Profile, requests int) (processProfile, error) {
	byArea, err := c.cpuByArea(p)
	if err != nil {
		return processProfile{}, err
	}
	if requests == 0 {
		return processProfile{}, errors.New("no request completed while profiled")
	}
	var total int64
	for _, ns := range byArea {
		total += ns
	}
	pp := processProfile{MsPerReq: round(float64(total)/1e6/float64(requests), 3), Samples: samples(p)}
	for _, name := range c.areaNames() {
		ns := byArea[name]
		pct := 0.0
		if total > 0 {
			pct = round(100*float64(ns)/float64(total), 1)
		}
		pp.Areas = append(pp.Areas, areaCPU{Area: name, MsPerReq: round(float64(ns)/1e6/float64(requests), 3), Percent: pct})
	}
	return pp, nil
}

// area returns the figure of the named area, zero when absent.
func (pp *processProfile) area(name string) areaCPU {
	for _, a := range pp.Areas {
		if a.Area == name {
			return a
		}
	}
	return areaCPU{Area: name}
}
