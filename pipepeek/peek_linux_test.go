package pipepeek

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A Peek leaves in the pipe what it returned but was not committed: a new
// Peek on the same pipe (the next worker) reads those bytes again, then
// the rest, to EOF.
func TestPeekKeepsUncommitted(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := []byte("one\ntwo\nthree\nunfinished")
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	p, err := NewPeek(r)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := p.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], data) {
		t.Fatalf("first read %q, %v", buf[:n], err)
	}
	if err := p.Commit(4); err != nil { // "one\n" delivered
		t.Fatal(err)
	}
	p.Close() // the worker dies here

	w.Write([]byte(" line\n"))
	w.Close()
	p2, err := NewPeek(r)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	got, err := io.ReadAll(p2)
	if err != nil {
		t.Fatal(err)
	}
	if want := "two\nthree\nunfinished line\n"; string(got) != want {
		t.Fatalf("next worker read %q, want %q", got, want)
	}
}

// The writer's last bytes and its close can land between two looks at
// the pipe: Read must still return them before io.EOF.
func TestPeekLastWriteBeforeHangup(t *testing.T) {
	for i := 0; i < 200; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPeek(r)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("partial"))
		done := make(chan []byte)
		go func() {
			var got []byte
			buf := make([]byte, 64)
			for {
				n, err := p.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					done <- got
					return
				}
			}
		}()
		w.Write([]byte(" end\n"))
		w.Close()
		if got := <-done; string(got) != "partial end\n" {
			t.Fatalf("run %d: read %q", i, got)
		}
		p.Close()
		r.Close()
	}
}

// An unfinished line left in the pipe must not keep Read busy: it waits
// for the next write, as read(2) would. The sleep is the interval being
// measured (CPU used while nothing is written), not a synchronisation.
func TestPeekIdleOnUnfinishedLine(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	w.Write([]byte("partial"))
	p, err := NewPeek(r)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	buf := make([]byte, 64)
	if n, err := p.Read(buf); err != nil || string(buf[:n]) != "partial" {
		t.Fatalf("first read %q, %v", buf[:n], err)
	}
	before := cpuTime(t)
	got := make(chan string, 1)
	go func() {
		n, err := p.Read(buf)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	time.Sleep(200 * time.Millisecond)
	used := cpuTime(t) - before
	w.Write([]byte(" end\n"))
	if s := <-got; s != " end\n" {
		t.Fatalf("second read %q", s)
	}
	if used > 40*time.Millisecond {
		t.Fatalf("Read used %v of CPU in 200ms waiting for the rest of a line", used)
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// LineEnd finds where the line at the pipe's front ends, within most
// bytes, and consumes nothing: the relief reads exactly that much.
func TestLineEnd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if n, nl, err := LineEnd(r, 100); n != 0 || nl || err != nil {
		t.Fatalf("empty pipe: %d, %v, %v", n, nl, err)
	}
	long := bytes.Repeat([]byte("x"), 70<<10) // longer than a default pipe page set
	unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	data := append(append([]byte("tail of a cut line\nnext\n"), long...), '\n')
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		most, n int
		nl      bool
	}{{100, 19, true}, {19, 19, true}, {10, 10, false}} {
		if n, nl, err := LineEnd(r, c.most); n != c.n || nl != c.nl || err != nil {
			t.Errorf("LineEnd(%d) = %d, %v, %v; want %d, %v", c.most, n, nl, err, c.n, c.nl)
		}
	}
	io.ReadFull(r, make([]byte, 24)) // the two short lines
	// Within 64 KiB of a line of 70 KiB: no newline, all 64 KiB.
	if n, nl, err := LineEnd(r, 64<<10); n != 64<<10 || nl || err != nil {
		t.Errorf("in a long line: %d, %v, %v; want %d, false", n, nl, err, 64<<10)
	}
	// Nothing was consumed: the pipe still holds the whole long line.
	rest := make([]byte, len(long)+1)
	if _, err := io.ReadFull(r, rest); err != nil || !bytes.Equal(rest, append(long, '\n')) {
		t.Fatalf("after LineEnd the pipe held %d bytes, %v", len(rest), err)
	}
}
