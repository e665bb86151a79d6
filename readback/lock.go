package readback

import (
	"os"

	"golang.org/x/sys/unix"
)

// writing reports whether a writer holds f: package filelog keeps an
// exclusive lock on its current file from before it is in place until it
// is closed (at a rotation, after the next one is in place).
func writing(f *os.File) bool {
	fd := int(f.Fd())
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	unix.Flock(fd, unix.LOCK_UN)
	return false
}
