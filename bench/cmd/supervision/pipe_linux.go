package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// shrinkPipe sets the pipe's size; a pipe holding more than size is
// refused (EBUSY), which is counted, not an error.
func shrinkPipe(fd, size int) (refused bool, err error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, size); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return true, nil
		}
		return false, fmt.Errorf("F_SETPIPE_SZ %d: %w", size, err)
	}
	return false, nil
}
