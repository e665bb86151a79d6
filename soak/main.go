// Command soak is the randomized sibling of faults/ ("Keep the
// promise on every path"): it runs the built dockerlogger supervised, as
// in production (fds 3 and 4 are pipes it creates; it is the application
// writing to them), over random cases until its time is spent, and holds
// every case to the promises in the README:
//
//  1. every numbered line written is delivered (read back from the sink
//     and checked byte for byte) or counted in lines_dropped (or left in
//     the spool, lines_spooled, and delivered by a second logger on the
//     same spool-dir); duplicates are allowed and counted;
//  2. lines of one stream arrive in order (repeats aside);
//  3. in non-blocking and spool no write(2) of the application blocks
//     more than 10 ms (the first aside; with buffer-full=block only while
//     the input is too small to fill the ring or spool). Only a write
//     that found the pipe more than half full (FIONREAD, F_GETPIPE_SZ)
//     can have waited for the logger: a slow write that found room was
//     this process descheduled, reported apart as "own delay";
//  4. no hang: the logger exits within close-timeout + 5 s of its inputs'
//     close, and exits 0 unless it dropped or spooled lines;
//  5. the spool's disk use (st_blocks, sampled every 25 ms) stays within
//     spool-max-size + one segment (min(max(spool-max-size/8, 64k), 64m));
//  6. non-blocking's dirty private memory (Private_Dirty of supervisor
//     and worker, summed, sampled: clean pages of the binary are the page
//     cache's, shared by every logger on a host) grows by at most
//     max-buffer-size + 8 MB over the idle logger's;
//
// and besides: what the logger counts delivered is at the sink, blocking
// drops nothing but close-timeout's, no worker dies but those killed, no
// drop marker with drop-marker=false, no message that is no line's bytes
// while nothing was dropped, and no write(2) fails (EPIPE).
//
// A case is drawn from one seed: a valid configuration (every mode,
// line-max 1k to 8m, max-buffer-size 4k to 64m, spool-max-size 16k to
// 512m, buffer-full, drop-marker, spool-sync, close-timeout 2 to 5 s;
// checked with --validate first, invalid draws are skipped and counted),
// a driver (json-file, read back with its rotations, gzip too, with a JSON
// decoder; or fluentd, async=false with request-ack, against the in-repo
// Forward sink on 127.0.0.1), inputs and faults. Inputs are numbered
// lines (header "seq=%09d len=%09d ", stderr numbered from 100000000 as
// in faults/) of every length: short, up to line-max, longer than
// line-max, than the ring, than the 1 MiB pipe (to 10 MiB); payloads of
// printable ASCII, of any byte below 0x80 but newline (control
// characters, quotes, backslashes), of multi-byte UTF-8 (only in lines
// no split can cut: json-file turns a cut rune into U+FFFD), of any byte
// but newline (fluentd only, which carries bytes as they are); empty
// lines (not numbered: counted per stream); both streams or stdout only;
// sometimes a final line without newline; written in write(2)s of up to
// 64 KiB, paced, with bursts of up to 512 KiB. Split lines are joined per
// Docker's partial messages (json-file: a log without its trailing "\n";
// fluentd: partial_message, partial_id, partial_last) and compared whole.
// Faults, at random times while writing, sometimes in quick succession:
// Forward sink down (closed, reopened on the same port) or stalled, down
// at the start or at the end, json-file's disk full (a tmpfs, only as
// root), worker SIGKILL, SIGHUP (live upgrade), SIGUSR1 storms, and
// supervisor SIGKILL. After the supervisor's kill the worker carries on
// to EOF and every promise still holds but the exit status (the killed
// supervisor's); no process fault follows it, and it is made only while
// a worker has been running for 300 ms (between two workers nobody would
// hold the pipes). The application is this Go process writing to pipes on
// fds other than 1 and 2, so a closed read end is an EPIPE error, never a
// SIGPIPE (which is ignored anyway): any failed write is a violation.
//
// Every case derives from its seed; a failure prints the seed, the
// violations and the command that replays that case (same configuration,
// inputs and fault times; the timing between logger and faults is the
// machine's). The output ends with "N passed, M failed"; the exit status
// is 1 on any failure.
//
//	soak -bin bin                      10 minutes of cases (make soak)
//	soak -bin bin -duration 60s -short smaller cases (make soak-short)
//	soak -bin bin -seed S -cases 1     replay one case
//	soak -bin bin -match '^spool fluentd' -duration 5m   only such cases
//
// It must never import dockerlogger's own packages, only internal/ test
// helpers (internal/logproc, internal/measure, internal/sink/forward):
// like a user, it sees the logger through its pipes, its stderr, /proc
// and the sinks.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding dockerlogger")
	seed := flag.Uint64("seed", 0, "the run's seed (0: from the clock); case 0 runs with this seed itself")
	cases := flag.Int("cases", 0, "run this many cases (0: until -duration is spent)")
	duration := flag.Duration("duration", 10*time.Minute, "time to spend starting cases")
	short := flag.Bool("short", false, "smaller cases (fewer lines and faults, shorter writing)")
	verbose := flag.Bool("v", false, "print every case's events")
	match := flag.String("match", "", "regexp: run only the cases whose description (as printed: mode, driver, log-opts, input, faults) matches; the others are skipped")
	flag.Parse()
	only, err := regexp.Compile(*match)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: -match: %v\n", err)
		os.Exit(2)
	}
	if _, err := os.Stat(*bin + "/dockerlogger"); err != nil {
		fmt.Fprintf(os.Stderr, "soak: no dockerlogger binary: %v\n", err)
		os.Exit(2)
	}
	signal.Ignore(syscall.SIGPIPE)
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	root := os.Geteuid() == 0
	flags := ""
	if *short {
		flags = " -short"
	}
	fmt.Printf("dockerlogger soak: seed %d, %s, %s %s/%s, %d CPUs, load %s, root %v\n",
		*seed, map[bool]string{true: fmt.Sprintf("%d cases", *cases), false: duration.String()}[*cases > 0],
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), measure.Load(), root)

	// A case interrupted by ^C still unmounts and kills what it started.
	current := make(chan *run, 1)
	current <- nil
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		if r := <-current; r != nil {
			r.cleanup()
		}
		fmt.Println("soak: interrupted")
		os.Exit(2)
	}()

	start := time.Now()
	next := splitmix(*seed)
	passed, failed, skipped, unmatched := 0, 0, 0, 0
	var failures []string
	for i := 0; ; i++ {
		if *cases > 0 && i >= *cases || *cases == 0 && time.Since(start) >= *duration {
			break
		}
		cs := *seed
		if i > 0 {
			cs = next()
		}
		p := newPlan(cs, *short, root)
		replay := fmt.Sprintf("./bin/soak -bin %s -seed %d -cases 1%s", *bin, cs, flags)
		r := &run{p: p, bin: *bin, workers: map[int]bool{}}
		if !only.MatchString(p.mode + " " + p.String()) {
			unmatched++
			continue
		}
		if err := logproc.Validate(*bin, p.driver, r.opts()); err != nil {
			skipped++
			if *verbose {
				fmt.Printf("case %d seed=%d skipped, not valid: %v\n", i, cs, err)
			}
			continue
		}
		<-current
		current <- r
		t0 := time.Now()
		if err := r.execute(); err != nil {
			r.fail("run: %v", err)
		} else {
			r.check()
		}
		r.cleanup()
		<-current
		current <- nil
		took := time.Since(t0)
		res := fmt.Sprintf("%s; max write %v (own delay %v), exit %d after %.1fs, peak dirty %s, spool disk %s",
			r.summary, r.maxBlock.Round(time.Millisecond), r.ownDelay.Round(time.Millisecond), r.exitCode, r.exitAfter.Seconds(), mb(r.peakMem), mb(r.peakDisk))
		if len(r.fails) == 0 {
			passed++
			fmt.Printf("case %d seed=%d ok %.1fs: %s %s; %s\n", i, cs, took.Seconds(), p.mode, p, res)
			if len(r.notes) > 0 && *verbose {
				fmt.Printf("  notes: %s\n", strings.Join(r.notes, "; "))
			}
		} else {
			failed++
			fmt.Printf("case %d seed=%d FAIL %.1fs: %s %s; %s\n", i, cs, took.Seconds(), p.mode, p, res)
			for _, f := range r.fails {
				fmt.Printf("  violated: %s\n", f)
			}
			if len(r.notes) > 0 {
				fmt.Printf("  notes: %s\n", strings.Join(r.notes, "; "))
			}
			fmt.Printf("  replay: %s\n", replay)
			failures = append(failures, fmt.Sprintf("seed=%d %s: %s", cs, p.mode, strings.Join(r.fails, "; ")))
		}
		if len(r.fails) > 0 || *verbose {
			for _, e := range r.events {
				fmt.Printf("  event %s\n", e)
			}
			if len(r.fails) > 0 && os.Getenv("SOAK_DEBUG") != "" && r.l != nil {
				fmt.Printf("  --- logger stderr:\n%s  ---\n", r.l.Stderr.Bytes())
			}
		}
	}
	fmt.Printf("soak: seed %d, %.0fs, %d cases run, %d skipped (configurations --validate refused), %d not matching -match\n",
		*seed, time.Since(start).Seconds(), passed+failed, skipped, unmatched)
	for _, f := range failures {
		fmt.Printf("failed: %s\n", f)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
