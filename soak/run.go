package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
	"github.com/joyent/dockerlogger/internal/sink/forward"
)

// exitMargin is what the logger may take past close-timeout to exit once
// its inputs are closed (process exit, the last flush).
const exitMargin = 5 * time.Second

// run is one case being run: what it started and what it saw.
type run struct {
	p       *plan
	bin     string
	dir     string
	logDir  string // json-file: the directory of json.log
	spool   string // spool: spool-dir
	srv     *forward.Server
	sinkMu  sync.Mutex // one outage (sink, disk) at a time
	unmount func()
	filler  string
	l       *logproc.Logger
	w       [2]*writer
	start   time.Time

	mu         sync.Mutex
	events     []string // what was done when, for the report
	kills      int      // workers killed
	supKilled  bool
	stuck      bool         // the application was still blocked at the write limit
	peakMem    int64        // private memory of supervisor and workers, summed at one sample
	startMem   int64        // the same of the ready logger, before any input
	workers    map[int]bool // every worker seen: one may outlive a killed supervisor
	peakDisk   int64        // spool-dir's blocks
	diskAtPeak string       // SOAK_DEBUG: the spool-dir's listing at the peak
	notes      []string
	fails      []string
	exitCode   int
	exitAfter  time.Duration // from the inputs' close to the logger's exit
	stats      map[string]int64
	stats2     map[string]int64 // the second logger that drained a spool left behind
	writeLimit time.Duration
	summary    string
	maxBlock   time.Duration
	ownDelay   time.Duration
}

func (r *run) event(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%.2fs ", time.Since(r.start).Seconds())+fmt.Sprintf(f, a...))
}

func (r *run) fail(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails = append(r.fails, fmt.Sprintf(f, a...))
}

func (r *run) note(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(f, a...))
}

// opts are the plan's log-opts with this run's addresses and paths.
func (r *run) opts() map[string]string {
	o := map[string]string{}
	if r.dir == "" { // for --validate, before the case's directories exist
		r.logDir, r.spool = filepath.Join(os.TempDir(), "soak-validate", "log"), filepath.Join(os.TempDir(), "soak-validate", "spool")
	}
	for k, v := range r.p.opts {
		o[k] = v
	}
	switch r.p.driver {
	case "json-file":
		o["log-path"] = filepath.Join(r.logDir, "json.log")
	case "fluentd":
		if r.srv != nil {
			o["fluentd-address"] = r.srv.URL()
		} else {
			o["fluentd-address"] = "tcp://127.0.0.1:24224" // --validate: no network use
		}
	}
	if r.p.mode == "spool" {
		o["spool-dir"] = r.spool
	}
	return o
}

// setup makes the case's directories (a tmpfs for json-file when a disk
// fills) and sink.
func (r *run) setup() error {
	var err error
	if r.dir, err = os.MkdirTemp("", fmt.Sprintf("soak-%d-", r.p.seed)); err != nil {
		return err
	}
	r.logDir = filepath.Join(r.dir, "log")
	r.spool = filepath.Join(r.dir, "spool")
	if err := os.Mkdir(r.logDir, 0o755); err != nil {
		return err
	}
	for _, f := range r.p.faults {
		if f.kind == diskFull {
			n, _ := r.p.lines()
			size := 6*r.p.bytes + 120*int64(n+len(r.p.errs)) + r.p.bytes/r.p.lineMax*120 + 16<<20
			if r.unmount, err = logproc.Tmpfs(r.logDir, fmt.Sprint(size)); err != nil {
				return err
			}
			r.filler = filepath.Join(r.logDir, "filler")
			break
		}
	}
	if r.p.driver == "fluentd" {
		if r.p.downStart {
			r.srv, err = forward.Reserve()
		} else {
			r.srv, err = forward.Listen("tcp", "127.0.0.1:0")
		}
	}
	return err
}

// cleanup ends whatever the case started.
func (r *run) cleanup() {
	if r.l != nil {
		select {
		case <-r.l.Done():
		default:
			r.l.Kill()
		}
	}
	r.mu.Lock()
	for p := range r.workers {
		// A worker orphaned by the supervisor's kill, if it is still ours.
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil && measure.Alive(p) && strings.Contains(string(cmd), "dockerlogger") {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	r.mu.Unlock()
	if r.srv != nil {
		r.srv.Close()
	}
	if os.Getenv("SOAK_KEEP") != "" && len(r.fails) > 0 {
		if r.unmount != nil { // a copy of the tmpfs, which goes
			exec.Command("cp", "-a", r.logDir, r.logDir+".kept").Run()
			r.unmount()
		}
		fmt.Printf("  kept: %s\n", r.dir)
		return
	}
	if r.unmount != nil {
		r.unmount()
	}
	os.RemoveAll(r.dir)
}

// sample follows the private memory of the supervisor and its workers
// (a worker outlives a killed supervisor) and the spool's disk use.
func (r *run) sample(stop <-chan struct{}) {
	sup := r.l.Pid()
	workers := map[int]bool{}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		if n%4 == 0 { // a scan of /proc: every 100 ms is enough to find a new worker
			for _, p := range measure.Children(sup) {
				workers[p] = true
			}
		}
		mem := dirty(sup, workers)
		var disk int64
		if r.p.mode == "spool" {
			disk = measure.DiskUsage(r.spool)
		}
		r.mu.Lock()
		if disk > r.peakDisk && os.Getenv("SOAK_DEBUG") != "" {
			out, _ := exec.Command("sh", "-c", "ls -ls "+r.spool+"; filefrag -e "+r.spool+"/*.seg").CombinedOutput()
			r.diskAtPeak = fmt.Sprintf("%d bytes at %v, then:\n%s", disk, time.Since(r.start).Round(time.Millisecond), out)
		}
		r.peakMem, r.peakDisk = max(r.peakMem, mem), max(r.peakDisk, disk)
		for p := range workers {
			r.workers[p] = true
		}
		r.mu.Unlock()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// dirty sums the dirty private memory of the supervisor and its workers,
// forgetting workers that are gone.
func dirty(sup int, workers map[int]bool) int64 {
	var mem int64
	if m, err := measure.Dirty(sup); err == nil {
		mem += m
	}
	for p := range workers {
		if !measure.Alive(p) {
			delete(workers, p)
			continue
		}
		if m, err := measure.Dirty(p); err == nil {
			mem += m
		}
	}
	return mem
}

// baseline measures the idle logger, ready and before any input: the
// memory bound is counted from it.
func (r *run) baseline() {
	sup := r.l.Pid()
	workers := map[int]bool{}
	for _, p := range measure.Children(sup) {
		workers[p] = true
	}
	r.startMem = dirty(sup, workers)
}

// execute runs the case: start, write while injecting faults, close,
// wait, and leaves the check to check.
func (r *run) execute() error {
	if err := r.setup(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var err error
	r.l, err = logproc.Start(r.bin, r.p.driver, r.opts(), "/soak")
	if err != nil {
		return err
	}
	r.baseline() // before the writers start, or it would measure their first lines
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { r.sample(stopSampling); close(sampled) }()

	r.start = time.Now()
	rnd := splitmix(r.p.seed ^ 0x5eed)
	streams := [2][]item{r.p.out, r.p.errs}
	files := [2]*os.File{r.l.Out, r.l.Err}
	var wg sync.WaitGroup
	for i := range r.w {
		var b int64
		for _, it := range streams[i] {
			b += int64(it.n) + 1
		}
		share := float64(b) / float64(max(1, r.p.bytes)) // both streams finish together
		r.w[i] = &writer{f: files[i], items: streams[i], seed: r.p.seed, rate: max(int64(float64(r.p.rate)*share), 16<<10),
			burst: r.p.burstP, rnd: splitmix(rnd()), start: r.start}
		wg.Add(1)
		go func(w *writer) { defer wg.Done(); w.run() }(r.w[i])
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()

	faultsDone := make(chan struct{})
	stopFaults := make(chan struct{})
	go func() { r.inject(stopFaults); close(faultsDone) }()

	// The application writes for about bytes/rate; more is the logger
	// blocking it (blocking mode, a sink down) — up to a limit.
	r.writeLimit = time.Duration(float64(r.p.bytes)/float64(r.p.rate)*float64(time.Second))*2 + 10*time.Second
	for _, f := range r.p.faults {
		r.writeLimit += f.d
	}
	select {
	case <-written:
	case <-time.After(r.writeLimit):
		r.mu.Lock()
		r.stuck = true // closing the pipe under the blocked writer fails its write: not another violation
		r.mu.Unlock()
		r.fail("no hang: the application still writing %v after it started (blocked in write(2))", r.writeLimit.Round(time.Second))
	}
	close(stopFaults)
	<-faultsDone
	// Back to a working sink (unless the case ends with it down).
	if r.srv != nil {
		r.sinkMu.Lock()
		r.srv.Stall(false)
		if err := r.srv.Start(); err != nil {
			r.fail("restart the sink: %v", err)
		}
		if r.p.downEnd {
			r.srv.Stop()
			r.event("sink down for the end")
		}
		r.sinkMu.Unlock()
	}
	if r.filler != "" {
		os.Remove(r.filler)
	}
	r.l.Out.Close()
	r.l.Err.Close()
	<-written
	closed := time.Now()
	r.event("inputs closed")
	limit := r.p.closeTimeout + exitMargin
	select {
	case <-r.l.Done():
	case <-time.After(limit):
		r.fail("no hang: the logger still running %v after its inputs closed (close-timeout %v)", limit, r.p.closeTimeout)
		if os.Getenv("SOAK_DEBUG") != "" {
			// Go's goroutine dump of each process, on its stderr.
			for _, p := range measure.Children(r.l.Pid()) {
				syscall.Kill(p, syscall.SIGQUIT)
			}
			syscall.Kill(r.l.Pid(), syscall.SIGQUIT)
			time.Sleep(time.Second)
		}
		r.l.Kill()
	}
	r.exitCode, err = r.l.Wait(10 * time.Second)
	r.exitAfter = time.Since(closed)
	close(stopSampling)
	<-sampled
	if err != nil {
		r.fail("%v", err)
	}
	stderr := r.l.Stderr.Bytes()
	if f := os.Getenv("SOAK_STDERR"); f != "" { // the last case's, whole
		if err := os.WriteFile(f, stderr, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "SOAK_STDERR: %v\n", err)
		}
	}
	st, _, err := logproc.Stats(stderr)
	if err != nil {
		r.fail("%v", err)
		st = map[string]int64{}
	}
	r.stats = st
	// What the spool still holds is not lost: a second logger on the same
	// spool-dir, with the sink up and no input, delivers it.
	if st["lines_spooled"] > 0 {
		if r.srv != nil {
			r.srv.Start()
		}
		r.event("second logger for %d spooled lines", st["lines_spooled"])
		l2, err := logproc.Start(r.bin, r.p.driver, r.opts(), "/soak")
		if err != nil {
			r.fail("second logger: %v", err)
		} else {
			l2.Out.Close()
			l2.Err.Close()
			code, werr := l2.Wait(r.p.closeTimeout + 30*time.Second)
			if r.stats2, _, err = logproc.Stats(l2.Stderr.Bytes()); err != nil {
				r.fail("second logger: %v", err)
			}
			// Exit 1 as for the first logger: close-timeout passed with
			// lines still in the spool, counted there (the check counts
			// what even the second logger left).
			left := code == 1 && r.stats2["lines_spooled"] > 0 &&
				bytes.Contains(l2.Stderr.Bytes(), []byte("dockerlogger: close-timeout reached"))
			if werr != nil || code != 0 && !left {
				r.fail("second logger: exit %d %v: %s", code, werr, logproc.LastLine(string(l2.Stderr.Bytes())))
			}
		}
	}
	return nil
}

// inject runs the plan's faults at their times until stop.
func (r *run) inject(stop <-chan struct{}) {
	var outages sync.WaitGroup
	defer outages.Wait()
	if r.p.downStart {
		up := 500*time.Millisecond + time.Duration(r.p.seed%2500)*time.Millisecond
		outages.Add(1)
		go func() {
			defer outages.Done()
			r.sinkMu.Lock()
			defer r.sinkMu.Unlock()
			select {
			case <-time.After(up):
			case <-stop:
			}
			r.srv.Start()
			r.event("sink up (down at start)")
		}()
	}
	var lastProc time.Time
	for _, f := range r.p.faults {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(r.start.Add(f.at))):
		}
		sup := r.l.Pid()
		switch f.kind {
		case sinkDown, sinkStall, diskFull:
			outages.Add(1)
			go func(f fault) {
				defer outages.Done()
				r.outage(f, stop)
			}(f)
			continue
		case workerKill:
			pid, err := r.l.Worker(2 * time.Second)
			if err != nil {
				r.event("worker-kill: %v", err)
				continue
			}
			syscall.Kill(pid, syscall.SIGKILL)
			r.mu.Lock()
			r.kills++
			r.mu.Unlock()
			r.event("worker %d SIGKILL", pid)
		case hup:
			syscall.Kill(sup, syscall.SIGHUP)
			r.event("supervisor SIGHUP")
		case usr1Storm:
			for i := 0; i < f.n; i++ {
				syscall.Kill(sup, syscall.SIGUSR1)
				time.Sleep(f.every)
			}
			r.event("supervisor %d SIGUSR1", f.n)
		case supervisorKill:
			// Only with a worker that has run for a while: killing the
			// supervisor between two workers leaves nobody holding the
			// pipes, which no logger can help.
			time.Sleep(max(0, time.Until(lastProc.Add(time.Second))))
			pid, err := r.l.Worker(2 * time.Second)
			if err == nil {
				time.Sleep(300 * time.Millisecond)
				if p2, err2 := r.l.Worker(0); err2 != nil || p2 != pid {
					err = fmt.Errorf("worker not stable")
				}
			}
			if err != nil {
				r.event("supervisor-kill skipped: %v", err)
				continue
			}
			syscall.Kill(sup, syscall.SIGKILL)
			r.mu.Lock()
			r.supKilled = true
			r.mu.Unlock()
			r.event("supervisor SIGKILL (worker %d carries on)", pid)
		}
		lastProc = time.Now()
	}
}

// outage is a sink down or stalled, or json-file's disk full, for f.d.
func (r *run) outage(f fault, stop <-chan struct{}) {
	r.sinkMu.Lock()
	defer r.sinkMu.Unlock()
	switch f.kind {
	case sinkDown:
		r.srv.Stop()
	case sinkStall:
		r.srv.Stall(true)
	case diskFull:
		if err := logproc.Fill(r.filler); err != nil {
			r.event("disk-full: %v", err)
			return
		}
	}
	r.event("%s for %v", f.kind, f.d)
	select {
	case <-time.After(f.d):
	case <-stop:
	}
	switch f.kind {
	case sinkDown:
		if err := r.srv.Start(); err != nil {
			r.fail("restart the sink: %v", err)
		}
	case sinkStall:
		r.srv.Stall(false)
	case diskFull:
		os.Remove(r.filler)
	}
	r.event("%s over", f.kind)
}

// splitmix is a generator of 64-bit numbers from seed (SplitMix64): the
// case seeds from the run's, and the writers' choices.
func splitmix(seed uint64) func() uint64 {
	return func() uint64 {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
}
