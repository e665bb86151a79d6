package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWorkerFailureKeepsPipes: a worker that cannot go on (here the
// spool is locked by someone else, which no check before reading can
// know) must not take the container's output with it. The supervisor
// holds the pipes, restarts, and applies on-failure: with ignore it drains
// and counts. The application never gets EPIPE (SIGPIPE), and every line
// it wrote is counted.
func TestWorkerFailureKeepsPipes(t *testing.T) {
	spoolDir, _ := lockedSpool(t)
	opts := map[string]string{"mode": "spool", "spool-dir": spoolDir, "on-failure": "ignore", "max-failures": "2"}
	l := StartLoggerNoWait(t, Env("locked", opts), "none")
	const n = 200
	for i := range n {
		if _, err := fmt.Fprintf(l.Stdout, "line %d\n", i); err != nil {
			t.Fatalf("write %d: %v (the logger closed the container's output); stderr: %s", i, err, l.Errors())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if code := l.Wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (lines were thrown away); stderr: %s", code, l.Errors())
	}
	if !strings.Contains(l.Errors(), "while the container's output is still open") {
		t.Errorf("stderr does not say why the worker counts as failed: %s", l.Errors())
	}
	st := l.Stats(t)
	if st["lines_dropped"] != fmt.Sprint(n) || st["lines_dropped_logger_failed"] != fmt.Sprint(n) {
		t.Fatalf("lines_dropped=%s (logger-failed %s), want %d; stderr: %s", st["lines_dropped"], st["lines_dropped_logger_failed"], n, l.Errors())
	}
}

// TestSignalsAtTheWorstMoment: SIGHUP (live upgrade) followed at once by
// another SIGHUP and a SIGUSR1, over and over, and SIGUSR1 to a supervisor
// that has just started: no process dies of a signal, no failure is
// counted, and every line arrives in order.
func TestSignalsAtTheWorstMoment(t *testing.T) {
	// Handlers must be in place before any other code runs: the package
	// that installs them is initialised before every package of this
	// module and of its dependencies but the few that os/signal itself
	// needs (the runtime's order, GODEBUG=inittrace=1).
	cmd := exec.Command(filepath.Join(bin, "dockerlogger"), "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dockerlogger version: %v: %s", err, out)
	}
	var order []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "init" {
			order = append(order, f[1])
		}
	}
	early := slices.Index(order, "github.com/joyent/dockerlogger/earlysignal")
	if early < 0 || early > 30 {
		t.Fatalf("signal handlers installed by the %dth package initialised (-1: none), want among the first 30: %v", early+1, order[:min(len(order), 40)])
	}
	for _, p := range order[:early] {
		if strings.HasPrefix(p, "github.com/joyent/") || strings.Contains(p, "docker") || strings.Contains(p, "google.golang.org/grpc/") && !strings.HasSuffix(p, "/backoff") {
			t.Errorf("%s is initialised before the signal handlers are in place", p)
		}
	}
	// And at run: signals from the first moment to ready end nothing.
	for i := range 8 {
		l := StartLoggerNoWait(t, Env("early", map[string]string{}), "none")
		time.Sleep(time.Duration(20+5*i) * time.Millisecond)
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		l.Cmd.Process.Signal(syscall.SIGHUP)
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		if err := l.WaitReady(10 * time.Second); err != nil {
			t.Fatalf("start %d: %v; stderr: %s", i, err, l.Errors())
		}
		if code := l.Wait(t, 10*time.Second); code != 0 {
			t.Fatalf("start %d: exit %d after early signals; stderr: %s", i, code, l.Errors())
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	opts := map[string]string{"on-failure": "kill-init", "max-failures": "2", "mode": "non-blocking", "buffer-full": "block", "max-buffer-size": "16m"}
	// kill-init's target: a process that stands for the container's init.
	initProc, err := os.StartProcess("/bin/sleep", []string{"sleep", "120"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	defer initProc.Kill()
	l := StartLogger(t, Env("storm", opts, "DOCKERLOG_LOGPATH="+path, fmt.Sprintf("DOCKERLOG_INIT_PID=%d", initProc.Pid)), "json-file")
	lines := Lines("storm", 20000)
	wrote := make(chan error, 1)
	go func() {
		for i := 0; i < len(lines); i += 100 {
			var b strings.Builder
			for _, s := range lines[i : i+100] {
				b.WriteString(s + "\n")
			}
			if _, err := l.Stdout.WriteString(b.String()); err != nil {
				wrote <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		wrote <- nil
	}()
	for range 40 {
		l.Cmd.Process.Signal(syscall.SIGHUP)
		l.Cmd.Process.Signal(syscall.SIGHUP)
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v; stderr: %s", err, l.Errors())
	}
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	if err := initProc.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill-init killed the container's init; stderr: %s", l.Errors())
	}
	for _, bad := range []string{"killed by signal", "restarting", "on-failure"} {
		if strings.Contains(l.Errors(), bad) {
			t.Fatalf("stderr has %q: %s", bad, l.Errors())
		}
	}
	st := l.Stats(t)
	if st["restarts"] != "0" {
		t.Errorf("restarts=%s, want 0", st["restarts"])
	}
	got := jsonLines(t, path)["stdout"]
	seen := map[string]bool{}
	next := 0
	for _, s := range got {
		if seen[s] {
			continue // a handover may deliver a line again
		}
		seen[s] = true
		if next >= len(lines) || s != lines[next] {
			t.Fatalf("line %q out of order, want %q", s, lines[min(next, len(lines)-1)])
		}
		next++
	}
	if next != len(lines) {
		t.Fatalf("%d of %d lines delivered", next, len(lines))
	}
}

// TestUnreadableInputs: an fd 3 or 4 the logger cannot read is refused at
// start, exit 2, one line naming it, supervised or not.
func TestUnreadableInputs(t *testing.T) {
	dir := t.TempDir()
	wo, err := os.OpenFile(filepath.Join(dir, "wo"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer wo.Close()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	for _, c := range []struct {
		name    string
		fd3     *os.File
		want    string
		extra   string
		stream4 bool
	}{
		{"directory", d, "stdout: fd 3 is a directory", "", false},
		{"write-only", wo, "stdout: fd 3 is open for writing only", "", false},
		{"write-only-unsupervised", wo, "stdout: fd 3 is open for writing only", "DOCKERLOG_SUPERVISOR=off", false},
		{"stderr-directory", devnull, "stderr: fd 4 is a directory", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fd3, fd4 := c.fd3, devnull
			if c.stream4 {
				fd4 = d
			}
			env := Env("badfd", map[string]string{})
			if c.extra != "" {
				env = append(env, c.extra)
			}
			cmd := execLogger(env, fd3, fd4)
			out, _ := cmd.CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if code := cmd.ProcessState.ExitCode(); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
				t.Fatalf("exit %d, output %q; want exit 2 and one line with %q", code, out, c.want)
			}
		})
	}
}

// execLogger is the logger with fd3 and fd4 as its inputs and no ready pipe.
func execLogger(env []string, fd3, fd4 *os.File) *exec.Cmd {
	cmd := exec.Command(filepath.Join(bin, "dockerlogger"), "none")
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{fd3, fd4}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// TestNoWorkerNeverBlocks: in spool (and non-blocking) mode the
// application never blocks, even while no worker can run (the spool is
// locked by someone else and the supervisor is backing off for seconds):
// the supervisor keeps room in the pipes by dropping the oldest bytes,
// counted, and the worker that finally runs reports them. Every line
// written is delivered or counted dropped.
func TestNoWorkerNeverBlocks(t *testing.T) {
	spoolDir, lock := lockedSpool(t)
	opts := map[string]string{"mode": "spool", "spool-dir": spoolDir, "max-failures": "100"}
	l := StartLoggerNoWait(t, Env("relieve", opts), "none")
	// Past the first failures, the backoff is seconds long.
	Eventually(t, 10*time.Second, "three failed workers", func() bool {
		return strings.Count(l.Errors(), "still open; restarting") >= 3
	})
	const n = 100000 // 10 MB of lines: ten times what the pipe holds
	wrote := make(chan error, 1)
	go func() {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "%099d\n", i)
			if b.Len() >= 64<<10 || i == n-1 {
				if _, err := l.Stdout.WriteString(b.String()); err != nil {
					wrote <- err
					return
				}
				b.Reset()
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("write: %v; stderr: %s", err, l.Errors())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the application is blocked while no worker runs; stderr: %s", l.Errors())
	}
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	st := l.Stats(t)
	delivered, dropped := statInt(t, st, "lines_delivered"), statInt(t, st, "lines_dropped")
	if delivered+dropped != n || dropped == 0 {
		t.Fatalf("delivered %d + dropped %d != written %d (or nothing dropped); stats %v", delivered, dropped, n, st)
	}
}

// lockedSpool makes a spool directory whose lock another process (this
// test) holds, as a logger would: no worker can open it until
// lock is unlocked or closed.
func lockedSpool(t *testing.T) (dir string, lock *os.File) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return dir, lock
}

// TestNoWorkerBufferFullBlock: with buffer-full=block the user asked that
// nothing be dropped to make room, so while no worker can run the
// supervisor leaves the pipes alone: the application waits (here 3 MB,
// three times what the pipe holds), and once a worker runs every line is
// delivered, none dropped.
func TestNoWorkerBufferFullBlock(t *testing.T) {
	spoolDir, lock := lockedSpool(t)
	opts := map[string]string{"mode": "spool", "spool-dir": spoolDir, "max-failures": "100", "buffer-full": "block"}
	l := StartLoggerNoWait(t, Env("noroom", opts), "none")
	const n = 30000 // 3 MB of lines
	wrote := make(chan error, 1)
	go func() {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "%099d\n", i)
		}
		_, err := l.Stdout.WriteString(b.String())
		wrote <- err
	}()
	Eventually(t, 10*time.Second, "three failed workers", func() bool {
		return strings.Count(l.Errors(), "still open; restarting") >= 3
	})
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("write: %v; stderr: %s", err, l.Errors())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the application still blocked 30 s after the spool was free; stderr: %s", l.Errors())
	}
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	st := l.Stats(t)
	if d := statInt(t, st, "lines_delivered"); d != n || statInt(t, st, "lines_dropped") != 0 {
		t.Fatalf("delivered %d, dropped %s, want %d and 0; stats %v", d, st["lines_dropped"], n, st)
	}
}
