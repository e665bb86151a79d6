// Package console owns what loginit --tee copies the container's output
// to: the launcher's original stdout and stderr, passed to the logger on
// fds 7 and 8, and the writes to them, which give up quietly (one error)
// when the console goes away so that logging goes on.
//
// It must never import a driver, the reader, a delivery mode, the
// supervisor or the worker: it deals in file descriptors only. Nor
// pipepeek, which copies to a console as it peeks (Peek.TeeTo).
package console

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/zfd"
)

// Console descriptors: where loginit --tee passes its original stdout and
// stderr.
const (
	ConsoleStdoutFD = 7
	ConsoleStderrFD = 8
)

// Consoles returns the console files passed for --tee, stdout first; an
// error if one is not open.
func Consoles() ([]*os.File, error) {
	var fs []*os.File
	for i, fd := range []int{ConsoleStdoutFD, ConsoleStderrFD} {
		if !zfd.Valid(fd) {
			return nil, fmt.Errorf("tee: console fd %d (%s) is not open", fd, []string{"stdout", "stderr"}[i])
		}
		unix.CloseOnExec(fd)
		fs = append(fs, os.NewFile(uintptr(fd), []string{"console-stdout", "console-stderr"}[i]))
	}
	return fs, nil
}

// Console is where loginit --tee wants a copy of one stream: the
// launcher's original stdout or stderr. A console that fails is given up
// with one error; logging goes on.
type Console struct {
	f      *os.File
	pipe   bool
	broken atomic.Bool
	report func(error)
}

// NewConsole wraps f; report is told once if writing to it fails.
func NewConsole(f *os.File, report func(error)) *Console {
	var st unix.Stat_t
	pipe := unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
	return &Console{f: f, pipe: pipe, report: report}
}

// Write copies b to the console, whole, unless it has failed before.
func (c *Console) Write(b []byte) (int, error) {
	if c.broken.Load() {
		return len(b), nil
	}
	if _, err := c.f.Write(b); err != nil {
		c.broken.Store(true)
		c.report(err)
	}
	return len(b), nil
}

// TeeReader returns a reader that copies what it reads from r to c: the
// plain copy, for inputs that are not pipes.
func TeeReader(r io.Reader, c *Console) io.Reader { return io.TeeReader(r, c) }
