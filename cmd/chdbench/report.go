package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/chdproxy/chdproxy/internal/testenv"
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
	Parts    []part            `json:"parts"` // building blocks alone, one call at a time
	Rows     []row             `json:"rows"`
	Ratios   []ratio           `json:"ratios"`
	Targets  []target          `json:"targets"`
	// Budget explains chdproxy's p50 at the lowest concurrency with the parts.
	Budget []string `json:"budget"`
}

func (r *report) part(prefix string) float64 {
	for _, p := range r.Parts {
		if strings.HasPrefix(p.Name, prefix) {
			return p.P50
		}
	}
	return 0
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

// rates returns the fixed rates of scenario's rows, in run order.
func (r *report) rates(scenario string) []float64 {
	var out []float64
	for _, x := range r.Rows {
		if x.Scenario == scenario && x.Rate > 0 && !slices.Contains(out, x.Rate) {
			out = append(out, x.Rate)
		}
	}
	return out
}

// findRate returns the row of scenario and path at a fixed rate.
func (r *report) findRate(scenario, path string, rate float64) *row {
	for i := range r.Rows {
		x := &r.Rows[i]
		if x.Scenario == scenario && x.Path == path && x.Rate == rate {
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
		for _, rate := range r.rates(sc.scenario) {
			add(sc.scenario, sc.versus, r.findRate(sc.scenario, pathChdproxy, rate), r.findRate(sc.scenario, sc.versus, rate))
		}
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
	var moderate float64
	if rs := r.rates("forward"); len(rs) > 0 {
		moderate = rs[0]
	}
	if p, d := r.findRate("forward", pathChdproxy, moderate), r.findRate("forward", pathDirect, moderate); p != nil && d != nil && p.Requests > 0 {
		a50, a99 := p.P50-d.P50, p.P99-d.P99
		r.Targets = append(r.Targets, target{
			Name:     fmt.Sprintf("forward overhead vs direct at moderate load (%.0f req/s, a quarter of chdproxy's best)", p.Rate),
			Wanted:   "+p50 ≤ 1 ms, +p99 ≤ 3 ms",
			Measured: fmt.Sprintf("+p50 %.2f ms, +p99 %.2f ms", a50, a99),
			Met:      a50 <= 1 && a99 <= 3,
		})
	}
	hop, fsync, decrypt := r.part("HTTP round trip to chdproxy"), r.part("append 400 bytes"), r.part("Vault transit decrypt")
	redisRT := r.part("Redis pipeline") + r.part("Redis round trip") // token read, CVV GETDEL
	if p, f := r.find("tokenize", pathChdproxy, low), r.find("tokenize", pathFloor, low); p != nil && f != nil && hop > 0 {
		r.Budget = append(r.Budget, fmt.Sprintf("tokenize at c=%d: chdproxy p50 %.2f ms = floor %.2f + HTTP hop %.2f + %.2f of the rest "+
			"(parsing and validating the body, JSON answer, access log line, queuing the audit record, scheduling); "+
			"the hop alone is %.2f× the floor", low, p.P50, f.P50, hop, p.P50-f.P50-hop, (f.P50+hop)/f.P50))
	}
	if p, d := r.find("forward", pathChdproxy, low), r.find("forward", pathDirect, low); p != nil && d != nil && hop > 0 {
		serial := hop + redisRT + max(decrypt, fsync)
		r.Budget = append(r.Budget, fmt.Sprintf("forward at c=%d: chdproxy p50 %.2f ms = direct %.2f + HTTP hop %.2f "+
			"+ 2 Redis round trips (token read, CVV GETDEL) %.2f + decrypt (card and CVV in parallel, the attempt record's fsync beside them) %.2f + %.2f of the rest "+
			"(body scan for PANs, JSON parse and splice, HTTP/2 to the upstream, response scrub, access log, scheduling)",
			low, p.P50, d.P50, hop, redisRT, max(decrypt, fsync), p.P50-d.P50-serial))
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
	w("Each phase: %.0f s warm-up, then %.0f s measured.\n\n", r.Options.WarmupS, r.Options.DurationS)
	noisy := 0.0
	for _, x := range r.Rows {
		noisy = max(noisy, x.OtherCores)
	}
	if noisy > 0.25 {
		w("**Warning:** up to %.2f cores were busy with something other than the programs measured (see \"busy cores (other)\"): "+
			"the rows where that is high are slowed by a neighbour, not by chdproxy.\n\n", noisy)
	}

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
	if len(r.Parts) > 0 {
		w("\n## The parts, alone, one call at a time\n\n")
		w("What a request at low load cannot go below; tokenize and forward are made of these (see below).\n\n")
		w("| part | p50 ms | p99 ms |\n|---|---:|---:|\n")
		for _, p := range r.Parts {
			w("| %s | %.3f | %.3f |\n", p.Name, p.P50, p.P99)
		}
	}
	if len(r.Budget) > 0 {
		w("\nWhere chdproxy's time goes at the lowest concurrency, from the parts' p50s:\n\n")
		for _, l := range r.Budget {
			w("- %s.\n", l)
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

- **load**: a number is that many workers sending back to back, each on its own keep-alive
  connection (closed loop: latency and throughput trade against each other, and on this
  machine every row at 16 or more workers saturates the CPU). **N/s** is a fixed arrival
  rate (open loop, up to 256 in flight), a quarter and a half of chdproxy's best forward
  throughput; its latency counts from the scheduled send, so a backlog shows. The quarter
  is the "moderate load" of the forward target.
- **chdproxy**: the real binary, ` + "`chdproxy serve`" + `, started by chdbench with a generated configuration:
  plain-text listeners on loopback, Vault transit through the coalescer (as serve runs it),
  one redis-server, the audit trail in a file (group commit: a forward waits for its attempt
  record's fsync, which overlaps the decryption; outcome records ride along with the next
  fsync or go out within 5 ms), access logs to a file, per-key rate limits raised out of the way.
  The upstream is the sandbox over TLS (a CA generated for the run, as ` + "`upstream.ca_file`" + `).
- **floor**: the same ` + "`vault.Vault.TokenizeCard`" + ` chdproxy runs (transit encrypt of the card and of the
  CVV, one HMAC batch of two fingerprints, one Redis script writing record and CVV), called
  in-process by chdbench on its own Vault client and Redis client, coalescer included:
  everything chdproxy must do, without HTTP, JSON, authentication, validation, logging or
  audit. **floor, 1 transit call/item** is the same without the coalescer: one transit
  request per item, the baseline of the 2× throughput target (an upper bound of chdproxy
  without coalescing, which would also pay for HTTP).
- **direct**: the same load generator sends the same initPaymentHost2Host request, with the card
  in it, straight to the sandbox over TLS (HTTP/2, as chdproxy's upstream client uses).
  Through chdproxy the body carries the token in ` + "`card_number`" + ` and ` + "`card_cvv`" + `; chdproxy
  checks it, decrypts card and CVV while writing the attempt record, consumes the CVV, fills number,
  CVV, expiry and holder, forwards, scrubs the answer and writes the outcome record. A CVV is
  injected only once and the sandbox requires one, so every forwarded request spends a fresh
  token: before each forward phase chdbench tops up a pool of tokens made with the floor
  client (not measured; leftovers serve the next phase); a phase that runs out is cut short
  and says so. Every payment has its own order_id.
- **CPU s/1k req**: user+system CPU seconds per 1,000 successful requests, from
  ` + "`/proc/PID/stat`" + ` at the start and end of the measured window; **peak RSS** is chdproxy's
  VmHWM, reset (` + "`/proc/PID/clear_refs`" + `) at the start of each phase. **busy cores** is the whole
  machine's non-idle CPU during the window (` + "`/proc/stat`" + `), **other** the part not charged to
  Vault, Redis, chdproxy or chdbench: another program competing for the cores shows there
  (interrupt time is counted as other too). Latencies are per request, as the client sees
  them; percentiles are nearest-rank over successful requests. Before the first phase,
  chdbench measures the parts alone and warms up for 4 s.
`)
	return b.Bytes()
}

// environment describes the machine and versions.
func environment() map[string]string {
	env := map[string]string{
		"go":    runtime.Version(),
		"cores": fmt.Sprint(runtime.NumCPU()),
		"vault": testenv.VaultVersion,
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
	if bin := testenv.RedisBin(); bin != "" {
		if out, err := exec.Command(bin, "--version").Output(); err == nil {
			f := strings.Fields(string(out))
			if len(f) >= 3 {
				env["redis"] = "Redis " + strings.TrimPrefix(f[2], "v=")
			}
		}
	}
	return env
}
