package supervisor

import (
	"syscall"
	"time"
)

// pollGone looks every 50 ms, up to d, whether pid still exists: for a
// process that is not our child nothing else tells us.
func pollGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
