package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/joyent/dockerlogger/internal/measure"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const containerID = "fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa0175fa01"

// lockedBuffer is the logger's stderr: written by exec's copier, read by
// checks while the logger runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

// logger is one running `dockerlogger DRIVER`, supervised, with the
// application's ends of its stdout and stderr pipes.
type logger struct {
	cmd      *exec.Cmd
	stderr   *lockedBuffer
	done     chan struct{}
	waitErr  error
	out, err *os.File // write ends: the application's stdout and stderr
}

// startLogger starts the logger on two fresh pipes (fd 3, fd 4) and waits
// for its ready byte on fd 5.
func startLogger(bin, driver string, opts map[string]string) (*logger, error) {
	cfg, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	cmd := exec.Command(filepath.Join(bin, "dockerlogger"), driver)
	cmd.Env = append(os.Environ(), "DOCKERLOG_CONFIG="+string(cfg),
		"DOCKERLOG_CONTAINERID="+containerID, "DOCKERLOG_CONTAINERNAME=/faults")
	l := &logger{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{}), out: outW, err: errW}
	cmd.Stderr = l.stderr
	cmd.ExtraFiles = []*os.File{outR, errR, rw}
	err = cmd.Start()
	outR.Close()
	errR.Close()
	rw.Close()
	if err != nil {
		outW.Close()
		errW.Close()
		return nil, fmt.Errorf("start dockerlogger: %w", err)
	}
	go func() { l.waitErr = cmd.Wait(); close(l.done) }()
	ready := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := rr.Read(b[:])
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			l.kill()
			return nil, fmt.Errorf("dockerlogger never said ready: %v: %s", err, lastLine(string(l.stderr.Bytes())))
		}
	case <-time.After(15 * time.Second):
		l.kill()
		return nil, fmt.Errorf("dockerlogger not ready after 15s: %s", lastLine(string(l.stderr.Bytes())))
	}
	return l, nil
}

// kill ends the logger and its worker (a fault run that went wrong).
func (l *logger) kill() {
	for _, p := range measure.Children(l.cmd.Process.Pid) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	l.cmd.Process.Kill()
	l.out.Close()
	l.err.Close()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
	}
}

// worker returns the pid of the supervisor's live child, waiting up to d
// for one to exist.
func (l *logger) worker(d time.Duration) (int, error) {
	end := time.Now().Add(d)
	for {
		for _, p := range measure.Children(l.cmd.Process.Pid) {
			if measure.Alive(p) {
				return p, nil
			}
		}
		if time.Now().After(end) {
			return 0, fmt.Errorf("no worker under supervisor %d after %v", l.cmd.Process.Pid, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the logger's exit (its stderr at EOF, so a worker that
// outlived a killed supervisor is waited for too) and returns its exit
// code, -1 for a signal; a logger still running after limit is a hang.
func (l *logger) wait(limit time.Duration) (int, error) {
	select {
	case <-l.done:
	case <-time.After(limit):
		l.kill()
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

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
