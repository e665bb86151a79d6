package filelog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

// readAllLines returns the "log" texts of every json-file record in dir's
// json.log and its rotations (plain and gzipped), counting each record;
// a file that is no record or a broken gzip fails the test.
func readAllLines(t *testing.T, dir string) map[string]int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), "json.log") {
			continue
		}
		fh, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var rd io.Reader = fh
		if strings.HasSuffix(e.Name(), ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			rd = zr
		}
		b, err := io.ReadAll(rd)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			s := sc.Text()
			i := strings.Index(s, `"log":"`)
			j := strings.Index(s, `\n"`)
			if i < 0 || j < i {
				t.Fatalf("%s: not a record: %q", e.Name(), s)
			}
			got[s[i+7:j]]++
		}
	}
	return got
}

func logFlushed(t *testing.T, j *JSON, s string) {
	t.Helper()
	m := logger.NewMessage()
	m.Line = append(m.Line, s...)
	m.Source = "stdout"
	m.Timestamp = time.Unix(1700000000, 0)
	if err := j.Log(m); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A rotated file whose compression failed (a full disk) stays
// uncompressed; the next rotation must move it up, as it moves the
// compressed ones, not rename the current file over it.
func TestFailedCompressionKeepsRotatedFile(t *testing.T) {
	dir := t.TempDir()
	j, err := NewJSON(Options{Path: filepath.Join(dir, "json.log"), MaxSize: 100, MaxFiles: 20, Compress: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another link to the first file makes its compression fail (it is
	// refused), as ENOSPC would; the link's name is not read below.
	if err := os.Link(filepath.Join(dir, "json.log"), filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	const n = 19 // the current file and 18 rotated ones: none rotated away
	for i := 0; i < n; i++ {
		// 100 bytes of line: each record fills a file, each Log rotates.
		logFlushed(t, j, fmt.Sprintf("line %03d %s", i, strings.Repeat("x", 100)))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAllLines(t, dir)
	if testing.Verbose() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			t.Log(e.Name())
		}
	}
	for i := 0; i < n; i++ {
		s := fmt.Sprintf("line %03d %s", i, strings.Repeat("x", 100))
		if got[s] != 1 {
			names, _ := os.ReadDir(dir)
			var ls []string
			for _, e := range names {
				ls = append(ls, e.Name())
			}
			t.Fatalf("line %d is in the files %d times, want 1 (files %v)", i, got[s], ls)
		}
	}
}

// A logger killed while compressing leaves the uncompressed rotated file,
// perhaps a truncated .gz, and a temporary: the next one to open the
// file removes the temporary and the truncated .gz, and compresses the
// rotated file again; where the .gz is whole, the uncompressed copy goes.
func TestOpenRecoversInterruptedCompression(t *testing.T) {
	dir := t.TempDir()
	rec := func(s string) string {
		return `{"log":"` + s + `\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}` + "\n"
	}
	var one, two string
	for i := 0; i < 50; i++ {
		one += rec(fmt.Sprintf("one %d", i))
		two += rec(fmt.Sprintf("two %d", i))
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.Bytes()
	}
	// json.log.1: compression cut short, the .gz truncated.
	write("json.log.1", []byte(one))
	full := gz(one)
	write("json.log.1.gz", full[:len(full)/2])
	write(".json.log.1.gz.tmp-0123456789abcdef", full[:10])
	// json.log.2: compressed and renamed, killed before the removal.
	write("json.log.2", []byte(two))
	write("json.log.2.gz", gz(two))
	j, err := NewJSON(Options{Path: filepath.Join(dir, "json.log"), MaxSize: 1 << 20, MaxFiles: 5, Compress: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := "json.log json.log.1.gz json.log.2.gz"; strings.Join(names, " ") != want {
		t.Fatalf("files %v, want %s", names, want)
	}
	got := readAllLines(t, dir)
	for i := 0; i < 50; i++ {
		for _, p := range []string{"one", "two"} {
			if s := fmt.Sprintf("%s %d", p, i); got[s] != 1 {
				t.Fatalf("%q is in the files %d times, want 1", s, got[s])
			}
		}
	}
}

// A rotation that cannot shift the rotated files (here a directory where
// the oldest goes, that cannot be removed) refuses the message instead of
// truncating the current file, as Docker does, under lines it counted
// written; once the obstacle is gone, the retried message rotates.
func TestFailedShiftKeepsCurrentFile(t *testing.T) {
	dir := t.TempDir()
	obstacle := filepath.Join(dir, "json.log.2.gz")
	if err := os.MkdirAll(filepath.Join(obstacle, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	j, err := NewJSON(Options{Path: filepath.Join(dir, "json.log"), MaxSize: 100, MaxFiles: 3, Compress: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := func(i int) string { return fmt.Sprintf("line %03d %s", i, strings.Repeat("x", 100)) }
	logFlushed(t, j, line(0))
	refused := false
	for try := 0; ; try++ {
		m := logger.NewMessage()
		m.Line = append(m.Line, line(1)...)
		m.Source = "stdout"
		m.Timestamp = time.Unix(1700000000, 0)
		err := j.Log(m)
		if err == nil {
			break
		}
		if try > 0 {
			t.Fatalf("refused again with the obstacle gone: %v", err)
		}
		refused = true
		if err := os.RemoveAll(obstacle); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAllLines(t, dir)
	if got[line(0)] != 1 || got[line(1)] != 1 || !refused {
		t.Fatalf("line 0 %d times, line 1 %d times, refused %v: want once, once, true", got[line(0)], got[line(1)], refused)
	}
}

// At a live upgrade the logger closes without waiting for a compression
// still running (it exits next, and the next logger compresses the file
// again, TestOpenRecoversInterruptedCompression): what was written is on
// disk when CloseHandingOver returns. Close still waits for it.
func TestCloseHandingOverLeavesCompression(t *testing.T) {
	dir := t.TempDir()
	j, err := NewJSON(Options{Path: filepath.Join(dir, "json.log"), MaxSize: 1 << 20, MaxFiles: 3, Compress: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logFlushed(t, j, "before the upgrade")
	<-j.file.zipping // the one Open starts (nothing to compress)
	// A compression that does not end while this test runs.
	running := make(chan struct{})
	j.file.mu.Lock()
	j.file.zipping = running
	j.file.mu.Unlock()
	closed := make(chan error, 1)
	go func() { closed <- j.CloseHandingOver() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CloseHandingOver waited for the compression")
	}
	if got := readAllLines(t, dir); got["before the upgrade"] != 1 {
		t.Fatalf("lines on disk after CloseHandingOver: %v", got)
	}

	k, err := NewJSON(Options{Path: filepath.Join(dir, "json.log"), MaxSize: 1 << 20, MaxFiles: 3, Compress: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-k.file.zipping
	running2 := make(chan struct{})
	k.file.mu.Lock()
	k.file.zipping = running2
	k.file.mu.Unlock()
	go func() { closed <- k.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned with a compression running")
	case <-time.After(100 * time.Millisecond):
	}
	close(running2)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
