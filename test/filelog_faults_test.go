package test

import (
	"bufio"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readRotated returns every json-file record's log text in dir's files
// base, base.N and base.N.gz, and fails on a record that is not whole
// JSON or a gzip file that is not whole.
func readRotated(t *testing.T, dir, base string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, e := range ents {
		name := e.Name()
		if name != base && !strings.HasPrefix(name, base+".") {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, base+"."), ".gz")); name != base && err != nil {
			continue
		}
		fh, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var rd io.Reader = fh
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			rd = zr
		}
		br := bufio.NewReader(rd)
		for {
			b, err := br.ReadBytes('\n')
			if len(b) > 0 {
				var v struct{ Log string }
				if jerr := json.Unmarshal(b, &v); jerr != nil {
					t.Fatalf("%s: a record that is no JSON: %v: %.100q", name, jerr, b)
				}
				logs = append(logs, strings.TrimSuffix(v.Log, "\n"))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		fh.Close()
	}
	return logs
}

// TestFilesCompressDiskFull (soak seeds 15763004519004082034 and
// 2796398554054581163): blocking json-file with compression on a tmpfs
// that is full when the first file rotates, so that its compression
// fails with ENOSPC, then has room again. The rotated file stayed
// uncompressed and the next rotation renamed the current file over it:
// its lines, counted delivered, were gone. Now every line is in the files
// once, and delivered.
func TestFilesCompressDiskFull(t *testing.T) {
	// Room for the first file (16k and a record, in pages) and no more.
	dir, filler := nearlyFullTmpfs(t, "256k", 20<<10)
	logPath := filepath.Join(dir, "c-json.log")
	opts := map[string]string{"log-path": logPath, "close-timeout": "10s", "mode": "blocking",
		"max-size": "16k", "max-file": "20", "compress": "true"}
	l := StartLogger(t, Env("fullgz000001", opts, "DOCKERLOG_SUPERVISOR=off"), "json-file")
	// Random hex compresses to about half: a .gz needs pages of its own.
	rnd := rand.New(rand.NewSource(1))
	const n = 400 // about 100 KB of json-file: six files
	want := make([]string, n)
	for i := range want {
		b := make([]byte, 100)
		rnd.Read(b)
		want[i] = strconv.Itoa(i) + " " + hex.EncodeToString(b)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i += 10 {
			if _, err := l.Stdout.Write([]byte(strings.Join(want[i:i+10], "\n") + "\n")); err != nil {
				return
			}
		}
	}()
	Eventually(t, 20*time.Second, "the logger meeting the full disk", func() bool {
		return strings.Contains(l.Errors(), "no space left on device")
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the logger did not take the lines once the disk had room")
	}
	code := l.Wait(t, 30*time.Second)
	s := l.Stats(t)
	got := readRotated(t, dir, "c-json.log")
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	var missing, dup []int
	for i, w := range want {
		switch count[w] {
		case 0:
			missing = append(missing, i)
		case 1:
		default:
			dup = append(dup, i)
		}
	}
	if code != 0 || len(missing) > 0 || len(dup) > 0 || len(got) != n || s["lines_delivered"] != strconv.Itoa(n) || s["lines_dropped"] != "0" {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("exit %d: %d records in the files %v, missing %v, twice %v; stats %v; stderr: %.2000s", code, len(got), names, missing, dup, s, l.Errors())
	}
}

// TestFilesRotateCreateFails: blocking json-file on a tmpfs out of inodes
// when the file rotates. The current file was renamed to .1 and the new
// one could not be created; every retry of the message shifted the
// rotated files up once more (.1 to .2, .2 removed), so the lines of the
// files pushed out, counted delivered, were gone. Now a retry only tries
// the creation again.
func TestFilesRotateCreateFails(t *testing.T) {
	dir := fullTmpfs(t, "1m,nr_inodes=16")
	logPath := filepath.Join(dir, "c-json.log")
	opts := map[string]string{"log-path": logPath, "close-timeout": "10s", "mode": "blocking",
		"max-size": "16k", "max-file": "3"}
	l := StartLogger(t, Env("noinode00001", opts, "DOCKERLOG_SUPERVISOR=off"), "json-file")
	// Take every inode left.
	var fillers []string
	for i := 0; i < 100; i++ {
		p := filepath.Join(dir, "filler"+strconv.Itoa(i))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			break
		}
		f.Close()
		fillers = append(fillers, p)
	}
	if len(fillers) == 100 {
		t.Skip("nr_inodes is not enforced here")
	}
	rnd := rand.New(rand.NewSource(2))
	const n = 100 // about 26 KB: the second file begins while no inode is free
	want := make([]string, n)
	for i := range want {
		b := make([]byte, 100)
		rnd.Read(b)
		want[i] = strconv.Itoa(i) + " " + hex.EncodeToString(b)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i += 10 {
			if _, err := l.Stdout.Write([]byte(strings.Join(want[i:i+10], "\n") + "\n")); err != nil {
				return
			}
		}
	}()
	Eventually(t, 20*time.Second, "the logger meeting no free inode", func() bool {
		return strings.Contains(l.Errors(), "no space left on device")
	})
	for _, p := range fillers {
		os.Remove(p)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the logger did not take the lines once inodes were free")
	}
	code := l.Wait(t, 30*time.Second)
	s := l.Stats(t)
	got := readRotated(t, dir, "c-json.log")
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	var missing []int
	for i, w := range want {
		if count[w] != 1 {
			missing = append(missing, i)
		}
	}
	if code != 0 || len(missing) > 0 || len(got) != n || s["lines_delivered"] != strconv.Itoa(n) {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("exit %d: %d records in the files %v, not there once %v; stats %v; stderr: %.2000s", code, len(got), names, missing, s, l.Errors())
	}
}

// TestFilesCompressionInterrupted (soak seed 5488964973204324082 -short):
// a worker killed while compressing json.log.1 left it with a truncated
// json.log.1.gz. The next rotation shifted the truncated .gz and renamed
// the current file over json.log.1: its lines were gone, and the .gz was
// unreadable. Here the directory holds what such a worker left; the
// logger that starts removes the temporary, compresses json.log.1 again,
// and every line is readable once.
func TestFilesCompressionInterrupted(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "c-json.log")
	var old strings.Builder
	var want []string
	for i := 0; i < 50; i++ {
		s := "before the kill " + strconv.Itoa(i)
		want = append(want, s)
		old.WriteString(`{"log":"` + s + `\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}` + "\n")
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write("c-json.log.1", []byte(old.String()))
	write("c-json.log.1.gz", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // a gzip header, cut
	write(".c-json.log.1.gz.tmp-00112233aabbccdd", []byte{0x1f, 0x8b})
	opts := map[string]string{"log-path": logPath, "max-size": "4k", "max-file": "10", "compress": "true"}
	l := StartLogger(t, Env("gzkill000001", opts, "DOCKERLOG_SUPERVISOR=off"), "json-file")
	lines := Lines("after", 60) // about three rotations
	want = append(want, lines...)
	WriteLines(t, l.Stdout, lines)
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	got := readRotated(t, dir, "c-json.log")
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	for _, w := range want {
		if count[w] != 1 {
			ents, _ := os.ReadDir(dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("%q is in the files %d times, want once (files %v); stderr: %s", w, count[w], names, l.Errors())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".c-json.log.1.gz.tmp-00112233aabbccdd")); err == nil {
		t.Error("the temporary of the interrupted compression is still there")
	}
}

// TestFilesHandoverDiskFull: blocking json-file meets a full disk, and a
// live upgrade comes meanwhile: the application waits for the disk, the
// upgrade happens once it has room, and every line is in the file once,
// nothing dropped. (This run passes on the code before the fix too; the
// soak seeds 16269148235434856638 and 12524330903834654161, where the
// handing-over worker counted lines it could not write as dropped that
// the next one delivered, fail there and pass now.)
func TestFilesHandoverDiskFull(t *testing.T) {
	dir, filler := nearlyFullTmpfs(t, "256k", 8<<10)
	logPath := filepath.Join(dir, "h-json.log")
	l := StartLogger(t, Env("fullhup00001", map[string]string{"log-path": logPath, "close-timeout": "20s", "mode": "blocking"}), "json-file")
	want := Lines("across a full disk and an upgrade", 2000) // about 90 kB of json-file
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(want); i++ {
			if _, err := l.Stdout.Write([]byte(want[i] + "\n")); err != nil {
				return
			}
			time.Sleep(100 * time.Microsecond) // the soak's pace: a read, a flush, a commit a line
		}
	}()
	Eventually(t, 20*time.Second, "the logger meeting the full disk", func() bool {
		return strings.Contains(l.Errors(), "no space left on device")
	})
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the logger did not take the lines once the disk had room")
	}
	code := l.Wait(t, 60*time.Second)
	s := l.Stats(t)
	got := jsonLines(t, logPath)["stdout"]
	sinkSameLines(t, "stdout", got, want)
	if code != 0 || s["lines_dropped"] != "0" || s["upgrades"] != "1" {
		t.Fatalf("exit %d, lines_dropped=%s, upgrades=%s; stderr: %.2000s", code, s["lines_dropped"], s["upgrades"], l.Errors())
	}
}

// nearlyFullTmpfs mounts a tmpfs of size and fills it, but for room bytes,
// with the file filler (removing it gives the disk back).
func nearlyFullTmpfs(t *testing.T, size string, room int64) (dir, filler string) {
	t.Helper()
	dir = fullTmpfs(t, size)
	filler = filepath.Join(dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").Run() // until ENOSPC
	st, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, st.Size()-room); err != nil {
		t.Fatal(err)
	}
	return dir, filler
}
