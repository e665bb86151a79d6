//go:build unix

package ring

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// alloc returns the ring's buffer. A large one is an anonymous private
// mapping outside the Go heap: the garbage collector paces itself on the
// heap's live bytes (GOGC=100 lets the heap grow to twice them before it
// collects), so a ring of max-buffer-size on the heap would let the
// logger reach about twice max-buffer-size in garbage; outside it, the
// heap stays a few MB and the ring costs its size and no more. Pages
// never written are not resident, as with make. The mapping is unmapped
// once owner is unreachable.
func alloc(owner *Ring, size int) []byte {
	if size < mmapMin {
		return make([]byte, size)
	}
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, size)
	}
	runtime.AddCleanup(owner, func(b []byte) { unix.Munmap(b) }, b)
	return b
}
