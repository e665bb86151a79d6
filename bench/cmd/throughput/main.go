// Command throughput measures dockerlogger's json-file path against three
// baselines, run in turn on the same machine: the raw pipe copy (cat),
// Docker's own path (logger.Copier into Docker's json-file driver, see
// ../dockercopier) and a minimal hand-written Go loop (../minimal).
//
// dockerlogger runs in each delivery mode: json-file is the default,
// mode=blocking (and local the same with the local driver); non-blocking
// and spool are json-file with mode=non-blocking (max-buffer-size 1m, the
// default) and mode=spool (spool-sync=interval, the default, spool-max-size
// 256m, in a fresh spool-dir per run, which the run creates and removes),
// both with buffer-full=block, so that, like blocking, they drop nothing
// and every mode writes every line: like for like. Both also get
// close-timeout=60s, as in ../stall: the drain at the end of the input
// (what the ring or the spool still holds) is part of the time measured,
// and must not be cut short by the 10 s default.
//
// For each case (lines × bytes per line) the input is generated once in
// memory. Each contender runs as a child process with the input on a pipe
// (dockerlogger reads it on fd 3, with an empty pipe on fd 4; the others
// on stdin) and writes a file in one temporary directory; the runner
// writes the input as fast as the pipe takes it and measures the wall
// time until the child exits, the child's CPU time (user+sys) and its peak
// RSS from rusage. Each run is repeated and the median reported. Every
// output file must hold exactly as many lines as went in: a run that
// loses lines is reported, its files kept, and the program exits 1.
// Targets are reported as PASS or MISS, never as a failure: a benchmark
// reports, it does not gate.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type benchCase struct {
	Name  string
	Lines int
	Size  int // bytes per line, newline included
}

type contender struct {
	Name   string
	Format string // what the output file holds: "lines", "json" or "local"
	// cmd builds the command that writes logPath.
	cmd func(bin, logPath string) *exec.Cmd
	fd3 bool // input on fd 3 and an empty pipe on fd 4, not on stdin
	// spool: a fresh spool-dir, spoolDir(logPath), is made before each
	// run and removed after a good one.
	spool bool
}

// spoolDir is the spool-dir of the run that writes logPath.
func spoolDir(logPath string) string { return logPath + ".spool" }

type result struct {
	Wall   time.Duration
	CPU    time.Duration
	MaxRSS int64 // bytes
}

func main() {
	bin := flag.String("bin", "bin", "directory holding dockerlogger, dockercopier and minimal")
	runs := flag.Int("runs", 3, "runs per case and contender (the median is reported)")
	scale := flag.Float64("scale", 1, "scale the number of lines (for a quick try)")
	only := flag.String("only", "", "comma-separated contenders to run (default all)")
	launch := flag.String("launch", "", "internal: run the command after -- and write its measurements to this file")
	fds := flag.Int("fds", 0, "internal, with -launch: pass on this many fds from 3 up")
	flag.Parse()
	if *launch != "" {
		if err := launchChild(*launch, *fds, flag.Args()); err != nil {
			fmt.Fprintf(os.Stderr, "throughput -launch: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *runs, *scale, *only); err != nil {
		fmt.Fprintf(os.Stderr, "throughput: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

func contenders() []contender {
	env := func(c *exec.Cmd, logPath string) *exec.Cmd {
		c.Env = append(os.Environ(),
			"DOCKERLOG_CONFIG={}",
			"DOCKERLOG_CONTAINERID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"DOCKERLOG_LOGPATH="+logPath)
		return c
	}
	// mode runs dockerlogger json-file with the log-opts opts (the last
	// DOCKERLOG_CONFIG in the environment is the one the child sees).
	mode := func(bin, logPath string, opts map[string]string) *exec.Cmd {
		c := env(exec.Command(filepath.Join(bin, "dockerlogger"), "json-file"), logPath)
		b, err := json.Marshal(opts)
		if err != nil {
			panic(err) // a map of strings
		}
		c.Env = append(c.Env, "DOCKERLOG_CONFIG="+string(b))
		return c
	}
	return []contender{
		{Name: "cat", Format: "lines", cmd: func(bin, p string) *exec.Cmd { return env(exec.Command("cat"), p) }},
		{Name: "docker", Format: "json", cmd: func(bin, p string) *exec.Cmd {
			return env(exec.Command(filepath.Join(bin, "dockercopier")), p)
		}},
		{Name: "minimal", Format: "json", cmd: func(bin, p string) *exec.Cmd {
			return env(exec.Command(filepath.Join(bin, "minimal")), p)
		}},
		{Name: "json-file", Format: "json", fd3: true, cmd: func(bin, p string) *exec.Cmd {
			return env(exec.Command(filepath.Join(bin, "dockerlogger"), "json-file"), p)
		}},
		// local rotates at 20m by default; the whole input must stay.
		{Name: "local", Format: "local", fd3: true, cmd: func(bin, p string) *exec.Cmd {
			c := env(exec.Command(filepath.Join(bin, "dockerlogger"), "local"), p)
			c.Env = append(c.Env, `DOCKERLOG_CONFIG={"max-size":"1g"}`)
			return c
		}},
		// The other modes, with buffer-full=block: nothing dropped, as
		// in blocking.
		{Name: "non-blocking", Format: "json", fd3: true, cmd: func(bin, p string) *exec.Cmd {
			return mode(bin, p, map[string]string{"mode": "non-blocking", "buffer-full": "block", "close-timeout": "60s"})
		}},
		{Name: "spool", Format: "json", fd3: true, spool: true, cmd: func(bin, p string) *exec.Cmd {
			return mode(bin, p, map[string]string{"mode": "spool", "buffer-full": "block", "close-timeout": "60s",
				"spool-dir": spoolDir(p), "spool-sync": "interval"})
		}},
	}
}

func run(bin string, runs int, scale float64, only string) error {
	cases := []benchCase{
		{Name: "100 B", Lines: int(2_000_000 * scale), Size: 100},
		{Name: "1000 B", Lines: int(200_000 * scale), Size: 1000},
	}
	cs := contenders()
	if only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			keep[n] = true
		}
		var sel []contender
		for _, c := range cs {
			if keep[c.Name] {
				sel = append(sel, c)
			}
		}
		cs = sel
	}
	dir, err := os.MkdirTemp("", "dockerlogger-bench-")
	if err != nil {
		return err
	}
	keep := false // a failed run's files stay for a look
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("dockerlogger throughput: %d runs each, median reported; %s %s/%s, %d CPUs, load %s",
		runs, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), load)
	fmt.Printf("logs written to %s\n\n", dir)

	med := map[string]map[string]result{} // case → contender → median
	var bugs []string
	for _, bc := range cases {
		input := genInput(bc)
		med[bc.Name] = map[string]result{}
		for _, c := range cs {
			var rs []result
			for i := 0; i < runs; i++ {
				logPath := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.log", c.Name, bc.Size, i))
				if c.spool {
					if err := os.Mkdir(spoolDir(logPath), 0o700); err != nil {
						return fmt.Errorf("%s, %s: %w", c.Name, bc.Name, err)
					}
				}
				r, stderr, err := runOne(c, bin, logPath, input)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", c.Name, bc.Name, err)
				}
				got, err := countOutput(c.Format, logPath)
				if err != nil {
					keep = true
					return fmt.Errorf("%s, %s: %w", c.Name, bc.Name, err)
				}
				if got != bc.Lines {
					// Go on measuring, but the run fails at the end.
					keep = true
					os.WriteFile(logPath+".stderr", stderr, 0o644)
					bugs = append(bugs, fmt.Sprintf("BUG: %s, %s, run %d: %d lines in, %d lines in %s (its stderr in %s.stderr)",
						c.Name, bc.Name, i+1, bc.Lines, got, logPath, logPath))
				} else {
					os.Remove(logPath)
					os.RemoveAll(spoolDir(logPath)) // none but spool's
				}
				rs = append(rs, r)
				fmt.Fprintf(os.Stderr, "  %-12s %-6s run %d: %v wall, %v cpu, %.1f MB rss\n",
					c.Name, bc.Name, i+1, r.Wall.Round(time.Millisecond), r.CPU.Round(time.Millisecond), float64(r.MaxRSS)/1e6)
			}
			med[bc.Name][c.Name] = median(rs)
		}
	}
	report(os.Stdout, cases, cs, med)
	if len(bugs) > 0 {
		fmt.Println()
		for _, b := range bugs {
			fmt.Println(b)
		}
		return fmt.Errorf("%d runs lost lines (see above)", len(bugs))
	}
	return nil
}

// genInput makes bc.Lines lines of bc.Size bytes each, newline included:
// printable text with a running number, like an application's log.
func genInput(bc benchCase) []byte {
	buf := make([]byte, 0, bc.Lines*bc.Size)
	filler := strings.Repeat("the quick brown fox jumps over the lazy dog 0123456789 ", bc.Size/50+2)
	for i := 0; i < bc.Lines; i++ {
		start := len(buf)
		buf = fmt.Appendf(buf, "2024-01-02T03:04:05Z INFO req=%08d path=/api/v1/items status=200 msg=", i)
		buf = append(buf, filler[:bc.Size-1-(len(buf)-start)]...)
		buf = append(buf, '\n')
	}
	return buf
}

// runOne runs one contender through a launcher: a fresh copy of this
// program that starts the contender and reports its rusage. Started
// straight from here, the child's ru_maxrss would be this process's RSS,
// input included: Linux records the RSS of the memory the child shares
// with its parent (vfork) when it calls exec.
func runOne(c contender, bin, logPath string, input []byte) (res result, stderrOut []byte, err error) {
	defer func() {
		if err != nil {
			res = result{}
		}
	}()
	var stderr bytes.Buffer
	r, err := runLaunched(c, bin, logPath, input, &stderr)
	return r, stderr.Bytes(), err
}

func runLaunched(c contender, bin, logPath string, input []byte, stderr *bytes.Buffer) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	measured := logPath + ".rusage"
	defer os.Remove(measured)
	cmd := c.cmd(bin, logPath)
	fds := "0"
	if c.fd3 {
		fds = "2"
	}
	cmd.Args = append([]string{self, "-launch", measured, "-fds", fds, "--", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = self
	cmd.Stderr = stderr
	pr, pw, err := os.Pipe()
	if err != nil {
		return result{}, err
	}
	var closeAfterStart []*os.File
	switch {
	case c.fd3:
		er, ew, err := os.Pipe() // stderr of the container: empty
		if err != nil {
			return result{}, err
		}
		ew.Close()
		cmd.ExtraFiles = []*os.File{pr, er}
		closeAfterStart = append(closeAfterStart, pr, er)
	case c.Format == "lines": // cat writes the file itself through stdout
		out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return result{}, err
		}
		cmd.Stdin, cmd.Stdout = pr, out
		closeAfterStart = append(closeAfterStart, pr, out)
	default:
		cmd.Stdin = pr
		closeAfterStart = append(closeAfterStart, pr)
	}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return result{}, err
	}
	for _, f := range closeAfterStart {
		f.Close()
	}
	werr := make(chan error, 1)
	go func() {
		_, err := pw.Write(input)
		pw.Close()
		werr <- err
	}()
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("%v: %s", err, lastLine(stderr.String()))
	}
	if err := <-werr; err != nil {
		return result{}, fmt.Errorf("writing the input: %w", err)
	}
	b, err := os.ReadFile(measured)
	if err != nil {
		return result{}, err
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		return result{}, fmt.Errorf("launcher's measurements: %w", err)
	}
	return r, nil
}

// launchChild is the launcher: it runs args with this process's stdin,
// stdout, stderr and fds 3… 3+fds-1, and writes the wall time from start
// to exit, the CPU time and peak RSS of the child (and of the children it
// waited for) to out as JSON.
func launchChild(out string, fds int, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command after --")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	for i := 0; i < fds; i++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(3+i), fmt.Sprintf("fd%d", 3+i)))
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	err := cmd.Wait()
	wall := time.Since(start)
	if err != nil {
		return err
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return fmt.Errorf("no rusage on %s", runtime.GOOS)
	}
	b, err := json.Marshal(result{
		Wall:   wall,
		CPU:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		MaxRSS: ru.Maxrss * 1024, // KiB on Linux
	})
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// countOutput counts the messages in a contender's file: lines of text or
// JSON, or frames of the local format.
func countOutput(format, path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if format != "local" {
		return bytes.Count(b, []byte{'\n'}), nil
	}
	n := 0
	for len(b) > 0 {
		if len(b) < 8 {
			return n, io.ErrUnexpectedEOF
		}
		size := int(binary.BigEndian.Uint32(b))
		if len(b) < size+8 || int(binary.BigEndian.Uint32(b[4+size:])) != size {
			return n, fmt.Errorf("bad local frame after %d messages", n)
		}
		b = b[size+8:]
		n++
	}
	return n, nil
}

func median(rs []result) result {
	pick := func(get func(result) int64) int64 {
		v := make([]int64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	return result{
		Wall:   time.Duration(pick(func(r result) int64 { return int64(r.Wall) })),
		CPU:    time.Duration(pick(func(r result) int64 { return int64(r.CPU) })),
		MaxRSS: pick(func(r result) int64 { return r.MaxRSS }),
	}
}

func report(w io.Writer, cases []benchCase, cs []contender, med map[string]map[string]result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tcontender\tlines/s\tMB/s\tCPU s/M lines\tpeak RSS MB\t× docker\t× minimal\t")
	rate := func(bc benchCase, r result) float64 { return float64(bc.Lines) / r.Wall.Seconds() }
	for _, bc := range cases {
		for _, c := range cs {
			r, ok := med[bc.Name][c.Name]
			if !ok {
				continue
			}
			ratio := func(base string) string {
				b, ok := med[bc.Name][base]
				if !ok {
					return "-"
				}
				return fmt.Sprintf("%.2f", rate(bc, r)/rate(bc, b))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.3fM\t%.1f\t%.2f\t%.1f\t%s\t%s\t\n", bc.Name, c.Name,
				rate(bc, r)/1e6, float64(bc.Lines*bc.Size)/r.Wall.Seconds()/1e6,
				r.CPU.Seconds()/(float64(bc.Lines)/1e6), float64(r.MaxRSS)/1e6,
				ratio("docker"), ratio("minimal"))
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\ntargets (json-file = dockerlogger json-file; ratios of lines/s in this run):")
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	target := func(what string, need float64, caseName, a, b string) {
		ra, oka := med[caseName][a]
		rb, okb := med[caseName][b]
		if !oka || !okb {
			fmt.Fprintf(w, "  -     %s: not measured\n", what)
			return
		}
		got := rb.Wall.Seconds() / ra.Wall.Seconds() // same lines: a's rate over b's
		fmt.Fprintf(w, "  %s  %s: %.2fx (need %.1fx)\n", verdict(got >= need), what, got, need)
	}
	target("100 B: at least 4x Docker's lines/s", 4, "100 B", "json-file", "docker")
	target("1000 B: at least 2.5x Docker's lines/s", 2.5, "1000 B", "json-file", "docker")
	target("100 B: at least as fast as the minimal loop", 1, "100 B", "json-file", "minimal")
	target("1000 B: at least as fast as the minimal loop", 1, "1000 B", "json-file", "minimal")
	for _, bc := range cases {
		if r, ok := med[bc.Name]["json-file"]; ok {
			mb := float64(r.MaxRSS) / 1e6
			fmt.Fprintf(w, "  %s  %s: peak RSS under 10 MB: %.1f MB\n", verdict(mb < 10), bc.Name, mb)
		}
	}
	fmt.Fprintln(w, "\npeak RSS is rusage's ru_maxrss of the child: the largest single process among it and the children it waited for.")
}
