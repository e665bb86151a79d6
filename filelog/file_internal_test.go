package filelog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A write that fails keeps the buffered messages for the next flush, and
// once the buffer is full, refuses new messages (the caller retries them)
// instead of growing or taking a message twice.
func TestFailedWriteKeepsBufferAndRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	f, err := Open(Options{Path: path, MaxSize: -1, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	good := f.f
	bad, err := os.Open(path) // read-only: write(2) fails with EBADF
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	f.f = bad
	rec := bytes.Repeat([]byte("r"), 1000)
	rec[999] = '\n'
	enc := func(b []byte) []byte { return append(b, rec...) }
	accepted := 0
	var refused error
	for i := 0; i < 200 && refused == nil; i++ {
		f.mu.Lock()
		refused = f.append(time.Time{}, 999, enc)
		f.mu.Unlock()
		if refused == nil {
			accepted++
		}
	}
	if refused == nil {
		t.Fatal("a full buffer that cannot be written still takes messages")
	}
	if accepted < FlushSize/len(rec) || accepted > FlushSize/len(rec)+1 {
		t.Fatalf("%d messages taken before refusing, want about %d", accepted, FlushSize/len(rec))
	}
	if err := f.Flush(); err == nil {
		t.Fatal("Flush to a broken file says nil")
	}
	f.f = good
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat(rec, accepted); !bytes.Equal(b, want) {
		t.Fatalf("file holds %d bytes, want the %d taken messages once (%d bytes)", len(b), accepted, len(want))
	}
}
