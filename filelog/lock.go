package filelog

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockWriting takes an exclusive lock on the current file for as long as
// it is open: `dockerlogger logs --follow` (package readback) ends when
// it can take the file, that is when the logger closed it for good. When
// another process holds it (the worker before this one, still closing at
// a live upgrade; a reader for an instant) the lock is waited for in the
// background, and writing goes on meanwhile. The lock goes with the file
// description: closing the file releases it.
func lockWriting(f *os.File) {
	fd := int(f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == nil || (err != unix.EWOULDBLOCK && err != unix.EAGAIN) {
		return
	}
	// fd stays valid while this waits: a closed file's descriptor may be
	// reused, so wait on a duplicate of its own, released once locked.
	dup, err := unix.Dup(fd)
	if err != nil {
		return
	}
	go func() {
		unix.Flock(dup, unix.LOCK_EX)
		unix.Close(dup)
	}()
}
