package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/chdproxy/chdproxy/internal/testenv"
)

// The profile phases run after the measured ones, so that profiling (about 5%
// of a core while it samples) disturbs no measured row. Each holds one load with
// the measured phases' code while chdproxy (CHDPROXY_PPROF_ADDR) and Vault
// (sys/pprof) are CPU-profiled, and sorts the samples into areas (profile.go).

const (
	profileWarmup = time.Second
	profileDur    = 4 * time.Second
	// At 10% of best a forward's CPU is about 1 s in 4 s, 100 samples at
	// pprof's 100 Hz: a longer window gives each area enough of them.
	profileLowDur = 12 * time.Second
)

// Profile phases, in table order.
const (
	profForwardLow = "forward_10pct"
	profForwardSat = "forward_saturation"
	profTokenize   = "tokenize_saturation"
)

// profileRun is one profile phase.
type profileRun struct {
	Name     string         `json:"name"` // profForwardLow | profForwardSat | profTokenize
	Load     string         `json:"load"` // "150/s" or "c=64"
	Seconds  float64        `json:"seconds"`
	Requests int            `json:"requests"`
	Errors   int            `json:"errors"`
	Chdproxy processProfile `json:"chdproxy"`
	Vault    processProfile `json:"vault"`
}

// profileAll runs the profile phases the measured rows allow: the forward ones
// need a best forward concurrency, the tokenize one a best tokenize concurrency.
// The raw profiles are left in dir (kept with -keep).
func (b *bench) profileAll(rep *report, vs *testenv.VaultServer, dir string) []profileRun {
	var runs []profileRun
	if sat := rep.best("forward", pathChdproxy); sat != nil {
		rate := max(5, float64(int(sat.RPS*0.10/5)*5)) // as the sweep's 10% row
		forward := func(c int, rate, expectRPS float64, dur time.Duration) (func() error, func() (outcome, error)) {
			// The tokens are made before the profiles start.
			prepare := func() error { return b.topUpPool(expectRPS, profileWarmup+dur) }
			return prepare, func() (outcome, error) {
				o, _, err := b.forwardPhase(pathChdproxy, c, rate, expectRPS, profileWarmup, dur)
				return o, err
			}
		}
		prepare, run := forward(openLoopWorkers, rate, rate, profileLowDur)
		runs = append(runs, b.profilePhase(profForwardLow, fmt.Sprintf("%.0f/s", rate), profileLowDur, vs, dir, prepare, run))
		prepare, run = forward(sat.Concurrency, 0, sat.RPS, profileDur)
		runs = append(runs, b.profilePhase(profForwardSat, fmt.Sprintf("c=%d", sat.Concurrency), profileDur, vs, dir, prepare, run))
	}
	if sat := rep.best("tokenize", pathChdproxy); sat != nil {
		runs = append(runs, b.profilePhase(profTokenize, fmt.Sprintf("c=%d", sat.Concurrency), profileDur, vs, dir, nil, func() (outcome, error) {
			return b.tokenizePhase(pathChdproxy, sat.Concurrency, profileWarmup, profileDur), nil
		}))
	}
	return runs
}

// profilePhase runs prepare (when not nil), then run while both processes are
// profiled through its measured window of dur.
func (b *bench) profilePhase(name, load string, dur time.Duration, vs *testenv.VaultServer, dir string, prepare func() error, run func() (outcome, error)) profileRun {
	pr := profileRun{Name: name, Load: load}
	if prepare != nil {
		if err := prepare(); err != nil {
			pr.Chdproxy.Error, pr.Vault.Error = err.Error(), err.Error()
			return pr
		}
	}
	logf("profiling %s at %s", name, load)
	seconds := strconv.Itoa(int(dur.Seconds()))
	var cpProf, vaultProf *profile.Profile
	var cpErr, vaultErr error
	var wg sync.WaitGroup
	// The phase's window opens after its warm-up: the fetches start then.
	wg.Go(func() {
		time.Sleep(profileWarmup)
		cpProf, cpErr = fetchProfile(b.cp.pprof+"/debug/pprof/profile?seconds="+seconds, "", filepath.Join(dir, "chdproxy-"+name+".pb.gz"))
	})
	wg.Go(func() {
		time.Sleep(profileWarmup)
		vaultProf, vaultErr = fetchProfile(vs.Addr+"/v1/sys/pprof/profile?seconds="+seconds, vs.Token, filepath.Join(dir, "vault-"+name+".pb.gz"))
	})
	o, err := run()
	wg.Wait()
	if err != nil {
		pr.Chdproxy.Error, pr.Vault.Error = err.Error(), err.Error()
		return pr
	}
	pr.Seconds, pr.Requests, pr.Errors = round(o.elapsed.Seconds(), 2), len(o.lat), o.errs
	// o.cpu follows watched(): chdproxy, Vault, Redis, chdbench.
	pr.Chdproxy = summarized(chdproxyClassifier, cpProf, cpErr, pr.Requests, o.cpu[0])
	pr.Vault = summarized(vaultClassifier, vaultProf, vaultErr, pr.Requests, o.cpu[1])
	logf("  %d requests, chdproxy %.3f ms/req profiled (%.3f from /proc), Vault %.3f (%.3f) %s %s", pr.Requests,
		pr.Chdproxy.MsPerReq, pr.Chdproxy.ProcMsPerReq, pr.Vault.MsPerReq, pr.Vault.ProcMsPerReq, pr.Chdproxy.Error, pr.Vault.Error)
	return pr
}

// summarized is p by area per request, or the reason there is none.
func summarized(c classifier, p *profile.Profile, err error, requests int, procCPU float64) processProfile {
	var pp processProfile
	if err == nil {
		pp, err = c.summarize(p, requests)
	}
	if err != nil {
		return processProfile{Error: err.Error()}
	}
	pp.ProcMsPerReq = round(procCPU*1000/float64(requests), 3)
	return pp
}

// fetchProfile gets a CPU profile (with a Vault token when token is set),
// keeps its bytes in keep and parses it.
func fetchProfile(url, token, keep string) (*profile.Profile, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := (&http.Client{Timeout: profileLowDur + 15*time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %.200s", req.URL.Path, resp.StatusCode, body)
	}
	_ = os.WriteFile(keep, body, 0o600)
	return profile.Parse(bytes.NewReader(body))
}
