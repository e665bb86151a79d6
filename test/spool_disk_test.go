package test

// End-to-end tests of what the spool costs on disk and in memory, and of
// what it delivers twice: the blocks it takes
// stay within spool-max-size while the sink is down, a corrupt length on
// disk is never allocated, a huge sparse segment does not delay ready,
// and a live upgrade (SIGHUP) delivers nothing twice that it does not
// count in lines_replayed.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
	"github.com/joyent/dockerlogger/spool"
)

// dirBlocks is what the files of dir take on disk: allocated blocks
// (st_blocks*512, what du counts), not their apparent size.
func dirBlocks(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if fi, err := os.Lstat(filepath.Join(dir, e.Name())); err == nil {
			n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		}
	}
	return n
}

// TestSpoolDiskBoundedSinkDown: with the sink down from the start, 12 MB
// of lines go into a spool of spool-max-size=1m. The spool's blocks stay
// within 1m plus one segment (128 KiB) at every moment (sampled every
// 2 ms), for drop-oldest and drop-newest, for short lines, lines close to
// spool-max-size, and lines larger than it (cut by line-max, which must
// leave room for a record's overhead in the spool). Every line is read,
// and what is not in the spool is counted as dropped.
func TestSpoolDiskBoundedSinkDown(t *testing.T) {
	const maxSize = 1 << 20
	for _, c := range []struct {
		full    string
		lineLen int
		lineMax string
	}{
		{"drop-oldest", 100, ""},
		{"drop-newest", 100, ""},
		{"drop-oldest", 200 << 10, "1000k"},
		{"drop-oldest", 900 << 10, "1000k"},
		{"drop-newest", 900 << 10, "1000k"},
		{"drop-oldest", 3 << 20, "1000k"},
	} {
		t.Run(fmt.Sprintf("%s/%d", c.full, c.lineLen), func(t *testing.T) {
			s, err := forward.Reserve() // never started: the sink is down
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			dir := filepath.Join(t.TempDir(), "spool")
			opts := map[string]string{
				"fluentd-address": s.URL(), "fluentd-request-ack": "true",
				"fluentd-max-retries": "1", "fluentd-retry-wait": "50ms",
				"mode": "spool", "spool-dir": dir, "spool-max-size": "1m",
				"buffer-full": c.full, "close-timeout": "1s",
			}
			if c.lineMax != "" {
				opts["line-max"] = c.lineMax
			}
			l := StartLogger(t, Env(spoolID, opts, "DOCKERLOG_SUPERVISOR=off"), "fluentd")
			var peak, samples int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
					peak = max(peak, dirBlocks(dir))
					samples++
				}
			}()
			n := 12 << 20 / c.lineLen
			pad := strings.Repeat("d", c.lineLen-14)
			w := bufio.NewWriterSize(l.Stdout, 256<<10)
			for i := range n {
				fmt.Fprintf(w, "%012d %s\n", i, pad)
			}
			w.Flush()
			// A line longer than line-max, or than the pipe's window and
			// 4 KiB (reader.Longest), is read as several messages.
			perLine := 1
			if c.lineMax == "1000k" {
				cut := min(1024000, longestFromPipe)
				perLine = (c.lineLen - 1 + cut - 1) / cut
			}
			st := waitRead(t, l, n*perLine)
			time.Sleep(50 * time.Millisecond)
			close(stop)
			wg.Wait()
			l.Wait(t, 30*time.Second)
			limit := int64(maxSize + 128<<10)
			t.Logf("%d lines of %d bytes: peak %d bytes allocated in %d samples (limit %d); dropped %s", n, c.lineLen, peak, samples, limit, st["lines_dropped"])
			if peak > limit {
				t.Fatalf("the spool took %d bytes on disk, more than spool-max-size %d plus one segment", peak, maxSize)
			}
			if d, _ := strconv.Atoi(st["lines_dropped"]); d == 0 {
				t.Fatalf("nothing dropped from %d lines into 1m: stats %v", n, st)
			}
		})
	}
}

// writeSegment writes n valid records ("prefix i") into a fresh spool at
// dir, and then what extra returns, at the end of its segment.
func writeSegment(t *testing.T, dir string, n int, extra func(f *os.File, end int64)) []string {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir, Sync: spool.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	lines := Lines("before the damage", n)
	for _, x := range lines {
		sp.Append(&spool.Record{Time: time.Now().UnixNano(), Line: []byte(x)})
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "0000000000000000.seg")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if extra != nil {
		extra(f, fi.Size())
	}
	return lines
}

// vmHWM is the peak resident memory of pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestSpoolCorruptLength: a record header in the spool claims 1 GiB (or
// just more than line-max allows), and the file is long enough to hold
// the claim (sparse). The logger counts it as corruption, skips it,
// delivers every record before and after it, and its peak memory stays
// small: the claimed length is never allocated.
func TestSpoolCorruptLength(t *testing.T) {
	for _, c := range []struct {
		lineMax string
		claim   uint32
	}{{"", 1 << 30}, {"", 16<<10 + 300}, {"1m", 1 << 30}, {"1m", 8 << 20}} {
		t.Run(fmt.Sprintf("line-max=%s/claim=%d", c.lineMax, c.claim), func(t *testing.T) {
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "spool")
			var after []string
			lines := writeSegment(t, dir, 1000, func(f *os.File, end int64) {
				h := []byte{0xD7, 0x5A, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
				h[4], h[5], h[6], h[7] = byte(c.claim), byte(c.claim>>8), byte(c.claim>>16), byte(c.claim>>24)
				f.WriteAt(append(h, strings.Repeat("z", 200)...), end)
				after = Lines("after the damage", 500)
				var b []byte
				for i, x := range after {
					b = spool.AppendRecord(b, &spool.Record{Seq: uint64(1001 + i), Time: time.Now().UnixNano(), Line: []byte(x)})
				}
				f.WriteAt(b, end+212)
				f.Truncate(2 << 30)
			})
			logPath := filepath.Join(tmp, "c.log")
			opts := map[string]string{"mode": "spool", "spool-dir": dir, "log-path": logPath}
			if c.lineMax != "" {
				opts["line-max"] = c.lineMax
			}
			l := StartLogger(t, Env(spoolID, opts, "DOCKERLOG_SUPERVISOR=off"), "json-file")
			all := append(append([]string{}, lines...), after...)
			Eventually(t, 30*time.Second, "the spooled lines in the log", func() bool {
				return len(jsonLines(t, logPath)["stdout"]) >= len(all)
			})
			rss := vmHWM(t, l.Cmd.Process.Pid)
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, l.Errors())
			}
			sinkSameLines(t, "stdout", jsonLines(t, logPath)["stdout"], all)
			st := l.Stats(t)
			t.Logf("peak RSS %d MB; corrupt records %s, bytes %s", rss>>20, st["spool_corrupt_records"], st["spool_corrupt_bytes"])
			if st["spool_corrupt_records"] != "1" || st["spool_corrupt_bytes"] != "212" {
				t.Fatalf("corruption not counted as one record of 212 bytes: %v", st)
			}
			if rss > 64<<20 {
				t.Fatalf("peak RSS %d bytes: the claimed length was allocated", rss)
			}
		})
	}
}

// readyAfter starts a logger on spool-dir dir and returns how long it
// took to signal ready on fd 5.
func readyAfter(t *testing.T, dir, logPath string) (time.Duration, *Logger) {
	t.Helper()
	t0 := time.Now()
	l := StartLoggerNoWait(t, Env(spoolID, map[string]string{"mode": "spool", "spool-dir": dir, "log-path": logPath}), "json-file")
	if err := l.WaitReady(60 * time.Second); err != nil {
		t.Fatalf("%v: %s", err, l.Errors())
	}
	return time.Since(t0), l
}

// TestSpoolSparseReady: a segment made 10 GB, 100 GB or 1 TB large and
// sparse (truncate -s) delays ready by less than 200 ms over the same
// records in a segment of their own size: its holes are skipped, not
// read. Its records are delivered.
func TestSpoolSparseReady(t *testing.T) {
	tmp := t.TempDir()
	var base time.Duration
	for _, size := range []int64{0, 10 << 30, 100 << 30, 1 << 40} {
		dir := filepath.Join(tmp, fmt.Sprint("sparse", size))
		lines := writeSegment(t, dir, 2000, func(f *os.File, end int64) {
			if size == 0 {
				return
			}
			if err := f.Truncate(size); err != nil {
				t.Skipf("skipped: truncate -s %d: %v", size, err)
			}
		})
		logPath := filepath.Join(tmp, fmt.Sprint(size, ".log"))
		d, l := readyAfter(t, dir, logPath)
		if code := l.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d: %s", code, l.Errors())
		}
		sinkSameLines(t, "stdout", jsonLines(t, logPath)["stdout"], lines)
		if size == 0 {
			base = d
			continue
		}
		t.Logf("%d-byte sparse segment: ready after %v (not sparse: %v)", size, d, base)
		if d-base > 200*time.Millisecond {
			t.Fatalf("ready %v late with a %d-byte sparse segment", d-base, size)
		}
	}
}

// TestSpoolHandoverDuplicates: a storm of live upgrades (SIGHUP, each
// as soon as the last one's worker is up) while a stream runs as fast as
// it can in spool mode into json-file, so that each worker stops with a
// batch in the driver's hands. Every line arrives, in
// order; each one that arrives twice is counted in lines_replayed, and
// an upgrade delivers at most one batch twice.
func TestSpoolHandoverDuplicates(t *testing.T) {
	tmp := t.TempDir()
	logPath := filepath.Join(tmp, "h.log")
	l := StartLogger(t, Env(spoolID, map[string]string{"mode": "spool", "spool-dir": filepath.Join(tmp, "spool"), "log-path": logPath}), "json-file")
	const n, upgrades = 300000, 8
	out := Lines("handed over", n)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; i < n; i += 5000 {
			WriteLines(t, l.Stdout, out[i:i+5000])
		}
	}()
	sup := l.Cmd.Process.Pid
	for u := 0; u < upgrades; u++ {
		var old int
		Eventually(t, 10*time.Second, "a worker", func() bool { old = workerPID(t, sup); return old != 0 })
		time.Sleep(20 * time.Millisecond)
		l.Cmd.Process.Signal(syscall.SIGHUP)
		Eventually(t, 10*time.Second, "the new worker", func() bool { w := workerPID(t, sup); return w != 0 && w != old })
	}
	<-wrote
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
	got := jsonLines(t, logPath)["stdout"]
	seen := map[string]bool{}
	var distinct []string
	dups := 0
	for _, g := range got {
		if seen[g] {
			dups++
			continue
		}
		seen[g] = true
		distinct = append(distinct, g)
	}
	sinkSameLines(t, "stdout", distinct, out)
	st := l.Stats(t)
	replayed := statInt(t, st, "lines_replayed")
	batch := (256 << 10) / (&spool.Record{Line: []byte(out[0])}).Size()
	t.Logf("%d upgrades: %d duplicates (%d per upgrade; a batch is %d lines), lines_replayed %d, spool_replayed %s, upgrades %s",
		upgrades, dups, dups/upgrades, batch, replayed, st["spool_replayed"], st["upgrades"])
	if st["upgrades"] != strconv.Itoa(upgrades) {
		t.Fatalf("upgrades=%s, want %d", st["upgrades"], upgrades)
	}
	if int64(dups) > replayed {
		t.Fatalf("%d lines arrived twice, lines_replayed says %d", dups, replayed)
	}
	if dups > upgrades*batch {
		t.Fatalf("%d duplicates for %d upgrades: more than one batch (%d lines) each", dups, upgrades, batch)
	}
}
