//go:build !linux

package pipepeek

import (
	"errors"
	"os"

	"github.com/joyent/dockerlogger/console"
)

// Peek needs tee(2) and splice(2), which only Linux has; elsewhere inputs
// are read plainly.
type Peek struct{}

// ErrStopped is returned by Read after Stop.
var ErrStopped = errors.New("reading stopped for handover")

// NewPeek always fails here.
func NewPeek(f *os.File) (*Peek, error) { return nil, errors.New("peek: no tee(2) on this platform") }

func (*Peek) Read([]byte) (int, error) { return 0, ErrStopped }
func (*Peek) Commit(int) error         { return nil }
func (*Peek) Stop()                    {}
func (*Peek) Close() error             { return nil }

// TeeTo does nothing here.
func (*Peek) TeeTo(*console.Console) {}

// Held returns 0, 0: where pipes cannot be measured, nothing is relieved.
func Held(f *os.File) (held, limit int) { return 0, 0 }

// FdWindow returns 0: no peeking here.
func FdWindow(fd uintptr) int { return 0 }

// FileWindow is FdWindow for an open file.
func FileWindow(f *os.File) int { return 0 }

// LineEnd cannot look into a pipe here: it returns 0 (Held says nothing
// is held, so nothing is relieved either).
func LineEnd(f *os.File, most int) (n int, nl bool, err error) { return 0, false, nil }
