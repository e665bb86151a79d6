// Package filelog owns the log files of the json-file and local drivers:
// a buffered writer with Docker's exact rotation and compression
// semantics (daemon/logger/loggerutils.LogFile), and encoders that write
// Docker's json-file and local formats byte for byte, so that Docker's own
// readers read every file it writes.
//
// Docker's LogFile makes one write(2) per message; File collects messages
// in a buffer and writes it when the reader has handed over a whole read
// (Flush), when the buffer passes 64 KiB, and before a rotation. Rotation
// is still decided per message, as Docker does, so files split at the same
// message boundaries.
//
// Where Docker loses lines on a failure, File does not: a rotated file
// whose compression failed (a full disk) stays uncompressed and moves with
// the rotation (Docker's reader reads name.N before name.N.gz); a .gz is
// written under a temporary name, synced and renamed into place before
// the plain file goes, and Open removes what a killed logger left
// (temporaries) and compresses again what it had not finished; a rotation
// that cannot shift the files refuses the message rather than truncate
// the current file.
//
// It must never import the reader, a delivery mode, the supervisor or the
// driver registry: it knows only messages in and files out.
package filelog

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/safedir"
)

// FlushSize is the buffered size past which Write flushes on its own.
const FlushSize = 64 << 10

// Perm is the mode Docker creates log files with (before the umask).
const Perm os.FileMode = 0o640

// Options say where a File writes and how it rotates; the meanings are
// those of Docker's max-size, max-file and compress log-opts.
type Options struct {
	Path     string
	MaxSize  int64 // bytes per file before rotation; -1 for unbounded
	MaxFiles int   // files kept, the current one included
	Compress bool  // gzip rotated files
	// OnError reports the errors Docker only logs and carries on after
	// (a failed rename or compression). May be nil.
	OnError func(error)
	// complete returns how much of an existing file is whole records;
	// set by the format (json-file or local).
	complete func(*os.File, int64) (int64, error)
}

// Accounting is told what became of the messages a File took: a File
// buffers, so a message it took is not yet in the file.
type Accounting interface {
	// Written: the write(2) that holds the last byte of these messages
	// succeeded. bytes counts their lines, not the encoding.
	Written(lines, bytes int64)
	// Lost: given up on (the file could not be written when it was
	// closed); reason is "disk-full" (ENOSPC, EDQUOT) or "write-failed".
	Lost(lines, bytes int64, reason string)
}

// errNoFile: a rotation moved the current file away and could not
// create the new one yet.
var errNoFile = errors.New("no current log file (its creation failed at the last rotation)")

// ErrClosed is returned by a write after Close.
var ErrClosed = errors.New("cannot write because the output file was closed")

// File is a rotating log file written through a buffer. It is safe for
// concurrent use. Every file it creates, renames, removes or compresses is
// named relative to its directory, opened once without following a link
// (package safedir), and is never a link: whoever can write the log
// directory (the container, under a bind mount) must not make the logger
// write, truncate, rename over or compress another file.
type File struct {
	o    Options
	dir  *safedir.Dir
	base string // the file's name in dir

	mu      sync.Mutex
	f       *os.File
	buf     []byte // encoded messages not yet written to f
	size    int64  // bytes of the current file, buffered ones included
	lastTS  time.Time
	closed  bool
	zipping chan struct{} // closed when the last compression ended; nil if none ran

	// The messages in buf, oldest first: their encoded size and line
	// bytes. The first has its first done bytes written already.
	msgs []pending
	head int
	done int
	acct Accounting
	// unwritten: the lines and line bytes of msgs[head:] (see Unwritten),
	// changed under mu and read without it: the ring's consumer asks after
	// every line it hands over.
	unwrittenLines, unwrittenBytes atomic.Int64
}

type pending struct {
	enc  int
	line int64
}

// linkError says plainly that path is a link, or has other links.
func linkError(path string, err error) error {
	switch {
	case errors.Is(err, safedir.ErrLink) || errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("log file %s is a symbolic link: refusing to follow it (remove it, or point log-path at the real file)", path)
	case errors.Is(err, safedir.ErrHardLink):
		return fmt.Errorf("log file %s has other hard links: refusing to write it (remove it, or point log-path at another file)", path)
	case errors.Is(err, safedir.ErrNotRegular):
		return fmt.Errorf("log file %s is not a regular file (a FIFO, a device, a directory): refusing it", path)
	}
	return err
}

// Open opens (appending to) or creates the current log file, as Docker
// does. Its directory must exist and not be a symbolic link.
func Open(o Options) (*File, error) {
	dir, err := safedir.Open(filepath.Dir(o.Path))
	if err != nil {
		if errors.Is(err, safedir.ErrLink) {
			return nil, fmt.Errorf("log directory %s is a symbolic link: refusing to follow it (point log-path at the real directory)", filepath.Dir(o.Path))
		}
		return nil, fmt.Errorf("log file %s: %w", o.Path, err)
	}
	base := filepath.Base(o.Path)
	// Read and write: a torn last record is looked for and cut.
	f, err := dir.OpenFile(base, os.O_RDWR|os.O_APPEND|os.O_CREATE, Perm)
	if err != nil {
		dir.Close()
		return nil, linkError(o.Path, err) // names the file already
	}
	lockWriting(f)
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		dir.Close()
		return nil, fmt.Errorf("open log file %s: %w", o.Path, err)
	}
	size, torn, err := trimTorn(o.Path, f, size, o.complete)
	if err != nil {
		f.Close()
		dir.Close()
		return nil, err
	}
	if torn > 0 && o.OnError != nil {
		o.OnError(fmt.Errorf("log file %s ended in a torn record (%d bytes, from a logger killed while writing): cut it; its line is written again", o.Path, torn))
	}
	lf := &File{o: o, dir: dir, base: base, f: f, size: size, buf: make([]byte, 0, FlushSize+4096)}
	if o.Compress && o.MaxFiles > 1 {
		// Finish what a logger killed while compressing (or one that met
		// a full disk) left, in the background as a rotation would.
		removeTemps(dir, base)
		done := make(chan struct{})
		lf.zipping = done
		go func() {
			defer close(done)
			lf.compressRotated(time.Time{})
		}()
	}
	return lf, nil
}

// SetAccounting makes f report what it wrote and lost to a. Call it
// before the first message.
func (f *File) SetAccounting(a Accounting) {
	f.mu.Lock()
	f.acct = a
	f.mu.Unlock()
}

// append adds one message to the buffer under f.mu: encode appends the
// encoded message to its argument and returns it; line is the size of
// the message's line. A rotation due before this message is done first,
// exactly when Docker's LogFile would do it.
func (f *File) append(ts time.Time, line int64, encode func([]byte) []byte) error {
	if f.closed {
		return ErrClosed
	}
	// A buffer still over the limit means an earlier flush failed: do
	// not take the message (the caller retries it) rather than grow.
	if len(f.buf) >= FlushSize {
		if err := f.flush(); err != nil {
			return err
		}
	}
	if f.o.MaxSize != -1 && f.size >= f.o.MaxSize {
		if err := f.flush(); err != nil {
			return err
		}
		if err := f.rotate(); err != nil {
			return fmt.Errorf("error rotating log file: %w", err)
		}
	}
	n := len(f.buf)
	f.buf = encode(f.buf)
	if len(f.buf) == n {
		return nil // nothing encoded: the format says why
	}
	f.size += int64(len(f.buf) - n)
	f.lastTS = ts
	f.msgs = append(f.msgs, pending{enc: len(f.buf) - n, line: line})
	f.unwrittenLines.Add(1)
	f.unwrittenBytes.Add(line)
	if len(f.buf) >= FlushSize {
		// The message is taken either way; a failure is retried by the
		// next Write or Flush.
		f.flush()
	}
	return nil
}

// appendLong is append for a message whose encoding may be many times
// its line (json-file writes a control byte as six): encode is called
// until it says done, each call appending the next piece, and the buffer
// is written whenever it passes FlushSize. So a long message costs a
// buffer of FlushSize and a piece, not its whole encoding. It starts
// from an empty buffer, so that a failed write takes back this message
// alone: what was written of it is cut from the file and the error
// refuses the message (the caller tries it again).
func (f *File) appendLong(ts time.Time, line int64, encode func(dst []byte) ([]byte, bool)) error {
	if f.closed {
		return ErrClosed
	}
	if err := f.flush(); err != nil {
		return err
	}
	if f.o.MaxSize != -1 && f.size >= f.o.MaxSize {
		if err := f.rotate(); err != nil {
			return fmt.Errorf("error rotating log file: %w", err)
		}
	}
	if f.f == nil {
		return fmt.Errorf("error writing log entry: %w", errNoFile)
	}
	before, sent := f.size, 0
	for done := false; !done; {
		f.buf, done = encode(f.buf)
		if done || len(f.buf) < FlushSize {
			continue
		}
		n, err := f.f.Write(f.buf)
		sent += n
		f.buf = f.buf[:copy(f.buf, f.buf[n:])]
		if err != nil {
			f.buf = f.buf[:0]
			if sent > 0 {
				if terr := f.f.Truncate(before); terr != nil {
					f.report(fmt.Errorf("log file %s: cutting a record written in part: %w", f.o.Path, terr))
				}
			}
			return fmt.Errorf("error writing log entry: %w", err)
		}
	}
	if sent == 0 && len(f.buf) == 0 {
		return nil // nothing encoded: the format says why
	}
	// The buffer was empty, so no message is pending before this one:
	// it is the head, with sent bytes written.
	f.size = before + int64(sent+len(f.buf))
	f.lastTS = ts
	f.msgs = append(f.msgs[:0], pending{enc: sent + len(f.buf), line: line})
	f.head, f.done = 0, sent
	f.unwrittenLines.Add(1)
	f.unwrittenBytes.Add(line)
	if len(f.buf) >= FlushSize {
		f.flush()
	}
	return nil
}

// Unwritten returns the lines taken and not yet written, and their line
// bytes: counted neither written nor lost (Accounting), they die with a
// process that is killed, and whoever counts for it must know them.
func (f *File) Unwritten() (lines, bytes int64) {
	return f.unwrittenLines.Load(), f.unwrittenBytes.Load()
}

// Flush writes the buffered messages with one write(2).
func (f *File) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flush()
}

func (f *File) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	if f.f == nil {
		return fmt.Errorf("error writing log entry: %w", errNoFile)
	}
	n, err := f.f.Write(f.buf)
	// Keep what was not written, for the next try.
	f.buf = f.buf[:copy(f.buf, f.buf[n:])]
	if len(f.buf) == 0 && cap(f.buf) > 4*FlushSize {
		// Grown for a long message: not kept for the short ones.
		f.buf = make([]byte, 0, FlushSize+4096)
	}
	f.wrote(n)
	if err != nil {
		return fmt.Errorf("error writing log entry: %w", err)
	}
	return nil
}

// wrote accounts for n more bytes of the buffer written.
func (f *File) wrote(n int) {
	f.done += n
	var lines, bytes int64
	for f.head < len(f.msgs) && f.msgs[f.head].enc <= f.done {
		m := f.msgs[f.head]
		f.done -= m.enc
		lines++
		bytes += m.line
		f.head++
	}
	if f.head == len(f.msgs) {
		f.msgs, f.head = f.msgs[:0], 0
	}
	if lines > 0 {
		f.unwrittenLines.Add(-lines)
		f.unwrittenBytes.Add(-bytes)
	}
	if lines > 0 && f.acct != nil {
		f.acct.Written(lines, bytes)
	}
}

// giveUp drops what is still buffered after a write failed with err: the
// start of a message already written is cut from the file, so that the
// file ends with whole records, and the messages are reported lost.
func (f *File) giveUp(err error) {
	if len(f.buf) == 0 {
		return
	}
	if f.done > 0 && f.f != nil {
		onDisk := f.size - int64(len(f.buf))
		if terr := f.f.Truncate(onDisk - int64(f.done)); terr == nil {
			f.size -= int64(f.done)
		}
	}
	var lines, bytes int64
	for _, m := range f.msgs[f.head:] {
		lines++
		bytes += m.line
	}
	f.size -= int64(len(f.buf))
	f.buf, f.msgs, f.head, f.done = f.buf[:0], f.msgs[:0], 0, 0
	f.unwrittenLines.Store(0)
	f.unwrittenBytes.Store(0)
	if lines > 0 && f.acct != nil {
		f.acct.Lost(lines, bytes, LostReason(err))
	}
}

// LostReason names why messages that could not be written were dropped:
// "disk-full" for ENOSPC and EDQUOT, "write-failed" for anything else.
func LostReason(err error) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return diag.DiskFull
	}
	return diag.WriteFailed
}

// Close flushes, closes the file and waits for a running compression.
// What cannot be written then is dropped, and reported lost.
func (f *File) Close() error { return f.close(true) }

// CloseHandingOver is Close for a logger that exits next so that another
// takes the file over (a live upgrade): it does not wait for a running
// compression, which can take as long as the rotated file takes to
// compress, while nobody reads the container's output. The exit cuts it;
// the next logger on this path removes its temporary and compresses the
// file again, as after a logger killed while compressing (see Open).
func (f *File) CloseHandingOver() error { return f.close(false) }

func (f *File) close(waitZip bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	ferr := f.flush()
	if ferr != nil {
		f.giveUp(ferr)
	}
	var cerr error
	if f.f != nil {
		cerr = f.f.Close()
	}
	zipping := false
	if f.zipping != nil {
		if waitZip {
			<-f.zipping
		} else {
			select {
			case <-f.zipping:
			default:
				zipping = true
			}
		}
	}
	if !zipping {
		// A compression left running still works in the directory: it
		// stays open until the exit, or its descriptor could be reused
		// under it.
		f.dir.Close()
	}
	if ferr != nil {
		return ferr
	}
	if cerr != nil && !errors.Is(cerr, fs.ErrClosed) {
		return fmt.Errorf("close log file: %w", cerr)
	}
	return nil
}

func (f *File) report(err error) {
	if f.o.OnError != nil && err != nil {
		f.o.OnError(err)
	}
}

// rotate does what Docker's LogFile.rotate does, in the same order: wait
// for the previous compression, shift name.N-1 … name.1 up by one (the
// oldest is removed), move the current file to name.1 (or remove it when
// only one file is kept), start afresh, and compress name.1 in the
// background. Every name is in f.dir; a link found at one is removed or
// renamed as a name, never followed.
//
// Unlike Docker it loses no line it counted written: when the shift
// fails, the current file is kept rather than truncated, and the error
// refuses the message (the caller tries it again, or drops it and counts
// it), so the file does not grow past max-size either; when the new file
// cannot be created, the next try only creates it, without shifting the
// files once more.
func (f *File) rotate() error {
	if f.zipping != nil {
		<-f.zipping
		f.zipping = nil
	}
	name := f.base
	if f.f != nil {
		if err := shift(f.dir, name, f.o.MaxFiles, f.o.Compress); err != nil {
			return err
		}
		// The old file stays open, and locked, until the new one is in
		// place and locked: a reader following the file (readback) takes
		// a file no one holds for the end of the logger's output.
		old := f.f
		defer func() {
			if err := old.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
				f.report(fmt.Errorf("error closing file: %w", err))
			}
		}()
		f.f = nil
		if f.o.MaxFiles < 2 {
			if err := f.dir.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				f.report(fmt.Errorf("error unlinking current log file: %w", err))
			}
		} else if err := f.dir.Rename(name, name+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			f.report(fmt.Errorf("error renaming current log file: %w", err))
		}
	}
	// A new file, never one found at the name (Docker truncates).
	nf, err := f.dir.Create(name, os.O_WRONLY|os.O_APPEND, Perm)
	if err != nil {
		return linkError(f.o.Path, err)
	}
	lockWriting(nf)
	f.f = nf
	f.size = 0
	if f.o.MaxFiles <= 1 || !f.o.Compress {
		return nil
	}
	done := make(chan struct{})
	f.zipping = done
	go func(ts time.Time) {
		defer close(done)
		f.compressRotated(ts)
	}(f.lastTS)
	return nil
}

// compressRotated compresses every rotated file left uncompressed: name.1
// just rotated (its last message at ts, if not zero), and any that an
// earlier compression could not (a full disk, a logger killed). Where
// both name.N and a whole name.N.gz exist, name.N is removed.
func (f *File) compressRotated(ts time.Time) {
	for i := 1; i < f.o.MaxFiles; i++ {
		plain := f.base + "." + strconv.Itoa(i)
		st, err := f.dir.Lstat(plain)
		if err != nil {
			continue
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		if gzipWhole(f.dir, plain+".gz") {
			if err := f.dir.Remove(plain); err != nil && !errors.Is(err, fs.ErrNotExist) {
				f.report(fmt.Errorf("failed to remove source log file: %w", err))
			}
			continue
		}
		last := ts
		if i > 1 || last.IsZero() {
			last = time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec))
		}
		f.report(compressFile(f.dir, plain, last))
	}
}

// gzipWhole says whether name in dir is a regular file and a whole gzip
// stream (its CRC and size check).
func gzipWhole(dir *safedir.Dir, name string) bool {
	in, err := dir.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, zr)
	return err == nil
}

// tempPrefix starts the name of the temporary that name.gz is written
// under: hidden, and no name Docker's reader or a rotation looks at.
func tempPrefix(name string) string { return "." + name + ".gz.tmp-" }

// removeTemps removes the temporaries of compressions that never ended
// (a logger killed while compressing).
func removeTemps(dir *safedir.Dir, base string) {
	names, err := dir.Names()
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, "."+base+".") && strings.Contains(n, ".gz.tmp-") {
			dir.Remove(n)
		}
	}
}

// shift makes room for a new name.1.
func shift(dir *safedir.Dir, name string, maxFiles int, compress bool) error {
	if maxFiles < 2 {
		return nil
	}
	ext := ""
	if compress {
		ext = ".gz"
	}
	// A rotated file whose compression failed is still plain: it moves
	// with the compressed ones, or the current file would be renamed
	// over it.
	exts := []string{ext}
	if compress {
		exts = append(exts, "")
	}
	for _, ext := range exts {
		last := name + "." + strconv.Itoa(maxFiles-1) + ext
		if err := dir.Remove(last); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("error removing oldest log file: %w", err)
		}
	}
	for i := maxFiles - 1; i > 1; i-- {
		for _, ext := range exts {
			from := name + "." + strconv.Itoa(i-1) + ext
			if err := dir.Rename(from, name+"."+strconv.Itoa(i)+ext); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// gzipMeta is the gzip header's Extra field: Docker's reader skips a
// whole rotated file by it when asked for logs since a later time.
type gzipMeta struct {
	LastTime time.Time `json:"lastTime,omitempty"`
}

// compressFile replaces name with name.gz in dir, as Docker does, but so
// that a crash at any point loses nothing: name.gz is written under a
// temporary name, synced, and renamed into place, and only then is name
// removed. name must be a regular file with no other link (or it is left
// alone, with an error); the rename replaces whatever was at name.gz.
func compressFile(dir *safedir.Dir, name string, lastTS time.Time) (err error) {
	in, err := dir.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("failed to open log file: %w", linkError(dir.Join(name), err))
	}
	defer in.Close()
	if st, serr := in.Stat(); serr == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
			return fmt.Errorf("failed to open log file: %w", linkError(dir.Join(name), safedir.ErrHardLink))
		}
	}
	out, tmp, err := dir.CreateTemp(tempPrefix(name), Perm)
	if err != nil {
		return fmt.Errorf("failed to create gzip log file: %w", linkError(dir.Join(name+".gz"), err))
	}
	defer func() {
		if out != nil {
			out.Close()
		}
		if err != nil {
			dir.Remove(tmp)
		}
	}()
	zw := gzip.NewWriter(out)
	zw.Header.Extra, _ = json.Marshal(gzipMeta{LastTime: lastTS})
	if _, err := io.Copy(zw, in); err != nil {
		zw.Close()
		return fmt.Errorf("error compressing log file %s: %w", dir.Join(name), err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("error compressing log file %s: %w", dir.Join(name), err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("error compressing log file %s: %w", dir.Join(name), err)
	}
	cerr := out.Close()
	out = nil
	if cerr != nil {
		return fmt.Errorf("error compressing log file %s: %w", dir.Join(name), cerr)
	}
	if err := dir.Rename(tmp, name+".gz"); err != nil {
		return fmt.Errorf("error compressing log file %s: %w", dir.Join(name), err)
	}
	// The rename must be on disk before the only other copy goes.
	if err := syscall.Fsync(dir.Fd()); err != nil {
		return fmt.Errorf("error compressing log file %s: sync directory: %w", dir.Join(name), err)
	}
	if err := dir.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to remove source log file: %w", err)
	}
	return nil
}
