package filelog

import (
	"bytes"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

// A message encoded in pieces is byte for byte the message encoded whole,
// whatever the piece size: pieces end between UTF-8 sequences, never
// inside one (a cut sequence would be written as \ufffd).
func TestJSONPiecesMatchWhole(t *testing.T) {
	alphabet := []byte("ab <>&\"\\\n\r\t\x00\x1f\x7f\x80\xbf\xc3\xa9\xe2\x80\xa8\xa9\xf0\x9f\x99\x82\xff")
	rng := rand.New(rand.NewSource(2))
	ts := []byte("2024-01-02T03:04:05.0000006Z")
	for i := 0; i < 3000; i++ {
		line := make([]byte, 1+rng.Intn(200))
		for j := range line {
			line[j] = alphabet[rng.Intn(len(alphabet))]
		}
		nl := rng.Intn(2) == 0
		var attrs []byte
		if rng.Intn(2) == 0 {
			attrs = []byte(`{"a":"b"}`)
		}
		want := appendJSON(nil, line, nl, "stderr", attrs, ts)
		p := jsonPieces{line: line, newline: nl, stream: "stderr", attrs: attrs, ts: ts, piece: 1 + rng.Intn(9)}
		var got []byte
		for done := false; !done; {
			got, done = p.next(got)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("line %q in pieces of %d:\n got %s\nwant %s", line, p.piece, got, want)
		}
	}
}

// A long message is written through a buffer of FlushSize and a piece,
// and a disk that refuses part of it leaves whole records only: what was
// written of the message is cut, the message is refused (the caller
// tries it again) and counted nowhere, and the next try writes it whole.
// The disk is RLIMIT_FSIZE: a write past it is short, then fails (EFBIG).
func TestLongMessageCutOnFailedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	j, err := NewJSON(Options{Path: path, MaxSize: -1, MaxFiles: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	a := new(acct)
	j.SetAccounting(a)
	jlog(t, j, "short")
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	before := st.Size()

	long := make([]byte, 200<<10) // control bytes: six bytes each as JSON
	for i := range long {
		long[i] = byte(i % 32)
	}
	msg := func() *logger.Message {
		m := logger.NewMessage()
		m.Line = append(m.Line[:0], long...)
		m.Source, m.Timestamp = "stdout", time.Unix(2, 0)
		return m
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(before) + 300<<10 // some pieces go through, not all
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	err = j.Log(msg())
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if err == nil {
		t.Fatal("a write past the file size limit says nil")
	}
	if st, _ := os.Stat(path); st.Size() != before {
		t.Fatalf("file is %d bytes after the failed message, want %d (its written part cut)", st.Size(), before)
	}
	if l, b := j.Unwritten(); l != 0 || b != 0 {
		t.Fatalf("unwritten %d lines %d bytes after a refused message", l, b)
	}
	if len(j.file.buf) != 0 || cap(j.file.buf) > 2*FlushSize {
		t.Fatalf("buffer holds %d bytes (cap %d) after a refused message", len(j.file.buf), cap(j.file.buf))
	}
	if err := j.Log(msg()); err != nil {
		t.Fatal(err)
	}
	if cap(j.file.buf) > 2*FlushSize {
		t.Errorf("buffer grew to %d for a %d-byte line", cap(j.file.buf), len(long))
	}
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	if a.written != 2 || a.writtenBytes != int64(5+len(long)) || a.lost != nil {
		t.Errorf("written %d lines %d bytes, lost %v; want 2 lines, %d bytes", a.written, a.writtenBytes, a.lost, 5+len(long))
	}
	got, _ := os.ReadFile(path)
	want := appendJSON(nil, []byte("short"), true, "stdout", nil, []byte(time.Unix(1, 0).UTC().Format(time.RFC3339Nano)))
	want = appendJSON(want, long, true, "stdout", nil, []byte(time.Unix(2, 0).UTC().Format(time.RFC3339Nano)))
	if !bytes.Equal(got, want) {
		t.Errorf("file holds %d bytes, want %d: %.200q", len(got), len(want), got)
	}
}
