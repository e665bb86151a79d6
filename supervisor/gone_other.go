//go:build !linux

package supervisor

import "time"

func waitGone(pid int, d time.Duration) bool { return pollGone(pid, d) }
