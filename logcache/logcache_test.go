package logcache

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/readback"
)

type countSink struct{ n, flushes int }

func (s *countSink) Log(m *logger.Message) error { s.n++; logger.PutMessage(m); return nil }
func (s *countSink) Flush() error                { s.flushes++; return nil }

// TestTeeKeepsOrCounts: every message reaches the sink; each is either in
// the cache file or counted in lines_dropped_cache (a buffer of a few
// lines makes drops likely), never both, never neither.
func TestTeeKeepsOrCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-cached.log")
	var count diag.Counters
	var reported []error
	c, err := Open(Options{Path: path, MaxSize: 1 << 20, MaxFiles: 2, Buffer: 4 * overhead}, &count,
		func(err error) { reported = append(reported, err) })
	if err != nil {
		t.Fatal(err)
	}
	sink := &countSink{}
	tee := c.Tee(sink)
	const n = 20000
	for i := 0; i < n; i++ {
		m := logger.NewMessage()
		m.Source, m.Timestamp = "stdout", time.Unix(int64(i), 0)
		m.Line = fmt.Appendf(m.Line[:0], "line %d", i)
		tee.Log(m)
	}
	tee.(interface{ Flush() error }).Flush()
	if err := c.Close(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if sink.n != n || sink.flushes != 1 {
		t.Errorf("sink got %d messages and %d flushes, want %d and 1", sink.n, sink.flushes, n)
	}
	cached, dropped := count.Cached.Load(), count.CacheDropped.Load()
	if cached+dropped != n || count.Dropped.Load() != 0 {
		t.Errorf("cached %d + dropped from the cache %d != %d (delivery drops %d)", cached, dropped, n, count.Dropped.Load())
	}
	if dropped > 0 && len(reported) == 0 {
		t.Errorf("%d lines dropped from the cache, nothing said", dropped)
	}
	var out bytes.Buffer
	if err := readback.Read(context.Background(), path, readback.Options{Tail: -1, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if got := int64(bytes.Count(out.Bytes(), []byte("\n"))); got != cached {
		t.Errorf("the cache file holds %d lines, %d counted cached", got, cached)
	}
	if !bytes.HasPrefix(out.Bytes(), []byte("line 0\n")) {
		t.Errorf("the cache does not start with the first line: %.40q", out.Bytes())
	}
	t.Logf("%d cached, %d dropped", cached, dropped)
}

// TestOpenFails: a cache-path whose directory is a file cannot be opened,
// and says so.
func TestOpenFails(t *testing.T) {
	var count diag.Counters
	_, err := Open(Options{Path: "/dev/null/x-cached.log", MaxSize: 1 << 20, MaxFiles: 1}, &count, func(error) {})
	if err == nil {
		t.Fatalf("opened a cache under /dev/null: %v", err)
	}
	if count.CacheOn.Load() {
		t.Error("the counters show a cache that is not there")
	}
}

// leaveSink borrows and leaves every other message to the next worker
// (reader.Leaver).
type leaveSink struct{ n int }

type handover struct{}

func (handover) Error() string  { return "left" }
func (handover) Handover() bool { return true }

func (s *leaveSink) Log(m *logger.Message) error         { logger.PutMessage(m); return nil }
func (s *leaveSink) LogBorrowed(m *logger.Message) error { return nil }
func (s *leaveSink) FlushOrLeave() error                 { return nil }
func (s *leaveSink) LogOrLeave(m *logger.Message) error {
	s.n++
	if s.n%2 == 0 {
		return handover{}
	}
	return nil
}

// TestTeeSkipsLeftMessages: a message the sink leaves to the next worker
// is not cached here: the next worker's cache keeps it when it reads it
// again, so the cache holds each line once.
func TestTeeSkipsLeftMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-cached.log")
	var count diag.Counters
	c, err := Open(Options{Path: path, MaxSize: 1 << 20, MaxFiles: 2}, &count, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	tee, ok := c.Tee(&leaveSink{}).(interface {
		LogOrLeave(*logger.Message) error
	})
	if !ok {
		t.Fatal("the tee of a Leaver is not one")
	}
	for i := range 10 {
		m := logger.Message{Source: "stdout", Timestamp: time.Unix(int64(i), 0), Line: fmt.Appendf(nil, "line %d", i)}
		tee.LogOrLeave(&m)
	}
	if err := c.Close(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := readback.Read(context.Background(), path, readback.Options{Tail: -1, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if want := "line 0\nline 2\nline 4\nline 6\nline 8\n"; out.String() != want || count.Cached.Load() != 5 {
		t.Errorf("cached %d lines:\n%s\nwant 5:\n%s", count.Cached.Load(), out.String(), want)
	}
}

// TestCloseHandingOverKeepsLines: a cache closed for a handover has
// written what it held, rotations included, and the next worker's cache
// goes on in the same files; read back, the lines are there, in order.
// (Uncompressed: in one process a compression the handover left would
// race the next cache's, where a worker that hands over exits before the
// next one starts.)
func TestCloseHandingOverKeepsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h-cached.log")
	var count diag.Counters
	opts := Options{Path: path, MaxSize: 64 << 10, MaxFiles: 5}
	var want bytes.Buffer
	write := func(c *Cache, from, to int) {
		tee := c.Tee(&countSink{})
		for i := from; i < to; i++ {
			m := logger.NewMessage()
			m.Source, m.Timestamp = "stdout", time.Unix(int64(i), 0)
			m.Line = fmt.Appendf(m.Line[:0], "line %06d", i)
			fmt.Fprintf(&want, "line %06d\n", i)
			tee.Log(m)
		}
	}
	for w := 0; w < 3; w++ { // three workers, two handovers
		c, err := Open(opts, &count, func(err error) { t.Error(err) })
		if err != nil {
			t.Fatal(err)
		}
		write(c, w*3000, (w+1)*3000) // about 130 KB a worker: rotations
		if err := c.CloseHandingOver(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Open(opts, &count, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	c.Close(10 * time.Second)
	var out bytes.Buffer
	if err := readback.Read(context.Background(), path, readback.Options{Tail: -1, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if count.CacheDropped.Load() != 0 {
		t.Fatalf("%d lines dropped from the cache", count.CacheDropped.Load())
	}
	// The oldest rotated out (max-file): what is left is the newest, whole.
	if got := out.Bytes(); len(got) == 0 || !bytes.HasSuffix(want.Bytes(), got) || !bytes.HasPrefix(got, []byte("line ")) {
		t.Fatalf("read back %d bytes, not the end of what was written (%d bytes): %.40q", len(got), want.Len(), got)
	}
	if matches, _ := filepath.Glob(path + ".*"); len(matches) < 2 {
		t.Errorf("rotations %v: the test wants several", matches)
	}
	if int64(bytes.Count(out.Bytes(), []byte("\n"))) > count.Cached.Load() {
		t.Errorf("read back more lines than were counted cached (%d)", count.Cached.Load())
	}
}
