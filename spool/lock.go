package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned by Open when another logger holds the spool.
var ErrLocked = errors.New("spool is in use by another logger")

// lockDir takes the spool's lock file, without waiting: two loggers never
// share one spool. The lock goes with the process, even on SIGKILL.
func lockDir(dir string) (*os.File, error) {
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EAGAIN) {
			return nil, fmt.Errorf("spool-dir %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("spool lock %s: %w", p, err)
	}
	return f, nil
}
