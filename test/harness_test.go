// Package test holds the end-to-end tests: they build the real binaries,
// start them with real pipes on fds 3/4 (and a ready pipe on fd 5), and
// read back what real sinks received. Tests that need a Debian package or
// root skip outside CI with the reason, and fail in CI (CI=true), where
// .ci/run installs what they need.
package test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
)

// bin is the directory holding the binaries built for this test run.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dockerlogger-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/...")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// inCI reports whether the tests run under .ci/run, where nothing may skip
// for want of a tool.
func inCI() bool { return os.Getenv("CI") == "true" }

// need skips the test outside CI, and fails it in CI, unless cond holds.
func need(t testing.TB, cond bool, why string) {
	t.Helper()
	if cond {
		return
	}
	if inCI() {
		t.Fatalf("cannot run in CI: %s", why)
	}
	t.Skipf("skipped: %s (CI installs it; see .ci/run)", why)
}

// needCmd requires an executable on PATH (or at an absolute path).
func needCmd(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	need(t, err == nil, name+" is not installed")
	return p
}

// needRoot requires uid 0.
func needRoot(t testing.TB) {
	t.Helper()
	need(t, os.Geteuid() == 0, "needs root")
}

// Logger is one dockerlogger process under test, started by
// internal/logproc.
type Logger struct {
	Cmd    *exec.Cmd
	Stdout *os.File // write end of the container's stdout (fd 3 of the logger)
	Stderr *os.File // write end of the container's stderr (fd 4)
	p      *logproc.Logger
}

// syncBuffer is a process's output, read while the process runs.
type syncBuffer = logproc.Buffer

// Env builds a Triton-style environment for a container id and log-opts.
func Env(id string, opts map[string]string, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH")}, logproc.Config(opts, id, extra...)...)
}

// StartLogger starts bin/dockerlogger with args and env, with pipes on fds
// 3, 4 and a ready pipe on 5, and waits until it signals ready.
func StartLogger(t testing.TB, env []string, args ...string) *Logger {
	t.Helper()
	l := StartLoggerNoWait(t, env, args...)
	if err := l.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("logger not ready: %v; stderr: %s", err, l.Errors())
	}
	return l
}

// StartLoggerNoWait starts the logger without waiting for ready.
func StartLoggerNoWait(t testing.TB, env []string, args ...string) *Logger {
	t.Helper()
	return StartLoggerCmd(t, logproc.Command(bin, args...), env)
}

// StartLoggerAt starts the logger binary at path without waiting for ready.
func StartLoggerAt(t testing.TB, path string, env []string, args ...string) *Logger {
	t.Helper()
	return StartLoggerCmd(t, append([]string{path}, args...), env)
}

// StartLoggerCmd starts argv — the logger, or a wrapper that runs it (nsenter)
// — with the pipes on fds 3, 4 and 5, without waiting for ready.
func StartLoggerCmd(t testing.TB, argv []string, env []string) *Logger {
	t.Helper()
	// Its own process group, so that a test can end the supervisor and
	// its worker together; and Wait must not hang on a stderr that an
	// orphaned worker still holds.
	p, err := logproc.Launch(logproc.Spec{Argv: argv, Env: env, Group: true, WaitDelay: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := &Logger{Cmd: p.Cmd, Stdout: p.Out, Stderr: p.Err, p: p}
	t.Cleanup(func() {
		l.Close()
		select {
		case <-l.Done():
		case <-time.After(20 * time.Second):
			p.KillGroup()
			<-l.Done()
		}
	})
	return l
}

// WaitReady waits for the ready byte on fd 5.
func (l *Logger) WaitReady(d time.Duration) error { return l.p.WaitReady(d) }

// Close closes both inputs: EOF for the logger.
func (l *Logger) Close() {
	l.Stdout.Close()
	l.Stderr.Close()
}

// Wait closes the inputs and waits for the logger to exit, returning its
// exit code.
func (l *Logger) Wait(t testing.TB, d time.Duration) int {
	t.Helper()
	l.Close()
	select {
	case <-l.Done():
	case <-time.After(d):
		l.Cmd.Process.Signal(syscall.SIGQUIT)
		l.p.KillGroup()
		<-l.Done()
		t.Fatalf("logger did not exit within %v; stderr: %s", d, l.Errors())
	}
	return l.Cmd.ProcessState.ExitCode()
}

// Done is closed when the logger has exited.
func (l *Logger) Done() <-chan struct{} { return l.p.Done() }

// Errors is what the logger wrote to its own stderr.
func (l *Logger) Errors() string { return l.p.Stderr.String() }

// Stats parses the last "stats" line the logger printed.
func (l *Logger) Stats(t testing.TB) map[string]string {
	t.Helper()
	return parseStats(t, l.Errors())
}

func parseStats(t testing.TB, stderr string) map[string]string {
	t.Helper()
	var last string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "dockerlogger: stats ") {
			last = strings.TrimPrefix(line, "dockerlogger: stats ")
		}
	}
	if last == "" {
		t.Fatalf("no stats line in logger stderr: %q", stderr)
	}
	m := map[string]string{}
	for _, f := range strings.Fields(last) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

// RunCLI runs the dockerlogger binary to completion and returns stdout,
// stderr and the exit code.
func RunCLI(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	out, errs, code, err := logproc.Run(logproc.Command(bin, args...), env, 30*time.Second)
	if err != nil {
		t.Fatalf("run dockerlogger %v: %v", args, err)
	}
	return out, errs, code
}

// Lines makes n numbered lines "<prefix> <i>" for ordering checks.
func Lines(prefix string, n int) []string {
	ls := make([]string, n)
	for i := range ls {
		ls[i] = fmt.Sprintf("%s %06d", prefix, i)
	}
	return ls
}

// WriteLines writes each line and a newline to w.
func WriteLines(t testing.TB, w io.Writer, lines []string) {
	t.Helper()
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		t.Fatalf("write lines: %v", err)
	}
}

// Eventually polls cond every 20 ms until it holds or d passes: for
// waiting on an external sink (a file rsyslog writes, a journal) that
// offers no signal of its own.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
