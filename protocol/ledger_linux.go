package protocol

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ledger is a page of memory the supervisor shares with each worker: what
// a worker that dies leaves for the next to count. Like Vector's disk
// buffer ledger it is one typed record; every field is read and written
// atomically by whichever process holds it.
type Ledger struct {
	f *os.File
	p *ledgerPage
}

// ledgerPage is the layout of the shared page. Workers of other versions
// map it too (live upgrade): fields are only ever added at the end.
type ledgerPage struct {
	// handed, per stream (0 stdout, 1 stderr): bytes at the front of the
	// pipe the worker has handed to its driver and not yet consumed.
	// Those are delivered again by the next worker, counted as replayed.
	handed [2]atomic.Int64
	// replayed: lines delivered again by all workers so far.
	replayed atomic.Int64
	// ringLines, ringBytes: what a non-blocking worker holds in its ring,
	// lost if it dies.
	ringLines, ringBytes atomic.Int64
	// droppedLines, droppedBytes: dropped by all workers so far, and by
	// the supervisor while no worker ran.
	droppedLines, droppedBytes atomic.Int64
	// partial, per stream: the line a worker was cutting into partial
	// messages when it last committed, so the next one goes on with the
	// same partial id and ordinals.
	partial [2]partialSlot
	// consumed, per stream: bytes of the pipe consumed by all workers, and
	// nonce: random, set when the ledger is made. Together they name a
	// line by where it starts (PartialID).
	consumed [2]atomic.Int64
	nonce    [16]byte
	// relieving: nonzero while the supervisor reads the pipes to keep
	// room in them (no worker reading). A worker waits for zero after its
	// ready byte, before it reads.
	relieving atomic.Int64
	// maybeDelivered: lines of a dead worker's handed bytes that the
	// supervisor dropped while no worker ran; counted dropped, they may
	// have been delivered (the worker was killed handing them over).
	maybeDelivered atomic.Int64
	// driverLines, driverBytes: what a non-blocking worker's driver took
	// and had not sent (a batch, fluentd-async) when last looked at; lost
	// if the worker dies, counted so by the next, which may count lines
	// that were sent since (they are added to maybeDelivered).
	driverLines, driverBytes atomic.Int64
}

// partialSlot is written by one worker at a time and read by the next
// after it died: version is odd while a write is under way, so a worker
// killed mid-write leaves a slot the next one ignores.
type partialSlot struct {
	version, ordinal, ts, idLen atomic.Int64
	id                          [64]byte
}

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
	l, err := mapLedger(os.NewFile(uintptr(fd), "ledger"))
	if err != nil {
		return nil, err
	}
	if _, err := rand.Read(l.p.nonce[:]); err != nil {
		return nil, fmt.Errorf("create ledger: %w", err)
	}
	return l, nil
}

// OpenLedger maps the ledger passed as fd.
func OpenLedger(fd int) (*Ledger, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || fl&unix.FD_CLOEXEC != 0 {
		return nil, fmt.Errorf("ledger: fd %d is not open", fd)
	}
	unix.CloseOnExec(fd)
	return mapLedger(os.NewFile(uintptr(fd), "ledger"))
}

func mapLedger(f *os.File) (*Ledger, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Size < int64(unsafe.Sizeof(ledgerPage{})) {
		f.Close()
		return nil, fmt.Errorf("ledger: not a ledger")
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map ledger: %w", err)
	}
	return &Ledger{f: f, p: (*ledgerPage)(unsafe.Pointer(&mem[0]))}, nil
}

// Handed is the count of bytes handed and not consumed of stream (0
// stdout, 1 stderr).
func (l *Ledger) Handed(stream int) *atomic.Int64 {
	if l == nil || stream < 0 || stream > 1 {
		return nil
	}
	return &l.p.handed[stream]
}

// MaybeDelivered is the count of lines counted dropped that a killed
// worker may have delivered (see ledgerPage.maybeDelivered).
func (l *Ledger) MaybeDelivered() *atomic.Int64 {
	if l == nil {
		return nil
	}
	return &l.p.maybeDelivered
}

// Replayed is the count of lines delivered again, by all workers.
func (l *Ledger) Replayed() *atomic.Int64 {
	if l == nil {
		return nil
	}
	return &l.p.replayed
}

// DriverHeld is what a non-blocking worker's driver held unsent when the
// worker last looked.
func (l *Ledger) DriverHeld() (lines, bytes *atomic.Int64) {
	if l == nil {
		return nil, nil
	}
	return &l.p.driverLines, &l.p.driverBytes
}

// RingHeld is what a non-blocking worker holds in its ring.
func (l *Ledger) RingHeld() (lines, bytes *atomic.Int64) {
	if l == nil {
		return nil, nil
	}
	return &l.p.ringLines, &l.p.ringBytes
}

// CarriedDrops is what all workers (and the supervisor between them) have
// dropped so far.
func (l *Ledger) CarriedDrops() (lines, bytes *atomic.Int64) {
	if l == nil {
		return nil, nil
	}
	return &l.p.droppedLines, &l.p.droppedBytes
}

// SavePartial records the unfinished line of stream at the worker's last
// commit: its partial id ("" for none), the ordinal of its last part and
// its timestamp.
func (l *Ledger) SavePartial(stream int, id string, ordinal int, ts int64) {
	if l == nil || stream < 0 || stream > 1 {
		return
	}
	s := &l.p.partial[stream]
	s.version.Add(1)
	n := copy(s.id[:], id)
	s.idLen.Store(int64(n))
	s.ordinal.Store(int64(ordinal))
	s.ts.Store(ts)
	s.version.Add(1)
}

// Partial returns what SavePartial recorded for stream; ok is false when
// there is none, or the worker that wrote it died mid-write.
func (l *Ledger) Partial(stream int) (id string, ordinal int, ts int64, ok bool) {
	if l == nil || stream < 0 || stream > 1 {
		return "", 0, 0, false
	}
	s := &l.p.partial[stream]
	if s.version.Load()%2 == 1 {
		return "", 0, 0, false
	}
	n := min(int(s.idLen.Load()), len(s.id))
	if n <= 0 {
		return "", 0, 0, false
	}
	return string(s.id[:n]), int(s.ordinal.Load()), s.ts.Load(), true
}

// Consumed is the count of bytes of stream's pipe consumed by all
// workers.
func (l *Ledger) Consumed(stream int) *atomic.Int64 {
	if l == nil || stream < 0 || stream > 1 {
		return nil
	}
	return &l.p.consumed[stream]
}

// PartialID names the line of stream that starts at offset (in bytes
// consumed by all workers): 64 hex digits, as Docker's, the same for every
// worker that reads that line.
func (l *Ledger) PartialID(stream int, offset int64) string {
	h := sha256.New()
	h.Write(l.p.nonce[:])
	var b [9]byte
	b[0] = byte(stream)
	binary.LittleEndian.PutUint64(b[1:], uint64(offset))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil))
}

// Relieving is nonzero while the supervisor reads the pipes itself.
func (l *Ledger) Relieving() *atomic.Int64 {
	if l == nil {
		return nil
	}
	return &l.p.relieving
}

// File is the memory file, to pass to a worker.
func (l *Ledger) File() *os.File {
	if l == nil {
		return nil
	}
	return l.f
}
