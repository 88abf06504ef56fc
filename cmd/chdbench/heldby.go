package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// A target that is not met says what holds it, from this run's own figures:
// the CPU the other processes need per request (a ceiling no change to chdproxy
// lifts), the wait for a core the kernel's scheduler adds to each wake-up, and
// the profile areas whose cost per forward grows when requests are few.

// explainTargets fills HeldBy for every target not met.
func (r *report) explainTargets() {
	for i := range r.Targets {
		t := &r.Targets[i]
		if t.Met {
			continue
		}
		switch t.Key {
		case keyTokenizeLatency:
			t.HeldBy = r.coreWait("tokenize", r.find("tokenize", pathChdproxy, r.Options.Concurrency[0]))
		case keyForwardOverhead, keyForwardP99:
			t.HeldBy = r.coreWait("forward", r.findRate("forward", pathChdproxy, t.rate))
		case keyForwardP50:
			t.HeldBy = r.coreWait("forward", r.find("forward", pathChdproxy, r.Options.Concurrency[0])) + r.secondKeyCost()
		case keyCPURatio:
			t.HeldBy = r.wakeUpCost()
		case keyForwardThroughput:
			t.HeldBy = r.cpuCeiling(r.best("forward", pathChdproxy), r.best("forward", pathDirect), t.want)
		case keyTokenizeThroughput:
			t.HeldBy = r.cpuCeiling(r.best("tokenize", pathChdproxy), r.best("tokenize", pathFloor), t.want)
		}
	}
}

// Target keys that explainTargets knows.
const (
	keyTokenizeLatency    = "tokenize_latency"
	keyForwardOverhead    = "forward_overhead"
	keyForwardP99         = "forward_p99"
	keyForwardP50         = "forward_p50"
	keyCPURatio           = "forward_cpu_ratio"
	keyForwardThroughput  = "forward_throughput"
	keyTokenizeThroughput = "tokenize_throughput"
)

// coreWait: the latency target of row p is held by the wait for a core, when
// the row shows one.
func (r *report) coreWait(scenario string, p *row) string {
	if p == nil || p.RunWait == nil || p.VaultRunWait == nil {
		return ""
	}
	return fmt.Sprintf("the kernel's scheduler on %s shared cores: during that phase chdproxy's threads waited %.2f ms per %s "+
		"runnable for a core and Vault's %.2f ms (schedstat, summed over threads), with %.2f cores busy; the parts are "+
		"timed one call at a time, without that wait", r.Env["cores"], *p.RunWait, scenario, *p.VaultRunWait, p.BusyCores)
}

// secondKeyCost is what decrypting under the CVV's own key beside the card's
// adds to a forward, from the parts; "" when not measured.
func (r *report) secondKeyCost() string {
	one, two := r.part(partDecrypt), r.part(partDecryptTwoKeys)
	if one == 0 || two == 0 {
		return ""
	}
	return fmt.Sprintf("; and a forward decrypts under two keys at once (card and CVV, two Vault calls): p50 %.2f ms against %.2f "+
		"for one call, %+.2f ms that one key for both would save, at the price of the CVV's own key (docs/pci/key-management.md)",
		two, one, two-one)
}

// cpuCeiling: a throughput target of p against base is held by the CPU the
// other processes need per request, when even a chdproxy that cost nothing
// could not reach want × base on the cores p kept busy.
func (r *report) cpuCeiling(p, base *row, want float64) string {
	if p == nil || base == nil || p.VaultCPUPer1k == nil || p.RedisCPUPer1k == nil || p.BenchCPUPer1k == nil || p.CPUPer1k == nil || p.RPS == 0 {
		return ""
	}
	others := *p.VaultCPUPer1k + *p.RedisCPUPer1k + *p.BenchCPUPer1k + p.OtherCores/p.RPS*1000 // ms per request
	ceiling := p.BusyCores / others * 1000
	s := fmt.Sprintf("CPU: at c=%d the machine was %.2f cores busy, and per request Vault used %.3f ms, Redis %.3f, the load generator "+
		"with the sandbox %.3f and other programs %.3f, %.3f ms in all besides chdproxy's %.3f; were chdproxy free, those cores would "+
		"serve at most %.0f req/s (%.3f× %s)", p.Concurrency, p.BusyCores, *p.VaultCPUPer1k, *p.RedisCPUPer1k, *p.BenchCPUPer1k,
		p.OtherCores/p.RPS*1000, others, *p.CPUPer1k, ceiling, ceiling/base.RPS, pathNames[base.Path])
	allowed := p.BusyCores/(want*base.RPS)*1000 - others
	if allowed <= 0 {
		return s + fmt.Sprintf(": %.2f× is out of reach on this machine whatever chdproxy does", want)
	}
	return s + fmt.Sprintf("; %.2f× would leave chdproxy %.3f ms per request (it used %.3f)", want, allowed, *p.CPUPer1k)
}

// wakeUpCost: the CPU ratio target is held by what each area costs more per
// forward when requests are few, from the profiles.
func (r *report) wakeUpCost() string {
	low, sat := r.profile(profForwardLow), r.profile(profForwardSat)
	if low == nil || sat == nil || low.Chdproxy.Error != "" || sat.Chdproxy.Error != "" {
		return ""
	}
	pl, ps := &low.Chdproxy, &sat.Chdproxy
	type growth struct {
		name string
		d, x float64
	}
	var gs []growth
	for _, name := range chdproxyClassifier.areaNames() {
		a, b := pl.area(name).MsPerReq, ps.area(name).MsPerReq
		if a > b && b > 0 {
			gs = append(gs, growth{name, a - b, a / b})
		}
	}
	slices.SortFunc(gs, func(a, b growth) int { return cmp.Compare(b.d, a.d) })
	var top []string
	for _, g := range gs[:min(4, len(gs))] {
		top = append(top, fmt.Sprintf("%s +%.3f ms (%.1f×)", g.name, g.d, g.x))
	}
	grown := 0
	for _, g := range gs {
		if g.x > 1.5 {
			grown++
		}
	}
	return fmt.Sprintf("being woken, spread over the whole path: at %s chdproxy's profile holds %.3f ms per forward against %.3f at %s, "+
		"and %d of its %d areas cost more than 1.5× as much per forward; most: %s. Each round trip (client, Redis, Vault ×2, "+
		"upstream, two fsyncs) parks and wakes a thread, whose system calls' kernel time (waking the process at the other end) "+
		"is charged to the area that made them; under load one wake-up serves many requests, so the ratio is how idle the "+
		"process is between round trips, not extra work (see Profiles)", low.Load, pl.MsPerReq, ps.MsPerReq, sat.Load,
		grown, len(chdproxyClassifier.areaNames()), strings.Join(top, ", "))
}
