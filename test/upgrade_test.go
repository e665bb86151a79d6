package test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
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
