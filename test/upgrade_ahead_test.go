package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/measure"
)

// heldBack installs, as the logger's binary at exe, a script that writes
// its pid to started and waits for the file goOn before it runs the real
// logger (a copy of bin's): a next worker slow to start.
func heldBack(t *testing.T, dir, exe string) (started, goOn string) {
	t.Helper()
	real := filepath.Join(dir, "dockerlogger.real")
	copyExe(t, filepath.Join(bin, "dockerlogger"), real)
	started, goOn = filepath.Join(dir, "started"), filepath.Join(dir, "go")
	script := filepath.Join(dir, "held-back")
	body := "#!/bin/sh\necho $$ > " + started + ".tmp && mv " + started + ".tmp " + started +
		"\nwhile [ ! -e " + goOn + " ]; do sleep 0.01; done\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(script, exe); err != nil {
		t.Fatal(err)
	}
	return started, goOn
}

// pidIn reads the pid a held-back script wrote, once it has.
func pidIn(t *testing.T, path string) int {
	t.Helper()
	var pid int
	Eventually(t, 30*time.Second, "the held-back worker's start", func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// TestUpgradeStartsNextAhead: at SIGHUP the supervisor starts the next
// worker first, and the old one reads on while it starts: lines written
// after the next worker was started, and before it is let go, arrive. Once
// it is, every line arrives once, in order, from both workers. (Before the
// next worker was started ahead, the old one stopped reading at SIGHUP and
// those lines waited in the pipe for the next one.)
func TestUpgradeStartsNextAhead(t *testing.T) {
	for _, mode := range []string{"blocking", "non-blocking", "spool"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			exe := filepath.Join(dir, "dockerlogger")
			copyExe(t, filepath.Join(bin, "dockerlogger"), exe)
			logPath := filepath.Join(dir, "ahead.log")
			opts := map[string]string{"mode": mode, "log-path": logPath}
			if mode == "spool" {
				opts["spool-dir"] = filepath.Join(dir, "spool")
			}
			l := StartLoggerAt(t, exe, Env("upgrade-ahead", opts), "json-file")
			if err := l.WaitReady(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			before, while, after := Lines("before", 100), Lines("while it starts", 100), Lines("after", 100)
			WriteLines(t, l.Stdout, before)
			var old int
			Eventually(t, 10*time.Second, "a worker", func() bool { old = workerPID(t, l.Cmd.Process.Pid); return old != 0 })
			started, goOn := heldBack(t, dir, exe)
			if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			next := pidIn(t, started)
			WriteLines(t, l.Stdout, while)
			// The old worker stops reading only once the next one waits,
			// or after a second: look before that second is out.
			deadline := time.Now().Add(900 * time.Millisecond)
			for {
				got := jsonLines(t, logPath)["stdout"]
				if len(got) == len(before)+len(while) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d lines written while the next worker started were delivered", len(got)-len(before), len(while))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !measure.Alive(next) {
				t.Fatal("the next worker is gone before it was let go")
			}
			if err := os.WriteFile(goOn, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			Eventually(t, 30*time.Second, "the old worker's exit", func() bool { return !measure.Alive(old) })
			WriteLines(t, l.Stdout, after)
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, l.Errors())
			}
			want := append(append(append([]string{}, before...), while...), after...)
			sinkSameLines(t, "stdout", jsonLines(t, logPath)["stdout"], want)
			st := l.Stats(t)
			if st["upgrades"] != "1" || st["restarts"] != "0" || st["lines_dropped"] != "0" {
				t.Fatalf("last stats: upgrades=%s restarts=%s lines_dropped=%s, want 1, 0, 0; stderr: %s", st["upgrades"], st["restarts"], st["lines_dropped"], l.Errors())
			}
		})
	}
}

// TestUpgradeNextNotNeeded: a worker started ahead of an upgrade that did
// not happen (the container closed its output first) is let go: the logger
// exits at once with every line delivered, and the waiting worker, when it
// gets to run, exits without touching the log or saying anything.
func TestUpgradeNextNotNeeded(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "dockerlogger")
	copyExe(t, filepath.Join(bin, "dockerlogger"), exe)
	logPath := filepath.Join(dir, "not-needed.log")
	l := StartLoggerAt(t, exe, Env("upgrade-not-needed", map[string]string{"mode": "spool",
		"log-path": logPath, "spool-dir": filepath.Join(dir, "spool")}), "json-file")
	if err := l.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	out := Lines("out", 500)
	WriteLines(t, l.Stdout, out)
	started, goOn := heldBack(t, dir, exe)
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next := pidIn(t, started)
	l.Close()
	select {
	case <-l.p.Exited():
		t.Fatal("the logger's stderr ended with a waiting worker still holding it")
	case <-time.After(200 * time.Millisecond):
	}
	Eventually(t, 10*time.Second, "the supervisor's exit", func() bool { return !measure.Alive(l.Cmd.Process.Pid) })
	size := fileSize(logPath)
	errsBefore := l.Errors()
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, "the waiting worker's exit", func() bool { return !measure.Alive(next) })
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	sinkSameLines(t, "stdout", jsonLines(t, logPath)["stdout"], out)
	if fileSize(logPath) != size {
		t.Fatalf("the log grew from %d to %d bytes after the waiting worker was let go", size, fileSize(logPath))
	}
	if e := l.Errors(); e != errsBefore {
		t.Fatalf("the waiting worker said: %q", strings.TrimPrefix(e, errsBefore))
	}
	if st := l.Stats(t); st["upgrades"] != "0" || st["lines_dropped"] != "0" {
		t.Fatalf("last stats: upgrades=%s lines_dropped=%s, want 0, 0", st["upgrades"], st["lines_dropped"])
	}
}

// TestUpgradeNextDiedWaiting: the worker started ahead dies before it is
// let go (killed, or a new binary that cannot start). The old worker hands
// over all the same after a second, and the supervisor starts a fresh one
// from the binary now on disk: every line arrives once, in order, and the
// upgrade is no restart.
func TestUpgradeNextDiedWaiting(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "dockerlogger")
	copyExe(t, filepath.Join(bin, "dockerlogger"), exe)
	logPath := filepath.Join(dir, "died.log")
	l := StartLoggerAt(t, exe, Env("upgrade-next-died", map[string]string{"mode": "spool",
		"log-path": logPath, "spool-dir": filepath.Join(dir, "spool")}), "json-file")
	if err := l.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	before, after := Lines("before", 100), Lines("after", 100)
	WriteLines(t, l.Stdout, before)
	var old int
	Eventually(t, 10*time.Second, "a worker", func() bool { old = workerPID(t, l.Cmd.Process.Pid); return old != 0 })
	started, _ := heldBack(t, dir, exe)
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next := pidIn(t, started)
	// The binary on disk is a working one again before the next start.
	copyExe(t, filepath.Join(bin, "dockerlogger"), filepath.Join(dir, "dockerlogger.new"))
	if err := os.Rename(filepath.Join(dir, "dockerlogger.new"), exe); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(next, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, "the old worker's exit", func() bool { return !measure.Alive(old) })
	Eventually(t, 30*time.Second, "a new worker", func() bool {
		w := workerPID(t, l.Cmd.Process.Pid)
		return w != 0 && w != old && w != next
	})
	WriteLines(t, l.Stdout, after)
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	sinkSameLines(t, "stdout", jsonLines(t, logPath)["stdout"], append(append([]string{}, before...), after...))
	st := l.Stats(t)
	if st["upgrades"] != "1" || st["restarts"] != "0" || st["lines_dropped"] != "0" {
		t.Fatalf("last stats: upgrades=%s restarts=%s lines_dropped=%s, want 1, 0, 0; stderr: %s", st["upgrades"], st["restarts"], st["lines_dropped"], l.Errors())
	}
}
