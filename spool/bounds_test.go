package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// du is what the spool directory's files take on disk: allocated blocks
// (st_blocks*512), not their apparent size.
func du(t testing.TB, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // removed meanwhile
		}
		n += fi.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return n
}

// TestDiskBoundedSinkDown: the sink is down (a batch is out
// and never acknowledged) while far more than spool-max-size is
// appended. The blocks the spool's files take stay within spool-max-size
// plus one segment at every moment, for every buffer-full, with holes
// punched and with segment files, for small records, records close to
// the segment size and records larger than a segment; a record larger
// than spool-max-size is dropped, counted and never written.
func TestDiskBoundedSinkDown(t *testing.T) {
	const maxSize = 1 << 20
	for _, noPunch := range []bool{false, true} {
		for _, p := range []Policy{DropOldest, DropNewest, Block} {
			for _, recLen := range []int{100, 60 << 10, 100 << 10, 300 << 10} {
				name := fmt.Sprintf("nopunch=%v/policy=%d/line=%d", noPunch, p, recLen)
				t.Run(name, func(t *testing.T) {
					e := &events{}
					o := e.opts(filepath.Join(t.TempDir(), "spool"))
					o.MaxSize, o.Policy, o.NoPunch = maxSize, p, noPunch
					s := open(t, o)
					if !noPunch && !s.Punching() {
						t.Skipf("skipped: %s cannot punch holes", o.Dir)
					}
					seg := min(max(o.MaxSize/8, 64<<10), 64<<20) // the default segment size
					// One segment of overhead: a segment is at most seg, or
					// one write (64 KiB of records and the last one)
					// larger than that; and the state and lock files.
					limit := maxSize + max(seg, flushAt+int64(recLen)+64) + 16<<10
					line := strings.Repeat("y", recLen)
					total := 30 * maxSize
					if recLen < 1000 {
						total = 8 * maxSize
					}
					var peak int64
					check := func(i int) {
						if n := du(t, o.Dir); n > peak {
							peak = n
							if n > limit {
								t.Fatalf("after %d records: %d bytes allocated, more than %d (spool-max-size %d + one segment)", i, n, limit, maxSize)
							}
						}
					}
					// The batch that the down sink never accepts.
					s.Append(&Record{Line: []byte(fmt.Sprintf("first %s", line))})
					s.Flush()
					if _, err := s.Next(context.Background(), 1); err != nil {
						t.Fatal(err)
					}
					done := make(chan struct{})
					var last string
					go func() {
						defer close(done)
						for i := 0; i*(recLen+32) < total; i++ {
							last = fmt.Sprintf("%08d %s", i, line)
							if err := s.Append(&Record{Line: []byte(last)}); err != nil {
								return // closed while blocked
							}
						}
						s.Flush()
					}()
					every := time.NewTicker(time.Millisecond)
					defer every.Stop()
					i := 0
				loop:
					for {
						select {
						case <-done:
							break loop
						case <-every.C:
							check(i)
							i++
							if p == Block && i > 300 { // blocked for good: the sink is down
								s.Close()
								<-done
								break loop
							}
						}
					}
					check(-1)
					if p != Block && len(e.dropped) == 0 {
						t.Fatalf("nothing dropped from %d bytes into %d", total, maxSize)
					}
					for _, why := range e.why {
						if why != Full {
							t.Fatalf("dropped for %q", why)
						}
					}
					// drop-oldest keeps the newest: the last line is held.
					if p == DropOldest && len(e.dropped) > 0 && e.dropped[len(e.dropped)-1] == last {
						t.Fatalf("drop-oldest dropped the newest line (of %d dropped)", len(e.dropped))
					}
					t.Logf("peak %d bytes allocated (limit %d), %d dropped", peak, limit, len(e.dropped))
				})
			}
		}
	}
}

// TestTooLargeNeverWritten: a record larger than spool-max-size is
// dropped and counted (TooLarge) and takes no space, with a batch out.
func TestTooLargeNeverWritten(t *testing.T) {
	for _, noPunch := range []bool{false, true} {
		e := &events{}
		o := e.opts(filepath.Join(t.TempDir(), "spool"))
		o.MaxSize, o.NoPunch = 256<<10, noPunch
		s := open(t, o)
		appendN(t, s, 0, 3)
		s.Flush()
		before := du(t, o.Dir)
		for _, n := range []int{256 << 10, 1 << 20, 8 << 20} {
			s.Append(&Record{Line: make([]byte, n)})
			s.Flush()
		}
		if after := du(t, o.Dir); after > before {
			t.Fatalf("nopunch=%v: %d bytes allocated after too-large records, %d before", noPunch, after, before)
		}
		if len(e.why) != 3 || e.why[0] != TooLarge || e.why[2] != TooLarge {
			t.Fatalf("drops %q, want 3 too-large", e.why)
		}
		got, _ := drain(t, s, 1<<20)
		same(t, "kept", got, want(0, 3))
	}
}

// TestDropOldestRestartNoResurrection: records dropped while a batch was
// out are not delivered after a restart, and the batch is.
func TestDropOldestRestartNoResurrection(t *testing.T) {
	for _, noPunch := range []bool{false, true} {
		e := &events{}
		o := e.opts(filepath.Join(t.TempDir(), "spool"))
		o.MaxSize, o.NoPunch = 64<<10, noPunch
		s := open(t, o)
		appendN(t, s, 0, 10)
		s.Flush()
		b, err := s.Next(context.Background(), 1<<20)
		if err != nil || len(b.Records) != 10 {
			t.Fatalf("batch %d, %v", len(b.Records), err)
		}
		appendN(t, s, 10, 5000) // far more than 64 KiB: most dropped
		s.Flush()
		s.Ack()
		s.Close()
		s = open(t, o)
		got, _ := drain(t, s, 1<<20)
		dropped := map[string]bool{}
		for _, d := range e.dropped {
			dropped[d] = true
		}
		for _, g := range got {
			if dropped[g] {
				t.Fatalf("nopunch=%v: %q was dropped and delivered after the restart", noPunch, g)
			}
		}
		if len(got)+len(e.dropped) != 5000 || len(e.corrupt) != 0 {
			t.Fatalf("nopunch=%v: %d delivered + %d dropped of 5000; corrupt %v", noPunch, len(got), len(e.dropped), e.corrupt)
		}
	}
}

// fakeHeader is a record header claiming body bytes.
func fakeHeader(body uint32) []byte {
	h := []byte{magic0, magic1, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}
	binary.LittleEndian.PutUint32(h[4:], body)
	return h
}

// TestCorruptLengthBounded: a header whose length claims more
// than any record the writer produces (line-max plus the header) is
// corruption: counted, skipped, the records after it delivered, and
// never read or allocated, even where the file is long enough to hold
// the claim. A record of exactly line-max is still a record.
func TestCorruptLengthBounded(t *testing.T) {
	const lineMax = 16 << 10
	for _, claim := range []uint32{1 << 30, MaxBody, fixedBody + 255 + lineMax + 1} {
		t.Run(fmt.Sprint(claim), func(t *testing.T) {
			e := &events{}
			dir := filepath.Join(t.TempDir(), "spool")
			o := e.opts(dir)
			o.LineMax = lineMax
			s := open(t, o)
			appendN(t, s, 0, 5)
			s.Append(&Record{ID: strings.Repeat("i", 255), Partial: true, Line: []byte(strings.Repeat("m", lineMax))})
			s.Close()
			p := segFiles(t, dir)[0]
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			end := fileSize(t, p)
			f.WriteAt(fakeHeader(claim), end)
			f.WriteAt([]byte(strings.Repeat("z", 100)), end+HeaderSize)
			// Records after the damage, and room for the claim (sparse).
			var more []byte
			for i := 10; i < 15; i++ {
				more = AppendRecord(more, &Record{Seq: uint64(i - 3), Line: []byte(line(i))})
			}
			f.WriteAt(more, end+HeaderSize+100)
			f.Truncate(2 << 30)
			f.Close()
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			s = open(t, o)
			got, _ := drain(t, s, 1<<20)
			runtime.ReadMemStats(&m1)
			w := append(want(0, 5), strings.Repeat("m", lineMax))
			same(t, "delivered", got, append(w, want(10, 5)...))
			if len(e.corrupt) != 1 || e.corrupt[0] != HeaderSize+100 {
				t.Fatalf("corrupt reports %v, want one of %d bytes", e.corrupt, HeaderSize+100)
			}
			if a := m1.TotalAlloc - m0.TotalAlloc; a > 16<<20 {
				t.Fatalf("reading the spool allocated %d bytes", a)
			}
		})
	}
}

// TestSparseSegmentScansFast: a segment made huge and sparse
// (truncate -s), with records before, and after a hole in the middle, is
// scanned in the time its data takes: holes are skipped with SEEK_DATA,
// never read. The records are all delivered, and new ones follow the
// last (the zeros at the end are cut off).
func TestSparseSegmentScansFast(t *testing.T) {
	for _, size := range []int64{10 << 30, 100 << 30, 1 << 40} {
		for _, middle := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/middle=%v", size, middle), func(t *testing.T) {
				e := &events{}
				dir := filepath.Join(t.TempDir(), "spool")
				s := open(t, e.opts(dir))
				appendN(t, s, 0, 100)
				s.Close()
				p := segFiles(t, dir)[0]
				if middle {
					f, _ := os.OpenFile(p, os.O_RDWR, 0)
					var more []byte
					for i := 100; i < 110; i++ {
						more = AppendRecord(more, &Record{Seq: uint64(i + 1), Line: []byte(line(i))})
					}
					if _, err := f.WriteAt(more, size/2); err != nil {
						t.Skipf("skipped: cannot write at %d: %v", size/2, err)
					}
					f.Close()
				}
				if err := os.Truncate(p, size); err != nil {
					t.Skipf("skipped: truncate -s %d: %v", size, err)
				}
				t0 := time.Now()
				s = open(t, e.opts(dir))
				took := time.Since(t0)
				if took > 200*time.Millisecond {
					t.Fatalf("Open of a %d-byte sparse segment took %v", size, took)
				}
				n := 100
				if middle {
					n = 110
				}
				got, _ := drain(t, s, 1<<20)
				same(t, "delivered", got, want(0, n))
				if len(e.corrupt) != 0 {
					t.Fatalf("zeros reported as damage: %v", e.corrupt)
				}
				appendN(t, s, 500, 1)
				got, _ = drain(t, s, 1<<20)
				same(t, "after", got, want(500, 1))
				t.Logf("open took %v", took)
			})
		}
	}
}

// TestRefusesLinks: a spool-dir that is a link, or that holds
// a link (or a FIFO) in the place of one of its files, is refused, and
// the link's target is untouched; so is a dir writable by others. A
// missing dir is created 0700.
func TestRefusesLinks(t *testing.T) {
	tmp := t.TempDir()
	victim := filepath.Join(tmp, "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	real := filepath.Join(tmp, "real")
	os.Mkdir(real, 0o700)
	linked := filepath.Join(tmp, "linked")
	os.Symlink(real, linked)
	check := func(dir, want string) {
		t.Helper()
		cerr := CheckDir(dir)
		_, err := Open(Options{Dir: dir})
		for _, err := range []error{cerr, err} {
			if err == nil || !strings.Contains(err.Error(), "spool-dir "+dir) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want an error naming it and saying %q", dir, err, want)
			}
		}
		if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
			t.Fatalf("%s: the victim now holds %q", dir, b)
		}
	}
	check(linked, "symbolic link")
	for _, name := range []string{"state", "lock", "0000000000000000.seg", "0000000000000003.seg"} {
		dir := filepath.Join(tmp, "planted-"+name)
		os.Mkdir(dir, 0o700)
		if name == "0000000000000003.seg" {
			os.WriteFile(filepath.Join(dir, "0000000000000000.seg"), nil, 0o600)
		}
		os.Symlink(victim, filepath.Join(dir, name))
		check(dir, name+" is a symbolic link")
		fifo := filepath.Join(tmp, "fifo-"+name)
		os.Mkdir(fifo, 0o700)
		syscall.Mkfifo(filepath.Join(fifo, name), 0o600)
		check(fifo, "not a regular file")
	}
	open := filepath.Join(tmp, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	check(open, "mode 0777")
	os.Chmod(open, 0o730)
	check(open, "mode 0730")

	fresh := filepath.Join(tmp, "a", "b", "spool")
	if err := CheckDir(fresh); err != nil {
		t.Fatalf("CheckDir of a dir to create: %v", err)
	}
	s, err := Open(Options{Dir: fresh})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created %v, %v; want mode 0700", fi.Mode(), err)
	}
	if err := CheckDir(fresh); err != nil {
		t.Fatalf("CheckDir of the spool it made: %v", err)
	}
}

// TestCheckDirLengths: names longer than NAME_MAX and paths
// reaching PATH_MAX are refused before anything is created.
func TestCheckDirLengths(t *testing.T) {
	tmp := t.TempDir()
	for _, dir := range []string{
		filepath.Join(tmp, strings.Repeat("n", 256)),
		filepath.Join(tmp, strings.Repeat("n", 256), "spool"),
		filepath.Join(tmp, strings.Repeat(strings.Repeat("p", 200)+"/", 21)),
		"/" + strings.Repeat("q/", 2040),
	} {
		if err := CheckDir(dir); !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "spool-dir ") {
			t.Errorf("CheckDir(%.40s...): %v, want ErrTooLong", dir, err)
		}
		if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrTooLong) {
			t.Errorf("Open(%.40s...): %v, want ErrTooLong", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, strings.Repeat("p", 200))); err == nil {
		t.Errorf("a refused spool-dir was partly created")
	}
	ok := filepath.Join(tmp, strings.Repeat("n", 255))
	if err := CheckDir(ok); err != nil {
		t.Errorf("a name of 255 bytes: %v", err)
	}
	if err := CheckDir("relative/spool"); err == nil {
		t.Errorf("a relative spool-dir passed")
	}
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o600)
	if err := CheckDir(filepath.Join(file, "spool")); err == nil {
		t.Errorf("a spool-dir under a file passed")
	}
}

// TestAckThrough: a consumer that stops in the middle of a batch
// acknowledges what was accepted; the next Open hands out the rest of the
// batch, not counted as replayed, and the records after it.
func TestAckThrough(t *testing.T) {
	for _, noPunch := range []bool{false, true} {
		for _, took := range []int{0, 1, 37, 99, 100} {
			e := &events{}
			o := e.opts(filepath.Join(t.TempDir(), "spool"))
			o.NoPunch, o.SegmentSize = noPunch, 4096
			s := open(t, o)
			appendN(t, s, 0, 300)
			s.Flush()
			b, err := s.Next(context.Background(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if took > 0 {
				s.AckThrough(b.Records[took-1].Seq)
			}
			s.Close()
			s = open(t, o)
			got, replayed := drain(t, s, 1<<20)
			same(t, fmt.Sprintf("nopunch=%v took=%d", noPunch, took), got, want(took, 300-took))
			if replayed != 300-took && took == 0 || took > 0 && replayed != 0 {
				t.Fatalf("nopunch=%v took=%d: replayed %d", noPunch, took, replayed)
			}
		}
	}
}

// TestDropOldestFreesLastSegment: with segment files and a batch out,
// a large record that needs the room of every record after the batch gets
// it: the last segment, all dropped, is replaced by a new one and removed,
// instead of the new record being dropped.
func TestDropOldestFreesLastSegment(t *testing.T) {
	for _, noPunch := range []bool{true, false} {
		t.Run(fmt.Sprint("nopunch=", noPunch), func(t *testing.T) { dropOldestFreesLast(t, noPunch) })
	}
}

func dropOldestFreesLast(t *testing.T, noPunch bool) {
	e := &events{}
	o := e.opts(filepath.Join(t.TempDir(), "spool"))
	o.MaxSize, o.NoPunch = 1<<20, noPunch
	s := open(t, o)
	s.Append(&Record{Line: []byte("the batch")})
	s.Flush()
	if _, err := s.Next(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		s.Append(&Record{Line: []byte(fmt.Sprint("small ", i))})
	}
	s.Flush()
	big := strings.Repeat("B", 1<<20-200)
	s.Append(&Record{Line: []byte(big)})
	s.Flush()
	if len(e.dropped) != 20 || strings.HasPrefix(e.dropped[len(e.dropped)-1], "BBB") {
		t.Fatalf("dropped %d records (the last %.10q), want the 20 small ones", len(e.dropped), e.dropped[len(e.dropped)-1])
	}
	if n := du(t, o.Dir); n > o.MaxSize+64<<10 {
		t.Fatalf("%d bytes on disk", n)
	}
	s.Ack()
	got, _ := drain(t, s, 1<<20)
	if len(got) != 1 || got[0] != big {
		t.Fatalf("after the batch: %d records", len(got))
	}
}
