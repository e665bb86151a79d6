// Command supervision is the benchmark: what the supervisor
// costs, how fast it brings a crashed worker back, and how long a live
// upgrade leaves the application's writes waiting.
//
// Cost: `dockerlogger json-file` reads N lines of 100 bytes from a pipe
// on fd 3 (an empty pipe on fd 4), supervised (the default: a supervisor
// and its worker) and with DOCKERLOG_SUPERVISOR=off (one process), the
// two alternating in the same run. Each is timed from its ready byte
// (fd 5: the driver is set up) to its exit, the throughput the target is
// about; the start-up (start to ready) is reported beside it. The file
// must hold every line; the median of the runs is reported. Peak RSS is
// the logger's resident memory with each physical page counted once: the
// largest sum of Pss over its processes (smaps_rollup), sampled every
// 20 ms until it exits, and never less than the worker's VmHWM plus the
// supervisor's RssAnon (samples miss a worker's start; measure.Sampler).
// The cost of supervision is that figure supervised minus unsupervised. Each
// process's VmHWM (which, added up, counts twice the pages of the binary
// the supervisor and the worker both map) and their RssAnon are reported
// beside it.
//
// Crash to delivery: a supervised logger is fed a steady stream of lines;
// the worker (the supervisor's child) is sent SIGKILL, and the time from
// the kill to the next growth of the json-file is measured by polling the
// file's size every 100 µs once the killed worker is gone. First
// restarts: each in a fresh logger, so each is the first restart of its
// supervisor. Successive restarts: one logger killed repeatedly, to show
// the restart backoff. Every line written must be in the file at the end
// (duplicates from the replay are reported).
//
// Upgrade gap: in each mode (spool, non-blocking, blocking; json-file,
// max-size 1g so no rotation) a supervised logger reads a pipe whose
// write end the benchmark holds as the application's stdout (fd 4: an
// empty pipe). From its ready byte a writer writes 100-byte numbered
// lines, 4000 bytes a blocking write(2) (whole lines, under PIPE_BUF), at
// a fixed rate (-gap-rate MB/s; behind after a write that blocked, it
// writes without pause until back on schedule), and times every write.
// After 500 ms of that, every 500 ms there is a mark, SIGHUP and baseline
// in turn, -gap-hups of each: SIGHUPs 1 s apart, each baseline half way
// between two (the last 500 ms after the last SIGHUP). Before each mark
// the pipe is shrunk (F_SETPIPE_SZ, -gap-pipe bytes; a worker grows it
// back at its start; a shrink refused because the pipe holds more, the
// logger behind, is counted and reported). At a SIGHUP the supervisor
// starts a live upgrade, at a baseline nothing happens: the baselines
// show the hiccups of the steady state beside those of the upgrades. For
// each mark the longest write(2) started within 300 ms after it is kept.
// With a 64 KiB pipe at 8 MB/s (8 ms of input) a write blocks for about
// the time nobody reads less 8 ms. Per mode: the median and max over the
// upgrades and over the baselines, the ratio of the two medians, and the
// windows with a write over 10 ms. Then the write end is closed, the
// logger must exit 0 having counted every upgrade, and its json-file
// must hold every line written, as written, each first delivery in
// order; a line delivered again is allowed (and reported) as far as the
// last stats line's lines_replayed counts it. A line lost uncounted (in
// non-blocking mode lines_dropped counts what the supervisor drops across
// an upgrade), out of order or again uncounted, or an entry that is no
// line written, is reported under the table, and fails the program once
// the table is out. Target, in
// spool and non-blocking: no write over 10 ms across an upgrade.
//
// -only runs one part: cost (throughput, RSS, restarts) or gap.
//
// Targets are reported as PASS or MISS; the program fails only when it
// cannot measure or a line is lost.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
)

const (
	lineSize    = 100
	containerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

type params struct {
	bin         string
	lines, runs int
	kills, rate int
	only        string
	gapRate     float64 // MB/s
	gapPipe     int     // bytes
	gapHups     int
	gapModes    string
}

func main() {
	var p params
	flag.StringVar(&p.bin, "bin", "bin", "directory holding dockerlogger")
	flag.IntVar(&p.lines, "lines", 1_000_000, "lines per throughput run")
	flag.IntVar(&p.runs, "runs", 15, "throughput runs per variant, in back-to-back pairs after one warm-up pair (medians are reported)")
	flag.IntVar(&p.kills, "kills", 5, "worker kills, for the first restarts and for the successive ones")
	flag.IntVar(&p.rate, "rate", 10000, "lines per second written while the worker is killed")
	flag.StringVar(&p.only, "only", "", "run one part only: gap (the upgrade gap) or cost (throughput, RSS, restarts); all by default")
	flag.Float64Var(&p.gapRate, "gap-rate", 8, "MB/s written during the upgrade gap")
	flag.IntVar(&p.gapPipe, "gap-pipe", 64<<10, "pipe size (bytes) set before each SIGHUP and baseline of the upgrade gap")
	flag.IntVar(&p.gapHups, "gap-hups", 10, "SIGHUPs (and as many baselines) per mode in the upgrade gap")
	flag.StringVar(&p.gapModes, "gap-modes", strings.Join(gapModes, ","), "modes of the upgrade gap, comma-separated")
	flag.Parse()
	if err := run(p); err != nil {
		fmt.Fprintf(os.Stderr, "supervision: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

func line(seq int) []byte {
	b := fmt.Appendf(make([]byte, 0, lineSize), "2024-01-02T03:04:05Z INFO seq=%09d msg=", seq)
	for len(b) < lineSize-1 {
		b = append(b, "the quick brown fox jumps over the lazy dog "[len(b)%44])
	}
	return append(b, '\n')
}

// logger is one running dockerlogger json-file, started by
// internal/logproc.
type logger struct {
	*logproc.Logger
	logPath string

	samp  *measure.Sampler
	peaks measure.Peaks // what samp saw, once the logger has exited
}

// start starts the logger on the read end of input, with an empty stderr
// stream; supervised=false sets DOCKERLOG_SUPERVISOR=off. ready waits for
// its ready byte on fd 5.
func start(bin, logPath string, supervised, ready bool, input *os.File) (*logger, error) {
	env := append(os.Environ(), logproc.Config(map[string]string{}, containerID, "DOCKERLOG_LOGPATH="+logPath)...)
	if !supervised {
		env = append(env, "DOCKERLOG_SUPERVISOR=off")
	}
	p, err := logproc.Launch(logproc.Spec{Argv: logproc.Command(bin, "json-file"), Env: env, Stdout: input, NoReady: !ready})
	if err != nil {
		return nil, err
	}
	p.Err.Close()
	l := &logger{Logger: p, logPath: logPath, samp: measure.Sample(p.Pid(), "", 20*time.Millisecond)}
	if ready {
		if err := p.WaitReady(10 * time.Second); err != nil {
			p.Cmd.Process.Kill()
			l.wait(time.Minute)
			return nil, fmt.Errorf("dockerlogger never said ready: %v: %s", err, logproc.LastLine(p.Stderr.String()))
		}
	}
	return l, nil
}

func (l *logger) wait(limit time.Duration) error {
	err := l.Exit(limit)
	l.peaks = l.samp.Stop()
	return err
}

// rss returns the peak RSS of the logger as a whole (each page once), the
// peak RSS of the logger process and of its children, and the sum of their
// peak RssAnon.
func (l *logger) rss() (group, self, kids, anon int64) {
	for pid, m := range l.peaks.Procs {
		if pid == l.Pid() {
			self = m.HWM
		} else {
			kids += m.HWM
		}
		anon += m.Anon
	}
	return l.peaks.Group, self, kids, anon
}

type tput struct {
	startup, wall   time.Duration // start to ready; ready to exit
	group           int64         // peak RSS of the logger, each page once
	self, kid, anon int64         // peak RSS of the logger process and of its worker; their RssAnon
	cpu             time.Duration // user+system time of the logger and its reaped worker, start to exit
}

func throughputRun(p params, dir string, supervised bool, input []byte) (tput, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("tput-%v.log", supervised))
	defer os.Remove(logPath)
	pr, pw, err := os.Pipe()
	if err != nil {
		return tput{}, err
	}
	t0 := time.Now()
	l, err := start(p.bin, logPath, supervised, true, pr)
	if err != nil {
		pw.Close()
		return tput{}, err
	}
	startup := time.Since(t0)
	t0 = time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := pw.Write(input)
		pw.Close()
		werr <- err
	}()
	lerr := l.wait(5 * time.Minute)
	wall := time.Since(t0)
	if err := <-werr; err != nil {
		return tput{}, fmt.Errorf("writing the input: %w", err)
	}
	if lerr != nil {
		return tput{}, lerr
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		return tput{}, err
	}
	lines := len(input) / lineSize
	if n := bytes.Count(b, []byte{'\n'}); n != lines {
		return tput{}, fmt.Errorf("supervised=%v: %d lines in, %d in the file", supervised, lines, n)
	}
	group, self, kids, anon := l.rss()
	r := tput{startup: startup, wall: wall, group: group, self: self, kid: kids, anon: anon}
	// wait4's rusage counts the process and every child it reaped: the
	// supervisor's covers its worker.
	if ru, ok := l.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	}
	return r, nil
}

// steady writes lines at rate per second (1 ms batches) until stop, then
// closes the pipe and reports how many it wrote.
func steady(w *os.File, rate int, stop <-chan struct{}, wrote chan<- int) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	n := 0
	defer func() { w.Close(); wrote <- n }()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		due := int(time.Since(begin).Seconds() * float64(rate))
		for ; n < due; n++ {
			if _, err := w.Write(line(n)); err != nil {
				fmt.Fprintf(os.Stderr, "supervision: writer: %v\n", err)
				return
			}
		}
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// killWorker kills the supervisor's worker and returns the time from the
// kill to the next growth of the log file.
func killWorker(l *logger) (time.Duration, error) {
	sup := l.Pid()
	// The worker is up and delivering: the file has grown lately.
	var worker int
	deadline := time.Now().Add(10 * time.Second)
	for {
		kids := measure.Children(sup)
		if len(kids) == 1 {
			s := fileSize(l.logPath)
			time.Sleep(50 * time.Millisecond)
			if fileSize(l.logPath) > s && measure.Alive(kids[0]) {
				worker = kids[0]
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no delivering worker under supervisor %d (children %v)", sup, kids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill worker %d: %w", worker, err)
	}
	// Until it is gone, a write it was making may still land.
	for measure.Alive(worker) {
		time.Sleep(20 * time.Microsecond)
	}
	s0 := fileSize(l.logPath)
	for fileSize(l.logPath) <= s0 {
		if time.Since(t0) > 30*time.Second {
			return 0, fmt.Errorf("nothing delivered 30s after the worker was killed")
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(t0), nil
}

// crashRun starts a supervised logger with a steady writer, kills its
// worker kills times (waiting settle between), and checks every line
// written is in the file.
func crashRun(p params, dir, name string, kills int, settle time.Duration) ([]time.Duration, int, error) {
	logPath := filepath.Join(dir, name+".log")
	defer os.Remove(logPath)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, 0, err
	}
	l, err := start(p.bin, logPath, true, true, pr)
	if err != nil {
		pw.Close()
		return nil, 0, err
	}
	stop, wrote := make(chan struct{}), make(chan int, 1)
	go steady(pw, p.rate, stop, wrote)
	var ds []time.Duration
	var kerr error
	for i := 0; i < kills && kerr == nil; i++ {
		time.Sleep(settle)
		var d time.Duration
		if d, kerr = killWorker(l); kerr == nil {
			ds = append(ds, d)
		}
	}
	time.Sleep(settle)
	close(stop)
	n := <-wrote
	if err := l.wait(time.Minute); err != nil {
		return nil, 0, err
	}
	if kerr != nil {
		return nil, 0, kerr
	}
	c, err := checkInOrder(logPath, n)
	unique, dups := c.unique, c.dups
	if err != nil {
		return nil, 0, err
	}
	if unique != n {
		return nil, 0, fmt.Errorf("%s: %d lines written, %d in %s", name, n, unique, logPath)
	}
	return ds, dups, nil
}

func run(p params) error {
	if p.only != "" && p.only != "gap" && p.only != "cost" {
		return fmt.Errorf("-only %q: gap or cost", p.only)
	}
	if p.gapHups < 1 || p.gapRate <= 0 || p.gapPipe < 4096 {
		return fmt.Errorf("-gap-hups at least 1, -gap-rate above 0, -gap-pipe at least 4096")
	}
	fmt.Printf("supervision: dockerlogger json-file\n")
	fmt.Printf("%s %s/%s, %d CPUs, load %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), measure.Load())
	if p.only != "gap" {
		fmt.Println()
		if err := runCost(p); err != nil {
			return err
		}
	}
	if p.only != "cost" {
		rs, err := runGap(p)
		if err != nil {
			return err
		}
		reportGap(os.Stdout, p, rs)
		return gapLoss(rs)
	}
	return nil
}

// runCost runs and reports the throughput, RSS and restart tables.
func runCost(p params) error {
	dir, err := os.MkdirTemp("", "dockerlogger-supervision-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	input := make([]byte, 0, p.lines*lineSize)
	for i := 0; i < p.lines; i++ {
		input = append(input, line(i)...)
	}
	// Run 0 is a warm-up pair (page cache, CPU frequency), not reported.
	// Then each pair runs back to back, the order alternating, so a pair
	// shares whatever else the machine is doing at that moment.
	res, idle := map[bool][]tput{}, map[bool][]tput{}
	for i := 0; i <= p.runs; i++ {
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, sup := range order {
			r, err := throughputRun(p, dir, sup, input)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "  supervised=%-5v run %d: start-up %v, %v, %.0f lines/s, CPU %v, RSS %s MB (VmHWM %s+%s)\n", sup, i,
				r.startup.Round(time.Millisecond), r.wall.Round(time.Millisecond), float64(p.lines)/r.wall.Seconds(),
				r.cpu.Round(time.Millisecond), measure.MB(r.group), measure.MB(r.self), measure.MB(r.kid))
			if i > 0 {
				res[sup] = append(res[sup], r)
			}
			// The same logger on no input: its start-up and exit CPU,
			// taken off the loaded run's to get CPU per line.
			if r, err = throughputRun(p, dir, sup, nil); err != nil {
				return err
			}
			if i > 0 {
				idle[sup] = append(idle[sup], r)
			}
		}
	}
	input = nil
	reportThroughput(os.Stdout, p, res, idle)

	var first []time.Duration
	var firstDups int
	for i := 0; i < p.kills; i++ {
		ds, dups, err := crashRun(p, dir, fmt.Sprintf("first-%d", i), 1, 300*time.Millisecond)
		if err != nil {
			return fmt.Errorf("first restart %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "  first restart, logger %d: %v\n", i+1, ds[0])
		first = append(first, ds[0])
		firstDups += dups
	}
	succ, succDups, err := crashRun(p, dir, "successive", p.kills, 300*time.Millisecond)
	if err != nil {
		return fmt.Errorf("successive restarts: %w", err)
	}
	report(os.Stdout, p, res, first, firstDups, succ, succDups)
	return nil
}

func median(ts []tput, get func(tput) int64) int64 {
	v := make([]int64, len(ts))
	for i, t := range ts {
		v[i] = get(t)
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }

// pairedCosts returns the throughput cost of supervision in each pair of
// runs, 1 - supervised lines/s / unsupervised lines/s, sorted. The two
// runs of a pair ran back to back, under the same load from the rest of
// the machine, so their ratio is steadier than a ratio of medians.
func pairedCosts(res map[bool][]tput) []float64 {
	var c []float64
	for i := range min(len(res[true]), len(res[false])) {
		c = append(c, 1-float64(res[false][i].wall)/float64(res[true][i].wall))
	}
	sort.Float64s(c)
	return c
}

// spread is the median and the middle half of sorted values.
func spread(v []float64) (med, lo, hi float64) {
	n := len(v)
	return v[n/2], v[n/4], v[(3*n-1)/4]
}

// reportThroughput prints lines/s with their spread, the cost per pair,
// and CPU per line: each run's CPU less the median CPU of the same
// logger started on an empty pipe (start-up and exit), over the lines.
func reportThroughput(w io.Writer, p params, res, idle map[bool][]tput) {
	fmt.Fprintf(w, "throughput: %d lines of %d B, ready to exit; %d pairs of runs back to back after a warm-up pair\n",
		p.lines, lineSize, p.runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tlines/s median\tmiddle half\tmin\tmax\tCPU ns/line\tCPU start-up+exit ms\t")
	cpu := map[bool]float64{}
	for _, sup := range []bool{true, false} {
		var rates, perLine []float64
		idleCPU := time.Duration(median(idle[sup], func(t tput) int64 { return int64(t.cpu) }))
		for _, t := range res[sup] {
			rates = append(rates, float64(p.lines)/t.wall.Seconds())
			perLine = append(perLine, float64(t.cpu-idleCPU)/float64(p.lines))
		}
		sort.Float64s(rates)
		sort.Float64s(perLine)
		med, lo, hi := spread(rates)
		cpu[sup], _, _ = spread(perLine)
		name := "DOCKERLOG_SUPERVISOR=off"
		if sup {
			name = "supervised"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f-%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n", name, med, lo, hi, rates[0], rates[len(rates)-1],
			cpu[sup], ms(idleCPU))
	}
	tw.Flush()
	costs := pairedCosts(res)
	var each []string
	for _, c := range costs {
		each = append(each, fmt.Sprintf("%.1f", c*100))
	}
	med, lo, hi := spread(costs)
	fmt.Fprintf(w, "cost per pair %%, sorted: %s\n", strings.Join(each, " "))
	fmt.Fprintf(w, "cost: median %.1f%%, middle half %.1f%% to %.1f%%; CPU per line %+.1f%%\n\n",
		med*100, lo*100, hi*100, (cpu[true]/cpu[false]-1)*100)
}

func report(w io.Writer, p params, res map[bool][]tput, first []time.Duration, firstDups int, succ []time.Duration, succDups int) {
	fmt.Fprintf(w, "throughput: %d lines of %d B, ready to exit, median of %d; peak RSS = each page once (Pss summed); VmHWM per process beside it\n",
		p.lines, lineSize, p.runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tlines/s\truns s\tstart-up ms\tpeak RSS MB\tVmHWM logger process MB\tworker MB\tanon MB\t")
	rate := map[bool]float64{}
	rss, anon := map[bool]int64{}, map[bool]int64{}
	for _, sup := range []bool{true, false} {
		ts := res[sup]
		wall := time.Duration(median(ts, func(t tput) int64 { return int64(t.wall) }))
		self := median(ts, func(t tput) int64 { return t.self })
		kid := median(ts, func(t tput) int64 { return t.kid })
		total := median(ts, func(t tput) int64 { return t.group })
		startup := time.Duration(median(ts, func(t tput) int64 { return int64(t.startup) }))
		anon[sup] = median(ts, func(t tput) int64 { return t.anon })
		rate[sup], rss[sup] = float64(p.lines)/wall.Seconds(), total
		var runs []string
		for _, t := range ts {
			runs = append(runs, fmt.Sprintf("%.2f", t.wall.Seconds()))
		}
		name, kidMB := "DOCKERLOG_SUPERVISOR=off", "-"
		if sup {
			name, kidMB = "supervised", measure.MB(kid)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, rate[sup], strings.Join(runs, " "), ms(startup),
			measure.MB(total), measure.MB(self), kidMB, measure.MB(anon[sup]))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nworker SIGKILL to the next line in the json-file (writer at %d lines/s):\n", p.rate)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "series\tms per kill\tfirst ms\tmedian ms\tmax ms\tduplicates\t")
	row := func(name string, ds []time.Duration, dups int) {
		var each []string
		for _, d := range ds {
			each = append(each, ms(d))
		}
		s := measure.Sorted(ds)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t\n", name, strings.Join(each, " "), ms(ds[0]), ms(s[len(s)/2]), ms(s[len(s)-1]), dups)
	}
	row(fmt.Sprintf("first restart, %d fresh loggers", len(first)), first, firstDups)
	row(fmt.Sprintf("restarts 1-%d of one logger", len(succ)), succ, succDups)
	tw.Flush()
	fmt.Fprintln(w, "(successive restarts of one logger wait out the supervisor's backoff: 100 ms doubling.)")

	fmt.Fprintln(w, "\ntargets:")
	cost, lo, hi := spread(pairedCosts(res))
	fmt.Fprintf(w, "  %s  throughput cost of supervision under 5%%: %.1f%% (median of %d pairs, middle half %.1f%% to %.1f%%; ratio of medians %.1f%%)\n",
		measure.Verdict(cost < 0.05), cost*100, len(res[true]), lo*100, hi*100, (1-rate[true]/rate[false])*100)
	extra := rss[true] - rss[false]
	fmt.Fprintf(w, "  %s  RSS cost of supervision under 4 MB: %s MB (RssAnon alone: %s MB)\n",
		measure.Verdict(extra < 4<<20), measure.MB(extra), measure.MB(anon[true]-anon[false]))
	s := measure.Sorted(first)
	med := s[len(s)/2]
	fmt.Fprintf(w, "  %s  first restart: kill to next line delivered under 200 ms: median %s ms (first %s, max %s)\n",
		measure.Verdict(med < 200*time.Millisecond), ms(med), ms(first[0]), ms(s[len(s)-1]))
}
