package diag

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSnapshotConsistent: writers read lines and then deliver or drop
// them, and some move delivered lines to dropped (a driver that gave up),
// while snapshots are taken: every one must have delivered + dropped <=
// read, for lines and for bytes (a stats line showed more
// delivered than read).
func TestSnapshotConsistent(t *testing.T) {
	c := new(Counters)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := c.Stream([]string{"stdout", "stderr"}[w%2])
			for i := 0; !stop.Load(); i++ {
				s.Lines.Add(1)
				s.Bytes.Add(10)
				switch i % 3 {
				case 0:
					c.Delivered.Add(1)
					c.DeliveredBytes.Add(10)
				case 1:
					c.Drop("buffer-full", 1, 10)
				case 2: // delivered, then given up on
					c.Delivered.Add(1)
					c.DeliveredBytes.Add(10)
					c.Delivered.Add(-1)
					c.DeliveredBytes.Add(-10)
					c.Drop("driver-gave-up", 1, 10)
				}
			}
		}(w)
	}
	get := func(kv []KV, k string) int64 {
		for _, e := range kv {
			if e.Key == k {
				n, _ := strconv.ParseInt(e.Value, 10, 64)
				return n
			}
		}
		t.Fatalf("no %s", k)
		return 0
	}
	for n := 0; n < 20000; n++ {
		kv := c.Snapshot()
		r, d, x := get(kv, "lines_read"), get(kv, "lines_delivered"), get(kv, "lines_dropped")
		br, bd, bx := get(kv, "bytes_read"), get(kv, "bytes_delivered"), get(kv, "bytes_dropped")
		if d+x > r || bd+bx > br || d < 0 {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("snapshot %d: read %d, delivered %d + dropped %d; bytes read %d, delivered %d + dropped %d", n, r, d, x, br, bd, bx)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestQuote(t *testing.T) {
	if q := Quote("a\nb"); q != `"a\nb"` {
		t.Errorf("Quote = %s", q)
	}
	long := strings.Repeat("é", 300) // 600 bytes
	q := Quote(long)
	if len(q) > MaxQuote+40 || !strings.Contains(q, "(600 bytes in all)") || strings.Contains(q, `\x`) {
		t.Errorf("Quote(600 bytes) = %s", q)
	}
}

// TestErrorsLineCapped: an error line quoting a huge value (a 4 KB path,
// a 10 KB error) stays one line of at most about MaxLine bytes, with no
// control character in it.
func TestErrorsLineCapped(t *testing.T) {
	var b strings.Builder
	e := NewErrors(&b)
	e.Printf("open %s: too long", strings.Repeat("x", 10000)+"\r\x1b[2J")
	out := b.String()
	if len(out) > MaxLine+64 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "bytes cut") {
		t.Errorf("line of %d bytes: %.100q", len(out), out)
	}
	b.Reset()
	e.Printf("id %s", "a\x1bb\x7f")
	if got := b.String(); got != "dockerlogger: id a\\x1bb\\x7f\n" {
		t.Errorf("got %q", got)
	}
}

// TestWriteFileNeverThroughLink: a link planted at the stats file's name
// (or the temporary name's directory being a link) never makes WriteFile
// write another file: the link is replaced by the stats file, and a
// stats directory that is a link is refused.
func TestWriteFileNeverThroughLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	path := filepath.Join(dir, "stats.prom")
	os.Symlink(victim, path)
	c := new(Counters)
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("victim now %q", b)
	}
	if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
		t.Errorf("stats file: %v %v", st, err)
	}
	real := filepath.Join(dir, "real")
	os.Mkdir(real, 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(real, link)
	if err := c.WriteFile(filepath.Join(link, "stats.prom")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("stats in a linked directory: %v", err)
	}
	if ents, _ := os.ReadDir(real); len(ents) != 0 {
		t.Errorf("written through the linked directory: %v", ents)
	}
}
