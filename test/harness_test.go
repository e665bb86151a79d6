// Package test holds the end-to-end tests: they build the real binaries,
// start them with real pipes on fds 3/4 (and a ready pipe on fd 5), and
// read back what real sinks received. Tests that need a Debian package or
// root skip outside CI with the reason, and fail in CI (CI=true), where
// .ci/run installs what they need.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// Logger is one dockerlogger process under test.
type Logger struct {
	Cmd    *exec.Cmd
	Stdout *os.File // write end of the container's stdout (fd 3 of the logger)
	Stderr *os.File // write end of the container's stderr (fd 4)
	ready  *os.File
	errBuf *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Env builds a Triton-style environment for a container id and log-opts.
func Env(id string, opts map[string]string, extra ...string) []string {
	b, _ := json.Marshal(opts)
	env := []string{"PATH=" + os.Getenv("PATH"), "DOCKERLOG_CONFIG=" + string(b), "DOCKERLOG_CONTAINERID=" + id}
	return append(env, extra...)
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
	return StartLoggerAt(t, filepath.Join(bin, "dockerlogger"), env, args...)
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
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	l := &Logger{Stdout: outW, Stderr: errW, ready: readyR, errBuf: &syncBuffer{}, done: make(chan struct{})}
	l.Cmd = exec.Command(argv[0], argv[1:]...)
	l.Cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	l.Cmd.Env = env
	l.Cmd.Stderr = l.errBuf
	// Its own process group, so that a test can end the supervisor and
	// its worker together; and Wait must not hang on a stderr that an
	// orphaned worker still holds.
	l.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	l.Cmd.WaitDelay = 5 * time.Second
	if err := l.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	go func() { l.err = l.Cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		l.Stdout.Close()
		l.Stderr.Close()
		select {
		case <-l.done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-l.Cmd.Process.Pid, syscall.SIGKILL)
			<-l.done
		}
	})
	return l
}

// WaitReady waits for the ready byte on fd 5.
func (l *Logger) WaitReady(d time.Duration) error {
	got := make(chan error, 1)
	go func() {
		var b [1]byte
		n, err := l.ready.Read(b[:])
		if n == 1 {
			err = nil
		} else if err == nil || err == io.EOF {
			err = fmt.Errorf("ready pipe closed without a byte")
		}
		got <- err
	}()
	select {
	case err := <-got:
		return err
	case <-time.After(d):
		return fmt.Errorf("no ready signal within %v", d)
	}
}

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
	case <-l.done:
	case <-time.After(d):
		l.Cmd.Process.Signal(syscall.SIGQUIT)
		syscall.Kill(-l.Cmd.Process.Pid, syscall.SIGKILL)
		<-l.done
		t.Fatalf("logger did not exit within %v; stderr: %s", d, l.Errors())
	}
	return l.Cmd.ProcessState.ExitCode()
}

// Done is closed when the logger has exited.
func (l *Logger) Done() <-chan struct{} { return l.done }

// Errors is what the logger wrote to its own stderr.
func (l *Logger) Errors() string { return l.errBuf.String() }

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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "dockerlogger"), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run dockerlogger %v: %v", args, err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
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
