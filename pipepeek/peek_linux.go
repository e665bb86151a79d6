package pipepeek

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/console"
)

// Peek reads a pipe without consuming it: tee(2) copies the pipe's front
// into a private pipe, Read returns only bytes it has not returned before,
// and Commit consumes, with splice(2) to /dev/null, what was delivered. A
// worker that dies leaves every byte it did not commit in the pipe, where
// the supervisor holds it for the next worker.
type Peek struct {
	in           int
	privR, privW int
	wakeR, wakeW int
	devnull      int
	// ep waits for input: the input edge-triggered, so that it reports
	// each new write even while the pipe holds an unfinished line (a
	// level-triggered poll would report that line at once, forever), and
	// the wake pipe that Stop writes.
	ep      int
	pending int // bytes at the pipe's front returned by Read, not committed
	stopped atomic.Bool
	discard []byte
	console *console.Console
}

// TeeTo makes Read also copy every new byte to c (loginit --tee): with
// tee(2) when c is a pipe, with write(2) otherwise.
func (p *Peek) TeeTo(c *console.Console) { p.console = c }

// ErrStopped is returned by Read after Stop. It reports itself as a
// handover so the reader can tell it from a failure.
var ErrStopped = stoppedError{}

type stoppedError struct{}

func (stoppedError) Error() string  { return "reading stopped for handover" }
func (stoppedError) Handover() bool { return true }

// NewPeek returns a Peek on f, or an error if f is not a pipe that tee(2)
// can read (then read it plainly).
func NewPeek(f *os.File) (*Peek, error) {
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("peek %s: not a pipe", f.Name())
	}
	p := &Peek{in: fd, privR: -1, privW: -1, wakeR: -1, wakeW: -1, devnull: -1, ep: -1}
	var pp [2]int
	if err := unix.Pipe2(pp[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("peek %s: pipe: %w", f.Name(), err)
	}
	p.privR, p.privW = pp[0], pp[1]
	// The private pipe must hold all the input pipe may hold.
	if size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0); err == nil {
		unix.FcntlInt(uintptr(p.privW), unix.F_SETPIPE_SZ, size)
	}
	if err := unix.Pipe2(pp[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		p.Close()
		return nil, fmt.Errorf("peek %s: pipe: %w", f.Name(), err)
	}
	p.wakeR, p.wakeW = pp[0], pp[1]
	dn, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("peek %s: open /dev/null: %w", f.Name(), err)
	}
	p.devnull = dn
	if p.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		p.Close()
		return nil, fmt.Errorf("peek %s: epoll: %w", f.Name(), err)
	}
	for _, ev := range []unix.EpollEvent{{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(p.in)}, {Events: unix.EPOLLIN, Fd: int32(p.wakeR)}} {
		if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, int(ev.Fd), &ev); err != nil {
			p.Close()
			return nil, fmt.Errorf("peek %s: epoll: %w", f.Name(), err)
		}
	}
	// tee(2) of an empty pipe says EAGAIN; EINVAL means it cannot tee.
	if _, err := unix.Tee(p.in, p.privW, 0, unix.SPLICE_F_NONBLOCK); err != nil && err != unix.EAGAIN {
		p.Close()
		return nil, fmt.Errorf("peek %s: tee: %w", f.Name(), err)
	}
	return p, nil
}

// Read returns bytes of the pipe not returned before, waiting for some. It
// returns io.EOF once the pipe is empty, or holds only returned bytes, and
// no writer is left.
func (p *Peek) Read(b []byte) (int, error) {
	wait := time.Millisecond
	for {
		if p.stopped.Load() {
			return 0, ErrStopped
		}
		n64, err := unix.Tee(p.in, p.privW, p.pending+len(b), unix.SPLICE_F_NONBLOCK)
		n := int(n64)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := p.poll(-1); err != nil {
				return 0, err
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("tee: %w", err)
		case n == 0:
			return 0, io.EOF
		}
		// The first p.pending bytes were returned before.
		if err := p.drainPrivate(p.pending); err != nil {
			return 0, err
		}
		if n == p.pending {
			if p.pending > 0 && p.pending >= p.Window() {
				// The pipe holds all it can (or was made smaller than
				// what it holds): the reader must cut the line now.
				return 0, nil
			}
			// Only an unfinished line sits in the pipe: wait for the
			// next write (the edge-triggered input), or the writers to
			// go. Kernels 5.5 to 5.14 may not report a write into a
			// pipe that was not empty, so look again after a short
			// wait too.
			if p.hungUp() {
				// The last write may have landed between the tee and
				// the hangup: look once more before calling it the end.
				m, err := unix.Tee(p.in, p.privW, p.pending+len(b), unix.SPLICE_F_NONBLOCK)
				if err == nil && int(m) == p.pending {
					if err := p.drainPrivate(p.pending); err != nil {
						return 0, err
					}
					return 0, io.EOF
				}
				if err == nil {
					p.drainPrivate(int(m)) // teed again below
				}
				continue
			}
			if err := p.poll(int(wait / time.Millisecond)); err != nil {
				return 0, err
			}
			if wait < 20*time.Millisecond {
				wait *= 2
			}
			continue
		}
		want := n - p.pending
		teed := 0
		if p.console != nil {
			// Zero-copy to the console while the bytes are still in the
			// private pipe; whatever tee(2) could not take is written below.
			teed = p.console.TeeFrom(p.privR, want)
		}
		got, err := io.ReadFull(fdReader(p.privR), b[:want])
		p.pending += got
		if p.console != nil && got > teed {
			p.console.Write(b[teed:got])
		}
		if err != nil {
			return got, fmt.Errorf("read private pipe: %w", err)
		}
		return got, nil
	}
}

// Commit consumes the first n bytes of the pipe: they were delivered.
func (p *Peek) Commit(n int) error {
	if n > p.pending {
		return fmt.Errorf("commit %d bytes: only %d read", n, p.pending)
	}
	for left := n; left > 0; {
		m, err := unix.Splice(p.in, nil, p.devnull, nil, left, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			// /dev/null without splice support: read into a scratch buffer.
			if err := p.consume(left); err != nil {
				return err
			}
			break
		}
		left -= int(m)
	}
	p.pending -= n
	return nil
}

func (p *Peek) consume(n int) error {
	if p.discard == nil {
		p.discard = make([]byte, 64<<10)
	}
	for n > 0 {
		m, err := unix.Read(p.in, p.discard[:min(n, len(p.discard))])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("consume input: %w", err)
		}
		if m == 0 {
			return errors.New("consume input: EOF")
		}
		n -= m
	}
	return nil
}

func (p *Peek) drainPrivate(n int) error {
	if p.discard == nil {
		p.discard = make([]byte, 64<<10)
	}
	for n > 0 {
		m, err := unix.Read(p.privR, p.discard[:min(n, len(p.discard))])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read private pipe: %w", err)
		}
		n -= m
	}
	return nil
}

// poll waits up to ms milliseconds (-1: no limit) for a write to the
// input since the last wait, a hangup, or Stop. It may return early, for a
// write already seen: callers look at the pipe again either way.
func (p *Peek) poll(ms int) error {
	var ev [2]unix.EpollEvent
	for {
		_, err := unix.EpollWait(p.ep, ev[:], ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for input: %w", err)
		}
		return nil
	}
}

func (p *Peek) hungUp() bool {
	fds := []unix.PollFd{{Fd: int32(p.in), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLHUP != 0
}

// Stop makes Read return ErrStopped, at once if it is waiting.
func (p *Peek) Stop() {
	p.stopped.Store(true)
	unix.Write(p.wakeW, []byte{1})
}

// Close releases the private descriptors, not the input.
func (p *Peek) Close() error {
	for _, fd := range []int{p.privR, p.privW, p.wakeR, p.wakeW, p.devnull, p.ep} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return nil
}

type fdReader int

func (f fdReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), b)
		if err == unix.EINTR {
			continue
		}
		if n == 0 && err == nil && len(b) > 0 {
			return 0, io.EOF
		}
		return n, err
	}
}

// Window is how many bytes Read may return before they must be committed
// (reader.Windowed): half of what the smaller of the two pipes can hold,
// less a page. A pipe holds its capacity only when writes fill whole
// pages; a writer whose writes do not fit the last page starts a new one,
// and two neighbouring pages then hold more than a page between them, so
// half is what a full pipe always holds. Read each time: whoever holds
// the write end may resize the pipe.
func (p *Peek) Window() int {
	page := os.Getpagesize()
	in, err := unix.FcntlInt(uintptr(p.in), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return page / 2
	}
	if priv, err := unix.FcntlInt(uintptr(p.privW), unix.F_GETPIPE_SZ, 0); err == nil && priv < in {
		// The private pipe must take all that is pending: grow it if
		// the input grew, else live with what it holds.
		if got, err := unix.FcntlInt(uintptr(p.privW), unix.F_SETPIPE_SZ, in); err == nil {
			priv = got
		}
		in = min(in, priv)
	}
	return max(1, (in-page)/2)
}

// Held returns how many bytes the pipe f holds now and how many it surely
// can hold: half its capacity less a page, as Peek.Window explains
// (0, 0 when f is not a pipe).
func Held(f *os.File) (held, limit int) {
	fd := uintptr(f.Fd())
	n, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
	if err != nil {
		return 0, 0
	}
	if w := FdWindow(fd); w > 0 {
		return n, w
	}
	return 0, 0
}

// FileWindow is FdWindow for an open file, without putting it in
// blocking mode (as File.Fd would): what a reader that consumes the pipe
// cuts a line at, so that its messages are those a peeking one makes.
func FileWindow(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var w int
	if err := rc.Control(func(fd uintptr) { w = FdWindow(fd) }); err != nil {
		return 0
	}
	return w
}

// FdWindow returns the most a Peek on the pipe fd returns uncommitted
// (Peek.Window), or 0 when fd is not a pipe: the longest message a
// peeking reader makes, whatever line-max says.
func FdWindow(fd uintptr) int {
	size, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0
	}
	return max(1, (size-os.Getpagesize())/2)
}

// LineEnd looks at the first most bytes the pipe f holds, without
// consuming them (tee(2) into a pipe of its own), and returns how many of
// them end the line they begin: through the first newline (nl true), or
// all it saw when none of them is one. The supervisor's relief reads
// that much at once to finish a line it cut, where a byte at a time took
// two system calls a byte, long enough for a fast writer to fill the
// pipe behind it.
func LineEnd(f *os.File, most int) (n int, nl bool, err error) {
	var pp [2]int
	if err := unix.Pipe2(pp[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return 0, false, fmt.Errorf("line end: pipe: %w", err)
	}
	defer unix.Close(pp[0])
	defer unix.Close(pp[1])
	// A pipe's room is counted in pages, each partly filled (the input's
	// first one partly read): twice most holds most bytes. tee(2) copies
	// no bytes, only references to the input's pages.
	if size, err := unix.FcntlInt(uintptr(pp[1]), unix.F_GETPIPE_SZ, 0); err == nil && size < 2*most {
		if got, err := unix.FcntlInt(uintptr(pp[1]), unix.F_SETPIPE_SZ, 2*most); err == nil {
			size = got
		}
		most = min(most, size/2)
	}
	var teed int64
	for {
		teed, err = unix.Tee(int(f.Fd()), pp[1], most, unix.SPLICE_F_NONBLOCK)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EAGAIN {
		return 0, false, nil // empty
	}
	if err != nil {
		return 0, false, fmt.Errorf("line end: tee: %w", err)
	}
	buf := make([]byte, teed)
	if _, err := io.ReadFull(fdReader(pp[0]), buf); err != nil {
		return 0, false, fmt.Errorf("line end: read: %w", err)
	}
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		return i + 1, true, nil
	}
	return len(buf), false, nil
}
