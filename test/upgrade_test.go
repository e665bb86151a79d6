package test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/measure"
)

// copyExe copies an executable to dst (mode 0755).
func copyExe(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLiveUpgrade replaces the binary on disk under continuous load and
// sends SIGHUP: the worker stops reading at a line boundary, delivers what
// it read, and the supervisor starts the new binary, which reads on. Every
// line arrives exactly once and in order per stream, and the last stats
// come from the new version.
func TestLiveUpgrade(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "dockerlogger")
	copyExe(t, filepath.Join(bin, "dockerlogger"), exe)
	// The second build reports another version.
	v2 := filepath.Join(dir, "dockerlogger.v2")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v2-upgraded", "-o", v2, "../cmd/dockerlogger")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build v2: %v: %s", err, out)
	}

	logPath := filepath.Join(dir, "up-json.log")
	l := StartLoggerAt(t, exe, Env("upgrade-me", map[string]string{}, "DOCKERLOG_LOGPATH="+logPath), "json-file")
	if err := l.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	out, errs := Lines("out", 40000), Lines("err", 10000)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; i < len(out); i += 400 {
			WriteLines(t, l.Stdout, out[i:i+400])
			WriteLines(t, l.Stderr, errs[i/4:i/4+100])
			time.Sleep(time.Millisecond)
		}
	}()
	sup := l.Cmd.Process.Pid
	var old int
	Eventually(t, 10*time.Second, "a worker", func() bool { old = workerPID(t, sup); return old != 0 })
	Eventually(t, 10*time.Second, "lines in the log", func() bool { return fileSize(logPath) > 0 })
	// Replace the file as a package manager does: a new file renamed over
	// the old, so the running processes keep their text.
	if err := os.Rename(v2, exe); err != nil {
		t.Fatal(err)
	}
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "the new worker", func() bool { n := workerPID(t, sup); return n != 0 && n != old })
	<-wrote
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	got := jsonLines(t, logPath)
	sinkSameLines(t, "stdout", got["stdout"], out)
	sinkSameLines(t, "stderr", got["stderr"], errs)
	st := l.Stats(t)
	if st["version"] != "v2-upgraded" || st["upgrades"] != "1" || st["restarts"] != "0" {
		t.Fatalf("last stats: version=%s upgrades=%s restarts=%s, want v2-upgraded, 1, 0", st["version"], st["upgrades"], st["restarts"])
	}
}

// TestUpgradeGap holds the new worker of a live upgrade back (the binary
// on disk is a script that waits for a file), and once the old one has
// handed over, the application writes far more than the pipe holds. In non-blocking mode the supervisor keeps
// room in the pipe: every write returns, and what it had to drop is
// counted (read by nobody, so in lines_dropped_earlier_workers, by the
// new worker), the rest delivered in order. In spool mode an upgrade loses
// nothing: the writes wait for the new worker, and every line arrives.
func TestUpgradeGap(t *testing.T) {
	for _, mode := range []string{"non-blocking", "spool"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			exe, real := filepath.Join(dir, "dockerlogger"), filepath.Join(dir, "dockerlogger.real")
			copyExe(t, filepath.Join(bin, "dockerlogger"), exe)
			copyExe(t, filepath.Join(bin, "dockerlogger"), real)
			started, goOn := filepath.Join(dir, "started"), filepath.Join(dir, "go")
			script := filepath.Join(dir, "held-back")
			if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+started+"\nwhile [ ! -e "+goOn+" ]; do sleep 0.01; done\nexec "+real+" \"$@\"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(dir, "gap.log")
			opts := map[string]string{"mode": mode, "log-path": logPath}
			if mode == "spool" {
				opts["spool-dir"] = filepath.Join(dir, "spool")
			}
			l := StartLoggerAt(t, exe, Env("upgrade-gap", opts), "json-file")
			if err := l.WaitReady(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			before, gap, after := Lines("before", 1000), Lines("in the gap", 400000), Lines("after", 1000)
			WriteLines(t, l.Stdout, before)
			var old int
			Eventually(t, 10*time.Second, "a worker", func() bool { old = workerPID(t, l.Cmd.Process.Pid); return old != 0 })
			if err := os.Rename(script, exe); err != nil {
				t.Fatal(err)
			}
			if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			// The next worker is started at once and the old one reads on
			// until it waits, which the held-back one never says: the old
			// one hands over after a second all the same.
			Eventually(t, 30*time.Second, "the held-back worker", func() bool { _, err := os.Stat(started); return err == nil })
			Eventually(t, 30*time.Second, "the old worker's exit", func() bool { return !measure.Alive(old) })
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				for i := 0; i < len(gap); i += 1000 {
					WriteLines(t, l.Stdout, gap[i:i+1000]) // 8 MB in all
				}
			}()
			if mode == "non-blocking" {
				select {
				case <-wrote:
				case <-time.After(60 * time.Second):
					t.Fatal("the application blocked while no worker read its output")
				}
			}
			if err := os.WriteFile(goOn, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			<-wrote
			WriteLines(t, l.Stdout, after)
			if code := l.Wait(t, 60*time.Second); code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, l.Errors())
			}
			got := jsonLines(t, logPath)["stdout"]
			st := l.Stats(t)
			dropped := statInt(t, st, "lines_dropped")
			// In order, each once: before, what of the gap survived, after.
			want := append(append([]string{}, before...), gap...)
			want = append(want, after...)
			kept := make([]string, 0, len(want))
			j := 0
			markers := 0
			for _, g := range got {
				if strings.HasPrefix(g, "dockerlogger: dropped ") {
					// The next worker's own ring may overflow too, on
					// a loaded machine, and says so in the stream.
					markers++
					continue
				}
				for j < len(want) && want[j] != g {
					j++
				}
				if j == len(want) {
					t.Fatalf("line %q out of order or not written", g)
				}
				kept = append(kept, g)
				j++
			}
			sinkSameLines(t, "before", kept[:len(before)], before)
			sinkSameLines(t, "after", kept[len(kept)-len(after):], after)
			lost := int64(len(want) - len(kept))
			t.Logf("%s: %d of %d lines in the gap delivered, lines_dropped=%s (earlier workers %s)", mode, len(kept)-len(before)-len(after), len(gap), st["lines_dropped"], st["lines_dropped_earlier_workers"])
			if lost != dropped {
				t.Fatalf("%d lines lost, lines_dropped=%d", lost, dropped)
			}
			if int64(markers) > dropped {
				t.Fatalf("%d drop markers, lines_dropped=%d", markers, dropped)
			}
			if mode == "non-blocking" && statInt(t, st, "lines_dropped_earlier_workers") == 0 {
				t.Fatal("nothing dropped while no worker read: the writes could not all have fit")
			}
			if mode == "spool" && dropped != 0 {
				t.Fatalf("spool: %d lines dropped across an upgrade", dropped)
			}
		})
	}
}
