package filelog

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

type acct struct {
	mu                    sync.Mutex
	written, writtenBytes int64
	lost                  map[string][2]int64
}

func (a *acct) Written(l, b int64) {
	a.mu.Lock()
	a.written += l
	a.writtenBytes += b
	a.mu.Unlock()
}

func (a *acct) Lost(l, b int64, reason string) {
	a.mu.Lock()
	if a.lost == nil {
		a.lost = map[string][2]int64{}
	}
	r := a.lost[reason]
	a.lost[reason] = [2]int64{r[0] + l, r[1] + b}
	a.mu.Unlock()
}

func jlog(t *testing.T, j *JSON, s string) {
	t.Helper()
	m := logger.NewMessage()
	m.Line = append(m.Line, s...)
	m.Source = "stdout"
	m.Timestamp = time.Unix(1, 0)
	if err := j.Log(m); err != nil {
		t.Fatal(err)
	}
}

// TestAccountingCountsOnlyWhatWasWritten: a message taken
// into the buffer is reported written only once its write(2) succeeded;
// what a full disk refuses at Close is reported lost as "disk-full", and
// the file holds exactly the written lines.
func TestAccountingCountsOnlyWhatWasWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	j, err := NewJSON(Options{Path: path, MaxSize: -1, MaxFiles: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := new(acct)
	j.SetAccounting(a)
	jlog(t, j, "one")
	jlog(t, j, "two")
	if a.written != 0 {
		t.Fatalf("written %d before any write(2)", a.written)
	}
	unwritten := func(lines, bytes int64) {
		t.Helper()
		if l, b := j.Unwritten(); l != lines || b != bytes {
			t.Fatalf("unwritten %d lines %d bytes, want %d and %d", l, b, lines, bytes)
		}
	}
	unwritten(2, 6)
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	unwritten(0, 0)
	if a.written != 2 || a.writtenBytes != 6 {
		t.Fatalf("after Flush: written %d lines %d bytes, want 2 and 6", a.written, a.writtenBytes)
	}
	// The disk fills: three more are taken, none can be written.
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	good := j.file.f
	j.file.f = full
	for _, s := range []string{"three", "four", "five!"} {
		jlog(t, j, s)
	}
	if err := j.Flush(); err == nil {
		t.Fatal("Flush to a full disk says nil")
	}
	if a.written != 2 {
		t.Fatalf("written %d after a failed write", a.written)
	}
	unwritten(3, 14) // what a killed worker would lose: its successor counts it
	err = j.Close()
	good.Close()
	if err == nil || !strings.Contains(err.Error(), "no space") {
		t.Errorf("Close: %v", err)
	}
	if a.written != 2 || a.lost["disk-full"] != [2]int64{3, 14} {
		t.Errorf("written %d, lost %v; want 2 written, 3 lines (14 bytes) lost as disk-full", a.written, a.lost)
	}
	unwritten(0, 0) // counted lost
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Errorf("file holds %d lines: %q", n, b)
	}
}

// TestAccountingBigBuffer: messages written by the buffer's own flush (at
// 64 KiB) and by rotation are reported too, each once.
func TestAccountingBigBuffer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	j, err := NewJSON(Options{Path: path, MaxSize: 100 << 10, MaxFiles: 3, Compress: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := new(acct)
	j.SetAccounting(a)
	line := strings.Repeat("x", 999)
	const n = 500
	for i := 0; i < n; i++ {
		jlog(t, j, line)
	}
	if a.written == 0 || a.written == n {
		t.Errorf("written %d of %d before Close", a.written, n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if a.written != n || a.writtenBytes != n*999 || len(a.lost) != 0 {
		t.Errorf("written %d (%d bytes), lost %v", a.written, a.writtenBytes, a.lost)
	}
}
