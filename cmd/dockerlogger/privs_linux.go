package main

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// dropPrivileges makes sure nothing the worker runs can gain privileges
// (setuid binaries, file capabilities): a logger never needs to. The flag
// is per thread, so set it on every thread of the process.
func dropPrivileges() error {
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	if errno == syscall.ENOTSUP {
		// A build with cgo cannot reach every thread: this one, at least,
		// and every process it starts.
		return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	if errno != 0 {
		return errno
	}
	return nil
}
