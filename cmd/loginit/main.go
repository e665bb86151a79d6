// Command loginit plays init's part for dockerlogger on a Linux host or in a
// Linux container: it makes the stdout and stderr pipes, starts
// `dockerlogger DRIVER` on fds 3 and 4 with the same DOCKERLOG_*
// environment, waits until the logger says it is ready, and then runs CMD
// with its output on those pipes.
//
//	loginit [--tee] [--wait] DRIVER -- CMD [ARG...]
//
// With --tee the logger also copies every byte to loginit's original
// stdout and stderr (the console), with tee(2) when the console is a pipe.
//
// By default CMD is exec'd in loginit's place, so it keeps the PID and the
// logger's parent is the application, as under Triton's dockerinit. With
// --wait loginit stays as CMD's parent instead: it forwards signals, and
// exits with CMD's status only once the logger has delivered everything,
// so a shell that runs it can read the logs as soon as it returns (and a
// container whose PID 1 is loginit does not lose the last lines when the
// kernel kills what is left of it).
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

const usage = "usage: loginit [--tee] [--wait] DRIVER -- CMD [ARG...]"

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "loginit: %v\n", err)
	}
	os.Exit(code)
}

type launch struct {
	tee    bool
	wait   bool
	driver string
	cmd    []string
}

func parseArgs(args []string) (launch, error) {
	var l launch
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' && args[0] != "--" {
		switch args[0] {
		case "--wait":
			l.wait = true
		case "--tee":
			l.tee = true
		case "-h", "--help":
			return l, errors.New(usage)
		default:
			return l, fmt.Errorf("unknown flag %s (%s)", args[0], usage)
		}
		args = args[1:]
	}
	if len(args) < 3 || args[1] != "--" {
		return l, errors.New(usage)
	}
	l.driver, l.cmd = args[0], args[2:]
	return l, nil
}

func run(args []string) (int, error) {
	l, err := parseArgs(args)
	if err != nil {
		return 2, err
	}
	path, err := exec.LookPath(l.cmd[0])
	if err != nil {
		return 127, fmt.Errorf("%s: %w", l.cmd[0], err)
	}
	loggerPath, err := findLogger()
	if err != nil {
		return 2, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return 1, fmt.Errorf("stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 1, fmt.Errorf("stderr pipe: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return 1, fmt.Errorf("ready pipe: %w", err)
	}
	lg := exec.Command(loggerPath, l.driver)
	lg.ExtraFiles = []*os.File{outR, errR, readyW} // fds 3, 4, 5
	lg.Stderr = os.Stderr
	lg.Env = loggerEnv(os.Environ(), l.cmd)
	if l.tee {
		// The console copies go on fds 7 and 8 (6 is the supervisor's).
		lg.ExtraFiles = append(lg.ExtraFiles, nil, os.Stdout, os.Stderr)
		lg.Env = append(lg.Env, "DOCKERLOG_TEE=true")
	}
	// Its own process group: a Ctrl-C meant for CMD must not start the
	// logger's shutdown; it reads on until CMD's pipes close.
	lg.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := lg.Start(); err != nil {
		return 1, fmt.Errorf("start %s: %w", loggerPath, err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	var b [1]byte
	n, _ := io.ReadFull(readyR, b[:])
	readyR.Close()
	if n == 0 {
		// The logger closed the ready pipe without a byte: it failed and
		// said why on stderr.
		if err := lg.Wait(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode(), errors.New("logger did not start")
			}
		}
		return 1, errors.New("logger did not start")
	}
	if !l.wait {
		if err := dup2(int(outW.Fd()), 1); err != nil {
			return 1, err
		}
		if err := dup2(int(errW.Fd()), 2); err != nil {
			return 1, err
		}
		err := syscall.Exec(path, l.cmd, os.Environ())
		fmt.Fprintf(errW, "loginit: exec %s: %v\n", path, err)
		return 126, nil
	}
	return runAndWait(path, l.cmd, outW, errW, lg)
}

// runAndWait runs CMD as a child, forwards signals to it, and returns its
// status once the logger has finished too.
func runAndWait(path string, argv []string, outW, errW *os.File, lg *exec.Cmd) (int, error) {
	cmd := &exec.Cmd{Path: path, Args: argv, Stdin: os.Stdin, Stdout: outW, Stderr: errW}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	if err := cmd.Start(); err != nil {
		outW.Close()
		errW.Close()
		lg.Wait()
		return 126, fmt.Errorf("start %s: %w", path, err)
	}
	// Only CMD holds the write ends now: their EOF ends the logger.
	outW.Close()
	errW.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var status int
wait:
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case err := <-done:
			status = exitStatus(cmd.ProcessState, err)
			break wait
		}
	}
	signal.Stop(sigs)
	// CMD is gone; something it left behind may still hold the pipes.
	// SIGTERM makes the logger read on to EOF within its close-timeout.
	lgDone := make(chan struct{})
	go func() { lg.Wait(); close(lgDone) }()
	select {
	case <-lgDone:
	case <-time.After(time.Second):
		lg.Process.Signal(syscall.SIGTERM)
		<-lgDone
	}
	return status, nil
}

func exitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// findLogger finds dockerlogger: $DOCKERLOG_LOGGER, beside loginit, or on PATH.
func findLogger() (string, error) {
	if p := os.Getenv("DOCKERLOG_LOGGER"); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "dockerlogger")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("dockerlogger")
	if err != nil {
		return "", errors.New("dockerlogger not found beside loginit nor on PATH (set DOCKERLOG_LOGGER)")
	}
	return p, nil
}

// loggerEnv fills in what a platform would have set: an empty log-opts
// object, a fresh container id, the command, the create time and the init
// pid (ours, which CMD keeps when it is exec'd).
func loggerEnv(env []string, argv []string) []string {
	has := map[string]bool{}
	for _, kv := range env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				has[kv[:i]] = true
				break
			}
		}
	}
	add := func(k, v string) {
		if !has[k] {
			env = append(env, k+"="+v)
		}
	}
	add("DOCKERLOG_CONFIG", "{}")
	add("DOCKERLOG_CONTAINERID", randomID())
	cmd, _ := json.Marshal(argv)
	add("DOCKERLOG_CMD", string(cmd))
	add("DOCKERLOG_CREATETIME", time.Now().UTC().Format(time.RFC3339Nano))
	add("DOCKERLOG_INIT_PID", fmt.Sprint(os.Getpid()))
	return env
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
