package test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFIFOInputs: a platform that names FIFOs (DOCKERLOG_STDOUT and
// DOCKERLOG_STDERR) instead of passing fds 3/4: the logger opens them,
// reads every line to EOF and exits 0.
func TestFIFOInputs(t *testing.T) {
	dir := t.TempDir()
	outPath, errPath := filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	for _, p := range []string{outPath, errPath} {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "fifo-json.log")
	l := StartLogger(t, Env("fifo", map[string]string{},
		"DOCKERLOG_LOGPATH="+logPath, "DOCKERLOG_STDOUT="+outPath, "DOCKERLOG_STDERR="+errPath), "json-file")
	out, errs := Lines("fifo out", 5000), Lines("fifo err", 3000)
	write := func(path string, lines []string, done chan<- struct{}) {
		defer close(done)
		f, err := os.OpenFile(path, os.O_WRONLY, 0) // blocks until the logger opens it
		if err != nil {
			t.Error(err)
			return
		}
		WriteLines(t, f, lines)
		f.Close()
	}
	d1, d2 := make(chan struct{}), make(chan struct{})
	go write(outPath, out, d1)
	go write(errPath, errs, d2)
	for _, d := range []chan struct{}{d1, d2} {
		select {
		case <-d:
		case <-time.After(20 * time.Second):
			t.Fatalf("the logger never opened the FIFOs; stderr: %s", l.Errors())
		}
	}
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	got := jsonLines(t, logPath)
	sinkSameLines(t, "stdout", got["stdout"], out)
	sinkSameLines(t, "stderr", got["stderr"], errs)
}
