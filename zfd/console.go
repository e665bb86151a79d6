package zfd

import (
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

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
