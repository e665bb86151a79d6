package console

import "golang.org/x/sys/unix"

// TeeFrom duplicates up to n bytes at the front of the pipe r into the
// console, when the console is a pipe, and returns how many it duplicated
// (package pipepeek writes the rest). A broken console takes them all:
// nothing more goes to it.
func (c *Console) TeeFrom(r int, n int) int {
	if !c.pipe {
		return 0
	}
	if c.broken.Load() {
		return n // nothing more goes to a broken console
	}
	m, err := unix.Tee(r, int(c.f.Fd()), n, 0)
	if err != nil {
		return 0
	}
	return int(m)
}
