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
	"strconv"
	"sync"
	"syscall"
	"time"
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

// ErrClosed is returned by a write after Close.
var ErrClosed = errors.New("cannot write because the output file was closed")

// File is a rotating log file written through a buffer. It is safe for
// concurrent use.
type File struct {
	o Options

	mu      sync.Mutex
	f       *os.File
	buf     []byte // encoded messages not yet written to f
	size    int64  // bytes of the current file, buffered ones included
	lastTS  time.Time
	closed  bool
	zipping chan struct{} // closed when the last compression ended; nil if none ran
}

// noFollow keeps every open of a log file from following a symbolic link:
// whoever can write the log directory (the container, under a bind mount)
// must not make the logger write, truncate or compress another file.
const noFollow = syscall.O_NOFOLLOW

// linkError says plainly that path is a link, where open(2) says ELOOP.
func linkError(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("log file %s is a symbolic link: refusing to follow it (remove it, or point log-path at the real file): %w", path, err)
	}
	return err
}

// Open opens (appending to) or creates the current log file, as Docker does.
func Open(o Options) (*File, error) {
	f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|noFollow, Perm)
	if err != nil {
		return nil, linkError(o.Path, err) // names the file already
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log file %s: %w", o.Path, err)
	}
	size, torn, err := trimTorn(o.Path, f, size, o.complete)
	if err != nil {
		f.Close()
		return nil, err
	}
	if torn > 0 && o.OnError != nil {
		o.OnError(fmt.Errorf("log file %s ended in a torn record (%d bytes, from a logger killed while writing): cut it; its line is written again", o.Path, torn))
	}
	return &File{o: o, f: f, size: size, buf: make([]byte, 0, FlushSize+4096)}, nil
}

// append adds one message to the buffer under f.mu: encode appends the
// encoded message to its argument and returns it. A rotation due before
// this message is done first, exactly when Docker's LogFile would do it.
func (f *File) append(ts time.Time, encode func([]byte) []byte) error {
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
	f.size += int64(len(f.buf) - n)
	f.lastTS = ts
	if len(f.buf) >= FlushSize {
		// The message is taken either way; a failure is retried by the
		// next Write or Flush.
		f.flush()
	}
	return nil
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
	n, err := f.f.Write(f.buf)
	// Keep what was not written, for the next try.
	f.buf = f.buf[:copy(f.buf, f.buf[n:])]
	if err != nil {
		return fmt.Errorf("error writing log entry: %w", err)
	}
	return nil
}

// Close flushes, closes the file and waits for a running compression.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	ferr := f.flush()
	cerr := f.f.Close()
	if f.zipping != nil {
		<-f.zipping
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
// background.
func (f *File) rotate() error {
	if f.zipping != nil {
		<-f.zipping
		f.zipping = nil
	}
	name := f.o.Path
	if err := f.f.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
		return fmt.Errorf("error closing file: %w", err)
	}
	if err := shift(name, f.o.MaxFiles, f.o.Compress); err != nil {
		// Docker logs this and truncates the current file anyway.
		f.report(fmt.Errorf("error rotating log file, log data may have been lost: %w", err))
	} else if f.o.MaxFiles < 2 {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			f.report(fmt.Errorf("error unlinking current log file: %w", err))
		}
	} else if err := os.Rename(name, name+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.report(fmt.Errorf("error renaming current log file: %w", err))
	}
	nf, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC|os.O_CREATE|noFollow, Perm)
	if err != nil {
		return linkError(name, err)
	}
	f.f = nf
	f.size = 0
	if f.o.MaxFiles <= 1 || !f.o.Compress {
		return nil
	}
	done := make(chan struct{})
	f.zipping = done
	go func(ts time.Time) {
		defer close(done)
		f.report(compressFile(name+".1", ts))
	}(f.lastTS)
	return nil
}

// shift makes room for a new name.1.
func shift(name string, maxFiles int, compress bool) error {
	if maxFiles < 2 {
		return nil
	}
	ext := ""
	if compress {
		ext = ".gz"
	}
	last := name + "." + strconv.Itoa(maxFiles-1) + ext
	if err := os.Remove(last); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("error removing oldest log file: %w", err)
	}
	for i := maxFiles - 1; i > 1; i-- {
		from := name + "." + strconv.Itoa(i-1) + ext
		if err := os.Rename(from, name+"."+strconv.Itoa(i)+ext); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// gzipMeta is the gzip header's Extra field: Docker's reader skips a
// whole rotated file by it when asked for logs since a later time.
type gzipMeta struct {
	LastTime time.Time `json:"lastTime,omitempty"`
}

// compressFile replaces name with name.gz, as Docker does: the plain file
// is removed only once the compressed one is complete.
func compressFile(name string, lastTS time.Time) (err error) {
	in, err := os.OpenFile(name, os.O_RDONLY|noFollow, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("failed to open log file: %w", err)
	}
	defer func() {
		in.Close()
		if err == nil {
			if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = fmt.Errorf("failed to remove source log file: %w", rerr)
			}
		}
	}()
	out, err := os.OpenFile(name+".gz", os.O_CREATE|os.O_TRUNC|os.O_RDWR|noFollow, Perm)
	if err != nil {
		return fmt.Errorf("failed to open or create gzip log file: %w", linkError(name+".gz", err))
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("error compressing log file %s: %w", name, cerr)
		}
		if err != nil {
			os.Remove(name + ".gz")
		}
	}()
	zw := gzip.NewWriter(out)
	zw.Header.Extra, _ = json.Marshal(gzipMeta{LastTime: lastTS})
	if _, err := io.Copy(zw, in); err != nil {
		zw.Close()
		return fmt.Errorf("error compressing log file %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("error compressing log file %s: %w", name, err)
	}
	return nil
}
