//go:build !linux

package supervisor

import "time"

func waitGone(pid int, d time.Duration) bool { return pollGone(pid, d) }

// hostInit: elsewhere (illumos zones) pid 1 seen from inside a zone is the
// zone's init, so it may be the target.
func hostInit() bool { return false }
