package test

// Issue 9, item 10: in mode=non-blocking the logger's memory is bounded by
// max-buffer-size, whatever the lines look like.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/measure"
	"github.com/joyent/dockerlogger/internal/sink/forward"
)

// privateMem is the memory pid has of its own: Private_Clean plus
// Private_Dirty of /proc/PID/smaps_rollup (the heap, stacks, anonymous
// mappings, and the pages of the binary no other process maps). A process
// that has gone has none.
func privateMem(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	var sum int64
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || k != "Private_Clean" && k != "Private_Dirty" {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n << 10
		}
	}
	return sum
}

// groupPrivate is the private memory of a supervisor and its children
// now.
func groupPrivate(root int) int64 {
	sum := privateMem(root)
	for _, c := range measure.Children(root) {
		sum += privateMem(c)
	}
	return sum
}

// privateSampler follows the private memory of a supervisor and its
// children (the worker) every period until stop.
type privateSampler struct {
	mu         sync.Mutex
	peak       int64 // largest sum over the processes at one sample
	peakByProc map[string]int64
	stop, done chan struct{}
}

func samplePrivate(root int, period time.Duration) *privateSampler {
	s := &privateSampler{peakByProc: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			sup := privateMem(root)
			var work int64
			for _, c := range measure.Children(root) {
				work += privateMem(c)
			}
			s.mu.Lock()
			s.peak = max(s.peak, sup+work)
			s.peakByProc["supervisor"] = max(s.peakByProc["supervisor"], sup)
			s.peakByProc["worker"] = max(s.peakByProc["worker"], work)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *privateSampler) Stop() (peak, sup, work int64) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.peakByProc["supervisor"], s.peakByProc["worker"]
}

// TestNonBlockingMemory: with a sink that is down, max-buffer-size=64m and
// three times that written, the ring costs what max-buffer-size says and
// little more, for short lines, lines of line-max, lines a little under a
// larger line-max and lines longer than the whole ring (cut into partial
// messages): the private memory of supervisor and worker together (each
// sampled every 10 ms) never grows by more than max-buffer-size + 8 MiB
// over what the idle logger had before the first line; and every message
// not delivered is counted as dropped.
//
// The idle logger itself (two Go runtimes, the heap every driver package
// leaves at init, the binary's pages that only the worker maps) is about
// 11 MiB here; it is checked separately, against idleMax.
func TestNonBlockingMemory(t *testing.T) {
	const (
		ringSize = 64 << 20
		budget   = ringSize + 8<<20 // growth over the idle logger
		idleMax  = 16 << 20         // the idle logger, supervisor and worker
		// cacheBudget is what the dual-logging cache may add.
		cacheBudget = 8 << 20
	)
	// At least three times the ring is written, and more where lines are
	// cheap to read: the collector's pacing shows only once enough garbage
	// has been made, which takes fewer lines when they are short.
	cases := []struct {
		name    string
		line    int    // bytes of a line, newline not included
		lineMax string // line-max log-opt ("" for the default, 16k)
		total   int    // at least this much is written
		cache   bool   // with the dual-logging cache on
		// alone: DOCKERLOG_SUPERVISOR=off, one process that consumes its
		// pipe instead of peeking at it
		alone bool
		// async: fluentd-async=true, whose own queue (a million messages
		// by default) takes only what the consumer lets it hold
		async bool
		// driver: "" for fluentd; "splunk" posts to a port nobody listens
		// on (its batches, bounded in bytes, come on top of the ring)
		driver string
	}{
		{"100B", 99, "", 3 * ringSize, false, false, false, ""},
		{"4KiB", 4<<10 - 1, "", 16 * ringSize, false, false, false, ""},
		{"16KiB-at-line-max", 16 << 10, "", 16 * ringSize, false, false, false, ""},
		{"200KiB-line-max-256k", 200 << 10, "256k", 8 * ringSize, false, false, false, ""},
		{"longer-than-ring", 80 << 20, "", 8 * ringSize, false, false, false, ""},
		// The cache (package logcache) holds up to 1 MiB of lines, the
		// file's buffer and gzip's state at a rotation: 5 MiB measured.
		{"100B-cache", 99, "", 3 * ringSize, true, false, false, ""},
		// Lines longer than the pipe, with a line-max longer still: cut
		// at the pipe's window, with a supervisor or without.
		{"4MiB-line-max-8m", 4 << 20, "8m", 8 * ringSize, false, false, false, ""},
		{"4MiB-line-max-8m-alone", 4 << 20, "8m", 8 * ringSize, false, true, false, ""},
		{"100B-alone", 99, "", 3 * ringSize, false, true, false, ""},
		{"100B-fluentd-async", 99, "", 3 * ringSize, false, false, true, ""},
		{"16KiB-fluentd-async", 16 << 10, "", 16 * ringSize, false, false, true, ""},
		// Docker's splunk driver grew by 349 MiB here (10,000 messages
		// held while HEC fails, 4,000 more in its channel).
		{"16KiB-splunk", 16 << 10, "", 16 * ringSize, false, false, false, "splunk"},
		// Messages cut at the pipe's window, to the drivers that queue
		// them (mode.driverQueueMax counts their bytes).
		{"4MiB-line-max-8m-fluentd-async", 4 << 20, "8m", 8 * ringSize, false, false, true, ""},
		{"4MiB-line-max-8m-splunk", 4 << 20, "8m", 8 * ringSize, false, false, false, "splunk"},
		{"4MiB-line-max-8m-otlp", 4 << 20, "8m", 8 * ringSize, false, false, false, "otlp"},
		{"4MiB-line-max-8m-loki", 4 << 20, "8m", 8 * ringSize, false, false, false, "loki"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := forward.Reserve() // nobody listens: the sink is down
			if err != nil {
				t.Fatal(err)
			}
			driver := "fluentd"
			opts := map[string]string{
				"fluentd-address": s.URL(),
				"fluentd-async":   fmt.Sprint(tc.async),
				"mode":            "non-blocking",
				"max-buffer-size": "64m",
				"close-timeout":   "1s",
				// The ring's bound; the cache's own comes on top (the
				// case "100B-cache").
				"cache-disabled": fmt.Sprint(!tc.cache),
			}
			if tc.driver != "" {
				driver = tc.driver
				delete(opts, "fluentd-address")
				delete(opts, "fluentd-async")
			}
			switch tc.driver {
			case "splunk":
				opts["splunk-url"] = "http://" + s.Addr()
				opts["splunk-token"] = "t"
				opts["splunk-verify-connection"] = "false"
			case "otlp":
				opts["otlp-endpoint"] = "http://" + s.Addr()
			case "loki":
				opts["loki-url"] = "http://" + s.Addr() + "/loki/api/v1/push"
			}
			if tc.async {
				// A marker lost in fluentd-async's queue counts as
				// dropped though never read (README, known gaps).
				opts["drop-marker"] = "false"
			}
			budget := int64(budget)
			if tc.cache {
				budget += cacheBudget
				opts["cache-path"] = filepath.Join(t.TempDir(), "c-cached.log")
			}
			lineMax := 16 << 10
			if tc.lineMax != "" {
				opts["line-max"] = tc.lineMax
				if n, ok := strings.CutSuffix(tc.lineMax, "m"); ok {
					m, _ := strconv.Atoi(n)
					lineMax = m << 20
				} else {
					m, _ := strconv.Atoi(strings.TrimSuffix(tc.lineMax, "k"))
					lineMax = m << 10
				}
			}
			// Lines longer than the pipe's window are cut there (and a
			// peeking worker's cut lands within one read after it).
			window := (pipeCap - os.Getpagesize()) / 2
			cutAtWindow := lineMax > window
			var env []string
			if tc.alone {
				env = append(env, "DOCKERLOG_SUPERVISOR=off")
			}
			l := StartLogger(t, Env("nbmem0123456789", opts, env...), driver)
			idle := groupPrivate(l.Cmd.Process.Pid)
			smp := samplePrivate(l.Cmd.Process.Pid, 10*time.Millisecond)

			// Lines of tc.line bytes and a newline, written in chunks of
			// at most 1 MiB until total is reached.
			lines := (tc.total + tc.line) / (tc.line + 1)
			perLine := max(1, (tc.line+lineMax-1)/lineMax) // messages a line makes
			wantMsgs := int64(lines * perLine)
			wantBytes := int64(lines) * int64(tc.line)
			var chunk []byte
			if tc.line < 1<<20 {
				one := append(bytes.Repeat([]byte{'x'}, tc.line), '\n')
				chunk = bytes.Repeat(one, max(1, (1<<20)/len(one)))
			}
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				if chunk != nil {
					per := len(chunk) / (tc.line + 1)
					for left := lines; left > 0; left -= per {
						n := min(left, per)
						if _, err := l.Stdout.Write(chunk[:n*(tc.line+1)]); err != nil {
							done <- err
							return
						}
					}
					done <- nil
					return
				}
				mb := bytes.Repeat([]byte{'y'}, 1<<20)
				for i := 0; i < lines; i++ {
					for left := tc.line; left > 0; left -= len(mb) {
						if _, err := l.Stdout.Write(mb[:min(left, len(mb))]); err != nil {
							done <- err
							return
						}
					}
					if _, err := l.Stdout.Write([]byte{'\n'}); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("the application blocked writing to a non-blocking logger; stderr: %s", l.Errors())
			}
			wrote := time.Since(start)
			code := l.Wait(t, 20*time.Second)
			peak, sup, work := smp.Stop()
			st := l.Stats(t)
			read, delivered, dropped := statInt(t, st, "lines_read"), statInt(t, st, "lines_delivered"), statInt(t, st, "lines_dropped")
			mib := func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
			t.Logf("%d lines of %d bytes (%d messages) written in %v, exit %d; private memory: idle %s, peak %s (supervisor %s, worker %s), growth %s of at most %s; read %d delivered %d dropped %d",
				lines, tc.line, wantMsgs, wrote.Round(time.Millisecond), code, mib(idle), mib(peak), mib(sup), mib(work),
				mib(peak-idle), mib(budget), read, delivered, dropped)
			if cutAtWindow {
				// Cut at the window, or within a page after it
				// (reader.Longest).
				wantMsgs = int64(lines * ((tc.line + window - 1) / window))
				if least := int64(lines * ((tc.line + longestFromPipe - 1) / longestFromPipe)); read >= least && read <= wantMsgs {
					wantMsgs = read
				}
			}
			if read != wantMsgs || dropped != wantMsgs-delivered || dropped == 0 {
				t.Errorf("messages: read %d, delivered %d, dropped %d; want read %d and dropped = read - delivered > 0", read, delivered, dropped, wantMsgs)
			}
			if br, bd, bx := statInt(t, st, "bytes_read"), statInt(t, st, "bytes_delivered"), statInt(t, st, "bytes_dropped"); br != wantBytes || bx != wantBytes-bd {
				t.Errorf("bytes: read %d, delivered %d, dropped %d; want read %d = delivered + dropped", br, bd, bx, wantBytes)
			}
			if peak-idle > budget {
				t.Errorf("private memory grew by %s over the idle logger's %s (peak %s): more than max-buffer-size + 8 MiB (+ 8 MiB with the cache) = %s",
					mib(peak-idle), mib(idle), mib(peak), mib(budget))
			}
			if idle > idleMax {
				t.Errorf("the idle logger has %s of private memory, more than %s", mib(idle), mib(idleMax))
			}
		})
	}
}
