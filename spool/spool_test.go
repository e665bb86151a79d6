package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// events collects what a spool reports.
type events struct {
	mu      sync.Mutex
	dropped []string
	why     []string
	corrupt []int64
}

func (e *events) opts(dir string) Options {
	return Options{Dir: dir, MaxSize: 64 << 20, Sync: SyncNever,
		Drop: func(rec *Record, why string) {
			e.mu.Lock()
			e.dropped = append(e.dropped, string(rec.Line))
			e.why = append(e.why, why)
			e.mu.Unlock()
		},
		Corrupt: func(n int64, err error) {
			e.mu.Lock()
			e.corrupt = append(e.corrupt, n)
			e.mu.Unlock()
		}}
}

func open(t *testing.T, o Options) *Spool {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func line(i int) string { return fmt.Sprintf("line %06d %s", i, strings.Repeat("x", i%50)) }

func appendN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		rec := &Record{Stderr: i%3 == 0, Time: int64(i) * 1000, Line: []byte(line(i))}
		if i%5 == 0 {
			rec.Partial, rec.Ordinal, rec.ID, rec.Last = true, int32(i%7+1), fmt.Sprintf("id%d", i), i%2 == 0
		}
		if err := s.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// drain takes every record there is (without waiting for more) and
// acknowledges each batch; it returns the lines and the replayed count.
func drain(t *testing.T, s *Spool, batch int) ([]string, int) {
	t.Helper()
	var out []string
	replayed := 0
	for s.Len() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, err := s.Next(ctx, batch)
		cancel()
		if err != nil {
			t.Fatalf("next: %v (holding %d bytes)", err, s.Len())
		}
		for _, r := range b.Records {
			out = append(out, string(r.Line))
		}
		replayed += b.Replayed
		if err := s.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	return out, replayed
}

func want(from, n int) []string {
	var w []string
	for i := from; i < from+n; i++ {
		w = append(w, line(i))
	}
	return w
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d (first %q)", what, len(got), len(want), first(got))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: record %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestAppendNextAck(t *testing.T) {
	for _, noPunch := range []bool{false, true} {
		t.Run(fmt.Sprintf("nopunch=%v", noPunch), func(t *testing.T) {
			e := &events{}
			o := e.opts(filepath.Join(t.TempDir(), "spool"))
			o.NoPunch, o.SegmentSize = noPunch, 4096
			s := open(t, o)
			appendN(t, s, 0, 500)
			ctx := context.Background()
			b, err := s.Next(ctx, 1)
			if err != nil || len(b.Records) != 1 {
				t.Fatalf("next = %d records, %v", len(b.Records), err)
			}
			r := b.Records[0]
			if string(r.Line) != line(0) || !r.Stderr || !r.Partial || r.ID != "id0" || r.Ordinal != 1 || !r.Last || r.Time != 0 || r.Seq != 1 {
				t.Fatalf("record 0 = %+v", r)
			}
			if _, err := s.Next(ctx, 1); err == nil {
				t.Fatal("Next before Ack succeeded")
			}
			s.Ack()
			got, replayed := drain(t, s, 1000)
			same(t, "delivered", got, want(1, 499))
			if replayed != 0 || len(e.corrupt) != 0 || len(e.dropped) != 0 {
				t.Fatalf("replayed %d corrupt %v dropped %v", replayed, e.corrupt, e.dropped)
			}
			// Empty: the spool holds nothing on disk either.
			if files := segFiles(t, o.Dir); len(files) != 1 || fileSize(t, files[0]) != 0 {
				t.Fatalf("drained spool left %v (%d bytes)", files, fileSize(t, files[0]))
			}
			// A waiting Next gets records appended later.
			got2 := make(chan string)
			go func() {
				b, err := s.Next(ctx, 100)
				if err != nil {
					got2 <- err.Error()
					return
				}
				got2 <- string(b.Records[0].Line)
				s.Ack()
			}()
			appendN(t, s, 7, 1)
			if g := <-got2; g != line(7) {
				t.Fatalf("waiting Next got %q", g)
			}
		})
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(m)
	return m
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func blocks(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks
}

func TestRestartReplaysUnacked(t *testing.T) {
	for _, noPunch := range []bool{false, true} {
		t.Run(fmt.Sprintf("nopunch=%v", noPunch), func(t *testing.T) {
			e := &events{}
			o := e.opts(filepath.Join(t.TempDir(), "spool"))
			o.NoPunch, o.SegmentSize = noPunch, 8192
			s := open(t, o)
			appendN(t, s, 0, 1000)
			ctx := context.Background()
			acked := 0
			for acked < 300 { // acknowledge some batches
				b, err := s.Next(ctx, 2000)
				if err != nil {
					t.Fatal(err)
				}
				acked += len(b.Records)
				s.Ack()
			}
			b, err := s.Next(ctx, 2000) // handed out, never acknowledged
			if err != nil {
				t.Fatal(err)
			}
			inflight := len(b.Records)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, o)
			if s.Punching() == noPunch && !noPunch {
				t.Logf("filesystem without hole punching: testing segments")
			}
			got, replayed := drain(t, s, 2000)
			same(t, "after restart", got, want(acked, 1000-acked))
			if replayed != inflight {
				t.Fatalf("replayed %d, want the unacknowledged batch of %d", replayed, inflight)
			}
			// Sequence numbers go on after a restart.
			appendN(t, s, 2000, 1)
			b, _ = s.Next(ctx, 10)
			if b.Records[0].Seq != 1001 || b.Replayed != 0 {
				t.Fatalf("after restart: seq %d replayed %d", b.Records[0].Seq, b.Replayed)
			}
			s.Ack()
			s.Close()
			s = open(t, o)
			if n := s.Len(); n != 0 {
				t.Fatalf("fully acknowledged spool holds %d bytes after restart", n)
			}
			if len(e.corrupt) != 0 {
				t.Fatalf("corrupt %v", e.corrupt)
			}
		})
	}
}

func TestPunchFreesBlocks(t *testing.T) {
	e := &events{}
	o := e.opts(filepath.Join(t.TempDir(), "spool"))
	s := open(t, o)
	if !s.Punching() {
		t.Skipf("skipped: %s cannot punch holes", o.Dir)
	}
	big := strings.Repeat("b", 4000)
	for i := range 2048 { // about 8 MiB
		s.Append(&Record{Line: []byte(fmt.Sprintf("%06d %s", i, big))})
	}
	s.Flush()
	p := segFiles(t, o.Dir)[0]
	full := blocks(t, p)
	if full*512 < 7<<20 {
		t.Fatalf("%d blocks for 8 MiB of records", full)
	}
	// Acknowledge all but the last ~100 records.
	ctx := context.Background()
	n := 0
	for n < 1948 {
		b, err := s.Next(ctx, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Records {
			if want := fmt.Sprintf("%06d", n); string(r.Line[:6]) != want {
				t.Fatalf("record %d is %q", n, r.Line[:6])
			}
			n++
		}
		s.Ack()
	}
	left := blocks(t, p)
	live := s.Len()
	// What is left on disk is the live records and at most a few blocks
	// at the edges: the acknowledged megabytes are given back.
	if left*512 > live+64<<10 {
		t.Fatalf("after acknowledging %d of 2048 records: %d blocks (%d bytes) allocated for %d live bytes (was %d blocks)", n, left, left*512, live, full)
	}
	t.Logf("blocks %d -> %d; file size %d for %d live bytes", full, left, fileSize(t, p), live)
	// The live records survive a restart; the first is found past the hole.
	s.Close()
	s = open(t, o)
	got, _ := drain(t, s, 1<<20)
	if len(got) != 2048-n || got[0][:6] != fmt.Sprintf("%06d", n) {
		t.Fatalf("after restart: %d records from %q, want %d from %06d", len(got), got[0][:6], 2048-n, n)
	}
}

func TestSegmentsRotateAndGo(t *testing.T) {
	e := &events{}
	o := e.opts(filepath.Join(t.TempDir(), "spool"))
	o.NoPunch, o.SegmentSize = true, 4096
	s := open(t, o)
	appendN(t, s, 0, 10)
	for i := 10; i < 400; i += 10 {
		appendN(t, s, i, 10)
	}
	if n := len(segFiles(t, o.Dir)); n < 5 {
		t.Fatalf("%d segment files for 400 records of 4 KiB segments", n)
	}
	got, _ := drain(t, s, 3000)
	same(t, "segments", got, want(0, 400))
	if n := len(segFiles(t, o.Dir)); n != 1 {
		t.Fatalf("%d segment files left after everything was acknowledged", n)
	}
}

// tornCopy writes the spool files of src into a new dir with the last
// segment cut at size.
func spoolBytes(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(segFiles(t, dir)[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTornLastRecord(t *testing.T) {
	e := &events{}
	src := filepath.Join(t.TempDir(), "src")
	s := open(t, e.opts(src))
	appendN(t, s, 0, 20)
	s.Close()
	data := spoolBytes(t, src)
	// Where does the last record start?
	var starts []int
	for off := 0; off < len(data); {
		_, n, err := Decode(data[off:])
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, off)
		off += n
	}
	last := starts[len(starts)-1]
	for cut := last; cut < len(data); cut++ {
		e := &events{}
		dir := filepath.Join(t.TempDir(), fmt.Sprint(cut))
		os.MkdirAll(dir, 0o700)
		if err := os.WriteFile(filepath.Join(dir, "0000000000000000.seg"), data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		s := open(t, e.opts(dir))
		got, _ := drain(t, s, 1<<20)
		same(t, fmt.Sprintf("cut at %d", cut), got, want(0, 19))
		wantCorrupt := 0
		if cut > last {
			wantCorrupt = 1
		}
		if len(e.corrupt) != wantCorrupt || wantCorrupt == 1 && e.corrupt[0] != int64(cut-last) {
			t.Fatalf("cut at %d: corrupt reports %v, want %d of %d bytes", cut, e.corrupt, wantCorrupt, cut-last)
		}
		// The torn bytes are gone: new records follow the good ones.
		appendN(t, s, 100, 1)
		got, _ = drain(t, s, 1<<20)
		same(t, "append after torn", got, []string{line(100)})
		s.Close()
		s = open(t, e.opts(dir))
		if s.Len() != 0 || len(e.corrupt) != wantCorrupt {
			t.Fatalf("cut at %d: reopen holds %d bytes, corrupt %v", cut, s.Len(), e.corrupt)
		}
		s.Close()
	}
}

func TestCorruptRecordSkipped(t *testing.T) {
	for _, where := range []string{"line", "length", "magic", "seq"} {
		t.Run(where, func(t *testing.T) {
			e := &events{}
			dir := filepath.Join(t.TempDir(), "spool")
			s := open(t, e.opts(dir))
			appendN(t, s, 0, 10)
			s.Close()
			data := spoolBytes(t, dir)
			off := 0
			for range 4 { // the fifth record
				_, n, _ := Decode(data[off:])
				off += n
			}
			switch where {
			case "line":
				data[off+HeaderSize+fixedBody+2] ^= 0x40
			case "length":
				data[off+5] ^= 0x01 // 256 bytes longer: runs into the next records
			case "magic":
				data[off] = 'X'
			case "seq":
				data[off+HeaderSize] ^= 1
			}
			os.WriteFile(segFiles(t, dir)[0], data, 0o600)
			s = open(t, e.opts(dir))
			got, _ := drain(t, s, 1<<20)
			w := append(want(0, 4), want(5, 5)...)
			same(t, "corrupt "+where, got, w)
			if len(e.corrupt) != 1 {
				t.Fatalf("corrupt reports %v, want 1", e.corrupt)
			}
		})
	}
}

func TestMaxSize(t *testing.T) {
	recSize := (&Record{Line: []byte("rec00")}).Size()
	run := func(p Policy) (*Spool, *events) {
		e := &events{}
		o := e.opts(filepath.Join(t.TempDir(), "spool"))
		o.MaxSize, o.Policy = int64(10*recSize), p
		return open(t, o), e
	}
	add := func(s *Spool, from, to int) {
		for i := from; i < to; i++ {
			s.Append(&Record{Line: fmt.Appendf(nil, "rec%02d", i)})
		}
		s.Flush()
	}
	recs := func(from, to int) []string {
		var w []string
		for i := from; i < to; i++ {
			w = append(w, fmt.Sprintf("rec%02d", i))
		}
		return w
	}
	t.Run("drop-newest", func(t *testing.T) {
		s, e := run(DropNewest)
		add(s, 0, 25)
		got, _ := drain(t, s, 1<<20)
		same(t, "kept", got, recs(0, 10))
		same(t, "dropped", e.dropped, recs(10, 25))
	})
	t.Run("drop-oldest", func(t *testing.T) {
		s, e := run(DropOldest)
		add(s, 0, 25)
		got, _ := drain(t, s, 1<<20)
		same(t, "kept", got, recs(15, 25))
		same(t, "dropped", e.dropped, recs(0, 15))
		if e.why[0] != Full {
			t.Fatalf("why %q", e.why[0])
		}
	})
	t.Run("drop-oldest-unwritten", func(t *testing.T) {
		// Records dropped before they were written are never written:
		// a spool small beside its writer does not write each record
		// only to punch it out again (which makes the kernel write the
		// pages back first).
		s, e := run(DropOldest)
		add(s, 0, 10)
		for i := 10; i < 40; i++ {
			s.Append(&Record{Line: fmt.Appendf(nil, "rec%02d", i)})
		}
		if n := segBytes(t, s.o.Dir); n > int64(10*recSize) {
			t.Errorf("before the flush the segments hold %d bytes: dropped records were written (spool-max-size %d)", n, 10*recSize)
		}
		s.Flush()
		got, _ := drain(t, s, 1<<20)
		same(t, "kept", got, recs(30, 40))
		same(t, "dropped", e.dropped, recs(0, 30))
	})
	t.Run("drop-oldest-inflight", func(t *testing.T) {
		// Records handed out are never dropped: the oldest after them go.
		s, e := run(DropOldest)
		add(s, 0, 10)
		b, _ := s.Next(context.Background(), 3*recSize)
		add(s, 10, 15)
		s.Ack()
		got, _ := drain(t, s, 1<<20)
		if len(b.Records) != 3 {
			t.Fatalf("batch of %d", len(b.Records))
		}
		same(t, "kept", got, recs(8, 15))
		same(t, "dropped", e.dropped, recs(3, 8))
	})
	t.Run("block", func(t *testing.T) {
		s, e := run(Block)
		add(s, 0, 10)
		done := make(chan struct{})
		go func() { add(s, 10, 12); close(done) }()
		select {
		case <-done:
			t.Fatal("Append did not block on a full spool")
		case <-time.After(50 * time.Millisecond):
		}
		got, _ := drain(t, s, 2*recSize)
		<-done
		more, _ := drain(t, s, 1<<20)
		same(t, "all", append(got, more...), recs(0, 12))
		if len(e.dropped) != 0 {
			t.Fatalf("block dropped %v", e.dropped)
		}
	})
	t.Run("too-large", func(t *testing.T) {
		s, e := run(DropOldest)
		add(s, 0, 3)
		s.Append(&Record{Line: make([]byte, 10*recSize)})
		got, _ := drain(t, s, 1<<20)
		same(t, "kept", got, recs(0, 3))
		if len(e.why) != 1 || e.why[0] != TooLarge {
			t.Fatalf("drops %q", e.why)
		}
	})
}

func TestLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "spool")
	s := open(t, Options{Dir: dir})
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir mode %v, %v; want 0700", fi.Mode(), err)
	}
	_, err = Open(Options{Dir: dir})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, dir)
	}
	s.Close()
	s2, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestClosedWakesNext(t *testing.T) {
	s := open(t, Options{Dir: filepath.Join(t.TempDir(), "spool")})
	errc := make(chan error)
	go func() { _, err := s.Next(context.Background(), 10); errc <- err }()
	time.Sleep(10 * time.Millisecond) // let it wait; Close must wake it either way
	s.Close()
	if err := <-errc; err != ErrClosed {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := s.Append(&Record{}); err != ErrClosed {
		t.Fatalf("Append after Close: %v", err)
	}
}

// TestRandomDamage flips random bytes of a spool and reopens it, many
// times: whatever is delivered is an original record, in order; a damaged
// record (even its length field) costs exactly itself; nothing panics.
func TestRandomDamage(t *testing.T) {
	e := &events{}
	src := filepath.Join(t.TempDir(), "src")
	s := open(t, e.opts(src))
	appendN(t, s, 0, 60)
	s.Close()
	data := spoolBytes(t, src)
	var starts []int
	for off := 0; off < len(data); {
		_, n, _ := Decode(data[off:])
		starts = append(starts, off)
		off += n
	}
	recOf := func(off int) int { return sort.SearchInts(starts, off+1) - 1 }
	seed := uint64(1)
	rnd := func(n int) int { // xorshift: the same damage every run
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	for round := range 200 {
		d := append([]byte(nil), data...)
		hit := map[int]bool{}
		for range 1 + rnd(3) {
			off := rnd(len(d))
			d[off] ^= byte(1 + rnd(255))
			hit[recOf(off)] = true
		}
		if rnd(4) == 0 { // and sometimes a torn end
			d = d[:len(d)-rnd(60)]
		}
		dir := filepath.Join(t.TempDir(), fmt.Sprint(round))
		os.MkdirAll(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "0000000000000000.seg"), d, 0o600)
		e := &events{}
		s := open(t, e.opts(dir))
		got, _ := drain(t, s, 1<<20)
		s.Close()
		prev := -1
		for _, g := range got {
			var k int
			fmt.Sscanf(g, "line %d", &k)
			if k <= prev || k >= 60 || g != line(k) {
				t.Fatalf("round %d: delivered %q after record %d", round, g, prev)
			}
			prev = k
		}
		lost := 60 - len(got)
		if lost != len(hit) && len(d) == len(data) {
			t.Fatalf("round %d: %d records damaged, %d lost", round, len(hit), lost)
		}
		if lost > 0 && len(e.corrupt) == 0 {
			t.Fatalf("round %d: %d records lost, no damage reported", round, lost)
		}
	}
}

// segBytes is the logical size of the segment files in dir.
func segBytes(t *testing.T, dir string) int64 {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	var n int64
	for _, f := range m {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// With spool-sync=always every write is fsynced, but beside the reader:
// Flush (the reader's) returns while an fsync is still under way, and the
// next fsync comes as soon as that one ends.
func TestSyncAlwaysBeside(t *testing.T) {
	e := &events{}
	o := e.opts(filepath.Join(t.TempDir(), "spool"))
	o.Sync = SyncAlways
	s := open(t, o)
	started, release := make(chan *os.File, 16), make(chan struct{})
	s.fsync = func(f *os.File) error {
		started <- f
		<-release
		return f.Sync()
	}
	appendN(t, s, 0, 10) // Flush returns although the fsync is held
	<-started
	appendN(t, s, 10, 10) // and again while it still is
	close(release)
	<-started // the writes made during the first fsync get theirs
	got, _ := drain(t, s, 1<<20)
	if len(got) != 20 {
		t.Fatalf("%d records", len(got))
	}
}
