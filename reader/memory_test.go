package reader_test

import (
	"io"
	"runtime"
	"testing"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/reader"
)

// pausing is a peeking source (Committer, Windowed) that returns at most
// max bytes a read and at most window uncommitted, and stops once, after
// pauseAt bytes, until told to go on: the test looks at the heap there.
type pausing struct {
	data                 []byte
	read, committed      int
	max, window, pauseAt int
	// beyond: reads are not held to the window (as tee(2) on a pipe
	// returns all it holds, however far past the window)
	beyond       bool
	paused, goOn chan struct{}
}

func (p *pausing) Read(b []byte) (int, error) {
	if p.read >= p.pauseAt && p.paused != nil {
		close(p.paused)
		p.paused = nil
		<-p.goOn
	}
	if p.read == len(p.data) {
		return 0, io.EOF
	}
	n := min(len(b), p.max, len(p.data)-p.read)
	if p.window > 0 && !p.beyond {
		n = min(n, p.window-(p.read-p.committed))
	}
	if p.read < p.pauseAt {
		n = min(n, p.pauseAt-p.read)
	}
	copy(b, p.data[p.read:p.read+n])
	p.read += n
	return n, nil
}

func (p *pausing) Commit(n int) error { p.committed += n; return nil }

func (p *pausing) Window() int { return p.window }

// lenSink borrows and keeps nothing: what is on the heap is the reader's.
type lenSink struct{ bytes, longest int }

func (s *lenSink) Log(m *logger.Message) error { return s.LogBorrowed(m) }

func (s *lenSink) LogBorrowed(m *logger.Message) error {
	s.bytes += len(m.Line)
	s.longest = max(s.longest, len(m.Line))
	return nil
}

// heapDuring runs Copy over src and returns how much more the heap holds
// at src's pause than before Copy began, after a collection.
func heapDuring(t *testing.T, src *pausing, lineMax int) uint64 {
	t.Helper()
	src.paused, src.goOn = make(chan struct{}), make(chan struct{})
	paused := src.paused
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	sink := &lenSink{}
	done := make(chan error)
	go func() {
		r := &reader.Reader{Source: "stdout", LineMax: lineMax, Sink: sink}
		done <- r.Copy(src)
	}()
	<-paused
	runtime.GC()
	runtime.ReadMemStats(&ms)
	close(src.goOn)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sink.bytes != len(src.data)-countNewlines(src.data) {
		t.Fatalf("sink got %d bytes of %d", sink.bytes, len(src.data)-countNewlines(src.data))
	}
	return ms.HeapAlloc - min(before, ms.HeapAlloc)
}

func countNewlines(b []byte) (n int) {
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

// The reader's buffer holds the longest message and one read, and no
// more: a peeking source's window bounds it, whatever line-max says, and
// once a long line is done its room is let go, not kept for short lines.
// (At a large line-max the buffer was kept at line-max plus a read, and
// grew past a window by doubling.)
func TestReaderBufferBounded(t *testing.T) {
	const lineMax = 8 << 20
	long := make([]byte, 3<<20)
	for i := range long {
		long[i] = 'x'
	}
	t.Run("window", func(t *testing.T) {
		// Paused mid-line, 600 KiB into it: a 512 KiB window and one
		// read at most.
		src := &pausing{data: append(long, '\n'), max: 200 << 10, window: 512 << 10, pauseAt: 600 << 10}
		// The window and a read are 768 KiB.
		if got := heapDuring(t, src, lineMax); got > 1<<20 {
			t.Errorf("the reader holds %d KiB mid-line with a 512 KiB window", got>>10)
		}
	})
	t.Run("after a long line", func(t *testing.T) {
		data := append(append(append([]byte{}, long...), '\n'), "short\n"...)
		src := &pausing{data: data, max: 1 << 20, pauseAt: len(data)}
		if got := heapDuring(t, src, lineMax); got > 400<<10 {
			t.Errorf("the reader holds %d KiB after a 3 MiB line", got>>10)
		}
	})
}

// A source that returns more than its window (a pipe holds more than the
// window it surely holds) is read no further than the window and 4 KiB:
// no message is longer (reader.Longest), and a 4 MiB line cut into eight
// messages costs the reader one buffer, not one (and its regrowth) per
// cut. (Reads of 256 KiB made messages of the window and a read, and the
// buffer was let go after each cut: about twice a message in garbage per
// message.)
func TestReaderWindowCut(t *testing.T) {
	const lineMax, window = 8 << 20, 512 << 10
	long := make([]byte, 4<<20)
	for i := range long {
		long[i] = 'x'
	}
	data := append(long, '\n')
	src := &pausing{data: data, max: 1 << 20, window: window, beyond: true}
	sink := &lenSink{}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := &reader.Reader{Source: "stdout", LineMax: lineMax, Sink: sink}
	if err := r.Copy(src); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if sink.bytes != len(long) {
		t.Fatalf("sink got %d bytes of %d", sink.bytes, len(long))
	}
	if want := reader.Longest(lineMax, window); sink.longest > want || want != window+4<<10 {
		t.Errorf("longest message %d bytes; Longest says %d, want at most the window and 4 KiB, %d", sink.longest, want, window+4<<10)
	}
	// The buffer grows by doubling to the window and 4 KiB: under
	// 2 MiB in all, where a buffer per cut made over 8 MiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
		t.Errorf("the reader allocated %d KiB for one 4 MiB line cut at a 512 KiB window", got>>10)
	}
}
