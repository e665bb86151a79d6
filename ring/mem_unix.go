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
// once owner is unreachable. release, if not nil, gives pages of the
// buffer back to the system (their bytes are lost).
func alloc(owner *Ring, size int) (buf []byte, release func([]byte)) {
	if size < mmapMin {
		return make([]byte, size), nil
	}
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, size), nil
	}
	runtime.AddCleanup(owner, func(b []byte) { unix.Munmap(b) }, b)
	return b, releasePages
}

// releasePages gives the pages of p (page-aligned) back to the system at
// once, as the Go runtime does with its own: MADV_DONTNEED on Linux (it
// takes them off the resident set now), MADV_FREE elsewhere.
func releasePages(p []byte) {
	advice := unix.MADV_FREE
	if runtime.GOOS == "linux" {
		advice = unix.MADV_DONTNEED
	}
	unix.Madvise(p, advice)
}
