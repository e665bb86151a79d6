// Package spool owns the disk spool of mode=spool: a persistent FIFO of
// log records under one directory. Records are appended with a length, a
// CRC32C, a sequence number, the stream, the timestamp and the partial
// metadata; the consumer takes them in batches and acknowledges each batch
// once the driver has accepted it, and only then is its space freed: with
// fallocate(FALLOC_FL_PUNCH_HOLE), and FALLOC_FL_COLLAPSE_RANGE to trim the
// file where the filesystem allows. On a filesystem (or platform) without
// hole punching the spool rotates segment files and deletes those fully
// acknowledged. After a restart the first live record is found with
// lseek(SEEK_DATA) and the acknowledged sequence number in the state file;
// records handed out but not acknowledged are delivered again
// (at-least-once, at most one batch twice). A torn or corrupt record is
// skipped and reported, never delivered; so is a length larger than any
// record the writer can produce (line-max), which is never allocated.
// Zeros and holes are space given back, skipped with SEEK_DATA/SEEK_HOLE.
// The directory is locked: two loggers never share one spool. It must not
// be a link, must be owned by the logger's uid and not be writable by
// group or others (CheckDir, Open), and every file in it is opened
// relative to it, never through a link (package safedir). Space counts
// against MaxSize until it is given back, so the blocks on disk stay
// within MaxSize and one segment whatever the sink does.
//
// It must never import a driver, the reader or a delivery mode: it knows
// records and files only.
package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/joyent/dockerlogger/backoff"
	"github.com/joyent/dockerlogger/safedir"
)

// Policy says what a full spool does with a record that does not fit.
type Policy int

const (
	DropOldest Policy = iota // drop the oldest records not handed out yet
	DropNewest               // drop the new record
	Block                    // wait for the consumer to make room
)

// Sync says when appended records are fsynced.
type Sync int

const (
	SyncInterval Sync = iota // a second after the first write since the last fsync
	SyncAlways               // as soon as something was written, one fsync after the other
	SyncNever                // leave it to the kernel
)

// Why a record was dropped.
const (
	Full       = "buffer-full"
	TooLarge   = "too-large"
	WriteError = "spool-write-error"
)

// ErrClosed is returned by Next, Ack and Append after Close.
var ErrClosed = errors.New("spool closed")

// ErrReleased is returned by an Append that would wait for room (Block)
// after Release.
var ErrReleased = errors.New("spool full: no longer waiting for room")

// Options configure a spool.
type Options struct {
	Dir     string
	MaxSize int64 // bytes of records held, headers included
	Policy  Policy
	Sync    Sync
	// Drop is told of every record dropped and why; rec is only valid
	// during the call, which is made with the spool locked.
	Drop func(rec *Record, why string)
	// Corrupt is told of bytes skipped because they were not a valid
	// record (a torn write, a bad CRC).
	Corrupt func(bytes int64, err error)
	// OnWait, if set, is told of a write error that buffer-full=block
	// waits out (a full disk) before each new try.
	OnWait func(err error)
	// NoPunch uses segment files even where holes can be punched.
	NoPunch bool
	// SegmentSize is the size at which a segment file is rotated when
	// holes cannot be punched; 0 means MaxSize/8 within [64 KiB, 64 MiB].
	SegmentSize int64
	// LineMax is the longest line a record can hold (the line-max
	// log-opt; 0: the largest line-max, 1 GiB). A length read from disk
	// that claims more is corruption: it is skipped, never allocated.
	LineMax int64
}

// Batch is what Next hands out. Its Records and their Line slices are
// valid until the next call to Next.
type Batch struct {
	Records []Record
	// Replayed counts the records of the batch that an earlier process
	// handed out and may have delivered before it died.
	Replayed int
}

type segment struct {
	name    string // in the spool directory
	path    string // for messages
	f       *os.File
	start   int64 // first byte not yet acknowledged
	end     int64 // bytes written
	punched int64 // bytes below this are holes
	// freed is how much of the dropped records after start (those of
	// dropOldest while a batch is out) was given back already.
	freed int64
}

// flushAt is how much Append buffers before it writes on its own.
const flushAt = 64 << 10

// Spool is an open spool directory. Append and Flush may be called by
// producers, Next and Ack by one consumer, concurrently.
type Spool struct {
	o        Options
	dir      *safedir.Dir
	maxRec   int64 // the largest record the writer can produce
	step     int64 // drop-oldest frees space in steps of this much
	lock     *os.File
	state    *os.File
	punch    bool // one file, freed by punching holes
	collapse bool
	blk      int64
	segSize  int64

	mu          sync.Mutex
	cond        *sync.Cond
	segs        []*segment // oldest first; appends go to the last
	rseg        int        // read cursor: segment index
	roff        int64      // and offset
	nextSeq     uint64
	acked       uint64 // every record up to this seq was accepted
	handed      uint64 // the last seq handed out by Next
	replayUpTo  uint64 // seqs up to this were handed out by an earlier process
	outstanding bool   // a batch is handed out and not acknowledged
	bseg        int    // where the outstanding batch ends: segment index
	boff        int64  // and offset (all from there to the cursor is dropped)
	droppedSeq  uint64 // the last seq dropOldest dropped
	dead        int64  // bytes dropped below the cursor, not yet freed
	pending     []byte // appended, not yet written
	dirty       bool
	dirtied     chan struct{}        // told when dirty is set (nil with SyncNever)
	unsynced    []*os.File           // segments left with writes not yet fsynced
	fsync       func(*os.File) error // (*os.File).Sync; a test holds it up
	closed      bool
	released    bool // see Release
	finished    bool // no more appends: Next returns io.EOF once empty
	nextName    int
	rbuf        []byte
	bbuf        []byte
	wbuf        []byte     // Next's read-ahead window (see decodeAhead)
	refs        []batchRef // Next's records, kept between batches
	recs        []Record   // the last batch's records, likewise
	stop        chan struct{}
	syncDone    chan struct{}
}

// Open opens (creating, mode 0700) and locks the spool in o.Dir and scans
// what an earlier process left there. The directory must pass CheckDir:
// not a link, owned by this process's user and not writable by group or
// others; every file in it is opened relative to it and never through a
// link.
func Open(o Options) (*Spool, error) {
	if o.MaxSize <= 0 {
		o.MaxSize = 256 << 20
	}
	if o.Drop == nil {
		o.Drop = func(*Record, string) {}
	}
	if o.Corrupt == nil {
		o.Corrupt = func(int64, error) {}
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = min(max(o.MaxSize/8, 64<<10), 64<<20)
	}
	if err := checkLength(o.Dir); err != nil {
		return nil, err
	}
	d, err := safedir.MkdirAll(o.Dir, 0o700)
	if err != nil {
		return nil, dirError(o.Dir, err)
	}
	if err := d.CheckPrivate(); err != nil {
		d.Close()
		return nil, fmt.Errorf("spool-dir %w", err)
	}
	lock, err := lockDir(d)
	if err != nil {
		d.Close()
		return nil, err
	}
	s := &Spool{o: o, dir: d, lock: lock, segSize: o.SegmentSize, stop: make(chan struct{}), syncDone: make(chan struct{}),
		fsync: (*os.File).Sync}
	s.maxRec = HeaderSize + MaxBody
	if o.LineMax > 0 && o.LineMax < MaxBody-fixedBody-255 {
		s.maxRec = HeaderSize + fixedBody + 255 + o.LineMax
	}
	s.step = max(min(flushAt, o.MaxSize/16), 1)
	s.cond = sync.NewCond(&s.mu)
	if err := s.open(); err != nil {
		s.closeFiles()
		return nil, err
	}
	switch o.Sync {
	case SyncInterval:
		s.dirtied = make(chan struct{}, 1)
		go s.syncLoop(time.Second)
	case SyncAlways:
		s.dirtied = make(chan struct{}, 1)
		go s.syncLoop(0)
	default:
		close(s.syncDone)
	}
	return s, nil
}

// segName is the name of segment file n; isSegName says whether name is
// one.
func segName(n int) string { return fmt.Sprintf("%016x.seg", n) }

func isSegName(name string) bool {
	h, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(h) != 16 {
		return false
	}
	_, err := strconv.ParseUint(h, 16, 64)
	return err == nil
}

func (s *Spool) open() error {
	var err error
	if s.state, err = s.dir.OpenFile("state", os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return s.fileError("state", err)
	}
	var st [20]byte
	if n, _ := s.state.ReadAt(st[:], 0); n == len(st) &&
		crc32.Checksum(st[:16], castagnoli) == binary.LittleEndian.Uint32(st[16:]) {
		s.acked = binary.LittleEndian.Uint64(st[:])
		s.replayUpTo = binary.LittleEndian.Uint64(st[8:])
	}
	s.handed = s.acked
	all, err := s.dir.Names()
	if err != nil {
		return fmt.Errorf("spool-dir %w", err)
	}
	var names []string
	for _, n := range all {
		switch {
		case isSegName(n):
			names = append(names, n)
		case strings.HasPrefix(n, probePrefix):
			s.dir.Remove(n) // left by a process that died probing
		}
	}
	s.punch = !s.o.NoPunch && s.probePunch()
	s.collapse = s.punch
	sort.Strings(names)
	for _, name := range names {
		f, err := s.dir.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return s.fileError(name, err)
		}
		s.segs = append(s.segs, &segment{name: name, path: s.dir.Join(name), f: f})
		n, _ := strconv.ParseInt(strings.TrimSuffix(name, ".seg"), 16, 64)
		s.nextName = int(n) + 1
	}
	if len(s.segs) == 0 {
		if err := s.newSegment(); err != nil {
			return err
		}
	}
	s.blk = blockSize(s.segs[0].f)
	last := s.acked
	found := false
	for i, g := range s.segs {
		seq, err := s.scan(g, i == len(s.segs)-1, &found)
		if err != nil {
			return err
		}
		last = max(last, seq)
	}
	s.nextSeq = max(last, s.replayUpTo) + 1
	s.roff = s.segs[0].start
	// Segments wholly acknowledged (or all damage) go now.
	s.free()
	return nil
}

const probePrefix = "probe-"

// fileError says, in one line naming the spool-dir, why its file name
// could not be opened (a link, a FIFO, a full disk).
func (s *Spool) fileError(name string, err error) error {
	return fileError(s.o.Dir, name, err)
}

// probePunch reports whether holes can be punched in the spool's directory.
func (s *Spool) probePunch() bool {
	name := fmt.Sprintf("%s%d-%d", probePrefix, os.Getpid(), time.Now().UnixNano())
	f, err := s.dir.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false
	}
	defer s.dir.Remove(name)
	defer f.Close()
	if _, err := f.Write(make([]byte, 8192)); err != nil {
		return false
	}
	return punch(f, 0, 4096) == nil
}

func (s *Spool) newSegment() error {
	name := segName(s.nextName)
	f, err := s.dir.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return s.fileError(name, err)
	}
	s.nextName++
	s.segs = append(s.segs, &segment{name: name, path: s.dir.Join(name), f: f})
	return nil
}

// scan finds the first live record of g (the first with a seq above the
// acknowledged one, after any holes) and the end of its valid records,
// and returns the last seq seen. Zeros are space given back (punched
// holes, a file extended with truncate): skipped, holes with SEEK_DATA,
// so a sparse segment of any apparent size scans in the time its data
// takes; zeros at the end are cut off, as is a torn tail. Damage before
// the first live record of the spool is reported here; damage after it
// is reported by Next when it gets there.
func (s *Spool) scan(g *segment, last bool, found *bool) (uint64, error) {
	fi, err := g.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("spool segment: %w", err)
	}
	size := fi.Size()
	pos, err := seekData(g.f, 0)
	if err != nil {
		pos = 0
	}
	g.punched = min(pos, size)
	var seq uint64
	g.start = -1
	for pos < size {
		rec, n, err := s.decodeAt(g.f, pos, size)
		if err != nil {
			if z := s.zeros(g.f, pos, size); z == size {
				size = pos // nothing but zeros from here
				break
			} else if z > pos {
				pos = z
				continue
			}
		}
		if *found && g.start < 0 {
			g.start = pos // a later segment: Next reports its damage
		}
		if err != nil {
			next, holes := s.resync(g.f, pos+1, size)
			switch {
			case errors.Is(err, ErrShort) && next == size:
				s.o.Corrupt(size-pos-holes, fmt.Errorf("%s at %d: torn record at the end", g.path, pos))
				size = pos
			case !*found:
				s.o.Corrupt(next-pos-holes, fmt.Errorf("%s at %d: %w", g.path, pos, err))
				fallthrough
			default:
				pos = next
			}
			continue
		}
		seq = rec.Seq
		if g.start < 0 && (*found || rec.Seq > s.acked) {
			*found = true
			g.start = pos
		}
		pos += int64(n)
	}
	if last && size < fi.Size() {
		// Appends go on from the last valid record.
		if err := g.f.Truncate(size); err != nil {
			return 0, fmt.Errorf("spool: cut torn record: %w", err)
		}
	}
	g.end = size
	g.punched = min(g.punched, size)
	if g.start < 0 {
		g.start = g.end
	}
	return seq, nil
}

// zeros returns the first offset at or after off, below limit, that holds
// a byte other than zero, or limit. Holes are skipped with SEEK_DATA and
// SEEK_HOLE, not read.
func (s *Spool) zeros(f *os.File, off, limit int64) int64 {
	var buf []byte
	for off < limit {
		if d, err := seekData(f, off); err == nil && d > off {
			off = min(d, limit)
			continue
		}
		// In data: read up to the next hole.
		end := limit
		if h, err := seekHole(f, off); err == nil && h > off {
			end = min(h, limit)
		}
		for off < end {
			// Small first: most calls find a record right away.
			buf = grow(buf, min(max(2*len(buf), 512), 64<<10))
			n, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
			for i := range n {
				if buf[i] != 0 {
					return off + int64(i)
				}
			}
			off += int64(n)
			if err != nil || n == 0 {
				return limit
			}
		}
	}
	return limit
}

// decodeAt decodes the record at off, not reading past limit. The
// record's Line aliases s.rbuf. A length larger than any record the
// writer can produce is corruption: it is never read, nor allocated.
func (s *Spool) decodeAt(f *os.File, off, limit int64) (Record, int, error) {
	// Read ahead: most records fit, and a scan takes one pread each.
	n := min(readAhead, limit-off)
	s.rbuf = grow(s.rbuf, int(n))
	if _, err := f.ReadAt(s.rbuf, off); err != nil && err != io.EOF {
		return Record{}, 0, fmt.Errorf("spool read: %w: %w", ErrCorrupt, err)
	}
	_, _, err := Decode(s.rbuf[:min(n, HeaderSize)])
	if !errors.Is(err, ErrShort) || n < HeaderSize {
		if err == nil {
			err = ErrCorrupt // a header alone is never a whole record
		}
		return Record{}, 0, err
	}
	size := int64(HeaderSize) + int64(binary.LittleEndian.Uint32(s.rbuf[4:]))
	if size > s.maxRec {
		return Record{}, 0, fmt.Errorf("%w: length %d, longer than any record (line-max %d)", ErrCorrupt, size, s.o.LineMax)
	}
	if off+size > limit {
		return Record{}, 0, ErrShort
	}
	if size > n {
		s.rbuf = grow(s.rbuf, int(size))
		if _, err := f.ReadAt(s.rbuf, off); err != nil && err != io.EOF {
			return Record{}, 0, fmt.Errorf("spool read: %w: %w", ErrCorrupt, err)
		}
	}
	return Decode(s.rbuf[:size])
}

// readAhead is what decodeAt reads at once.
const readAhead = 4096

// batchRef is a record of the batch Next builds: its line is
// bbuf[from:to].
type batchRef struct {
	rec      Record
	from, to int
}

// window is what decodeAhead read ahead of the records it decodes: the
// bytes of f from off. It lives for one call of Next, under the spool's
// lock, so nothing rewrites or moves those bytes meanwhile (a truncation,
// a collapse).
type window struct {
	f   *os.File
	off int64
	b   []byte
}

// windowSize is what decodeAhead reads at once: one pread for hundreds of
// short records, where decodeAt takes one each.
const windowSize = 64 << 10

// decodeAhead is decodeAt for Next's records, read a window at a time.
// Whatever does not decode whole from the window within the bounds
// decodeAt holds (a record longer than the window, or cut by its end,
// corruption, a read error) goes to decodeAt, which says why.
func (s *Spool) decodeAhead(w *window, f *os.File, off, limit int64) (Record, int, error) {
	if w.f != f || off < w.off || off+HeaderSize > w.off+int64(len(w.b)) {
		n := min(int64(windowSize), limit-off)
		if n < HeaderSize {
			return s.decodeAt(f, off, limit)
		}
		s.wbuf = grow(s.wbuf, int(n))
		m, err := f.ReadAt(s.wbuf, off)
		if err != nil && err != io.EOF {
			*w = window{}
			return s.decodeAt(f, off, limit)
		}
		*w = window{f: f, off: off, b: s.wbuf[:m]}
	}
	rec, size, err := Decode(w.b[off-w.off:])
	if err != nil || int64(size) > s.maxRec || off+int64(size) > limit {
		return s.decodeAt(f, off, limit)
	}
	return rec, size, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// resync returns the offset of the next record at or after off that
// decodes whole before limit, or limit; and how many bytes up to there
// were holes (skipped with SEEK_DATA, never read), which are not damage.
func (s *Spool) resync(f *os.File, off, limit int64) (next, holes int64) {
	buf := make([]byte, 64<<10)
	for off < limit {
		if d, err := seekData(f, off); err == nil && d > off {
			holes += min(d, limit) - off
			off = min(d, limit)
			continue
		}
		end := min(off+int64(len(buf)), limit)
		if h, err := seekHole(f, off); err == nil && h > off {
			end = min(end, h)
		}
		n, _ := f.ReadAt(buf[:end-off], off)
		if n == 0 {
			break
		}
		for i := 0; i < n; i++ {
			j := bytes.IndexByte(buf[i:n], magic0)
			if j < 0 {
				break
			}
			i += j
			if _, _, err := s.decodeAt(f, off+int64(i), limit); err == nil {
				return off + int64(i), holes
			}
		}
		off += int64(n)
	}
	return limit, holes
}

// skip moves the read cursor of g past what is not a record at s.roff:
// zeros (space given back) silently, damage reported. Both count as dead.
func (s *Spool) skip(g *segment, err error) {
	next := s.zeros(g.f, s.roff, g.end)
	if next == s.roff {
		var holes int64
		next, holes = s.resync(g.f, s.roff+1, g.end)
		s.o.Corrupt(next-s.roff-holes, fmt.Errorf("%s at %d: %w", g.path, s.roff, err))
	}
	s.dead += next - s.roff
	s.roff = next
}

// live is the bytes held: written or pending, not acknowledged, not dropped.
func (s *Spool) live() int64 {
	n := int64(len(s.pending)) - s.dead
	for _, g := range s.segs {
		n += g.end - g.start
	}
	return n
}

// held is what counts against MaxSize: the live records and the space of
// dropped ones not given back yet. What the disk holds beyond it is at
// most the acknowledged head of the first segment (NoPunch) or a few
// partial blocks (punching).
func (s *Spool) held() int64 {
	n := s.live() + s.dead
	for _, g := range s.segs {
		n -= g.freed
	}
	return n
}

// Unacked returns how many records the spool holds that were not yet
// accepted: right after Open, what an earlier logger left.
func (s *Spool) Unacked() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextSeq <= s.acked+1 {
		return 0
	}
	return int64(s.nextSeq - 1 - s.acked)
}

// Len returns the bytes the spool holds now, records not yet accepted.
func (s *Spool) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live()
}

// Append adds rec (its Seq is assigned) or drops it as the policy says.
// It buffers; Flush writes. A record larger than MaxSize is dropped
// (TooLarge) and never written.
func (s *Spool) Append(rec *Record) error {
	size := int64(rec.Size())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if size > s.o.MaxSize {
		s.o.Drop(rec, TooLarge)
		return nil
	}
	for s.held()+size > s.o.MaxSize {
		switch s.o.Policy {
		case DropNewest:
			s.o.Drop(rec, Full)
			return nil
		case Block:
			if s.closed { // woken by Close: the caller counts it
				return ErrClosed
			}
			if s.released {
				return ErrReleased
			}
			if len(s.pending) > 0 {
				// The consumer makes room only from what is written,
				// and waits for it: write what is buffered first.
				if err := s.flushWaiting(); err != nil {
					return err
				}
				continue
			}
			s.cond.Wait()
		default:
			if !s.makeRoom(size) {
				s.o.Drop(rec, Full)
				return nil
			}
		}
	}
	rec.Seq = s.nextSeq
	s.nextSeq++
	s.pending = AppendRecord(s.pending, rec)
	if len(s.pending) >= flushAt {
		return s.flushWaiting()
	}
	return nil
}

// flushWaiting flushes; with buffer-full=block a write error (a full disk)
// is not a reason to drop: it keeps the records and tries again, with the
// caller (the reader, and so the application) waiting, until the write
// goes through or the spool is closed. Called with s.mu held.
func (s *Spool) flushWaiting() error {
	wait := backoff.New(50*time.Millisecond, time.Second)
	for {
		err := s.flush()
		if err == nil || s.o.Policy != Block || s.closed || len(s.pending) == 0 {
			return err
		}
		if s.o.OnWait != nil {
			s.o.OnWait(err)
		}
		s.mu.Unlock()
		time.Sleep(wait.Next())
		s.mu.Lock()
	}
}

// makeRoom drops the oldest records not handed out, and gives their space
// back, until size more bytes fit. It drops and frees in steps (of
// s.step, or what is missing), not a syscall a record, and reports
// whether anything was dropped or freed: false when nothing can be.
// Records still pending are dropped where they are, never written: a
// spool small beside its writer would otherwise write each record only
// to give its space back at once, and punching a hole in pages not yet
// written back makes the kernel write them first.
func (s *Spool) makeRoom(size int64) bool {
	progress := false
	for s.held()+size > s.o.MaxSize {
		want := max(s.held()+size-s.o.MaxSize, s.step)
		var dropped int64
		for dropped < want {
			n := s.dropOne()
			if n == 0 {
				n = s.dropPending(want - dropped)
			}
			if n == 0 {
				break
			}
			dropped += n
		}
		freed := s.freeDropped()
		if dropped == 0 && !freed {
			return progress
		}
		progress = true
	}
	return true
}

// dropOne drops the oldest record not handed out and returns its size, or
// 0 if there is none.
func (s *Spool) dropOne() int64 {
	for {
		s.normalize()
		g := s.segs[s.rseg]
		if s.roff >= g.end {
			return 0
		}
		rec, n, err := s.decodeAt(g.f, s.roff, g.end)
		if err != nil {
			s.skip(g, err)
			continue
		}
		s.o.Drop(&rec, Full)
		s.dead += int64(n)
		s.roff += int64(n)
		s.droppedSeq = rec.Seq
		return int64(n)
	}
}

// dropPending drops the oldest pending records, once every written one
// not handed out is dropped, until want bytes are dropped or none is
// left, and returns the bytes dropped.
func (s *Spool) dropPending(want int64) int64 {
	off := 0
	for int64(off) < want && off < len(s.pending) {
		rec, n, err := Decode(s.pending[off:])
		if err != nil { // never: pending holds only what AppendRecord framed
			break
		}
		s.o.Drop(&rec, Full)
		s.droppedSeq = rec.Seq
		off += n
	}
	s.pending = s.pending[:copy(s.pending, s.pending[off:])]
	return int64(off)
}

// freeDropped gives back the space of the records dropOldest dropped, and
// reports whether it gave back any. With no batch out, everything below
// the cursor is acknowledged or dropped: free it all. With a batch out,
// its records stay; what lies between its end and the cursor is all
// dropped: segment files wholly in it are removed, the last segment is
// cut where it is dropped to its end, and where holes can be punched the
// rest is punched (from the batch's end each time, so no block straddling
// two punches stays allocated).
func (s *Spool) freeDropped() bool {
	if !s.outstanding {
		if s.dead == 0 {
			return false
		}
		s.handed = max(s.handed, s.droppedSeq)
		s.acked = s.handed
		s.writeState()
		s.free()
		return true
	}
	s.normalize()
	freed := false
	for s.rseg > s.bseg+1 {
		g := s.segs[s.bseg+1]
		g.f.Close()
		s.dir.Remove(g.name)
		s.dead -= g.end - g.start
		s.segs = append(s.segs[:s.bseg+1], s.segs[s.bseg+2:]...)
		s.rseg--
		freed = true
	}
	// All dropped up to the end of the last segment: cut it off there,
	// which any filesystem gives back; appends go on from the cut.
	if g := s.segs[s.rseg]; s.rseg == len(s.segs)-1 && s.roff >= g.end {
		from := g.start
		if s.rseg == s.bseg {
			from = s.boff
		}
		if from < g.end && g.f.Truncate(from) == nil {
			s.dead -= g.end - from
			g.end, s.roff, g.freed = from, from, 0
			g.punched = min(g.punched, from)
			freed = true
		}
	}
	if !s.punch {
		return freed
	}
	for i := s.bseg; i <= s.rseg; i++ {
		g := s.segs[i]
		from, to := g.start, g.end
		if i == s.bseg {
			from = s.boff
		}
		if i == s.rseg {
			to = s.roff
		}
		if to-from <= g.freed {
			continue
		}
		if err := punch(g.f, from, to-from); err != nil {
			continue
		}
		g.freed = to - from
		freed = true
	}
	return freed
}

// normalize moves the read cursor off the end of a segment that is not
// the last.
func (s *Spool) normalize() {
	for s.rseg < len(s.segs)-1 && s.roff >= s.segs[s.rseg].end {
		s.rseg++
		s.roff = s.segs[s.rseg].start
	}
}

// Flush writes what Append buffered. It does not fsync: syncLoop does,
// beside the caller (the reader), which a slow disk must not hold up.
func (s *Spool) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushWaiting()
}

func (s *Spool) flush() error {
	if len(s.pending) == 0 {
		return nil
	}
	w := s.segs[len(s.segs)-1]
	// A segment holds at most segSize, or one write larger than that.
	if !s.punch && w.end > 0 && w.end+int64(len(s.pending)) > s.segSize {
		if s.o.Sync != SyncNever && s.dirty {
			// syncLoop fsyncs it; the next writes dirty the new one.
			s.unsynced = append(s.unsynced, w.f)
			s.dirty = false
		}
		if err := s.newSegment(); err != nil {
			return s.lose(err)
		}
		w = s.segs[len(s.segs)-1]
	}
	if _, err := w.f.WriteAt(s.pending, w.end); err != nil {
		w.f.Truncate(w.end) // no half record left behind
		return s.lose(err)
	}
	w.end += int64(len(s.pending))
	s.pending = s.pending[:0]
	s.dirty = true
	select {
	case s.dirtied <- struct{}{}: // nil with SyncNever
	default:
	}
	s.cond.Broadcast()
	return nil
}

// lose drops the pending records after a write error (a full disk): they
// are counted, and memory stays bounded. With buffer-full=block they are
// kept for flushWaiting to try again, unless the spool is closing.
func (s *Spool) lose(err error) error {
	if s.o.Policy == Block && !s.closed {
		return fmt.Errorf("spool write (waiting for room): %w", err)
	}
	for b := s.pending; len(b) > 0; {
		rec, n, derr := Decode(b)
		if derr != nil {
			break
		}
		s.o.Drop(&rec, WriteError)
		b = b[n:]
	}
	s.pending = s.pending[:0]
	return fmt.Errorf("spool write: %w", err)
}

// Next waits for records and hands out a batch of them: as many as fit
// in maxBytes of spool records, at least one. The batch must be
// acknowledged with Ack before the next call. It returns ctx's error,
// io.EOF when the spool is empty after Finish, or ErrClosed after Close.
func (s *Spool) Next(ctx context.Context, maxBytes int) (Batch, error) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outstanding {
		return Batch{}, errors.New("spool: Next before Ack of the last batch")
	}
	if s.closed {
		return Batch{}, ErrClosed
	}
	refs := s.refs[:0]
	var win window
	taken := 0
	s.bbuf = s.bbuf[:0]
	for {
		s.normalize()
		g := s.segs[s.rseg]
		if s.roff >= g.end {
			if len(refs) > 0 {
				break
			}
			if len(s.pending) > 0 {
				if err := s.flush(); err == nil {
					continue
				}
			}
			if s.finished {
				return Batch{}, io.EOF
			}
			if err := ctx.Err(); err != nil {
				return Batch{}, err
			}
			s.cond.Wait()
			if s.closed {
				return Batch{}, ErrClosed
			}
			continue
		}
		if len(refs) > 0 && taken >= maxBytes {
			break
		}
		rec, n, err := s.decodeAhead(&win, g.f, s.roff, g.end)
		if err != nil {
			s.skip(g, err)
			continue
		}
		from := len(s.bbuf)
		s.bbuf = append(s.bbuf, rec.Line...)
		refs = append(refs, batchRef{rec, from, len(s.bbuf)})
		s.roff += int64(n)
		taken += n
	}
	s.refs = refs
	b := Batch{Records: slices.Grow(s.recs[:0], len(refs))[:len(refs)]}
	s.recs = b.Records
	for i, r := range refs {
		r.rec.Line = s.bbuf[r.from:r.to:r.to]
		b.Records[i] = r.rec
		if r.rec.Seq <= s.replayUpTo {
			b.Replayed++
		}
		s.handed = r.rec.Seq
	}
	s.outstanding = true
	s.bseg, s.boff = s.rseg, s.roff
	s.writeState()
	return b, nil
}

// Finish says nothing more will be appended: Next returns io.EOF once
// everything has been handed out, instead of waiting.
func (s *Spool) Finish() {
	s.mu.Lock()
	s.finished = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Ack says the last batch was accepted: its space is freed. After Close
// it returns ErrClosed and the batch will be handed out again by the next
// process, counted as replayed.
func (s *Spool) Ack() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.outstanding {
		return nil
	}
	s.outstanding = false
	// Records dropped meanwhile lie between the batch and the cursor.
	s.handed = max(s.handed, s.droppedSeq)
	s.acked = s.handed
	s.writeState()
	s.free()
	s.cond.Broadcast()
	return nil
}

// AckThrough says the records of the last batch up to seq were accepted,
// for a consumer that must stop in the middle of a batch (a handover, a
// deadline): the state says so at once, so the next process hands out
// the rest of the batch, not counted as replayed, and delivers nothing
// twice. The batch stays out: Close comes next (or Ack, for all of it).
func (s *Spool) AckThrough(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.outstanding || seq <= s.acked || seq > s.handed {
		return nil
	}
	s.acked = seq
	s.writeStateOf(seq, seq)
	return nil
}

// writeState records the acknowledged and the handed-out seq. Its errors
// only cost duplicates after a restart, so they are not returned.
func (s *Spool) writeState() { s.writeStateOf(s.acked, s.handed) }

func (s *Spool) writeStateOf(acked, handed uint64) {
	var st [20]byte
	binary.LittleEndian.PutUint64(st[:], acked)
	binary.LittleEndian.PutUint64(st[8:], handed)
	binary.LittleEndian.PutUint32(st[16:], crc32.Checksum(st[:16], castagnoli))
	s.state.WriteAt(st[:], 0)
}

// free gives back the space below the read cursor, which holds only
// acknowledged or dropped records.
func (s *Spool) free() {
	s.normalize()
	for s.rseg > 0 {
		g := s.segs[0]
		g.f.Close()
		s.dir.Remove(g.name)
		s.segs = s.segs[1:]
		s.rseg--
	}
	g := s.segs[0]
	g.start = s.roff
	s.dead = 0
	for _, g := range s.segs {
		g.freed = 0
	}
	if g.start >= g.end && len(s.segs) == 1 && !s.outstanding {
		// Empty: start the file again.
		if err := g.f.Truncate(0); err == nil {
			g.start, g.end, g.punched, s.roff = 0, 0, 0, 0
			return
		}
	}
	if !s.punch || g.start <= g.punched {
		return
	}
	// From the start of the block that holds g.punched: the last punch
	// ended mid-block and left that block allocated, and everything
	// below g.start is dead, so a punch from there would leave it for
	// good, one block per punch (a comb of blocks under a busy sink).
	from := g.punched / s.blk * s.blk
	if err := punch(g.f, from, g.start-from); err != nil {
		return
	}
	g.punched = g.start
	// Collapse whole blocks once there are many: offsets shift down.
	cut := g.start / s.blk * s.blk
	if s.collapse && cut >= 256*s.blk && cut < g.end {
		if err := collapse(g.f, 0, cut); err != nil {
			s.collapse = false // not on this filesystem
			return
		}
		g.start -= cut
		g.end -= cut
		g.punched -= cut
		s.roff -= cut
	}
}

// syncLoop fsyncs what was written, delay after the first write since
// the last fsync (SyncInterval: a second; SyncAlways: at once, so one
// fsync follows the other while writes go on). A spool with nothing
// written does not wake up (a logger runs in every container). The fsync
// runs outside the lock: the reader goes on appending meanwhile, and a
// disk slow to fsync delays durability, never the application.
func (s *Spool) syncLoop(delay time.Duration) {
	defer close(s.syncDone)
	for {
		select {
		case <-s.stop:
			return
		case <-s.dirtied:
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		s.mu.Lock()
		files := s.unsynced
		s.unsynced = nil
		if s.dirty {
			s.dirty = false
			files = append(files, s.segs[len(s.segs)-1].f)
		}
		s.mu.Unlock()
		for _, f := range files {
			s.fsync(f) // a segment freed meanwhile is closed: nothing to keep
		}
	}
}

// Release makes an Append waiting for room (Block), and any that would
// wait from now on, return ErrReleased: a worker handing over to the next
// stops waiting for a sink that may be down.
func (s *Spool) Release() {
	s.mu.Lock()
	s.released = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Close writes what is buffered, fsyncs (unless SyncNever), wakes a
// waiting Next and a blocked Append (both get ErrClosed), and releases
// the directory. Records not acknowledged stay for the next process.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	err := s.flush()
	if s.o.Sync != SyncNever && len(s.segs) > 0 {
		for _, f := range s.unsynced {
			f.Sync()
		}
		s.unsynced = nil
		if serr := s.segs[len(s.segs)-1].f.Sync(); err == nil && serr != nil {
			err = fmt.Errorf("spool fsync: %w", serr)
		}
	}
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	close(s.stop)
	<-s.syncDone
	s.mu.Lock()
	s.closeFiles()
	s.mu.Unlock()
	return err
}

// Closed files make Next and Append fail from here on.
func (s *Spool) closeFiles() {
	for _, g := range s.segs {
		g.f.Close()
	}
	if s.state != nil {
		s.state.Close()
	}
	s.lock.Close()
	s.dir.Close()
}

// Punching reports whether the spool frees space by punching holes (else
// it uses segment files).
func (s *Spool) Punching() bool { return s.punch }
