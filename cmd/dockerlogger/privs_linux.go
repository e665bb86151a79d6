package main

import (
	"syscall"
	"unsafe"

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

// capHeader and capData are the kernel's capget/capset structures
// (_LINUX_CAPABILITY_VERSION_3: two 32-bit words per set).
type capHeader struct {
	version uint32
	pid     int32
}

type capData struct {
	effective, permitted, inheritable uint32
}

// dropCapabilities leaves the worker only the capabilities its output
// needs: to write log files or a spool where root's ordinary permissions
// would not let it (CAP_DAC_OVERRIDE, CAP_FOWNER); none at all for the
// network drivers and journald. Every thread, so no goroutine keeps more.
// Without capabilities to begin with (not root), there is nothing to do.
func dropCapabilities(writesFiles bool) error {
	var keep [2]uint32
	if writesFiles {
		for _, c := range []uint{unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER} {
			keep[c/32] |= 1 << (c % 32)
		}
	}
	hdr := capHeader{version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]capData
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&cur[0])), 0); errno != 0 {
		return errno
	}
	data := [2]capData{}
	for i := range data {
		data[i].permitted = cur[i].permitted & keep[i]
		data[i].effective = data[i].permitted
	}
	hdr = capHeader{version: unix.LINUX_CAPABILITY_VERSION_3}
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if errno == syscall.ENOTSUP {
		return nil // a cgo build: no_new_privs still holds
	}
	if errno != 0 {
		return errno
	}
	return nil
}
