package supervisor

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waitGone waits up to d for pid to exit. A pidfd says so when it does;
// without one (old kernels), look every 50 ms.
func waitGone(pid int, d time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return pollGone(pid, d)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// hostInit reports whether pid 1 is the host's init: we are in the
// initial PID namespace (whose inode number is fixed by the kernel).
func hostInit() bool {
	ns, err := os.Readlink("/proc/self/ns/pid")
	return err != nil || ns == "pid:[4026531836]"
}
