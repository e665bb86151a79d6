// Command footprint is the benchmark of what an idle logger costs: the
// logger runs in every container, most of the time with nothing to log.
//
// Memory: N supervised `dockerlogger json-file` loggers are started, each
// on fresh pipes, and left idle. Per logger, the Pss (smaps_rollup) of its
// supervisor and worker summed: private pages plus its share of the pages
// every logger maps (the binary), each page counted once. Beside it the
// host's MemAvailable drop from before the start to the idle fleet, divided
// by N (noisy on a shared machine), and the supervisor's private memory
// (Private_Clean + Private_Dirty). The same for every driver, with a
// smaller fleet each (-drivern) against in-repo sinks (internal/sink) or
// UDP addresses nobody reads, and for the floor: bench/cmd/idlefloor, a Go
// program that only blocks on its pipes, as one process and as two.
//
// Wakeups: the context switches of every thread of the supervisor and the
// worker over -idle (10 s) of the idle json-file fleet, per logger
// (/proc/PID/task/*/status), median and largest.
//
// Start: exec to the ready byte of a supervised json-file logger, and
// `loginit --wait json-file -- true` end to end, medians of -starts runs.
// Busy: the worker's peak private memory, sampled every 10 ms, while it
// writes -lines lines of 100 bytes to json-file.
//
// gcplogs has no endpoint option: its loggers run in a private mount and
// network namespace where logging.googleapis.com is 127.0.0.1, served by
// internal/sink/cloudlogging (as test/gcplogs_test.go does); it needs
// root and nsenter, and is left out, saying so, without them.
//
// Targets are reported as PASS or MISS; the program fails only when it
// cannot measure.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
	"github.com/joyent/dockerlogger/internal/sink/cloudwatch"
	"github.com/joyent/dockerlogger/internal/sink/forward"
	"github.com/joyent/dockerlogger/internal/sink/hec"
)

const containerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type params struct {
	bin            string
	n, drivern     int
	idle, settle   time.Duration
	driverIdle     time.Duration
	starts, lines  int
	drivers, skip  string
	awsKey, region string
}

func main() {
	var p params
	flag.StringVar(&p.bin, "bin", "bin", "directory holding dockerlogger, loginit and idlefloor")
	flag.IntVar(&p.n, "n", 100, "idle supervised json-file loggers for the memory and wakeup figures")
	flag.IntVar(&p.drivern, "drivern", 20, "idle loggers per driver (and per floor) for the per-driver table")
	flag.DurationVar(&p.idle, "idle", 10*time.Second, "how long the context switches are counted")
	flag.DurationVar(&p.driverIdle, "driveridle", 5*time.Second, "how long each driver's fleet's context switches are counted")
	flag.DurationVar(&p.settle, "settle", 2*time.Second, "how long a fleet is left idle before it is measured")
	flag.IntVar(&p.starts, "starts", 20, "starts timed, for the exec-to-ready medians")
	flag.IntVar(&p.lines, "lines", 1_000_000, "lines of 100 bytes in the busy run")
	flag.StringVar(&p.drivers, "drivers", "json-file,syslog,fluentd,gelf,splunk,awslogs,gcplogs", "drivers in the per-driver table")
	flag.Parse()
	p.awsKey, p.region = "AKIDFOOTPRINT", "us-east-1"
	if abs, err := filepath.Abs(p.bin); err == nil {
		p.bin = abs // nsenter runs it from elsewhere
	}
	if err := run(p); err != nil {
		fmt.Fprintf(os.Stderr, "footprint: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

// fleet is a number of idle loggers (or floors) started alike.
type fleet struct {
	ls []*logproc.Logger
}

// launch starts n loggers, one after another, each waited for until
// ready.
func launch(n int, argv []string, env func(i int) []string) (*fleet, error) {
	f := &fleet{}
	for i := range n {
		l, err := logproc.Launch(logproc.Spec{Argv: argv, Env: env(i), Group: true, WaitDelay: 5 * time.Second})
		if err != nil {
			f.stop()
			return nil, err
		}
		f.ls = append(f.ls, l)
		if err := l.WaitReady(20 * time.Second); err != nil {
			f.stop()
			return nil, fmt.Errorf("%s never said ready: %v: %s", argv[len(argv)-1], err, logproc.LastLine(l.Stderr.String()))
		}
	}
	return f, nil
}

// procs returns each logger's processes: itself and its children.
func (f *fleet) procs() [][]int {
	var ps [][]int
	for _, l := range f.ls {
		ps = append(ps, append([]int{l.Pid()}, measure.Children(l.Pid())...))
	}
	return ps
}

// switches returns the context switches of each logger's processes
// (every thread) during d.
func (f *fleet) switches(d time.Duration) []int64 {
	procs := f.procs()
	count := func(ps []int) (n int64) {
		for _, pid := range ps {
			n += measure.CtxSwitches(pid)
		}
		return n
	}
	start := make([]int64, len(procs))
	for i, ps := range procs {
		start[i] = count(ps)
	}
	time.Sleep(d)
	var cs []int64
	for i, ps := range procs {
		cs = append(cs, count(ps)-start[i])
	}
	return cs
}

// pss returns the Pss of each logger's processes summed, and the number
// of processes seen.
func (f *fleet) pss() (per []int64, nprocs int) {
	for _, ps := range f.procs() {
		per = append(per, measure.GroupPss(ps))
		nprocs += len(ps)
	}
	return per, nprocs
}

// stop closes every logger's pipes (its application exits) and waits for
// it; one that does not end is killed.
func (f *fleet) stop() {
	for _, l := range f.ls {
		l.Out.Close()
		l.Err.Close()
	}
	for _, l := range f.ls {
		if err := l.Exit(20 * time.Second); err != nil {
			l.KillGroup()
		}
	}
	f.ls = nil
}

// env is a logger's environment with log-opts opts and extra variables.
func env(opts map[string]string, extra ...string) []string {
	return append(os.Environ(), logproc.Config(opts, containerID, extra...)...)
}

func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func mean(xs []int64) int64 {
	var sum int64
	for _, x := range xs {
		sum += x
	}
	if len(xs) == 0 {
		return 0
	}
	return sum / int64(len(xs))
}

func run(p params) error {
	dir, err := os.MkdirTemp("", "footprint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("footprint: dockerlogger at idle (load %s, %d CPUs)\n\n", measure.Load(), runtime.NumCPU())

	idle, err := idleFleet(p, dir)
	if err != nil {
		return err
	}
	st, err := starts(p, dir)
	if err != nil {
		return err
	}
	busy, err := busyPrivate(p, dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tmeasured\ttarget\t\n")
	row := func(name, got, target string, ok bool) {
		verdict := ""
		if target != "" {
			verdict = measure.Verdict(ok)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, got, target, verdict)
	}
	row(fmt.Sprintf("per idle logger, %d supervised json-file: Pss of both processes / N", p.n), measure.MB(idle.pss)+" MB", "≤ 4.5 MB", idle.pss <= 4_500_000)
	row("host MemAvailable drop per added idle logger (same run)", measure.MB(idle.avail)+" MB", "≤ 5 MB", idle.avail <= 5_000_000)
	row(fmt.Sprintf("context switches of supervisor + worker in %v idle: median (max)", p.idle), fmt.Sprintf("%d (%d)", idle.ctxMed, idle.ctxMax), "≤ 10", idle.ctxMed <= 10)
	row(fmt.Sprintf("worker's peak private memory, %d lines of 100 B", p.lines), measure.MB(busy)+" MB", "≤ 8 MB", busy <= 8_000_000)
	row("supervisor's private memory (median)", measure.MB(idle.supPriv)+" MB", "≤ 2 MB", idle.supPriv <= 2_000_000)
	row(fmt.Sprintf("exec to ready, json-file, median of %d", p.starts), fmt.Sprintf("%.1f ms", ms(st.ready)), "≤ 20 ms", st.ready <= 20*time.Millisecond)
	row(fmt.Sprintf("loginit --wait json-file -- true, median of %d", p.starts), fmt.Sprintf("%.1f ms", ms(st.loginit)), "", true)
	tw.Flush()
	fmt.Println()

	return perDriver(p, dir)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

type idleFigures struct {
	pss, avail, supPriv int64
	ctxMed, ctxMax      int64
}

func idleFleet(p params, dir string) (idleFigures, error) {
	var r idleFigures
	settleHost()
	before, err := measure.MemAvailable()
	if err != nil {
		return r, err
	}
	f, err := launch(p.n, logproc.Command(p.bin, "json-file"), func(i int) []string {
		return env(map[string]string{}, fmt.Sprintf("DOCKERLOG_LOGPATH=%s/idle-%d.log", dir, i))
	})
	if err != nil {
		return r, err
	}
	defer f.stop()
	time.Sleep(p.settle)
	after, err := measure.MemAvailable()
	if err != nil {
		return r, err
	}
	per, nprocs := f.pss()
	if nprocs != 2*p.n {
		return r, fmt.Errorf("%d processes for %d supervised loggers, want %d", nprocs, p.n, 2*p.n)
	}
	var sup []int64
	for _, l := range f.ls {
		priv, err := measure.Private(l.Pid())
		if err != nil {
			return r, err
		}
		sup = append(sup, priv)
	}
	r.pss, r.supPriv, r.avail = mean(per), median(sup), (before-after)/int64(p.n)

	cs := f.switches(p.idle)
	for _, n := range cs {
		r.ctxMax = max(r.ctxMax, n)
	}
	r.ctxMed = median(cs)
	return r, nil
}

// settleHost lets the page cache and the memory of a previous fleet
// settle before MemAvailable is read.
func settleHost() {
	runtime.GC()
	time.Sleep(time.Second)
}

type startFigures struct{ ready, loginit time.Duration }

func starts(p params, dir string) (startFigures, error) {
	var ready, whole []int64
	log := filepath.Join(dir, "start.log")
	for range p.starts {
		t0 := time.Now()
		f, err := launch(1, logproc.Command(p.bin, "json-file"), func(int) []string {
			return env(map[string]string{}, "DOCKERLOG_LOGPATH="+log)
		})
		if err != nil {
			return startFigures{}, err
		}
		ready = append(ready, int64(time.Since(t0)))
		f.stop()
		os.Remove(log)

		cmd := exec.Command(filepath.Join(p.bin, "loginit"), "--wait", "json-file", "--", "true")
		cmd.Env = env(map[string]string{}, "DOCKERLOG_LOGPATH="+log)
		t0 = time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return startFigures{}, fmt.Errorf("loginit: %v: %s", err, out)
		}
		whole = append(whole, int64(time.Since(t0)))
		os.Remove(log)
	}
	return startFigures{time.Duration(median(ready)), time.Duration(median(whole))}, nil
}

// busyPrivate runs one supervised json-file logger through p.lines lines
// of 100 bytes and returns the largest private memory of its worker seen.
func busyPrivate(p params, dir string) (int64, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	log := filepath.Join(dir, "busy.log")
	defer os.Remove(log)
	l, err := logproc.Launch(logproc.Spec{Argv: logproc.Command(p.bin, "json-file"), Env: env(map[string]string{}, "DOCKERLOG_LOGPATH="+log), Stdout: pr})
	if err != nil {
		pw.Close()
		return 0, err
	}
	l.Err.Close()
	if err := l.WaitReady(20 * time.Second); err != nil {
		pw.Close()
		l.Kill()
		return 0, err
	}
	worker, err := l.Worker(5 * time.Second)
	if err != nil {
		pw.Close()
		l.Kill()
		return 0, err
	}
	stop, peak := make(chan struct{}), make(chan int64)
	go func() {
		var top int64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := measure.Private(worker); err == nil {
				top = max(top, v)
			}
			select {
			case <-stop:
				peak <- top
				return
			case <-t.C:
			}
		}
	}()
	line := []byte(strings.Repeat("x", 99) + "\n")
	w := bufio.NewWriterSize(pw, 64<<10)
	for range p.lines {
		w.Write(line)
	}
	werr := w.Flush()
	pw.Close()
	lerr := l.Exit(5 * time.Minute)
	close(stop)
	top := <-peak
	if werr != nil {
		return 0, fmt.Errorf("writing the input: %w", werr)
	}
	return top, lerr
}

// perDriver prints the idle Pss per logger of each driver, and of the
// floor, drivern at a time.
func perDriver(p params, dir string) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "idle, %d at a time\tPss per logger MB\tprocesses\tcontext switches in %v\t\n", p.drivern, p.driverIdle)
	floor := func(name string, args ...string) error {
		f, err := launch(p.drivern, append([]string{filepath.Join(p.bin, "idlefloor")}, args...), func(int) []string { return os.Environ() })
		if err != nil {
			return err
		}
		time.Sleep(p.settle)
		per, n := f.pss()
		cs := median(f.switches(p.driverIdle))
		f.stop()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", name, measure.MB(mean(per)), n/p.drivern, cs)
		return nil
	}
	if err := floor("floor: Go program blocking on its pipes"); err != nil {
		return err
	}
	if err := floor("floor: the same, as parent and child", "-two"); err != nil {
		return err
	}
	for _, d := range strings.Split(p.drivers, ",") {
		argv, envf, cleanup, err := driverSetup(p, dir, d)
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		if argv == nil {
			fmt.Fprintf(tw, "%s\tskipped: needs Linux, root and nsenter\t\t\t\n", d)
			continue
		}
		f, err := launch(p.drivern, argv, envf)
		if err != nil {
			cleanup()
			tw.Flush()
			return fmt.Errorf("%s: %w", d, err)
		}
		time.Sleep(p.settle)
		per, n := f.pss()
		cs := median(f.switches(p.driverIdle))
		f.stop()
		cleanup()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", d, measure.MB(mean(per)), n/p.drivern, cs)
	}
	return tw.Flush()
}

// driverSetup starts what driver d needs to idle and returns the argv and
// environment of its loggers and what ends the sink. A nil argv skips d.
func driverSetup(p params, dir, d string) (argv []string, envf func(int) []string, cleanup func(), err error) {
	argv = logproc.Command(p.bin, d)
	opts := map[string]string{}
	var extra []string
	cleanup = func() {}
	switch d {
	case "json-file", "local":
		envf = func(i int) []string {
			return env(opts, fmt.Sprintf("DOCKERLOG_LOGPATH=%s/%s-%d.log", dir, d, i))
		}
		return argv, envf, cleanup, nil
	case "syslog", "gelf":
		// A UDP socket nobody reads: idle loggers send nothing.
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		cleanup = func() { c.Close() }
		opts[d+"-address"] = "udp://" + c.LocalAddr().String()
	case "fluentd":
		s, err := forward.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		cleanup = s.Close
		opts["fluentd-address"] = s.URL()
	case "splunk":
		s, err := hec.Listen("127.0.0.1:0", "footprint-token", false)
		if err != nil {
			return nil, nil, nil, err
		}
		cleanup = s.Close
		opts["splunk-url"], opts["splunk-token"] = s.URL(), "footprint-token"
	case "awslogs":
		s, err := cloudwatch.Listen("127.0.0.1:0", p.awsKey, p.region)
		if err != nil {
			return nil, nil, nil, err
		}
		s.CreateGroup("footprint")
		cleanup = s.Close
		opts["awslogs-group"], opts["awslogs-endpoint"] = "footprint", s.URL()
		extra = []string{"HOME=" + dir, "AWS_ACCESS_KEY_ID=" + p.awsKey,
			"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_REGION=" + p.region,
			"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + filepath.Join(dir, "none"),
			"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none")}
	case "gcplogs":
		return gcpSetup(p, dir)
	default:
		return nil, nil, nil, fmt.Errorf("no idle setup for driver %q", d)
	}
	return argv, func(i int) []string {
		return env(opts, append(extra, fmt.Sprintf("DOCKERLOG_CONTAINERNAME=/idle-%d", i))...)
	}, cleanup, nil
}
