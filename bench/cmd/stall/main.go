// Command stall is the benchmark: what a sink that stops
// reading does to the application, in each delivery mode.
//
// The sink is the in-repo Fluentd Forward server (internal/sink/forward,
// the real wire protocol), run in this process; the logger is
// `dockerlogger fluentd` with fluentd-async=false, so its driver really
// blocks on the socket. For each mode (blocking, non-blocking, spool at
// spool-sync=interval) a fresh logger and sink are started and the
// application — a copy of this program started with -writer, so its
// timings do not share a Go runtime with the sink — writes numbered
// 100-byte lines into the logger's fd 3 at a steady rate, timing each
// write(2). After a warm-up the sink is stalled for a fixed time, then
// released; the writer goes on a little, then closes the pipe and the
// logger drains and exits.
//
// Reported per mode: write(2) latency while the sink was stalled (writes
// that started in the stall window) and over the whole run; lines
// written, delivered (unique, counted at the sink), duplicated, dropped
// (the logger's lines_dropped) and lost uncounted = written − delivered −
// dropped, which must be 0; peak RSS of the logger as a whole, each
// physical page counted once (the largest sum of the supervisor's and the
// worker's Pss seen, sampled every 20 ms until the logger exits, and never
// less than the worker's VmHWM plus the supervisor's RssAnon), beside each
// process's VmHWM, which counts the binary they share twice; peak disk
// used by the spool directory (allocated blocks, sampled likewise).
//
// Then, with a healthy sink, the throughput of spool against blocking in
// the same run: N lines written as fast as the pipe takes them, from the
// first write to the logger's exit with everything at the sink, median of
// the runs, the two modes alternating.
//
// Targets are reported as PASS or MISS; the program fails only when it
// cannot measure.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
	"github.com/joyent/dockerlogger/internal/sink/forward"
)

const (
	lineSize    = 100 // bytes per line, newline included
	containerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// maxBufferSize is the default max-buffer-size: the RSS target is
	// this plus 32 MB.
	maxBufferSize = 1 << 20
)

var modes = []string{"blocking", "non-blocking", "spool"}

type params struct {
	bin                  string
	rate                 int
	warmup, stall, after time.Duration
	lines, runs          int
}

func main() {
	var p params
	flag.StringVar(&p.bin, "bin", "bin", "directory holding dockerlogger")
	flag.IntVar(&p.rate, "rate", 20000, "lines per second the application writes")
	flag.DurationVar(&p.warmup, "warmup", time.Second, "writing before the sink stalls")
	flag.DurationVar(&p.stall, "stall", 3*time.Second, "how long the sink stalls")
	flag.DurationVar(&p.after, "after", 2*time.Second, "writing after the sink is released")
	flag.IntVar(&p.lines, "lines", 200000, "lines per throughput run (healthy sink)")
	flag.IntVar(&p.runs, "runs", 3, "throughput runs per mode (the median is reported)")
	writer := flag.String("writer", "", "internal: be the application, write its timings to this file")
	duration := flag.Duration("duration", 0, "internal, with -writer: how long to write")
	flag.Parse()
	if *writer != "" {
		if err := writeLines(*writer, p.rate, *duration); err != nil {
			fmt.Fprintf(os.Stderr, "stall -writer: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(p); err != nil {
		fmt.Fprintf(os.Stderr, "stall: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

// line returns line number seq: 100 bytes with the newline, the number
// where the sink can find it.
func line(seq int) []byte {
	b := fmt.Appendf(make([]byte, 0, lineSize), "2024-01-02T03:04:05Z INFO seq=%09d msg=", seq)
	for len(b) < lineSize-1 {
		b = append(b, "the quick brown fox jumps over the lazy dog "[len(b)%44])
	}
	return append(b, '\n')
}

// seqOf finds the line number in a delivered message, or -1.
func seqOf(msg string) int {
	i := strings.Index(msg, " seq=")
	if i < 0 || len(msg) < i+5+9 {
		return -1
	}
	n, err := strconv.Atoi(msg[i+5 : i+5+9])
	if err != nil {
		return -1
	}
	return n
}

// writeLines is the application: lines 0, 1, 2… one write(2) each on fd
// 3, rate per second in 1 ms batches, for d. A write that blocks is not
// made up for afterwards beyond 10 ms worth of lines, as an application
// that blocked simply logs later. Each write's start (Unix ns) and
// duration go to out, as pairs of little-endian int64.
func writeLines(out string, rate int, d time.Duration) error {
	runtime.LockOSThread()
	n := int(float64(rate)*d.Seconds()*1.05) + 1024
	starts := make([]int64, 0, n)
	lats := make([]int64, 0, n)
	lines := make([][]byte, 0, n) // made before the clock starts
	for i := 0; i < n; i++ {
		lines = append(lines, line(i))
	}
	catchUp := max(rate/100, 1)
	begin := time.Now()
	skipped := 0
	var werr error
	for i := 0; i < n; {
		now := time.Now()
		el := now.Sub(begin)
		if el >= d {
			break
		}
		due := int(el.Seconds()*float64(rate)) - skipped
		if owed := due - i; owed > catchUp {
			skipped += owed - catchUp
			due = i + catchUp
		}
		if i >= due {
			time.Sleep(time.Millisecond - el%time.Millisecond)
			continue
		}
		for ; i < due && i < n; i++ {
			t0 := time.Now()
			_, err := syscall.Write(3, lines[i])
			lat := time.Since(t0)
			if err != nil {
				werr = fmt.Errorf("write line %d: %w", i, err)
				break
			}
			starts = append(starts, t0.UnixNano())
			lats = append(lats, int64(lat))
		}
		if werr != nil {
			break
		}
	}
	syscall.Close(3) // the logger sees EOF now
	buf := make([]byte, 0, 16*len(starts))
	for i := range starts {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(starts[i]))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(lats[i]))
	}
	if err := os.WriteFile(out, buf, 0o644); err != nil {
		return err
	}
	return werr
}

// write is one timed write(2) of the application.
type write struct {
	start time.Time
	lat   time.Duration
}

func readWrites(path string) ([]write, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ws := make([]write, 0, len(b)/16)
	for ; len(b) >= 16; b = b[16:] {
		ws = append(ws, write{time.Unix(0, int64(binary.LittleEndian.Uint64(b))),
			time.Duration(binary.LittleEndian.Uint64(b[8:]))})
	}
	return ws, nil
}

// logger is one running dockerlogger fluentd, started by internal/logproc.
type logger struct {
	*logproc.Logger

	samp  *measure.Sampler
	peaks measure.Peaks // what samp saw, once the logger has exited
}

// startLogger starts the logger on the read end of input, with an empty
// stderr stream, and waits for its ready byte on fd 5.
func startLogger(bin string, opts map[string]string, input *os.File) (*logger, error) {
	l, err := logproc.Launch(logproc.Spec{Argv: logproc.Command(bin, "fluentd"), Stdout: input,
		Env: append(os.Environ(), logproc.Config(opts, containerID, "DOCKERLOG_CONTAINERNAME=/stall-bench")...)})
	if err != nil {
		return nil, err
	}
	l.Err.Close()
	if err := l.WaitReady(10 * time.Second); err != nil {
		l.Kill()
		return nil, fmt.Errorf("dockerlogger not ready: %v: %s", err, logproc.LastLine(l.Stderr.String()))
	}
	return &logger{Logger: l}, nil
}

// sample records the peak RSS of the logger and its worker, and the disk
// used by dir (if any), every 20 ms until the logger has exited.
func (l *logger) sample(dir string) {
	l.samp = measure.Sample(l.Pid(), dir, 20*time.Millisecond)
}

// wait waits for the logger to exit (killing it after limit) and stops
// the sampling.
func (l *logger) wait(limit time.Duration) error {
	err := l.Exit(limit)
	l.peaks = l.samp.Stop()
	return err
}

// rss returns the peak RSS of the logger as a whole (each page once), the
// peak RSS of the supervisor and of its worker(s), and the sum of their
// peak RssAnon.
func (l *logger) rss() (group, sup, workers, anon int64, procs int) {
	for pid, m := range l.peaks.Procs {
		if pid == l.Pid() {
			sup = m.HWM
		} else {
			workers += m.HWM
		}
		anon += m.Anon
	}
	return l.peaks.Group, sup, workers, anon, len(l.peaks.Procs)
}

func options(mode, url, spoolDir string) map[string]string {
	o := map[string]string{"fluentd-address": url, "fluentd-async": "false", "close-timeout": "60s"}
	if mode != "blocking" {
		o["mode"] = mode
	}
	if mode == "spool" {
		o["spool-dir"] = spoolDir
		o["spool-sync"] = "interval"
	}
	return o
}

// count returns the unique numbered lines below n at the sink, the
// duplicates among them, and the events that are not numbered lines
// (drop markers).
func count(evs []forward.Event, n int) (unique, dups, other int) {
	seen := make([]bool, n)
	for _, e := range evs {
		s := seqOf(e.Str("log"))
		switch {
		case s < 0 || s >= n:
			other++
		case seen[s]:
			dups++
		default:
			seen[s] = true
			unique++
		}
	}
	return
}

// stallResult is one mode's stall run.
type stallResult struct {
	Mode                                 string
	Written, Delivered, Dups, Other      int
	Dropped, Lost                        int64
	StallWrites                          int
	P50, P99, Max                        time.Duration // writes started while stalled
	AllP99, AllMax                       time.Duration
	RSS, Disk                            int64
	SupRSS, WorkerRSS, Anon              int64
	RSSProcs                             int
	Drain                                time.Duration // input closed to logger exit
	DriverErrors, Retries, StatsDelivery int64
}

func stallRun(p params, mode, dir string) (stallResult, error) {
	r := stallResult{Mode: mode}
	sink, err := forward.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	defer sink.Close()
	spoolDir := filepath.Join(dir, mode+"-spool")
	pr, pw, err := os.Pipe()
	if err != nil {
		return r, err
	}
	l, err := startLogger(p.bin, options(mode, sink.URL(), spoolDir), pr)
	if err != nil {
		pw.Close()
		return r, err
	}
	sd := ""
	if mode == "spool" {
		sd = spoolDir
	}
	l.sample(sd)

	self, err := os.Executable()
	if err != nil {
		pw.Close()
		return r, err
	}
	timings := filepath.Join(dir, mode+".writes")
	wcmd := exec.Command(self, "-writer", timings, "-rate", strconv.Itoa(p.rate),
		"-duration", (p.warmup + p.stall + p.after).String())
	wcmd.Stderr = os.Stderr
	wcmd.ExtraFiles = []*os.File{pw}
	err = wcmd.Start()
	pw.Close() // the writer holds the only write end
	if err != nil {
		l.Cmd.Process.Kill()
		l.wait(time.Minute)
		return r, fmt.Errorf("start the writer: %w", err)
	}
	time.Sleep(p.warmup)
	stallStart := time.Now()
	sink.Stall(true)
	time.Sleep(p.stall)
	sink.Stall(false)
	stallEnd := time.Now()
	werr := wcmd.Wait()
	closed := time.Now()
	lerr := l.wait(2 * time.Minute)
	r.Drain = time.Since(closed)
	if werr != nil {
		return r, fmt.Errorf("writer: %w", werr)
	}
	if lerr != nil {
		return r, lerr
	}
	ws, err := readWrites(timings)
	if err != nil {
		return r, err
	}
	os.Remove(timings)
	stats, err := measure.Stats(l.Stderr.Bytes())
	if err != nil {
		return r, err
	}
	r.Dropped = stats["lines_dropped"]
	r.DriverErrors, r.Retries, r.StatsDelivery = stats["driver_errors"], stats["retries"], stats["lines_delivered"]
	// The logger has closed its connection; give the sink time to decode
	// the last of it.
	evs, _ := sink.Wait(int(stats["lines_delivered"]), 10*time.Second)
	r.Written = len(ws)
	r.Delivered, r.Dups, r.Other = count(evs, len(ws))
	r.Lost = int64(r.Written-r.Delivered) - r.Dropped
	var stalled, all []time.Duration
	for _, w := range ws {
		all = append(all, w.lat)
		if !w.start.Before(stallStart) && w.start.Before(stallEnd) {
			stalled = append(stalled, w.lat)
		}
	}
	stalled, all = measure.Sorted(stalled), measure.Sorted(all)
	r.StallWrites = len(stalled)
	r.P50, r.P99 = measure.Percentile(stalled, 50), measure.Percentile(stalled, 99)
	if len(stalled) > 0 {
		r.Max = stalled[len(stalled)-1]
	}
	r.AllP99 = measure.Percentile(all, 99)
	if len(all) > 0 {
		r.AllMax = all[len(all)-1]
	}
	r.RSS, r.SupRSS, r.WorkerRSS, r.Anon, r.RSSProcs = l.rss()
	r.Disk = l.peaks.Disk
	os.RemoveAll(spoolDir)
	return r, nil
}

// throughputRun writes n lines as fast as the pipe takes them to a logger
// in mode with a healthy sink, and returns the time from the first write
// to the logger's exit with every line at the sink.
func throughputRun(p params, mode, dir string, input []byte) (time.Duration, error) {
	sink, err := forward.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer sink.Close()
	spoolDir := filepath.Join(dir, mode+"-tput-spool")
	defer os.RemoveAll(spoolDir)
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	l, err := startLogger(p.bin, options(mode, sink.URL(), spoolDir), pr)
	if err != nil {
		pw.Close()
		return 0, err
	}
	l.sample("")
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := pw.Write(input)
		pw.Close()
		werr <- err
	}()
	lerr := l.wait(5 * time.Minute)
	if err := <-werr; err != nil {
		return 0, fmt.Errorf("writing the input: %w", err)
	}
	if lerr != nil {
		return 0, lerr
	}
	evs, err := sink.Wait(p.lines, 30*time.Second)
	wall := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", mode, err)
	}
	if u, _, _ := count(evs, p.lines); u != p.lines {
		return 0, fmt.Errorf("%s: %d of %d lines at the sink", mode, u, p.lines)
	}
	return wall, nil
}

func run(p params) error {
	dir, err := os.MkdirTemp("", "dockerlogger-stall-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("dockerlogger under a stalled sink: fluentd driver, fluentd-async=false, in-repo Forward sink\n")
	fmt.Printf("%s %s/%s, %d CPUs, load %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), measure.Load())
	fmt.Printf("application: %d lines/s of %d B; sink stalled for %v after %v, writing goes on %v after release\n\n",
		p.rate, lineSize, p.stall, p.warmup, p.after)

	var rs []stallResult
	for _, m := range modes {
		fmt.Fprintf(os.Stderr, "  stall run: %s\n", m)
		r, err := stallRun(p, m, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		rs = append(rs, r)
	}

	input := make([]byte, 0, p.lines*lineSize)
	for i := 0; i < p.lines; i++ {
		input = append(input, line(i)...)
	}
	walls := map[string][]time.Duration{}
	for i := 0; i < p.runs; i++ {
		order := []string{"blocking", "spool"}
		if i%2 == 1 {
			order = []string{"spool", "blocking"}
		}
		for _, m := range order {
			w, err := throughputRun(p, m, dir, input)
			if err != nil {
				return fmt.Errorf("throughput: %w", err)
			}
			fmt.Fprintf(os.Stderr, "  throughput %-8s run %d: %v, %.0f lines/s\n", m, i+1, w.Round(time.Millisecond), float64(p.lines)/w.Seconds())
			walls[m] = append(walls[m], w)
		}
	}
	report(os.Stdout, p, rs, walls)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }

func report(w io.Writer, p params, rs []stallResult, walls map[string][]time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\twritten\tdelivered\tdup\tdropped\tlost uncounted\tstalled writes\tp50 ms\tp99 ms\tmax ms\tall p99 ms\tall max ms\tpeak RSS MB\tVmHWM sup+worker\tanon MB\tpeak disk MB\tdrain s\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s+%s\t%s\t%s\t%.1f\t\n", r.Mode, r.Written, r.Delivered, r.Dups,
			r.Dropped, r.Lost, r.StallWrites, ms(r.P50), ms(r.P99), ms(r.Max), ms(r.AllP99), ms(r.AllMax),
			measure.MB(r.RSS), measure.MB(r.SupRSS), measure.MB(r.WorkerRSS), measure.MB(r.Anon), measure.MB(r.Disk), r.Drain.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(w, "\np50/p99/max: write(2) latency of the writes that started while the sink was stalled; all: the whole run.")
	fmt.Fprintln(w, "delivered: unique numbered lines at the sink; dropped: the logger's lines_dropped; lost uncounted = written - delivered - dropped.")
	fmt.Fprintln(w, "peak RSS: the logger's resident memory, each page once (largest sum of the supervisor's and worker's Pss, at least the worker's VmHWM + the supervisor's RssAnon);")
	fmt.Fprintln(w, "VmHWM sup+worker: each process's own peak (both count the pages of the binary they share); anon: their peak RssAnon.")
	fmt.Fprintln(w, "peak disk: blocks allocated under spool-dir; drain: input closed to logger exit. Sampled every 20 ms.")

	med := map[string]time.Duration{}
	fmt.Fprintf(w, "\nhealthy sink, %d lines of %d B written as fast as the pipe takes them, median of %d:\n", p.lines, lineSize, p.runs)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tlines/s\truns s\t× blocking\t")
	for _, m := range []string{"blocking", "spool"} {
		ws := append([]time.Duration(nil), walls[m]...)
		sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
		if len(ws) == 0 {
			continue
		}
		med[m] = ws[len(ws)/2]
		var runs []string
		for _, d := range walls[m] {
			runs = append(runs, fmt.Sprintf("%.2f", d.Seconds()))
		}
		ratio := "-"
		if b, ok := med["blocking"]; ok {
			ratio = fmt.Sprintf("%.2f", b.Seconds()/med[m].Seconds())
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t\n", m, float64(p.lines)/med[m].Seconds(), strings.Join(runs, " "), ratio)
	}
	tw.Flush()

	fmt.Fprintln(w, "\ntargets:")
	for _, r := range rs {
		fmt.Fprintf(w, "  %s  %s: lost uncounted is 0: %d\n", measure.Verdict(r.Lost == 0), r.Mode, r.Lost)
	}
	for _, r := range rs {
		if r.Mode == "blocking" {
			continue
		}
		fmt.Fprintf(w, "  %s  %s: stalled p99 write under 1 ms: %s ms\n", measure.Verdict(r.P99 < time.Millisecond), r.Mode, ms(r.P99))
		fmt.Fprintf(w, "  %s  %s: stalled max write under 10 ms: %s ms\n", measure.Verdict(r.Max < 10*time.Millisecond), r.Mode, ms(r.Max))
	}
	if b, ok := med["blocking"]; ok {
		if s, ok := med["spool"]; ok {
			x := b.Seconds() / s.Seconds()
			fmt.Fprintf(w, "  %s  spool (spool-sync=interval) at least half the throughput of blocking: %.2fx\n", measure.Verdict(x >= 0.5), x)
		}
	}
	limit := int64(maxBufferSize + 32<<20)
	for _, r := range rs {
		fmt.Fprintf(w, "  %s  %s: peak RSS under max-buffer-size + 32 MB (%s MB): %s MB (%d processes)\n",
			measure.Verdict(r.RSS < limit), r.Mode, measure.MB(limit), measure.MB(r.RSS), r.RSSProcs)
	}
	for _, r := range rs {
		if r.Other > 0 || r.DriverErrors > 0 || r.Retries > 0 {
			fmt.Fprintf(w, "  note: %s: %d other events at the sink (drop markers), driver_errors=%d retries=%d\n",
				r.Mode, r.Other, r.DriverErrors, r.Retries)
		}
	}
}
