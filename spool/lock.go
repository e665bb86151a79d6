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

// ErrNotOwner is returned by Open for a spool directory of another user.
var ErrNotOwner = errors.New("not owned by this logger's user")

// checkOwner refuses a spool directory that another user owns: that user
// could read the spooled lines, or swap the files in it for links to
// files of ours. A spool-dir that is a link to a directory of ours is
// fine: the directory is what is checked.
func checkOwner(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("spool-dir %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("spool-dir %s: %w", dir, err)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("spool-dir %s is owned by uid %d, this logger runs as uid %d: %w", dir, st.Uid, uid, ErrNotOwner)
	}
	return nil
}
