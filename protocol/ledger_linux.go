package zfd

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ledger is a page of memory the supervisor shares with each worker, in
// which the worker keeps, per stream, how many bytes at the front of the
// pipe it has handed to its driver and not yet consumed. When a worker
// dies the next one reads those numbers: those bytes are delivered again
// (at least once) and counted as replayed, never lost.
type Ledger struct {
	f   *os.File
	mem []byte
}

// Slots: 0 stdout, 1 stderr (bytes handed, not consumed), 2 lines
// replayed by all workers so far, 3 and 4 lines and bytes held in a
// non-blocking worker's ring, 5 and 6 lines and bytes dropped by all
// workers so far.
const ledgerSlots = 7

// NewLedger creates a ledger in an anonymous memory file.
func NewLedger() (*Ledger, error) {
	fd, err := unix.MemfdCreate("dockerlogger-ledger", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create ledger: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(os.Getpagesize())); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create ledger: %w", err)
	}
	return mapLedger(os.NewFile(uintptr(fd), "ledger"))
}

// OpenLedger maps the ledger passed as fd.
func OpenLedger(fd int) (*Ledger, error) {
	if !Valid(fd) {
		return nil, fmt.Errorf("ledger: fd %d is not open", fd)
	}
	unix.CloseOnExec(fd)
	return mapLedger(os.NewFile(uintptr(fd), "ledger"))
}

func mapLedger(f *os.File) (*Ledger, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map ledger: %w", err)
	}
	return &Ledger{f: f, mem: mem}, nil
}

// Slot returns counter i: 0 stdout, 1 stderr, 2 replayed lines, 3 and 4
// the lines and bytes in a ring.
func (l *Ledger) Slot(i int) *atomic.Int64 {
	if l == nil || i < 0 || i >= ledgerSlots {
		return nil
	}
	return (*atomic.Int64)(unsafe.Pointer(&l.mem[8*i]))
}

// File is the memory file, to pass to a worker.
func (l *Ledger) File() *os.File { return l.f }
