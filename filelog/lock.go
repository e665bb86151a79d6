package filelog

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockWriting takes an exclusive lock on the current file for as long as
// it is open: `dockerlogger logs --follow` (package readback) ends when
// it can take the file, that is when the logger closed it for good. A
// reader holds its lock only for an instant; a file another logger holds
// (two loggers on one path) is written unlocked, as before.
func lockWriting(f *os.File) {
	for try := 0; try < 20; try++ {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EAGAIN) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
