package main

import (
	"errors"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errPoolEmpty ends a worker early: the phase ran out of pre-made tokens.
var errPoolEmpty = errors.New("token pool exhausted")

// phase is one measured run: conc workers call op in a loop, first for
// warmup (not recorded), then for dur.
type phase struct {
	conc         int
	warmup, dur  time.Duration
	op           func(worker int) error
	watch        []*procWatch // processes whose CPU and peak RSS are sampled
	onMeasureEnd func()
}

// outcome is what a phase measured.
type outcome struct {
	lat      []time.Duration // successful requests started in the window
	errs     int
	elapsed  time.Duration // the window actually measured (shorter when the pool ran out)
	cpu      []float64     // CPU seconds of each watched process in the window
	peakRSS  []int64       // VmHWM of each watched process (bytes), since the phase began
	firstErr error
}

func (p phase) run() outcome {
	start := time.Now()
	mStart, mEnd := start.Add(p.warmup), start.Add(p.warmup+p.dur)
	for _, w := range p.watch {
		w.resetPeak()
	}
	lats := make([][]time.Duration, p.conc)
	var errs atomic.Int64
	var firstErr atomic.Value
	var stopped atomic.Int64 // UnixNano of the first pool exhaustion, 0 if none
	var cpu0 []float64
	var sampled sync.WaitGroup
	sampled.Go(func() {
		time.Sleep(time.Until(mStart))
		cpu0 = make([]float64, len(p.watch))
		for i, w := range p.watch {
			cpu0[i] = w.cpu()
		}
	})
	var wg sync.WaitGroup
	for i := range p.conc {
		wg.Go(func() {
			rec := make([]time.Duration, 0, 4096)
			for {
				t0 := time.Now()
				if !t0.Before(mEnd) {
					break
				}
				err := p.op(i)
				d := time.Since(t0)
				if errors.Is(err, errPoolEmpty) {
					stopped.CompareAndSwap(0, time.Now().UnixNano())
					break
				}
				if t0.Before(mStart) {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				rec = append(rec, d)
			}
			lats[i] = rec
		})
	}
	wg.Wait()
	end := time.Now()
	if end.After(mEnd) {
		end = mEnd
	}
	if s := stopped.Load(); s != 0 && time.Unix(0, s).Before(end) {
		end = time.Unix(0, s)
	}
	sampled.Wait()
	o := outcome{errs: int(errs.Load()), elapsed: end.Sub(mStart)}
	if e, ok := firstErr.Load().(error); ok {
		o.firstErr = e
	}
	for i, w := range p.watch {
		o.cpu = append(o.cpu, w.cpu()-cpu0[i])
		o.peakRSS = append(o.peakRSS, w.peak())
	}
	if p.onMeasureEnd != nil {
		p.onMeasureEnd()
	}
	for _, l := range lats {
		o.lat = append(o.lat, l...)
	}
	slices.Sort(o.lat)
	return o
}

// quantile is the nearest-rank quantile of sorted, in milliseconds.
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}

// procWatch reads a process's CPU time and peak RSS from /proc.
type procWatch struct {
	pid int // 0: this process
}

func (w *procWatch) path(f string) string {
	if w.pid == 0 {
		return "/proc/self/" + f
	}
	return "/proc/" + strconv.Itoa(w.pid) + "/" + f
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// cpu returns user+system CPU seconds so far.
func (w *procWatch) cpu() float64 {
	b, err := os.ReadFile(w.path("stat"))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return math.NaN()
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTick
}

// resetPeak resets VmHWM (Linux ≥ 4.0: "5" > /proc/PID/clear_refs).
func (w *procWatch) resetPeak() {
	_ = os.WriteFile(w.path("clear_refs"), []byte("5"), 0)
}

// peak returns VmHWM in bytes, 0 when unknown.
func (w *procWatch) peak() int64 {
	b, err := os.ReadFile(w.path("status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
