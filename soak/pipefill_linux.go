package main

import (
	"syscall"
	"unsafe"
)

// pipeFill returns the bytes in the pipe (FIONREAD) and its capacity
// (F_GETPIPE_SZ), or 0, 0 when it cannot tell.
func (w *writer) pipeFill() (queued, size int) {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return 0, 0
	}
	rc.Control(func(fd uintptr) {
		var n int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
			return
		}
		sz, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, fGetPipeSz, 0)
		if e != 0 {
			return
		}
		queued, size = int(n), int(sz)
	})
	return queued, size
}

// fGetPipeSz is F_GETPIPE_SZ (Linux).
const fGetPipeSz = 1032
