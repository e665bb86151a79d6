package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/measure"
)

// switches is the context switches of every thread of the logger's
// supervisor and worker so far.
func (l *Logger) switches(worker int) int64 {
	return measure.CtxSwitches(l.Cmd.Process.Pid) + measure.CtxSwitches(worker)
}

// waitQuiet waits up to limit for a window of 3 s in which neither the
// supervisor nor the worker is switched in once: an idle logger sleeps
// until something happens (the stats file is rewritten up to 5 s after
// the last change, the check before it stops ticking follows within 1 s).
func waitQuiet(t *testing.T, l *Logger, limit time.Duration) {
	t.Helper()
	worker, err := l.p.Worker(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(limit)
	var seen []int64
	for time.Now().Before(end) {
		before := l.switches(worker)
		time.Sleep(3 * time.Second) // the window measured, not a wait for a signal
		n := l.switches(worker) - before
		if n == 0 {
			return
		}
		seen = append(seen, n)
	}
	t.Fatalf("no idle window of 3 s within %v: context switches per window %v; stderr: %s", limit, seen, l.Errors())
}

// TestIdleNoWakeups: an idle logger (json-file, with a stats file) stops
// waking up once the stats file shows what it did, and a line written
// later wakes it: the stats file shows that line too.
func TestIdleNoWakeups(t *testing.T) {
	dir := t.TempDir()
	stats := filepath.Join(dir, "logger.prom")
	l := StartLogger(t, Env("idle00000001", map[string]string{"stats-file": stats, "log-path": filepath.Join(dir, "c.log")}), "json-file")
	delivered := func(n int) func() bool {
		return func() bool {
			b, _ := os.ReadFile(stats)
			return strings.Contains(string(b), fmt.Sprintf("dockerlogger_lines_delivered %d\n", n))
		}
	}
	WriteLines(t, l.Stdout, Lines("before", 3))
	Eventually(t, 10*time.Second, "the stats file to show 3 lines", delivered(3))
	waitQuiet(t, l, 20*time.Second)
	WriteLines(t, l.Stderr, Lines("after", 2))
	Eventually(t, 10*time.Second, "the stats file to show 5 lines after the idle logger was woken", delivered(5))
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
}

// TestIdleFailureTimeout: a blocking logger gone idle with its driver up
// still gives up after failure-timeout once the sink goes away and a line
// cannot be delivered: the driver's first refusal wakes it.
func TestIdleFailureTimeout(t *testing.T) {
	r := startRsyslog(t, false)
	opts := map[string]string{
		"syslog-address": fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort), "syslog-format": "rfc5424",
		"failure-timeout": "500ms", "on-failure": "ignore", "max-failures": "1",
	}
	l := StartLogger(t, Env("idle00000002", opts), "syslog")
	WriteLines(t, l.Stdout, Lines("up", 1))
	r.waitRecords(t, 1)
	waitQuiet(t, l, 20*time.Second)
	r.stop()
	// The first line after the stop may go into the socket before the
	// reset comes back; the next ones are refused.
	WriteLines(t, l.Stdout, Lines("down", 50)) // fits in the pipe
	Eventually(t, 15*time.Second, "the worker to give up after failure-timeout", func() bool {
		return strings.Contains(l.Errors(), "syslog driver failing for 500ms: giving up")
	})
}
