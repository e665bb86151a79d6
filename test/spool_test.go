package test

// End-to-end tests of mode=spool: nothing that reached the spool is lost
// through a sink outage, a SIGKILL of the logger, or a restart on the same
// spool-dir. The sink is internal/sink/forward, an in-repo server speaking
// the real Fluentd Forward Protocol v1 (no fluentd runs here), with
// fluentd-request-ack=true so that the driver accepts a line only once
// the server has it: the spool frees only what the server acknowledged.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
	"github.com/joyent/dockerlogger/spool"
)

const spoolID = "5b001e4d3c2b1a0987654321"

func spoolEnv(s *forward.Server, dir string, extra ...string) []string {
	return Env(spoolID, map[string]string{
		"fluentd-address":     s.URL(),
		"fluentd-request-ack": "true",
		// Let the driver's own reconnect give up fast: the spool retries.
		"fluentd-max-retries": "1",
		"fluentd-retry-wait":  "50ms",
		"mode":                "spool",
		"spool-dir":           dir,
		"spool-sync":          "always",
	}, extra...)
}

// waitRead waits until the logger has read n lines (SIGUSR1 stats).
func waitRead(t *testing.T, l *Logger, n int) map[string]string {
	t.Helper()
	var st map[string]string
	Eventually(t, 20*time.Second, strconv.Itoa(n)+" lines read", func() bool {
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		st = parseStatsMaybe(l.Errors())
		return st["lines_read"] == strconv.Itoa(n)
	})
	return st
}

// distinctInOrder returns the lines of source in order of first arrival,
// and how many arrived more than once (at-least-once delivery).
func distinctInOrder(evs []forward.Event, source string) ([]string, int) {
	seen := map[string]bool{}
	var out []string
	dups := 0
	for _, e := range evs {
		if e.Str("source") != source {
			continue
		}
		l := e.Str("log")
		if seen[l] {
			dups++
			continue
		}
		seen[l] = true
		out = append(out, l)
	}
	return out, dups
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d distinct lines arrived, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: line %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

// TestSpoolSinkOutage: the sink is down when the container starts and goes
// down again mid-run; the application never blocks, and once the sink is
// back every line arrives, per stream in order, none lost.
func TestSpoolSinkOutage(t *testing.T) {
	s, err := forward.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := filepath.Join(t.TempDir(), "spool")
	l := StartLogger(t, spoolEnv(s, dir), "fluentd")
	out1, errs := Lines("before the sink is up", 5000), Lines("stderr while down", 1000)
	w1, w2 := writeAll(l.Stdout, out1), writeAll(l.Stderr, errs)
	for _, w := range []<-chan error{w1, w2} {
		select {
		case err := <-w:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("the application blocked with the sink down; stderr: %s", l.Errors())
		}
	}
	waitRead(t, l, 6000)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool-dir %s: %v, want a directory of mode 0700", dir, err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(6000, 30*time.Second); err != nil {
		t.Fatalf("%v; logger stderr: %s", err, l.Errors())
	}
	// Down again mid-run.
	s.Stop()
	out2 := Lines("during the outage", 3000)
	select {
	case err := <-writeAll(l.Stdout, out2):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the application blocked during the outage; stderr: %s", l.Errors())
	}
	waitRead(t, l, 9000)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	Eventually(t, 20*time.Second, "every line at the sink", func() bool {
		got, _ := distinctInOrder(s.Events(), "stdout")
		return len(got) >= 8000
	})
	evs := s.Events()
	gotOut, dupOut := distinctInOrder(evs, "stdout")
	gotErr, dupErr := distinctInOrder(evs, "stderr")
	sameLines(t, "stdout", gotOut, append(out1, out2...))
	sameLines(t, "stderr", gotErr, errs)
	st := l.Stats(t)
	if statInt(t, st, "lines_dropped") != 0 || statInt(t, st, "lines_delivered") < 9000 {
		t.Fatalf("stats %v", st)
	}
	// Each duplicate is a line the driver sent again itself (an ack lost
	// with the connection): at most a few around the outage.
	if dupOut+dupErr > 10 {
		t.Fatalf("%d duplicates", dupOut+dupErr)
	}
	if errs := s.Errors(); len(errs) > 0 {
		t.Fatalf("forward sink saw protocol errors: %v", errs)
	}
}

// TestSpoolSIGKILLRestart: the logger (one process, no supervisor) is
// killed with SIGKILL while the sink is down and everything read is in
// the spool; a new logger on the same spool-dir delivers all of it, in
// order, then what it reads itself. Meanwhile a second logger on a
// spool-dir in use fails with a clear error.
func TestSpoolSIGKILLRestart(t *testing.T) {
	s, err := forward.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := filepath.Join(t.TempDir(), "spool")
	env := spoolEnv(s, dir, "DOCKERLOG_SUPERVISOR=off")
	l := StartLogger(t, env, "fluentd")
	lines := Lines("spooled then killed", 5000)
	var want int64
	for _, x := range lines {
		want += int64((&spool.Record{Line: []byte(x)}).Size())
	}
	WriteLines(t, l.Stdout, lines)
	waitRead(t, l, len(lines))
	// Every line is on disk once the spool holds all their records.
	Eventually(t, 20*time.Second, "every line in the spool", func() bool {
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		return parseStatsMaybe(l.Errors())["buffer_bytes"] == strconv.FormatInt(want, 10)
	})

	// A second logger on the same spool-dir is refused, in one line.
	l2 := StartLoggerNoWait(t, env, "fluentd")
	select {
	case <-l2.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("a second logger on a spool-dir in use did not exit; stderr: %s", l2.Errors())
	}
	if code := l2.Cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(l2.Errors(), "spool is in use by another logger") ||
		!strings.Contains(l2.Errors(), dir) || strings.Contains(l2.Errors(), "goroutine ") {
		t.Fatalf("second logger on %s: exit %d, stderr: %s", dir, code, l2.Errors())
	}

	l.Cmd.Process.Signal(syscall.SIGKILL)
	<-l.Done()

	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	l3 := StartLogger(t, spoolEnv(s, dir), "fluentd") // supervised, as usual
	more := Lines("after the restart", 100)
	WriteLines(t, l3.Stdout, more)
	if code := l3.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l3.Errors())
	}
	all := append(append([]string{}, lines...), more...)
	if _, err := s.Wait(len(all), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	got, dups := distinctInOrder(s.Events(), "stdout")
	sameLines(t, "after SIGKILL and restart", got, all)
	// The killed logger never reached the sink: nothing arrives twice.
	// What it had handed to the (never up) driver is counted as replayed.
	st := l3.Stats(t)
	// (lines_replayed counts the spool's replays too: spool_replayed is
	// their part of it.)
	replayed := statInt(t, st, "lines_replayed")
	if dups != 0 || replayed < 1 || replayed > int64(len(lines)) || statInt(t, st, "lines_delivered") != int64(len(all)) {
		t.Fatalf("duplicates %d, replayed %d; stats %v", dups, replayed, st)
	}
}

// TestSpoolWorkerSIGKILL: under the supervisor, the worker is killed with
// SIGKILL while the sink is down; the supervisor starts a new worker on the
// same spool, which delivers everything once the sink is up.
func TestSpoolWorkerSIGKILL(t *testing.T) {
	s, err := forward.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := filepath.Join(t.TempDir(), "spool")
	l := StartLogger(t, spoolEnv(s, dir), "fluentd")
	lines := Lines("in the spool when the worker died", 3000)
	var want int64
	for _, x := range lines {
		want += int64((&spool.Record{Line: []byte(x)}).Size())
	}
	WriteLines(t, l.Stdout, lines)
	waitRead(t, l, len(lines))
	Eventually(t, 20*time.Second, "every line in the spool", func() bool {
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		return parseStatsMaybe(l.Errors())["buffer_bytes"] == strconv.FormatInt(want, 10)
	})
	workers := childPIDs(t, l.Cmd.Process.Pid)
	if len(workers) != 1 {
		t.Fatalf("supervisor %d has children %v, want one worker", l.Cmd.Process.Pid, workers)
	}
	if err := syscall.Kill(workers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, "a new worker", func() bool {
		ws := childPIDs(t, l.Cmd.Process.Pid)
		return len(ws) == 1 && ws[0] != workers[0]
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	more := Lines("after the worker restarted", 100)
	WriteLines(t, l.Stdout, more)
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	all := append(append([]string{}, lines...), more...)
	if _, err := s.Wait(len(all), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	got, dups := distinctInOrder(s.Events(), "stdout")
	sameLines(t, "after the worker's SIGKILL", got, all)
	st := l.Stats(t)
	// A line can arrive twice only if the dead worker had spooled it and
	// not yet taken it from the pipe: the new worker counts those.
	if int64(dups) > statInt(t, st, "lines_replayed") || statInt(t, st, "restarts") < 1 || statInt(t, st, "lines_dropped") != 0 {
		t.Fatalf("duplicates %d; stats %v", dups, st)
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}
