// Command chdbench measures chdproxy on real dependencies, beside its floors.
//
// It starts a Vault dev server, a redis-server, the SmartPayments sandbox
// (over TLS, with a CA of its own) and `chdproxy serve`, all on loopback, and
// drives them at fixed concurrencies for fixed durations:
//
//   - tokenize through the collect listener, beside the floor: the same
//     vault.Vault.TokenizeCard (transit encrypt of card and CVV, one HMAC batch
//     of two fingerprints, one Redis script) called in-process with no HTTP in
//     front, once with the transit coalescer (as chdproxy runs) and once
//     without (one transit call per item: the baseline of the 2× target);
//   - forward initPaymentHost2Host through the forward listener, beside the
//     direct call from the same client to the sandbox, closed loop and then
//     in a sweep of fixed rates (5%, 10%, 25% and 50% of chdproxy's best).
//
// Each phase records CPU, read/write system calls (/proc/PID/io) and, for
// chdproxy, context switches per request, and the report turns them and the
// parts (each building block alone) into targets computed as ratios. After
// the measured phases, three profile phases CPU-profile chdproxy and Vault
// and sort their samples into areas (profiling.go, profile.go).
//
// It writes a Markdown table and JSON (docs/bench.md, docs/bench.json by
// default). `make bench` runs it; it is not part of CI.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/smartpay"
	"github.com/chdproxy/chdproxy/token"
	"github.com/chdproxy/chdproxy/vault"
)

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

type options struct {
	out         string
	warmup, dur time.Duration
	concs       []int
	chdproxyBin string
	keep        bool
	only        string
	inProcess   bool
	cpuProfile  string
	rates       []float64
}

func main() {
	var o options
	var concs string
	flag.StringVar(&o.out, "out", "docs", "folder for bench.md and bench.json")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up of each phase")
	flag.DurationVar(&o.dur, "duration", 6*time.Second, "measured time of each phase")
	flag.StringVar(&concs, "concurrency", "1,16,64,256", "comma-separated concurrencies")
	rates := flag.String("rates", "", "comma-separated fixed forward rates in req/s (default: 5%, 10%, 25% and 50% of chdproxy's best)")
	flag.StringVar(&o.chdproxyBin, "chdproxy", "", "chdproxy binary (default: go build it)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder (logs, configs, audit trail)")
	flag.StringVar(&o.only, "only", "", "run only \"tokenize\" or \"forward\"")
	flag.BoolVar(&o.inProcess, "inprocess", false, "run chdproxy's handlers inside chdbench (for -cpuprofile) instead of `chdproxy serve`")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write chdbench's CPU profile here (use with -inprocess)")
	flag.Parse()
	for _, s := range strings.Split(concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "chdbench: bad -concurrency")
			os.Exit(2)
		}
		o.concs = append(o.concs, n)
	}
	for _, s := range strings.Split(*rates, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "chdbench: bad -rates")
			os.Exit(2)
		}
		o.rates = append(o.rates, n)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "chdbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chdbench: "+format+"\n", args...)
}

func run(o options) error {
	began := time.Now()
	dir, err := os.MkdirTemp("", "chdbench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work folder %s (kept)", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	bin := o.chdproxyBin
	if bin == "" && !o.inProcess {
		logf("building chdproxy")
		if bin, err = buildChdproxy(dir); err != nil {
			return err
		}
	}
	logf("starting redis-server and Vault")
	rs, err := testenv.StartRedis(dir)
	if err != nil {
		return err
	}
	defer rs.Shutdown(grace)
	redisAddr := rs.Addr
	vs, err := testenv.StartVault(dir)
	if err != nil {
		return err
	}
	defer vs.Shutdown(grace)
	if err := ensureKeys(vs); err != nil {
		return err
	}
	tf, err := newTLS(dir)
	if err != nil {
		return err
	}
	sandboxURL, stopSandbox, err := startSandbox(tf)
	if err != nil {
		return err
	}
	defer stopSandbox()
	pol, err := benchPolicy(dir, sandboxURL)
	if err != nil {
		return err
	}
	keys := newKeys()
	cfgPath, ports, err := serveConfig(dir, pol, vs, redisAddr, tf, keys)
	if err != nil {
		return err
	}
	var cp *chdproxyEnv
	if o.inProcess {
		cp, err = startInProcess(dir, pol, vs, redisAddr, tf, keys, ports)
	} else {
		cp, err = startChdproxy(dir, bin, cfgPath, ports)
	}
	if err != nil {
		return err
	}
	defer cp.stop()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	b, err := newBench(o, keys, vs, redisAddr, sandboxURL, tf, cp)
	if err != nil {
		return err
	}
	defer b.close()
	b.watchProcs(cp, vs, rs)
	if cp.proc != nil {
		logf("chdproxy pid %d, Vault pid %d, redis-server pid %d", cp.proc.Pid(), vs.Pid(), rs.Pid())
	}

	rep := &report{Started: began.UTC(), Options: reportOptions{
		WarmupS: o.warmup.Seconds(), DurationS: o.dur.Seconds(), Concurrency: o.concs, InProcess: o.inProcess,
	}}
	rep.Env = environment()
	logf("measuring the parts, one call at a time")
	rep.Parts = b.measureParts(dir, vs, redisAddr)
	// Warm everything up (connections, Vault's and Go's caches) before any
	// measured phase, so the first phases are not penalised.
	logf("warming up")
	for _, path := range []string{pathChdproxy, pathFloor} {
		b.tokenizePhase(path, 64, 0, 2*time.Second)
	}
	if o.only == "" || o.only == "tokenize" {
		for _, c := range o.concs {
			for _, path := range []string{pathChdproxy, pathFloor, pathFloorOneCall} {
				rep.Rows = append(rep.Rows, b.tokenize(path, c))
			}
		}
	}
	if o.only == "" || o.only == "forward" {
		rep.Rows = append(rep.Rows, b.forwardAll()...)
	}
	if cp.pprof != "" { // not in-process: chdproxy would be chdbench itself
		rep.Profiles = b.profileAll(rep, vs, dir)
	}
	rep.Finished = time.Now().UTC()
	rep.TotalS = rep.Finished.Sub(began).Seconds()
	rep.compute()
	if o.inProcess {
		logf("in-process run: results not written to %s", o.out)
		os.Stdout.Write(rep.markdown())
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "bench.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := rep.markdown()
	if err := os.WriteFile(filepath.Join(o.out, "bench.md"), md, 0o644); err != nil {
		return err
	}
	os.Stdout.Write(md)
	logf("done in %.0fs", rep.TotalS)
	return nil
}

// forwardAll runs the forward phases: direct and through chdproxy at each
// concurrency, then the sweep of fixed rates.
func (b *bench) forwardAll() []row {
	o := b.o
	var rows []row
	best := 0.0
	for _, c := range o.concs {
		direct := b.forward(pathDirect, c, 0, 0)
		rows = append(rows, direct)
		// Guess chdproxy's rate from the previous concurrency's, generously
		// (leftover tokens serve the next phase), never above the direct rate.
		via := b.forward(pathChdproxy, c, 0, min(direct.RPS, max(4*best, 1500)))
		rows = append(rows, via)
		best = max(best, via.RPS)
	}
	// The sweep: fixed arrival rates at fractions of what chdproxy
	// forwarded at best, rounded down to 5 req/s, so the curve from idle
	// to half load is visible.
	rates, fracs := o.rates, fixedRates
	if len(rates) == 0 {
		for _, frac := range fixedRates {
			rates = append(rates, max(5, float64(int(best*frac/5)*5)))
		}
	} else {
		fracs = nil
		for _, rate := range rates {
			fracs = append(fracs, round(rate/max(best, 1), 3))
		}
	}
	for i, rate := range rates {
		frac := fracs[i]
		for _, path := range []string{pathDirect, pathChdproxy} {
			x := b.forward(path, openLoopWorkers, rate, rate)
			x.Fraction = frac
			rows = append(rows, x)
		}
	}
	return rows
}

// Paths: who serves a scenario.
const (
	pathChdproxy     = "chdproxy"
	pathFloor        = "floor"          // in-process vault, coalesced transit
	pathFloorOneCall = "floor_one_call" // in-process vault, one transit call per item
	pathDirect       = "direct"         // the client straight to the sandbox
)

type bench struct {
	o          options
	in         vault.CardInput
	keys       benchKeys
	cp         *chdproxyEnv
	sandboxURL string
	plain, tls *http.Client
	floor      *vault.Vault // coalesced
	oneCall    *vault.Vault // not coalesced
	closers    []func()
	orders     atomic.Int64
	watch      struct{ chdproxy, vault, redis, self *procWatch }
	pool       []string // unused tokens with a CVV, for forward phases
	bufs       sync.Pool
}

func newBench(o options, keys benchKeys, vs *testenv.VaultServer, redisAddr, sandboxURL string, tf *tlsFiles, cp *chdproxyEnv) (*bench, error) {
	b := &bench{o: o, keys: keys, cp: cp, sandboxURL: sandboxURL}
	b.bufs.New = func() any { return new(bytes.Buffer) }
	// The sandbox's success card: the one card whose payments and withdrawals succeed.
	pan, err := card.ParsePAN(testcards.Success)
	if err != nil {
		return nil, err
	}
	exp, err := card.ParseExpiry(testcards.ExpMonth, testcards.ExpYear, time.Now())
	if err != nil {
		return nil, err
	}
	cvv, err := card.ParseCVV(testcards.CVV, pan.Brand())
	if err != nil {
		return nil, err
	}
	holder, err := card.ParseHolder(testcards.Holder)
	if err != nil {
		return nil, err
	}
	b.in = vault.CardInput{PAN: pan, Expiry: exp, CVV: cvv, Holder: holder}
	b.plain = &http.Client{Transport: newTransport(nil)}
	b.tls = &http.Client{Transport: newTransport(tf)}
	for _, coalesce := range []bool{true, false} {
		tr, err := transit(vs)
		if err != nil {
			return nil, err
		}
		var t vault.Transit = tr
		if coalesce {
			t = vault.Coalesce(tr, vault.CoalesceOptions{})
		}
		rdb := vault.NewRedisClient(vault.RedisOptions{Addrs: []string{redisAddr}})
		b.closers = append(b.closers, func() { rdb.Close() })
		// The CVV lives as long as allowed: pooled tokens wait for later phases.
		v, err := vault.New(vault.Config{Transit: t, Store: vault.NewStore(rdb, vault.StoreOptions{}), CVVTTL: token.MaxOneTimeTTL})
		if err != nil {
			return nil, err
		}
		if coalesce {
			b.floor = v
		} else {
			b.oneCall = v
		}
	}
	return b, nil
}

// newTransport is the load generator's client: keep-alive connections, one
// per worker; HTTP/2 over TLS as chdproxy's own upstream client does.
func newTransport(tf *tlsFiles) *http.Transport {
	t := &http.Transport{
		MaxIdleConns:        2048,
		MaxIdleConnsPerHost: 2048,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   true,
	}
	if tf != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: tf.pool, MinVersion: tls.VersionTLS12}
	}
	return t
}

func (b *bench) close() {
	for _, c := range b.closers {
		c()
	}
}

func (b *bench) watchProcs(cp *chdproxyEnv, vs *testenv.VaultServer, rs *testenv.RedisServer) {
	if cp.proc != nil {
		b.watch.chdproxy = &procWatch{pid: cp.proc.Pid()}
	}
	b.watch.vault = &procWatch{pid: vs.Pid()}
	b.watch.redis = &procWatch{pid: rs.Pid()}
	b.watch.self = &procWatch{}
}

// watched returns the processes sampled in every phase, in a fixed order:
// chdproxy (or chdbench itself in-process), Vault, Redis, chdbench.
func (b *bench) watched() []*procWatch {
	cp := b.watch.chdproxy
	if cp == nil {
		cp = b.watch.self
	}
	return []*procWatch{cp, b.watch.vault, b.watch.redis, b.watch.self}
}

// do sends one request and checks its status and, when want is not empty,
// that the body contains want.
func (b *bench) do(c *http.Client, req *http.Request, status int, want []byte) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	buf := b.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	defer b.bufs.Put(buf)
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, buf.Bytes())
	}
	if want != nil && !bytes.Contains(buf.Bytes(), want) {
		return fmt.Errorf("unexpected answer: %.200s", buf.Bytes())
	}
	return nil
}

func (b *bench) tokenize(path string, c int) row {
	logf("tokenize %-14s c=%-3d", path, c)
	o := b.tokenizePhase(path, c, b.o.warmup, b.o.dur)
	return b.row("tokenize", path, c, 0, o, "")
}

func (b *bench) tokenizePhase(path string, c int, warmup, dur time.Duration) outcome {
	ctx := context.Background()
	var op func() error
	switch path {
	case pathChdproxy:
		body := []byte(`{"card_number":"` + testcards.Success + `","card_exp_month":"` + testcards.ExpMonth + `","card_exp_year":"` + testcards.ExpYear +
			`","card_cvv":"` + testcards.CVV + `","card_holder":"` + testcards.Holder + `"}`)
		url := b.cp.collect + "/v1/tokens"
		op = func() error {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+b.keys.pk)
			req.Header.Set("Origin", benchOrigin)
			return b.do(b.plain, req, http.StatusCreated, []byte(`"token":"tok_`))
		}
	case pathFloor, pathFloorOneCall:
		v := b.floor
		if path == pathFloorOneCall {
			v = b.oneCall
		}
		op = func() error {
			_, err := v.TokenizeCard(ctx, b.keys.merchant, b.in)
			return err
		}
	}
	return phase{conc: c, warmup: warmup, dur: dur, op: op, watch: b.watched()}.run()
}

// openLoopWorkers bounds the requests in flight of a fixed-rate phase.
const openLoopWorkers = 256

// fixedRates are the forward phases at a fixed arrival rate (the sweep), as
// fractions of chdproxy's best closed-loop forward throughput; a quarter is
// "moderate load".
var fixedRates = []float64{0.05, 0.10, 0.25, 0.50}

// forward measures initPaymentHost2Host through chdproxy or directly, with c
// workers back to back, or at a fixed rate when rate > 0.
// Through chdproxy every request spends a fresh token's CVV (the sandbox
// requires card_cvv; chdproxy refuses a raw CVV beside a token, and a CVV is
// injected once), so the phase takes tokens from a pool made beforehand and
// topped up to what expectRPS would use; tokens left over serve the next phase.
func (b *bench) forward(path string, c int, rate, expectRPS float64) row {
	o, note, err := b.forwardPhase(path, c, rate, expectRPS, b.o.warmup, b.o.dur)
	if err != nil {
		return row{Scenario: "forward", Path: path, Concurrency: c, Rate: rate, Note: err.Error()}
	}
	return b.row("forward", path, c, rate, o, note)
}

// forwardPhase runs one forward phase of warmup then dur; note says why it
// was cut short, err why it could not run.
func (b *bench) forwardPhase(path string, c int, rate, expectRPS float64, warmup, dur time.Duration) (_ outcome, note string, err error) {
	var pool []string
	if path == pathChdproxy {
		if err := b.topUpPool(expectRPS, warmup+dur); err != nil {
			return outcome{}, "", err
		}
		pool = b.pool
	}
	var next atomic.Int64
	defer func() {
		if path == pathChdproxy {
			b.pool = b.pool[min(int(next.Load()), len(b.pool)):]
		}
	}()
	url := b.sandboxURL + "/initPaymentHost2Host"
	client := b.tls
	if path == pathChdproxy {
		url, client = b.cp.forward+"/initPaymentHost2Host", b.plain
	}
	success := []byte(`"responseType":"SUCCESS"`)
	op := func() error {
		var card, cvv, extra string
		if path == pathChdproxy {
			i := next.Add(1) - 1
			if i >= int64(len(pool)) {
				return errPoolEmpty
			}
			card, cvv = pool[i], pool[i] // expiry and holder are filled from the token
		} else {
			card, cvv = testcards.Success, testcards.CVV
			extra = `,"card_exp_month":"` + testcards.ExpMonth + `","card_exp_year":"` + testcards.ExpYearShort + `","card_holder":"` + testcards.Holder + `"`
		}
		body := paymentBody(strconv.FormatInt(b.orders.Add(1), 10), card, cvv, extra)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(smartpay.DefaultMerchantKey, smartpay.DefaultMerchantSecret)
		if path == pathChdproxy {
			req.Header.Set("Proxy-Authorization", "Bearer "+b.keys.sk)
		}
		return b.do(client, req, http.StatusOK, success)
	}
	if rate > 0 {
		logf("forward  %-14s %.0f req/s", path, rate)
	} else {
		logf("forward  %-14s c=%-3d", path, c)
	}
	o := phase{conc: c, rate: rate, warmup: warmup, dur: dur, op: op, watch: b.watched()}.run()
	if o.elapsed < dur-50*time.Millisecond {
		note = fmt.Sprintf("token pool ran out after %.1fs", o.elapsed.Seconds())
	}
	return o, note, nil
}

// topUpPool makes tokens until the pool holds what a phase of span at
// expectRPS would spend, and a margin.
func (b *bench) topUpPool(expectRPS float64, span time.Duration) error {
	want := int(expectRPS*span.Seconds()*1.2) + 200
	if n := want - len(b.pool); n > 0 {
		logf("making %d more tokens for the forward phase", n)
		more, err := b.makeTokens(n)
		if err != nil {
			return fmt.Errorf("token pool: %w", err)
		}
		b.pool = append(b.pool, more...)
	}
	return nil
}

// paymentBody is a typical initPaymentHost2Host request (the README's).
func paymentBody(order, card, cvv, extra string) []byte {
	return []byte(`{"payment_method":"card","account":"EUR-sandbox","amount":1000,"currency":"EUR",` +
		`"order_id":"bench-` + order + `","merchant_site":"https://merchant.site",` +
		`"customer_first_name":"John","customer_last_name":"Doe","customer_address":"10 Downing Street",` +
		`"customer_city":"London","customer_zip_code":"121165","customer_country":"GB",` +
		`"customer_phone":"+442079460612","customer_email":"john@example.com","customer_ip_address":"127.0.0.1",` +
		`"card_number":"` + card + `","card_cvv":"` + cvv + `"` + extra + `}`)
}

// makeTokens tokenizes n cards with CVV through the floor client.
func (b *bench) makeTokens(n int) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				m, err := b.floor.TokenizeCard(context.Background(), b.keys.merchant, b.in)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				out[i] = m.Token
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return out, nil
}

func (b *bench) row(scenario, path string, c int, rate float64, o outcome, note string) row {
	r := row{Scenario: scenario, Path: path, Concurrency: c, Rate: rate, Seconds: round(o.elapsed.Seconds(), 2),
		Requests: len(o.lat), Errors: o.errs, Note: note}
	if o.firstErr != nil {
		msg := o.firstErr.Error()
		if r.Note != "" {
			r.Note += "; "
		}
		r.Note += "first error: " + msg
		logf("  %d errors, first: %v", o.errs, errors.Unwrap(o.firstErr))
	}
	if o.elapsed > 0 {
		r.RPS = round(float64(len(o.lat))/o.elapsed.Seconds(), 0)
	}
	r.P50, r.P99, r.P999 = quantile(o.lat, 0.50), quantile(o.lat, 0.99), quantile(o.lat, 0.999)
	per1k := func(cpu float64) *float64 {
		if len(o.lat) == 0 {
			return nil
		}
		v := round(cpu/float64(len(o.lat))*1000, 3)
		return &v
	}
	perReq := func(n float64) *float64 {
		if len(o.lat) == 0 {
			return nil
		}
		v := round(n/float64(len(o.lat)), 1)
		return &v
	}
	// o.cpu / o.sysc / o.peakRSS follow watched(): chdproxy, Vault, Redis, chdbench.
	switch path {
	case pathChdproxy:
		r.CPUPer1k = per1k(o.cpu[0])
		if b.watch.chdproxy != nil {
			r.Syscalls, r.Switches = perReq(o.sysc[0]), perReq(o.csw[0])
		}
		if b.watch.chdproxy != nil {
			mb := round(float64(o.peakRSS[0])/(1<<20), 1)
			r.PeakRSSMB = &mb
		}
	case pathFloor, pathFloorOneCall:
		r.CPUPer1k = per1k(o.cpu[3]) // the floor client is chdbench itself
	}
	r.VaultCPUPer1k = per1k(o.cpu[1])
	r.RedisCPUPer1k = per1k(o.cpu[2])
	r.VaultSyscalls, r.RedisSyscalls = perReq(o.sysc[1]), perReq(o.sysc[2])
	msPerReq := func(s float64) *float64 {
		if len(o.lat) == 0 || math.IsNaN(s) {
			return nil
		}
		v := round(s*1000/float64(len(o.lat)), 3)
		return &v
	}
	if path == pathChdproxy && b.watch.chdproxy != nil {
		r.RunWait = msPerReq(o.runWait[0])
	}
	r.VaultRunWait = msPerReq(o.runWait[1])
	r.BenchCPUPer1k = per1k(o.cpu[3])
	// What else ran on the machine meanwhile (other programs, the kernel's own
	// work not charged to a process): a noisy neighbour shows here.
	ours := o.cpu[1] + o.cpu[2] + o.cpu[3]
	if b.watch.chdproxy != nil {
		ours += o.cpu[0]
	}
	if o.elapsed > 0 {
		r.OtherCores = round(max(o.busy-ours, 0)/o.elapsed.Seconds(), 2)
		r.BusyCores = round(o.busy/o.elapsed.Seconds(), 2)
	}
	logf("  %6.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d", r.RPS, r.P50, r.P99, r.Errors)
	return r
}
