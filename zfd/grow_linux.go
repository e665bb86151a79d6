package zfd

import "golang.org/x/sys/unix"

// GrowPipe asks for a 1 MiB pipe (the default limit for unprivileged
// processes) and keeps what is granted: fewer, larger reads per byte for
// the logger, and more slack before the application blocks. Anything that
// is not a pipe says no, which is fine.
func GrowPipe(fd int) {
	unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 1<<20)
}
