package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// deadSyslog is a syslog address where nothing listens: the driver can
// never be created, so every worker gives up after failure-timeout.
func deadSyslog(t *testing.T) string {
	return fmt.Sprintf("tcp://127.0.0.1:%d", sinkFreePort(t, "tcp"))
}

// TestOnFailureRestart: with the sink down, workers give up and are
// restarted again and again (on-failure=restart never stops); once rsyslog
// comes up every line written meanwhile arrives, once and in order: no
// worker consumed a byte it had not delivered.
func TestOnFailureRestart(t *testing.T) {
	r := newRsyslog(t, sinkFreePort(t, "tcp"), false)
	opts := map[string]string{
		"syslog-address": fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort), "syslog-format": "rfc5424",
		"on-failure": "restart", "failure-timeout": "300ms", "max-failures": "2",
	}
	l := StartLogger(t, Env("restart-me", opts), "syslog")
	out := Lines("while down", 3000)
	wrote := make(chan struct{})
	go func() { defer close(wrote); WriteLines(t, l.Stdout, out) }()
	Eventually(t, 20*time.Second, "three restarts", func() bool {
		return strings.Count(l.Errors(), "restarting") >= 3
	})
	r.start(t)
	recs := r.waitRecords(t, len(out))
	<-wrote
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	var got []string
	for _, rec := range recs {
		got = append(got, rec.Msg)
	}
	sinkSameLines(t, "stdout", got, out)
	// Nothing was delivered before rsyslog came up; each dead worker may
	// only count the one line it was handing over as a possible replay.
	st := l.Stats(t)
	restarts, _ := strconv.Atoi(st["restarts"])
	replayed, _ := strconv.Atoi(st["lines_replayed"])
	if restarts < 3 || replayed > restarts {
		t.Fatalf("restarts=%d lines_replayed=%d: want at least 3 restarts and at most one replay each", restarts, replayed)
	}
}

// TestOnFailureIgnore: after max-failures the supervisor drains both
// inputs to nowhere, so the application is never blocked by a logger that
// cannot log, and every line it threw away is counted.
func TestOnFailureIgnore(t *testing.T) {
	opts := map[string]string{"syslog-address": deadSyslog(t), "on-failure": "ignore",
		"failure-timeout": "200ms", "max-failures": "3"}
	l := StartLogger(t, Env("ignore-me", opts), "syslog")
	// Far more than the pipes hold: a blocked logger would block this.
	out, errs := Lines("out", 100000), Lines("err", 50000)
	wrote := make(chan struct{}, 2)
	go func() { WriteLines(t, l.Stdout, out); wrote <- struct{}{} }()
	go func() { WriteLines(t, l.Stderr, errs); wrote <- struct{}{} }()
	for i := 0; i < 2; i++ {
		select {
		case <-wrote:
		case <-time.After(30 * time.Second):
			t.Fatalf("the application is still blocked 30 s into on-failure=ignore; stderr: %s", l.Errors())
		}
	}
	if code := l.Wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (lines were lost); stderr: %s", code, l.Errors())
	}
	if !strings.Contains(l.Errors(), "on-failure=ignore, draining") {
		t.Fatalf("no word of on-failure=ignore on stderr: %s", l.Errors())
	}
	st := l.Stats(t)
	want := strconv.Itoa(len(out) + len(errs))
	if st["lines_dropped"] != want || st["lines_dropped_logger_failed"] != want || st["lines_delivered"] != "0" {
		t.Fatalf("stats %v: want lines_dropped=lines_dropped_logger_failed=%s, lines_delivered=0", st, want)
	}
}

// TestOnFailureKillInit is Triton's "suicide pact": the logger cannot log,
// so it terminates the container's init. The container is a real PID
// namespace (unshare --pid --fork) whose init is loginit --wait, which
// handles SIGTERM by passing it to the application: the whole container
// ends with the application's SIGTERM status.
func TestOnFailureKillInit(t *testing.T) {
	needRoot(t)
	unshare := needCmd(t, "unshare")
	opts := map[string]string{"syslog-address": deadSyslog(t), "on-failure": "kill-init",
		"failure-timeout": "200ms", "max-failures": "2", "kill-grace": "5s"}
	cmd := exec.Command(unshare, "--pid", "--fork", "--kill-child", filepath.Join(bin, "loginit"), "--wait", "syslog",
		"--", "sh", "-c", "echo started; exec sleep 600")
	cmd.Env = Env("kill-my-init", opts)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the container is still running 60 s later; stderr: %s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("container exit %d, want %d (the application got SIGTERM); stderr: %s", code, 128+int(syscall.SIGTERM), stderr.String())
	}
	if !strings.Contains(stderr.String(), "kill-init: SIGTERM to pid 1") {
		t.Fatalf("no kill-init of pid 1 on stderr: %s", stderr.String())
	}
	if strings.Contains(stderr.String(), "SIGKILL") {
		t.Fatalf("init needed SIGKILL, but it handles SIGTERM: %s", stderr.String())
	}
	t.Logf("container ended %v after start", time.Since(start).Round(time.Millisecond))
}

// TestOnFailureKillInitIgnored: an init that is PID 1 of its namespace and
// has no SIGTERM handler cannot be killed from inside the namespace, not
// even with SIGKILL. The logger says so and drains the inputs, so the
// application is not blocked either; the test then ends the namespace.
func TestOnFailureKillInitIgnored(t *testing.T) {
	needRoot(t)
	unshare := needCmd(t, "unshare")
	opts := map[string]string{"syslog-address": deadSyslog(t), "on-failure": "kill-init",
		"failure-timeout": "200ms", "max-failures": "2", "kill-grace": "300ms"}
	// loginit without --wait: the shell becomes PID 1 and keeps writing.
	cmd := exec.Command(unshare, "--pid", "--fork", "--kill-child", filepath.Join(bin, "loginit"), "syslog",
		"--", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; echo done >&2; exec sleep 600")
	cmd.Env = Env("unkillable", opts)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	Eventually(t, 60*time.Second, "the logger to give up on killing init and drain", func() bool {
		return strings.Contains(stderr.String(), "survives SIGKILL")
	})
	// The application was not blocked: it wrote its 20000 lines (far
	// more than a pipe holds) through the drain and went on to exec sleep.
	Eventually(t, 30*time.Second, "the application to finish writing and exec sleep", func() bool {
		init := workerPID(t, cmd.Process.Pid) // unshare's child: the namespace's init
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", init))
		return strings.TrimSpace(string(comm)) == "sleep"
	})
}
