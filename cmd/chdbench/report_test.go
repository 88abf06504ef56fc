package main

import (
	"strings"
	"testing"
)

func ptr(v float64) *float64 { return &v }

// testReport is a run whose figures sit on either side of issue 15's targets.
func testReport() *report {
	r := &report{Options: reportOptions{Concurrency: []int{1, 64}}}
	r.Parts = []part{
		{Name: partDecrypt, P50: 0.30, P99: 1.00},
		{Name: partDecryptTwoKeys, P50: 0.45, P99: 1.50},
		{Name: "Redis pipeline of GET + 2 EXISTS", P50: 0.03, P99: 0.20},
		{Name: "append 400 bytes + fsync", P50: 0.07, P99: 0.30},
		{Name: "HTTP round trip to chdproxy", P50: 0.10, P99: 0.40},
		{Name: "HTTPS round trip to the sandbox", P50: 0.05, P99: 0.10},
	} // sums (one decrypt): p50 0.55 ms, p99 2.00 ms
	fwd := func(path string, c int, rate, frac, rps, p50, p99, cpu float64) row {
		x := row{Scenario: "forward", Path: path, Concurrency: c, Rate: rate, Fraction: frac, Requests: 100, RPS: rps, P50: p50, P99: p99}
		if path == pathChdproxy {
			x.CPUPer1k = ptr(cpu)
		}
		return x
	}
	r.Rows = []row{
		fwd(pathDirect, 1, 0, 0, 5000, 0.1, 1, 0),
		fwd(pathChdproxy, 1, 0, 0, 400, 0.80, 5, 1.2), // p50 ≤ 0.55 + 0.3: met
		fwd(pathDirect, 64, 0, 0, 4000, 8, 40, 0),
		fwd(pathChdproxy, 64, 0, 0, 1500, 30, 90, 0.5), // 1500 ≥ 0.35 × 5000? no
		fwd(pathDirect, 150, 150, 0.10, 150, 0.4, 1, 0),
		fwd(pathChdproxy, 150, 150, 0.10, 150, 1.5, 5.9, 0.74), // p99 5.9 ≤ 6: met; CPU 0.74 ≤ 0.75: met
		fwd(pathDirect, 375, 375, 0.25, 375, 0.4, 1, 0),
		fwd(pathChdproxy, 375, 375, 0.25, 375, 2, 6.1, 0.6), // p99 6.1 > 6: not met
		{Scenario: "tokenize", Path: pathChdproxy, Concurrency: 64, Requests: 100, RPS: 2500},
		{Scenario: "tokenize", Path: pathFloor, Concurrency: 64, Requests: 100, RPS: 5000}, // 0.5×: met
	}
	return r
}

func TestTargetsAreComputedAsRatiosOfTheSameRun(t *testing.T) {
	r := testReport()
	r.compute()
	want := map[string]bool{
		"forward p99 at 10% of best (150 req/s) vs the parts' p99s": true,
		"forward p99 at 25% of best (375 req/s) vs the parts' p99s": false,
		"forward p50 at c=1 vs the parts' p50s":                     true,
		"chdproxy CPU per forward at 10% of best vs at saturation":  true,
		"forward throughput at saturation vs direct":                false,
		"tokenize throughput at saturation vs floor":                true,
	}
	got := map[string]bool{}
	for _, x := range r.Targets {
		if x.Issue == 15 {
			got[x.Name] = x.Met
		}
	}
	for name, met := range want {
		m, ok := got[name]
		if !ok {
			t.Errorf("target %q is missing; got %v", name, got)
			continue
		}
		if m != met {
			t.Errorf("target %q: got met=%v, want %v", name, m, met)
		}
	}
}

func TestTheSweepAndWhereTheTimeGoesAreInTheReport(t *testing.T) {
	r := testReport()
	r.compute()
	md := string(r.markdown())
	for _, s := range []string{"## Forward sweep", "| 150/s | 10% |", "| 375/s | 25% |", "## Where the time goes", "**not met**"} {
		if !strings.Contains(md, s) {
			t.Errorf("the report lacks %q", s)
		}
	}
	if strings.Contains(md, "%!") {
		t.Errorf("the report has a formatting error: %q", md[strings.Index(md, "%!")-40:][:80])
	}
}

// profiled is a process profile of the given scheduler, GC and Vault-client CPU per request.
func profiled(sched, gc, vaultClient float64) processProfile {
	total := sched + gc + vaultClient
	return processProfile{MsPerReq: total, ProcMsPerReq: total * 1.1, Samples: 100, Areas: []areaCPU{
		{Area: areaScheduler, MsPerReq: sched}, {Area: areaGC, MsPerReq: gc},
		{Area: "Vault client (vault/api, HTTP/1.1)", MsPerReq: vaultClient},
	}}
}

func TestTheProfilesSectionSaysWhereTheDifferenceIs(t *testing.T) {
	r := testReport()
	r.Profiles = []profileRun{
		{Name: profForwardLow, Load: "150/s", Chdproxy: profiled(0.6, 0.2, 0.7), Vault: profiled(0.1, 0.1, 0)},
		{Name: profForwardSat, Load: "c=64", Chdproxy: profiled(0.1, 0.1, 0.3), Vault: profiled(0.05, 0.05, 0)},
		{Name: profTokenize, Load: "c=64", Chdproxy: processProfile{Error: "connection refused"}},
	}
	r.compute()
	md := string(r.markdown())
	for _, s := range []string{
		"## Profiles: where the CPU goes",
		"| area | forward at 10% of best (150/s) ms/forward (%) | forward at saturation (c=64) ms/forward (%) | × | tokenize at saturation (c=64) ms/req (%) |",
		"| Go scheduler: parking, waking, spinning | 0.600 (0%) | 0.100 (0%) | 6.0× | — |",
		"no profile: connection refused",
		"chdproxy spends 0.800 of its 1.500 ms per forward in the scheduler and GC, against 0.200 of 0.500 at saturation (c=64): " +
			"the difference between the two rates is 1.000 ms per forward, of which 0.500 in the scheduler and 0.100 in GC; " +
			"besides them, Vault client (vault/api, HTTP/1.1) grows most (+0.400 ms, 40% of the difference).",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("the report lacks %q", s)
		}
	}
	if i := strings.Index(md, "%!"); i >= 0 {
		t.Errorf("the report has a formatting error: %q", md[max(i-40, 0):min(i+40, len(md))])
	}
}

func TestUnmetTargetsSayWhatHoldsThem(t *testing.T) {
	r := testReport()
	r.Env = map[string]string{"cores": "2"}
	for i := range r.Rows {
		x := &r.Rows[i]
		switch {
		case x.Path == pathChdproxy && x.Concurrency == 64 && x.Rate == 0: // the forward's saturation
			x.BusyCores, x.VaultCPUPer1k, x.RedisCPUPer1k, x.BenchCPUPer1k = 2, ptr(0.5), ptr(0.1), ptr(0.4)
		case x.Path == pathChdproxy && x.Rate == 375:
			x.BusyCores, x.RunWait, x.VaultRunWait = 0.9, ptr(2.5), ptr(1.2)
		}
	}
	r.compute()
	held := map[string]string{}
	for _, x := range r.Targets {
		if x.Met && x.HeldBy != "" {
			t.Errorf("target %q is met but says it is held by %q", x.Name, x.HeldBy)
		}
		held[x.Key] = x.HeldBy
	}
	for key, want := range map[string][]string{
		// 2 cores ÷ (0.5 + 0.1 + 0.4 ms) = 2,000 req/s = 0.40× direct's 5,000; 0.35× leaves 2/1750 s − 1 ms.
		keyForwardThroughput: {"1.000 ms in all besides chdproxy's 0.500", "serve at most 2000 req/s (0.400× direct)",
			"0.35× would leave chdproxy 0.143 ms per request (it used 0.500)"},
		keyForwardP99: {"on 2 shared cores", "chdproxy's threads waited 2.50 ms per forward", "Vault's 1.20 ms", "with 0.90 cores busy"},
	} {
		for _, s := range want {
			if !strings.Contains(held[key], s) {
				t.Errorf("%s: got %q, want %q in it", key, held[key], s)
			}
		}
	}
	if got := r.secondKeyCost(); !strings.Contains(got, "p50 0.45 ms against 0.30 for one call, +0.15 ms") {
		t.Errorf("the second key's cost: got %q", got)
	}
	r.Rows[3].VaultCPUPer1k = ptr(1.0) // the others alone: 2 ÷ 1.5 ms = 1,333 req/s, 0.27×
	r.Targets = nil
	r.compute()
	for _, x := range r.Targets {
		if x.Key == keyForwardThroughput && !strings.Contains(x.HeldBy, "0.35× is out of reach on this machine whatever chdproxy does") {
			t.Errorf("got %q, want it out of reach", x.HeldBy)
		}
	}
	md := string(r.markdown())
	if !strings.Contains(md, "**not met** (held by: below)") || !strings.Contains(md, "- **forward throughput at saturation vs direct**: held by CPU: at c=64") {
		t.Errorf("the report does not say what holds the targets:\n%s", md)
	}
}

func TestTheCPURatioIsExplainedByTheProfiles(t *testing.T) {
	r := testReport()
	r.Profiles = []profileRun{
		{Name: profForwardLow, Load: "150/s", Chdproxy: profiled(0.6, 0.2, 0.7)},
		{Name: profForwardSat, Load: "c=64", Chdproxy: profiled(0.1, 0.1, 0.3)},
	}
	got := r.wakeUpCost()
	for _, s := range []string{"holds 1.500 ms per forward against 0.500 at c=64", "Go scheduler: parking, waking, spinning +0.500 ms (6.0×), " +
		"Vault client (vault/api, HTTP/1.1) +0.400 ms (2.3×), Go GC +0.100 ms (2.0×)"} {
		if !strings.Contains(got, s) {
			t.Errorf("got %q, want %q in it", got, s)
		}
	}
}
