// Package logproc runs the built dockerlogger as init does, for the
// programs that test it from outside (test/, faults/, soak/, bench/): it
// is their one launcher. Launch starts it as a Spec says, with fresh
// pipes on fds 3 and 4 (the application keeps their write ends) or the
// caller's, and a ready pipe on fd 5 that WaitReady reads; Start is
// Launch and WaitReady with the defaults of faults/ and soak/. It finds
// the supervisor's worker in /proc, waits for the exit and reads the
// counters the logger prints on its stderr.
//
// It must never import dockerlogger's own packages: like a user, it sees
// the logger only through its pipes, its stderr and /proc.
package logproc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/internal/measure"
)

// ContainerID is the id every logger started here runs with.
const ContainerID = "fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa01"

// Buffer is a process's output: written by exec's copier, read while the
// process runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes is a copy of what was written so far.
func (l *Buffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

// String is a copy of what was written so far.
func (l *Buffer) String() string { return string(l.Bytes()) }

// Logger is one running `dockerlogger DRIVER`, supervised, with the
// application's ends of its stdout and stderr pipes.
type Logger struct {
	Cmd      *exec.Cmd
	Stderr   *Buffer
	Out, Err *os.File // write ends: the application's stdout and stderr
	ready    *os.File // read end of the ready pipe (fd 5), until WaitReady
	done     chan struct{}
	waitErr  error
}

// env is the logger's environment for opts, named name in its context.
func env(opts map[string]string, name string) []string {
	return append(os.Environ(), Config(opts, ContainerID, "DOCKERLOG_CONTAINERNAME="+name)...)
}

// Validate runs `dockerlogger --validate DRIVER` with opts and returns its
// one-line error, or nil when the configuration is valid.
func Validate(bin, driver string, opts map[string]string) error {
	argv := Command(bin, "--validate", driver)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env(opts, "/validate")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, LastLine(string(out)))
	}
	return nil
}

// Start starts the logger on two fresh pipes (fd 3, fd 4) and waits up to
// 15 s for its ready byte on fd 5. name is the container's name.
func Start(bin, driver string, opts map[string]string, name string) (*Logger, error) {
	l, err := Launch(Spec{Argv: Command(bin, driver), Env: env(opts, name)})
	if err != nil {
		return nil, err
	}
	if err := l.WaitReady(15 * time.Second); err != nil {
		l.Kill()
		return nil, fmt.Errorf("dockerlogger not ready: %v: %s", err, LastLine(string(l.Stderr.Bytes())))
	}
	return l, nil
}

// Pid is the supervisor's.
func (l *Logger) Pid() int { return l.Cmd.Process.Pid }

// Done is closed once the logger has exited and its stderr is at EOF.
func (l *Logger) Done() <-chan struct{} { return l.done }

// Kill ends the logger and its worker (a run that went wrong) and closes
// the application's ends of the pipes.
func (l *Logger) Kill() {
	for _, p := range measure.Children(l.Pid()) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	l.Cmd.Process.Kill()
	l.Out.Close()
	l.Err.Close()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
	}
}

// Worker returns the pid of the supervisor's live child, waiting up to d
// for one to exist.
func (l *Logger) Worker(d time.Duration) (int, error) {
	end := time.Now().Add(d)
	for {
		for _, p := range measure.Children(l.Pid()) {
			if measure.Alive(p) {
				return p, nil
			}
		}
		if time.Now().After(end) {
			return 0, fmt.Errorf("no worker under supervisor %d after %v", l.Pid(), d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Exited is closed when the logger has exited (see Wait).
func (l *Logger) Exited() <-chan struct{} { return l.done }

// Wait waits for the logger's exit (its stderr at EOF, so a worker that
// outlived a killed supervisor is waited for too) and returns its exit
// code, -1 for a signal; a logger still running after limit is a hang,
// and is killed.
func (l *Logger) Wait(limit time.Duration) (int, error) {
	select {
	case <-l.done:
	case <-time.After(limit):
		l.Kill()
		return -1, fmt.Errorf("hang: logger still running %v after its inputs closed", limit)
	}
	if l.waitErr == nil {
		return 0, nil
	}
	if ee, ok := l.waitErr.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return -1, l.waitErr
}

// Stats returns the counters of the last "dockerlogger: stats" line of
// the logger's stderr (under the supervisor, the last worker's), and
// whether it had to be found after other text on its line:
// fluent-logger-golang writes its errors to stderr without a newline.
func Stats(stderr []byte) (map[string]int64, bool, error) {
	var last string
	glued := false
	for _, l := range strings.Split(string(stderr), "\n") {
		if i := strings.Index(l, "dockerlogger: stats "); i >= 0 {
			last, glued = l[i+len("dockerlogger: stats "):], i > 0
		}
	}
	if last == "" {
		return nil, false, fmt.Errorf("no stats line in the logger's stderr")
	}
	m := map[string]int64{}
	for _, kv := range strings.Fields(last) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				m[k] = n
			}
		}
	}
	return m, glued, nil
}

// LastLine is the last non-empty line of s.
func LastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
