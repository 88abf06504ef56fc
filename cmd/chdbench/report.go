package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// row is one phase's result.
type row struct {
	Scenario    string  `json:"scenario"`       // tokenize | forward
	Path        string  `json:"path"`           // chdproxy | floor | floor_one_call | direct
	Concurrency int     `json:"concurrency"`    // workers (at most this many in flight)
	Rate        float64 `json:"rate,omitempty"` // fixed arrival rate (req/s); 0: closed loop
	Seconds     float64 `json:"seconds"`        // measured window
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	RPS         float64 `json:"req_per_s"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	P999        float64 `json:"p999_ms"`
	// CPUPer1k is CPU seconds per 1,000 requests of the process doing the
	// work: chdproxy for chdproxy rows, the in-process floor client
	// (chdbench) for floor rows, none for direct rows.
	CPUPer1k      *float64 `json:"cpu_s_per_1k,omitempty"`
	VaultCPUPer1k *float64 `json:"vault_cpu_s_per_1k,omitempty"`
	RedisCPUPer1k *float64 `json:"redis_cpu_s_per_1k,omitempty"`
	BenchCPUPer1k *float64 `json:"chdbench_cpu_s_per_1k,omitempty"` // load generator (+ sandbox, + floor client)
	PeakRSSMB     *float64 `json:"peak_rss_mb,omitempty"`           // chdproxy's VmHWM during the phase
	BusyCores     float64  `json:"busy_cores"`                      // the machine's busy CPU, in cores
	OtherCores    float64  `json:"other_cores"`                     // of which not ours (other programs)
	Note          string   `json:"note,omitempty"`
}

// ratio compares chdproxy with a baseline at one concurrency.
type ratio struct {
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"`
	Versus      string  `json:"versus"`
	Throughput  float64 `json:"throughput_ratio"` // chdproxy req/s ÷ baseline req/s
	P50         float64 `json:"p50_ratio"`
	P99         float64 `json:"p99_ratio"`
	AddedP50    float64 `json:"added_p50_ms"`
	AddedP99    float64 `json:"added_p99_ms"`
}

type target struct {
	Name     string `json:"name"`
	Wanted   string `json:"wanted"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

type reportOptions struct {
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"`
	Concurrency []int   `json:"concurrency"`
	InProcess   bool    `json:"in_process"`
}

type report struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	TotalS   float64           `json:"total_s"`
	Env      map[string]string `json:"environment"`
	Options  reportOptions     `json:"options"`
	Rows     []row             `json:"rows"`
	Ratios   []ratio           `json:"ratios"`
	Targets  []target          `json:"targets"`
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// find returns the closed-loop row at concurrency c.
func (r *report) find(scenario, path string, c int) *row {
	for i := range r.Rows {
		x := &r.Rows[i]
		if x.Scenario == scenario && x.Path == path && x.Concurrency == c && x.Rate == 0 {
			return x
		}
	}
	return nil
}

// findRate returns the fixed-rate row of scenario and path, if any.
func (r *report) findRate(scenario, path string) *row {
	for i := range r.Rows {
		x := &r.Rows[i]
		if x.Scenario == scenario && x.Path == path && x.Rate > 0 {
			return x
		}
	}
	return nil
}

// load names a row's load: "16" workers or "800/s".
func (x *row) load() string {
	if x.Rate > 0 {
		return fmt.Sprintf("%.0f/s", x.Rate)
	}
	return fmt.Sprint(x.Concurrency)
}

func ratioOf(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, 2)
}

// compute fills Ratios and Targets from Rows.
func (r *report) compute() {
	concs := r.Options.Concurrency
	add := func(scenario, versus string, p, base *row) {
		if p == nil || base == nil || p.Requests == 0 || base.Requests == 0 {
			return
		}
		r.Ratios = append(r.Ratios, ratio{
			Scenario: scenario, Concurrency: p.Concurrency, Rate: p.Rate, Versus: versus,
			Throughput: ratioOf(p.RPS, base.RPS), P50: ratioOf(p.P50, base.P50), P99: ratioOf(p.P99, base.P99),
			AddedP50: round(p.P50-base.P50, 2), AddedP99: round(p.P99-base.P99, 2),
		})
	}
	for _, sc := range []struct{ scenario, versus string }{
		{"tokenize", pathFloor}, {"tokenize", pathFloorOneCall}, {"forward", pathDirect},
	} {
		for _, c := range concs {
			add(sc.scenario, sc.versus, r.find(sc.scenario, pathChdproxy, c), r.find(sc.scenario, sc.versus, c))
		}
		add(sc.scenario, sc.versus, r.findRate(sc.scenario, pathChdproxy), r.findRate(sc.scenario, sc.versus))
	}
	if len(concs) == 0 {
		return
	}
	best := func(scenario, path string) (float64, int) {
		v, at := 0.0, 0
		for _, c := range concs {
			if x := r.find(scenario, path, c); x != nil && x.RPS > v {
				v, at = x.RPS, c
			}
		}
		return v, at
	}
	if p, pc := best("tokenize", pathChdproxy); p > 0 {
		if one, oc := best("tokenize", pathFloorOneCall); one > 0 {
			r.Targets = append(r.Targets, target{
				Name:   "tokenize throughput vs one transit call per item",
				Wanted: "≥ 2×",
				Measured: fmt.Sprintf("%.2f× (chdproxy %.0f req/s at c=%d; uncoalesced floor %.0f req/s at c=%d)",
					p/one, p, pc, one, oc),
				Met: p >= 2*one,
			})
		}
	}
	low := concs[0]
	if p, f := r.find("tokenize", pathChdproxy, low), r.find("tokenize", pathFloor, low); p != nil && f != nil && f.P50 > 0 {
		q := p.P50 / f.P50
		r.Targets = append(r.Targets, target{
			Name:     fmt.Sprintf("tokenize latency vs floor at c=%d", low),
			Wanted:   "p50 ≤ 1.25×",
			Measured: fmt.Sprintf("p50 %.2f× (%.2f vs %.2f ms); p99 %.2f×", q, p.P50, f.P50, ratioOf(p.P99, f.P99)),
			Met:      q <= 1.25,
		})
	}
	if p, d := r.findRate("forward", pathChdproxy), r.findRate("forward", pathDirect); p != nil && d != nil && p.Requests > 0 {
		a50, a99 := p.P50-d.P50, p.P99-d.P99
		r.Targets = append(r.Targets, target{
			Name:     fmt.Sprintf("forward overhead vs direct at moderate load (%.0f req/s, half of chdproxy's best)", p.Rate),
			Wanted:   "+p50 ≤ 1 ms, +p99 ≤ 3 ms",
			Measured: fmt.Sprintf("+p50 %.2f ms, +p99 %.2f ms", a50, a99),
			Met:      a50 <= 1 && a99 <= 3,
		})
	}
	high := concs[len(concs)-1]
	peak, seen := 0.0, false
	for _, sc := range []string{"tokenize", "forward"} {
		if x := r.find(sc, pathChdproxy, high); x != nil && x.PeakRSSMB != nil {
			peak, seen = max(peak, *x.PeakRSSMB), true
		}
	}
	if seen {
		r.Targets = append(r.Targets, target{
			Name:     fmt.Sprintf("chdproxy peak RSS at c=%d", high),
			Wanted:   "< 100 MB",
			Measured: fmt.Sprintf("%.1f MB", peak),
			Met:      peak < 100,
		})
	}
}

func fmtPtr(v *float64, digits int) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.*f", digits, *v)
}

var pathNames = map[string]string{
	pathChdproxy:     "chdproxy",
	pathFloor:        "floor",
	pathFloorOneCall: "floor, 1 transit call/item",
	pathDirect:       "direct",
}

func (r *report) markdown() []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# chdproxy benchmarks\n\n")
	w("Generated by `make bench` (`go run ./cmd/chdbench`); do not edit by hand. Run started %s and took %.0f s.\n\n",
		r.Started.Format(time.RFC3339), r.TotalS)
	w("Machine: %s, %s cores, Linux %s, %s; Vault %s (dev server, in-memory), %s. ",
		r.Env["cpu"], r.Env["cores"], r.Env["kernel"], r.Env["go"], r.Env["vault"], r.Env["redis"])
	w("Everything runs on this one machine and shares its cores: Vault, Redis, the SmartPayments sandbox, chdproxy and the load generator. ")
	w("Each phase: %.0f s warm-up, then %.0f s measured, at a fixed number of concurrent workers, each with its own keep-alive connection.\n\n",
		r.Options.WarmupS, r.Options.DurationS)

	w("## Targets (issue 6)\n\n| target | wanted | measured | met |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		w("| %s | %s | %s | %s |\n", t.Name, t.Wanted, t.Measured, met)
	}
	for _, sc := range []struct{ name, title, cpu string }{
		{"tokenize", "Tokenize: `POST /v1/tokens` (collect) vs the floor", "CPU s/1k req (chdproxy or floor client)"},
		{"forward", "Forward: `POST /initPaymentHost2Host` via chdproxy vs direct to the sandbox", "chdproxy CPU s/1k req"},
	} {
		w("\n## %s\n\n", sc.title)
		w("| load | path | req/s | p50 ms | p99 ms | p99.9 ms | %s | Vault CPU s/1k | Redis CPU s/1k | chdproxy peak RSS MB | busy cores (other) | errors |\n", sc.cpu)
		w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, x := range r.Rows {
			if x.Scenario != sc.name {
				continue
			}
			errs := fmt.Sprint(x.Errors)
			if x.Note != "" {
				errs += " (" + strings.ReplaceAll(x.Note, "|", "/") + ")"
			}
			w("| %s | %s | %.0f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %.2f (%.2f) | %s |\n", x.load(), pathNames[x.Path], x.RPS,
				x.P50, x.P99, x.P999, fmtPtr(x.CPUPer1k, 3), fmtPtr(x.VaultCPUPer1k, 3), fmtPtr(x.RedisCPUPer1k, 3), fmtPtr(x.PeakRSSMB, 1),
				x.BusyCores, x.OtherCores, errs)
		}
	}
	w("\n## Ratios (chdproxy ÷ baseline, same run)\n\n| scenario | load | baseline | throughput | p50 | p99 | added p50 ms | added p99 ms |\n|---|---:|---|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Ratios {
		load := fmt.Sprint(x.Concurrency)
		if x.Rate > 0 {
			load = fmt.Sprintf("%.0f/s", x.Rate)
		}
		w("| %s | %s | %s | %.2f× | %.2f× | %.2f× | %+.2f | %+.2f |\n", x.Scenario, load, pathNames[x.Versus], x.Throughput, x.P50, x.P99, x.AddedP50, x.AddedP99)
	}
	w(`
## What is measured

- **chdproxy**: the real binary, ` + "`chdproxy serve`" + `, started by chdbench with a generated configuration:
  plain-text listeners on loopback, Vault transit with the coalescer on (as serve runs it),
  one redis-server, the audit trail in a file (fsynced per record, as in production), access
  logs to a file, per-key rate limits raised out of the way. The upstream is the sandbox over
  TLS (a CA generated for the run, passed as ` + "`upstream.ca_file`" + `).
- **floor**: the same ` + "`vault.Vault.TokenizeCard`" + ` chdproxy runs (transit encrypt of the card and of the
  CVV, one HMAC batch of two fingerprints, one Redis script writing record and CVV), called
  in-process by chdbench on its own Vault client and Redis client: everything chdproxy must do,
  without HTTP, JSON, authentication, validation, logging or audit.
  **floor, 1 transit call/item** is the same without the coalescer: one transit request per
  item, the baseline of the 2× throughput target.
- **direct**: the same load generator sends the same initPaymentHost2Host request, with the card
  in it, straight to the sandbox over TLS (HTTP/2, as chdproxy's upstream client uses).
  Through chdproxy the body carries the token in ` + "`card_number`" + ` and ` + "`card_cvv`" + `; chdproxy
  checks it, writes the audit record, decrypts card and CVV (consuming the CVV), fills number,
  CVV, expiry and holder, forwards, and scrubs the answer. A CVV is injected only once, and
  the sandbox requires one, so every forwarded request uses a fresh token: before each
  forward phase chdbench makes a pool of tokens with the floor client (not measured), sized
  from the direct rate; a phase that runs out is cut short and says so. Every request has
  its own order_id.
- **CPU s/1k req**: user+system CPU seconds per 1,000 successful requests, from
  ` + "`/proc/PID/stat`" + ` at the start and end of the measured window; **peak RSS** is chdproxy's
  VmHWM, reset (` + "`/proc/PID/clear_refs`" + `) at the start of each phase. Latencies are per request,
  as the client sees them; percentiles are nearest-rank over successful requests.
`)
	return b.Bytes()
}

// environment describes the machine and versions.
func environment() map[string]string {
	env := map[string]string{
		"go":    runtime.Version(),
		"cores": fmt.Sprint(runtime.NumCPU()),
		"vault": vaultVersion,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				env["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env["kernel"] = strings.TrimSpace(string(b))
	}
	if bin := findBin("CHDPROXY_REDIS_BIN", nil, "redis-server"); bin != "" {
		if out, err := exec.Command(bin, "--version").Output(); err == nil {
			f := strings.Fields(string(out))
			if len(f) >= 3 {
				env["redis"] = "Redis " + strings.TrimPrefix(f[2], "v=")
			}
		}
	}
	return env
}
