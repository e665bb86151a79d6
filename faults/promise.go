package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/internal/logproc"
)

// The faults of the logger's promises that are not a sink's: lines the pipe
// cannot hold, a worker that cannot go on, and signals at the worst
// moment.
func promiseFaults() []fault {
	return []fault{
		longLines("blocking", "spool"),
		longLines("non-blocking"),
		{
			name: "spool taken by another process", short: true, modes: []string{"spool"}, dropsOK: true,
			notes: "after a worker SIGKILL the spool's lock is held elsewhere for 3 s: workers fail while the container can write; the supervisor keeps the pipes and room in them (the oldest bytes dropped, counted)",
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*6, rate)
				time.Sleep(time.Second)
				pid, err := s.l.Worker(5 * time.Second)
				if err != nil {
					return err
				}
				lock, err := os.OpenFile(filepath.Join(s.opts["spool-dir"], "lock"), os.O_RDWR, 0)
				if err != nil {
					return err
				}
				defer lock.Close()
				syscall.Kill(pid, syscall.SIGKILL)
				s.kills++
				if err := waitFor(5*time.Second, "the spool's lock", func() bool {
					return unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
				}); err != nil {
					return err
				}
				time.Sleep(3 * time.Second)
				unix.Flock(int(lock.Fd()), unix.LOCK_UN)
				if err := <-done; err != nil {
					return err
				}
				if !bytes.Contains(s.l.Stderr.Bytes(), []byte("while the container's output is still open")) {
					return fmt.Errorf("no worker failed while the spool was held")
				}
				return s.neverBlocked(10 * time.Millisecond)
			},
		},
		{
			name: "SIGHUP while the sink is down", rsyslog: true, rsyslogShort: []string{"blocking"}, short: true,
			notes: "the sink goes down, SIGHUP: the upgrade happens while it is down (what waits on the sink stays in the pipe for the next worker), then the sink comes back",
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*6, rate)
				time.Sleep(time.Second)
				s.net.Stop()
				time.Sleep(500 * time.Millisecond)
				s.l.Cmd.Process.Signal(syscall.SIGHUP)
				if err := waitFor(10*time.Second, "the upgrade with the sink down", func() bool {
					s.l.Cmd.Process.Signal(syscall.SIGUSR1)
					st, _, _ := logproc.Stats(s.l.Stderr.Bytes())
					return st["upgrades"] >= 1
				}); err != nil {
					return err
				}
				if err := s.net.Start(); err != nil {
					return err
				}
				return <-done
			},
		},
		{
			name: "SIGHUP and SIGUSR1 storm", short: true,
			notes: "40 rounds of SIGHUP, SIGHUP, SIGUSR1 20 ms apart while writing: no worker may die of a signal or count as failed",
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*3, rate)
				for i := 0; i < 40; i++ {
					s.l.Cmd.Process.Signal(syscall.SIGHUP)
					s.l.Cmd.Process.Signal(syscall.SIGHUP)
					s.l.Cmd.Process.Signal(syscall.SIGUSR1)
					time.Sleep(20 * time.Millisecond)
				}
				if err := <-done; err != nil {
					return err
				}
				for _, bad := range []string{"killed by signal", "restarting", "on-failure"} {
					if i := bytes.Index(s.l.Stderr.Bytes(), []byte(bad)); i >= 0 {
						return fmt.Errorf("stderr says %q: %s", bad, strings.SplitN(string(s.l.Stderr.Bytes()[max(0, i-80):]), "\n", 2)[0])
					}
				}
				return nil
			},
		},
	}
}

// neverBlocked fails a non-blocking or spool row whose application was
// blocked in one write(2) longer than d.
func (s *session) neverBlocked(d time.Duration) error {
	if s.mode == "blocking" {
		return nil
	}
	for _, w := range []*writer{s.out, s.errw} {
		if _, b, _ := w.result(); b > d {
			return fmt.Errorf("a write(2) blocked %v in %s mode (at most %v)", b.Round(time.Millisecond), s.mode, d)
		}
	}
	return nil
}

// longLines is the row for lines longer than the pipe in modes; in
// non-blocking the ring must hold a line of line-max.
func longLines(modes ...string) fault {
	opts := map[string]string{"line-max": "4m"}
	if modes[0] == "non-blocking" {
		opts["max-buffer-size"] = "32m"
	}
	return fault{
		name: "lines longer than the pipe (line-max 4m)", short: true, modes: modes,
		notes: "3 MiB numbered lines among short ones, written 64 KiB per write(2); partial messages",
		setup: func(e *env, dir string) (setup, func(), error) {
			return setup{opts: opts}, func() {}, nil
		},
		run: func(e *env, s *session) error {
			for i := 0; i < 4; i++ {
				if err := s.out.lines(500, 0); err != nil {
					return err
				}
				if err := s.out.long(3 << 20); err != nil {
					return err
				}
			}
			if err := s.out.lines(500, 0); err != nil {
				return err
			}
			return s.neverBlocked(10 * time.Millisecond)
		},
	}
}
