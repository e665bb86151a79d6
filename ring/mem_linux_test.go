package ring

import (
	"bytes"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of b in memory.
func resident(t *testing.T, b []byte) int {
	t.Helper()
	page := os.Getpagesize()
	vec := make([]byte, (len(b)+page-1)/page)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestRingPagesResidency: a new ring has no page in memory, a backlog
// makes its pages resident, and once the consumer has emptied it they go
// back to the system, but for the first releaseKeep bytes.
func TestRingPagesResidency(t *testing.T) {
	const size = 8 << 20
	page := os.Getpagesize()
	r := New(size, DropOldest, nil)
	if n := resident(t, r.buf); n != 0 {
		t.Fatalf("a new ring has %d pages resident", n)
	}
	rec := bytes.Repeat([]byte("x"), 100<<10)
	for range 200 { // 20 MB through 8: wraps, drops
		r.Put(rec)
	}
	if n := resident(t, r.buf); n < size/page*9/10 {
		t.Fatalf("a full ring has %d of %d pages resident", n, size/page)
	}
	for {
		if _, ok := r.TryGet(nil); !ok {
			break
		}
	}
	if n := resident(t, r.buf); n > releaseKeep/page {
		t.Fatalf("an emptied ring keeps %d pages resident, want at most %d", n, releaseKeep/page)
	}
	// Small records while the consumer keeps up: nothing to release, and
	// the pages in use stay.
	for range 1000 {
		r.Put(rec[:1000])
		r.TryGet(nil)
	}
	if n := resident(t, r.buf); n == 0 || n > releaseKeep/page {
		t.Fatalf("%d pages resident in steady use", n)
	}
	// It still works after a release.
	r.Put(rec)
	if b, ok := r.TryGet(nil); !ok || !bytes.Equal(b, rec) {
		t.Fatal("record lost after a release")
	}
}
