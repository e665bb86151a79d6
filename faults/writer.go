package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	lineSize = 100 // bytes per numbered line, newline included
	// batch lines per write(2): 4000 bytes, under PIPE_BUF, so a write
	// is all or nothing and "written" is exact even when it fails.
	batch = 40
	// errBase numbers stderr's lines apart from stdout's.
	errBase = 100_000_000
)

// line returns numbered line seq, newline included.
func line(seq int) []byte {
	b := fmt.Appendf(make([]byte, 0, lineSize), "seq=%09d msg=", seq)
	for len(b) < lineSize-1 {
		b = append(b, "the quick brown fox jumps over the lazy dog "[len(b)%44])
	}
	return append(b, '\n')
}

// seqOf finds the number in a delivered message, or -1.
func seqOf(msg string) int {
	i := strings.Index(msg, "seq=")
	if i < 0 || len(msg) < i+4+9 {
		return -1
	}
	n, err := strconv.Atoi(msg[i+4 : i+4+9])
	if err != nil {
		return -1
	}
	return n
}

// writer is the application writing one stream: it times each write(2)
// and counts what the pipe accepted.
type writer struct {
	f     *os.File
	first int // the first line number
	next  int // the next line number

	mu       sync.Mutex
	written  int // messages the logger should see for what was written
	maxBlock time.Duration
	err      error
}

func newWriter(f *os.File, first int) *writer { return &writer{f: f, first: first, next: first} }

// write makes one timed write(2) of p, which holds msgs messages.
func (w *writer) write(p []byte, msgs int) error {
	t0 := time.Now()
	_, err := w.f.Write(p)
	d := time.Since(t0)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxBlock = max(w.maxBlock, d)
	if err != nil {
		w.err = fmt.Errorf("write: %w", err)
		return w.err
	}
	w.written += msgs
	return nil
}

// lines writes n numbered lines at rate lines per second (0: as fast as
// the pipe takes them), batch lines per write.
func (w *writer) lines(n, rate int) error {
	start := time.Now()
	done := 0
	buf := make([]byte, 0, batch*lineSize)
	for done < n {
		if rate > 0 {
			due := int(time.Since(start).Seconds() * float64(rate))
			if due <= done {
				time.Sleep(time.Millisecond)
				continue
			}
		}
		k := min(batch, n-done)
		buf = buf[:0]
		for i := 0; i < k; i++ {
			buf = append(buf, line(w.next+i)...)
		}
		if err := w.write(buf, k); err != nil {
			return err
		}
		w.next += k
		done += k
	}
	return nil
}

// last is the number of the last line written, or -1.
func (w *writer) last() int { return w.next - 1 }

func (w *writer) close() { w.f.Close() }

func (w *writer) result() (written int, maxBlock time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written, w.maxBlock, w.err
}

// long writes one numbered line of size bytes (newline included), 64 KiB
// per write(2) every 2 ms (32 MB/s: a pace any mode keeps up with, so a
// blocked write is the logger's doing, not the pipe's throughput): longer
// than the pipe, it reaches the sink as partial messages, the first of
// which carries the number.
func (w *writer) long(size int) error {
	b := fmt.Appendf(make([]byte, 0, size), "seq=%09d msg=", w.next)
	for len(b) < size-1 {
		b = append(b, 'x')
	}
	b = append(b, '\n')
	for len(b) > 64<<10 {
		if err := w.write(b[:64<<10], 0); err != nil {
			return err
		}
		b = b[64<<10:]
		time.Sleep(2 * time.Millisecond)
	}
	if err := w.write(b, 1); err != nil {
		return err
	}
	w.next++
	return nil
}
