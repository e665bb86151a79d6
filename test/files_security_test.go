package test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests here run the logger as root, as it runs in a container, on a
// world-writable directory (mode 1777, as /tmp) where an unprivileged user
// (nobody) plants links, FIFOs and the like: nothing the logger does may
// write, truncate, rename over or compress a file outside what it made
//.

const nobody = 65534

// worldWritable makes a directory like /tmp (mode 1777) that nobody can
// reach, removed at the end of the test.
func worldWritable(t *testing.T) string {
	t.Helper()
	needRoot(t)
	dir, err := os.MkdirTemp("", "dockerlogger-ww-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asNobody runs argv as nobody and fails the test if it fails.
func asNobody(t *testing.T, argv ...string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %v: %v: %s", argv, err, out)
	}
}

// rootVictim makes a root-only file outside the world-writable directory:
// what a planted link points at.
func rootVictim(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir() // 0700, root's
	p := filepath.Join(dir, "shadow")
	content := []byte("root:precious:19000::::::\n")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, content
}

func untouched(t *testing.T, path string, want []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, want) {
		t.Errorf("%s was touched: %v, now %d bytes: %.80q", path, err, len(b), b)
	}
}

// TestFilesLinksAtRotationNames: nobody plants symbolic links to a root
// file at every name rotation and compression use (<log>.1 … <log>.3,
// <log>.1.gz … <log>.3.gz), before the logger starts and again while it
// rotates, and hard links to a file of its own: json-file with max-size,
// max-file and compress rotates many times, and neither file changes.
func TestFilesLinksAtRotationNames(t *testing.T) {
	ww := worldWritable(t)
	victim, content := rootVictim(t)
	mine := filepath.Join(ww, "nobodys")
	asNobody(t, "sh", "-c", "echo nobody-data > "+mine)
	mineContent, _ := os.ReadFile(mine)
	logPath := filepath.Join(ww, "c-json.log")
	plant := func(round int) {
		for i, suffix := range []string{".1", ".2", ".3", ".1.gz", ".2.gz", ".3.gz"} {
			p := logPath + suffix
			if (i+round)%2 == 0 {
				asNobody(t, "sh", "-c", "rm -f "+p+" 2>/dev/null; ln -s "+victim+" "+p+" 2>/dev/null; true")
			} else {
				asNobody(t, "sh", "-c", "rm -f "+p+" 2>/dev/null; ln "+mine+" "+p+" 2>/dev/null; true")
			}
		}
	}
	plant(0)
	l := StartLogger(t, Env("rot0000000001", map[string]string{"log-path": logPath, "max-size": "2k", "max-file": "4", "compress": "true"}), "json-file")
	// And, all along, a hard link put back at the name compression
	// creates, as fast as nobody can.
	racer := exec.Command("sh", "-c", "while :; do ln -f "+mine+" "+logPath+".1.gz 2>/dev/null; done")
	racer.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := racer.Start(); err != nil {
		t.Fatal(err)
	}
	defer racer.Wait()
	defer racer.Process.Kill()
	for round := 1; round <= 8; round++ {
		for i := 0; i < 10; i++ {
			WriteLines(t, l.Stdout, Lines("rotating through links", 20))
			time.Sleep(10 * time.Millisecond)
		}
		plant(round)
	}
	if code := l.Wait(t, 30*time.Second); code != 0 && code != 1 {
		t.Errorf("exit %d; stderr: %s", code, l.Errors())
	}
	untouched(t, victim, content)
	untouched(t, mine, mineContent)
	if st, err := os.Lstat(logPath); err != nil || !st.Mode().IsRegular() {
		t.Errorf("log file: %v %v", st, err)
	}
}

// TestFilesLinkedLogDirectoryRefused: a log-path whose directory is a
// link nobody planted is refused at start, exit 2, one line naming it;
// nothing is written where the link points.
func TestFilesLinkedLogDirectoryRefused(t *testing.T) {
	ww := worldWritable(t)
	target := t.TempDir() // root's
	link := filepath.Join(ww, "logs")
	asNobody(t, "ln", "-s", target, link)
	logPath := filepath.Join(link, "c-json.log")
	env := Env("lnkdir000001", map[string]string{"log-path": logPath})
	for _, args := range [][]string{{"--validate", "json-file"}, {"json-file"}, {"local"}} {
		l := StartLoggerNoWait(t, env, args...)
		code := l.Wait(t, 10*time.Second)
		if code != 2 || strings.Count(l.Errors(), "\n") != 1 || !strings.Contains(l.Errors(), link) || !strings.Contains(l.Errors(), "symbolic link") {
			t.Errorf("%v: exit %d: %s", args, code, l.Errors())
		}
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("written through the link: %v", ents)
	}
}

// TestFilesNotRegularLogPathRefused: a FIFO with no reader
// at log-path hung open(2) with no error; a link or a device was written
// through. Each is refused at start: exit 2 within a few seconds, one line.
func TestFilesNotRegularLogPathRefused(t *testing.T) {
	ww := worldWritable(t)
	victim, content := rootVictim(t)
	fifo := filepath.Join(ww, "fifo-json.log")
	asNobody(t, "mkfifo", fifo)
	link := filepath.Join(ww, "link-json.log")
	asNobody(t, "ln", "-s", victim, link)
	for _, c := range []struct{ path, want string }{
		{fifo, "is a FIFO"},
		{link, "is a symbolic link"},
		{"/dev/full", "is a device"},
	} {
		for _, driver := range []string{"json-file", "local"} {
			start := time.Now()
			l := StartLoggerNoWait(t, Env("notreg000001", map[string]string{"log-path": c.path}), driver)
			WriteLines(t, l.Stdout, Lines("never", 3))
			code := l.Wait(t, 10*time.Second)
			if code != 2 || strings.Count(l.Errors(), "\n") != 1 || !strings.Contains(l.Errors(), c.want) || !strings.Contains(l.Errors(), c.path) {
				t.Errorf("%s %s: exit %d: %s", driver, c.path, code, l.Errors())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s %s: took %v", driver, c.path, d)
			}
		}
	}
	untouched(t, victim, content)
}

// TestFilesStatsFileLink: a link nobody planted at the stats file's name
// is replaced by the stats file, never written through; the temporary
// file is made in the same directory, relative to it.
func TestFilesStatsFileLink(t *testing.T) {
	ww := worldWritable(t)
	victim, content := rootVictim(t)
	stats := filepath.Join(ww, "logger.prom")
	asNobody(t, "ln", "-s", victim, stats)
	l := StartLogger(t, Env("stats0000001", map[string]string{"stats-file": stats, "log-path": filepath.Join(t.TempDir(), "c.log")}), "json-file")
	WriteLines(t, l.Stdout, Lines("stats", 10))
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
	untouched(t, victim, content)
	// A stats directory that is a link: refused at start, nothing
	// written where it points.
	target := t.TempDir()
	linkDir := filepath.Join(ww, "statsdir")
	asNobody(t, "ln", "-s", target, linkDir)
	bad := StartLoggerNoWait(t, Env("stats0000002", map[string]string{"stats-file": filepath.Join(linkDir, "s.prom"), "log-path": filepath.Join(t.TempDir(), "c.log")}), "json-file")
	if code := bad.Wait(t, 10*time.Second); code != 2 || !strings.Contains(bad.Errors(), "stats-file=") || !strings.Contains(bad.Errors(), "symbolic link") {
		t.Errorf("stats in a linked directory: exit %d: %s", code, bad.Errors())
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("written through the linked directory: %v", ents)
	}
	b, err := os.ReadFile(stats)
	if st, lerr := os.Lstat(stats); lerr != nil || !st.Mode().IsRegular() || err != nil || !bytes.Contains(b, []byte("dockerlogger_lines_delivered 10\n")) {
		t.Errorf("stats file: %v %v: %q", st, err, b)
	}
}

// fullTmpfs mounts a tmpfs of size on a new directory, for a disk that
// fills (as the fault matrix does).
func fullTmpfs(t *testing.T, size string) string {
	t.Helper()
	needRoot(t)
	needCmd(t, "mount")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		need(t, false, "cannot mount a tmpfs: "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fileLines counts the json-file lines in path and checks that each is
// whole JSON.
func fileLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d of %s is not whole: %v: %.100q", n+1, path, err, line)
		}
		n++
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends in a torn record", path)
	}
	return n
}

func fsStat(t *testing.T, s map[string]string, k string) int {
	t.Helper()
	n, err := strconv.Atoi(s[k])
	if err != nil && k != "lines_dropped_disk_full" {
		t.Fatalf("stats %s=%q", k, s[k])
	}
	return n
}

// TestFilesDiskFullCounted: json-file on a tmpfs that fills.
// Lines taken into the buffer used to count as delivered at once: on a
// full disk the logger said lines_delivered=3 with an empty file. Now
// lines_delivered is exactly the lines in the file, whole, and every other
// line read is dropped and counted (disk-full for what was buffered).
func TestFilesDiskFullCounted(t *testing.T) {
	t.Run("already full, blocking", func(t *testing.T) {
		dir := fullTmpfs(t, "64k")
		filler := filepath.Join(dir, "filler")
		exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").Run() // until ENOSPC
		logPath := filepath.Join(dir, "c-json.log")
		l := StartLogger(t, Env("full00000001", map[string]string{"log-path": logPath, "close-timeout": "2s"}), "json-file")
		WriteLines(t, l.Stdout, Lines("no room", 3))
		code := l.Wait(t, 30*time.Second)
		s := l.Stats(t)
		if code != 1 || s["lines_read"] != "3" || s["lines_delivered"] != "0" || s["lines_dropped"] != "3" || s["lines_dropped_disk_full"] != "3" {
			t.Errorf("exit %d, stats %v; stderr: %s", code, s, l.Errors())
		}
		if n := fileLines(t, logPath); n != 0 {
			t.Errorf("%d lines in the file", n)
		}
	})
	// In spool mode what the file could not take stays in the spool (the
	// spool frees a record only once the driver has written it): left
	// for the next logger on the spool-dir, which delivers it, and so
	// not counted dropped.
	t.Run("already full, spool", func(t *testing.T) {
		dir := fullTmpfs(t, "64k")
		exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "filler"), "bs=4k").Run() // until ENOSPC
		spoolDir := t.TempDir()
		opts := map[string]string{"log-path": filepath.Join(dir, "c-json.log"), "close-timeout": "2s", "mode": "spool", "spool-dir": spoolDir}
		l := StartLogger(t, Env("full00000003", opts), "json-file")
		lines := Lines("kept in the spool", 3)
		WriteLines(t, l.Stdout, lines)
		code := l.Wait(t, 30*time.Second)
		s := l.Stats(t)
		if code != 1 || s["lines_read"] != "3" || s["lines_delivered"] != "0" || s["lines_dropped"] != "0" || s["lines_spooled"] != "3" {
			t.Errorf("exit %d, stats %v; stderr: %s", code, s, l.Errors())
		}
		// The next logger on the spool-dir, with room on its disk.
		opts["log-path"] = filepath.Join(t.TempDir(), "c-json.log")
		next := StartLogger(t, Env("full00000003", opts), "json-file")
		if code := next.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("next logger: exit %d; stderr: %s", code, next.Errors())
		}
		if n := fileLines(t, opts["log-path"]); n != len(lines) {
			t.Errorf("next logger wrote %d lines, want %d; stats %v", n, len(lines), next.Stats(t))
		}
	})
	for _, mode := range []string{"non-blocking", "blocking"} {
		t.Run("fills, "+mode, func(t *testing.T) {
			dir := fullTmpfs(t, "96k")
			logPath := filepath.Join(dir, "c-json.log")
			opts := map[string]string{"log-path": logPath, "close-timeout": "2s", "mode": mode}
			l := StartLogger(t, Env("full00000002", opts, "DOCKERLOG_SUPERVISOR=off"), "json-file")
			const n = 3000 // about 270 KB of json-file: three times the disk
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < n; i += 100 {
					if _, err := l.Stdout.Write([]byte(strings.Join(Lines("fill the disk "+strconv.Itoa(i), 100), "\n") + "\n")); err != nil {
						return
					}
				}
			}()
			select {
			case <-done:
			case <-time.After(3 * time.Second): // blocking: the logger waits for room
				syscall.Kill(l.Cmd.Process.Pid, syscall.SIGTERM)
				<-done
			}
			code := l.Wait(t, 30*time.Second)
			s := l.Stats(t)
			read, delivered, dropped := fsStat(t, s, "lines_read"), fsStat(t, s, "lines_delivered"), fsStat(t, s, "lines_dropped")
			inFile := fileLines(t, logPath)
			if delivered != inFile || delivered+dropped != read || delivered == 0 || dropped == 0 || code != 1 {
				t.Errorf("exit %d: %d lines in the file; stats read %d delivered %d dropped %d: %v; stderr: %.2000s", code, inFile, read, delivered, dropped, s, l.Errors())
			}
			if mode == "non-blocking" && read != n {
				t.Errorf("read %d of %d", read, n)
			}
		})
	}
}
