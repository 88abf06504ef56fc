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

// phase is one measured run, first for warmup (not recorded), then for dur.
// Closed loop (rate 0): conc workers call op back to back. Open loop (rate >
// 0): op is started rate times a second on schedule, by at most conc workers;
// latency counts from when the request was due to go out, so a backlog shows
// as latency.
type phase struct {
	conc        int
	rate        float64
	warmup, dur time.Duration
	op          func() error
	watch       []*procWatch // processes whose CPU and peak RSS are sampled
}

// outcome is what a phase measured.
type outcome struct {
	lat      []time.Duration // successful requests started in the window
	errs     int
	elapsed  time.Duration // the window actually measured (shorter when the pool ran out)
	cpu      []float64     // CPU seconds of each watched process in the window
	sysc     []float64     // read and write system calls (syscr+syscw) of each watched process in the window
	csw      []float64     // context switches of each watched process's threads in the window
	runWait  []float64     // seconds each watched process's threads waited runnable for a core in the window
	peakRSS  []int64       // VmHWM of each watched process (bytes), since the phase began
	busy     float64       // CPU seconds the whole machine was busy in the window
	firstErr error
}

func (p phase) run() outcome {
	start := time.Now()
	mStart, mEnd := start.Add(p.warmup), start.Add(p.warmup+p.dur)
	for _, w := range p.watch {
		w.resetPeak()
	}
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     atomic.Int64
		firstErr atomic.Value
		stopped  atomic.Int64 // UnixNano of the first pool exhaustion, 0 if none
		cpu0     []float64
		sys0     []float64
		csw0     []float64
		wait0    []float64
		busy0    float64
		sampled  sync.WaitGroup
	)
	sampled.Go(func() {
		time.Sleep(time.Until(mStart))
		busy0 = machineBusy()
		cpu0 = make([]float64, len(p.watch))
		sys0 = make([]float64, len(p.watch))
		csw0 = make([]float64, len(p.watch))
		wait0 = make([]float64, len(p.watch))
		for i, w := range p.watch {
			cpu0[i], sys0[i], csw0[i], wait0[i] = w.cpu(), w.syscalls(), w.switches(), w.runWait()
		}
	})
	// one runs op once as scheduled at t0; false ends the worker.
	one := func(t0 time.Time, rec *[]time.Duration) bool {
		err := p.op()
		d := time.Since(t0)
		if errors.Is(err, errPoolEmpty) {
			stopped.CompareAndSwap(0, time.Now().UnixNano())
			return false
		}
		if t0.Before(mStart) {
			return true
		}
		if err != nil {
			errs.Add(1)
			firstErr.CompareAndSwap(nil, err)
			return true
		}
		*rec = append(*rec, d)
		return true
	}
	var jobs chan time.Time
	if p.rate > 0 {
		jobs = make(chan time.Time, 1<<16)
		go func() {
			defer close(jobs)
			interval := time.Duration(float64(time.Second) / p.rate)
			for t := start; t.Before(mEnd) && stopped.Load() == 0; t = t.Add(interval) {
				time.Sleep(time.Until(t))
				// Latency counts from here: a wait for a free worker is the
				// system's backlog; the sleep's own lateness is not.
				jobs <- time.Now()
			}
		}()
	}
	var wg sync.WaitGroup
	for range p.conc {
		wg.Go(func() {
			rec := make([]time.Duration, 0, 1024)
			if jobs != nil {
				for t0 := range jobs {
					if !one(t0, &rec) {
						break
					}
				}
			} else {
				for {
					t0 := time.Now()
					if !t0.Before(mEnd) || !one(t0, &rec) {
						break
					}
				}
			}
			mu.Lock()
			lat = append(lat, rec...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if jobs != nil {
		for range jobs { // the pool ran out: let the scheduler finish
		}
	}
	// The window is the whole measured time unless the pool ran out: at a low
	// fixed rate the last answer can come well before mEnd, the window still ran.
	end := mEnd
	if s := stopped.Load(); s != 0 && time.Unix(0, s).Before(end) {
		end = time.Unix(0, s)
	}
	sampled.Wait()
	o := outcome{errs: int(errs.Load()), elapsed: max(end.Sub(mStart), 0), busy: machineBusy() - busy0, lat: lat}
	if e, ok := firstErr.Load().(error); ok {
		o.firstErr = e
	}
	for i, w := range p.watch {
		o.cpu = append(o.cpu, w.cpu()-cpu0[i])
		o.sysc = append(o.sysc, w.syscalls()-sys0[i])
		o.csw = append(o.csw, w.switches()-csw0[i])
		o.runWait = append(o.runWait, w.runWait()-wait0[i])
		o.peakRSS = append(o.peakRSS, w.peak())
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

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// machineBusy returns the CPU seconds all cores spent not idle, from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return math.NaN()
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return math.NaN()
	}
	busy := 0.0
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clockTick
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

// syscalls returns the read and write system calls so far (syscr + syscw of
// /proc/PID/io: read, write, recvfrom, sendto and their kin; not futex, epoll or
// nanosleep). The counts of threads that ended are kept by the kernel.
func (w *procWatch) syscalls() float64 {
	b, err := os.ReadFile(w.path("io"))
	if err != nil {
		return math.NaN()
	}
	n := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "syscr" || k == "syscw") {
			x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			n += x
		}
	}
	return n
}

// switches returns the context switches so far of the process's live threads
// (voluntary: a thread went to sleep, on a futex, epoll or a blocking call;
// involuntary: it was preempted): how often it parks and wakes.
func (w *procWatch) switches() float64 {
	return w.threadSum("status", func(s string) (n float64) {
		for _, line := range strings.Split(s, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				n += x
			}
		}
		return n
	})
}

// runWait returns the seconds the process's live threads have spent runnable
// but waiting for a core (the second field of schedstat): the scheduling delay
// two shared cores add to every wake-up.
func (w *procWatch) runWait() float64 {
	return w.threadSum("schedstat", func(s string) float64 {
		if f := strings.Fields(s); len(f) >= 2 {
			ns, _ := strconv.ParseFloat(f[1], 64)
			return ns / 1e9
		}
		return 0
	})
}

// threadSum adds up parse of /proc/PID/task/TID/file over the live threads.
func (w *procWatch) threadSum(file string, parse func(string) float64) float64 {
	tasks, err := os.ReadDir(w.path("task"))
	if err != nil {
		return math.NaN()
	}
	n := 0.0
	for _, t := range tasks {
		if b, err := os.ReadFile(w.path("task/" + t.Name() + "/" + file)); err == nil { // else the thread ended meanwhile
			n += parse(string(b))
		}
	}
	return n
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
