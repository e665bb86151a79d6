package logproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Spec is how Launch starts a logger: the one launcher of test/, faults/,
// soak/ and bench/.
type Spec struct {
	// Argv is the command: the logger, or a wrapper that runs it
	// (nsenter). Command makes the usual one.
	Argv []string
	// Env is the whole environment; Config makes the logger's part.
	Env []string
	// Stdout and Stderr, if set, are the read ends handed to the logger
	// as fds 3 and 4 (and closed here once it has them); if nil, a fresh
	// pipe each, whose write end is Logger.Out (Logger.Err).
	Stdout, Stderr *os.File
	// NoReady starts the logger without a ready pipe on fd 5.
	NoReady bool
	// Group starts the logger in a process group of its own, so that its
	// supervisor and worker can be ended together (KillGroup).
	Group bool
	// WaitDelay bounds the wait for its stderr after it exits (an
	// orphaned worker may hold it); 0: no bound.
	WaitDelay time.Duration
}

// Command is the argv of bin/dockerlogger with args.
func Command(bin string, args ...string) []string {
	return append([]string{filepath.Join(bin, "dockerlogger")}, args...)
}

// Config is the logger's environment for the log-opts opts and the
// container id; extra (e.g. "DOCKERLOG_CONTAINERNAME=/web") is added.
func Config(opts map[string]string, id string, extra ...string) []string {
	cfg, _ := json.Marshal(opts) // a map of strings always marshals
	return append([]string{"DOCKERLOG_CONFIG=" + string(cfg), "DOCKERLOG_CONTAINERID=" + id}, extra...)
}

// Launch starts a logger as init does, as s says, without waiting for it
// to be ready (WaitReady does).
func Launch(s Spec) (*Logger, error) {
	var closeOnErr, child []*os.File
	fail := func(err error) (*Logger, error) {
		for _, f := range append(closeOnErr, child...) {
			f.Close()
		}
		return nil, err
	}
	l := &Logger{Stderr: &Buffer{}, done: make(chan struct{})}
	in := func(given *os.File, w **os.File) error {
		if given != nil {
			child = append(child, given)
			return nil
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		child, closeOnErr, *w = append(child, r), append(closeOnErr, pw), pw
		return nil
	}
	if err := in(s.Stdout, &l.Out); err != nil {
		return fail(err)
	}
	if err := in(s.Stderr, &l.Err); err != nil {
		return fail(err)
	}
	if !s.NoReady {
		rr, rw, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		l.ready, child, closeOnErr = rr, append(child, rw), append(closeOnErr, rr)
	}
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = s.Env
	cmd.Stderr = l.Stderr
	cmd.ExtraFiles = child
	cmd.WaitDelay = s.WaitDelay
	if s.Group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start dockerlogger: %w", err))
	}
	for _, f := range child {
		f.Close()
	}
	l.Cmd = cmd
	go func() { l.waitErr = cmd.Wait(); close(l.done) }()
	return l, nil
}

// WaitReady waits up to d for the ready byte on fd 5, and closes the
// ready pipe.
func (l *Logger) WaitReady(d time.Duration) error {
	if l.ready == nil {
		return errors.New("started without a ready pipe")
	}
	got := make(chan error, 1)
	go func() {
		var b [1]byte
		n, err := l.ready.Read(b[:])
		if n == 1 {
			err = nil
		} else if err == nil || err == io.EOF {
			err = errors.New("ready pipe closed without a byte")
		}
		got <- err
	}()
	select {
	case err := <-got:
		l.ready.Close()
		return err
	case <-time.After(d):
		return fmt.Errorf("no ready signal within %v", d)
	}
}

// KillGroup kills the logger's process group (started with Group): its
// supervisor and every worker.
func (l *Logger) KillGroup() { syscall.Kill(-l.Pid(), syscall.SIGKILL) }

// Run runs argv with env to completion, killing it after limit, and
// returns its stdout, its stderr and its exit code; err is for a command
// that could not run at all.
func Run(argv, env []string, limit time.Duration) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return out.String(), errb.String(), -1, err
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode(), nil
}

// Exit waits as Wait does and returns nil for an exit 0, else an error
// with the exit (or the hang) and the last line of the logger's stderr.
func (l *Logger) Exit(limit time.Duration) error {
	code, err := l.Wait(limit)
	if err == nil && code != 0 {
		err = fmt.Errorf("%v", l.waitErr)
	}
	if err != nil {
		return fmt.Errorf("dockerlogger: %v: %s", err, LastLine(l.Stderr.String()))
	}
	return nil
}
