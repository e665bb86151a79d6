package main

import "golang.org/x/sys/unix"

// dropPrivileges makes sure nothing the worker runs can gain privileges
// (setuid binaries, file capabilities): a logger never needs to.
func dropPrivileges() error {
	return unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
}
