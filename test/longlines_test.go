package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pipeCap is what the logger asks for its input pipes (zfd.GrowPipe).
const pipeCap = 1 << 20

// longestFromPipe is the longest message a logger makes from its pipe,
// whatever line-max says: the pipe's window (half of it less a page) and
// at most 4 KiB that the read reaching it brought beyond (reader.Longest).
var longestFromPipe = (pipeCap-os.Getpagesize())/2 + 4<<10

// TestLongLinesEveryMode: in every mode and for line-max below, at and
// above the pipe's capacity, a line of 4x line-max and a line of 4x the
// pipe's capacity arrive whole (as partial messages, joined by Docker's
// reader), then a short line: the supervised logger, which reads its pipes
// without consuming them, must never wait for a newline the pipe cannot
// hold. Variants: writes that leave most of each pipe page empty (the pipe
// is full long before it holds its capacity in bytes), and a writer that
// shrinks the pipe to one page, and a logger without a supervisor
// (DOCKERLOG_SUPERVISOR=off), which consumes its pipes yet cuts where a
// peeking one must. No message is longer than the pipe's window (half
// the pipe less a page) and 4 KiB, whatever line-max says: the same
// bound with a supervisor or without, and memory bounded by the pipe.
func TestLongLinesEveryMode(t *testing.T) {
	type writerKind string
	const (
		oneWrite   writerKind = "one-write"
		halfPages  writerKind = "half-pages"  // writes of 2049 bytes: one per pipe page
		shrunkPipe writerKind = "shrunk-pipe" // F_SETPIPE_SZ to one page on the write end
		// F_SETPIPE_SZ to 8 MiB on the write end once the logger reads,
		// with fs.pipe-max-size raised to let it: messages stay as long
		// as the logger planned its memory for at its start
		grownPipe writerKind = "grown-pipe"
		// oneWrite, to a logger without a supervisor
		unsupervised writerKind = "one-write-unsupervised"
	)
	type tc struct {
		mode, lineMax string
		lineMaxBytes  int
		w             writerKind
	}
	var cases []tc
	for _, m := range []string{"blocking", "non-blocking", "spool"} {
		for _, lm := range []struct {
			s string
			n int
		}{{"1k", 1 << 10}, {"1m", 1 << 20}, {"4m", 4 << 20}} {
			cases = append(cases, tc{m, lm.s, lm.n, oneWrite})
		}
		cases = append(cases, tc{m, "4m", 4 << 20, halfPages}, tc{m, "4m", 4 << 20, shrunkPipe}, tc{m, "4m", 4 << 20, grownPipe}, tc{m, "4m", 4 << 20, unsupervised})
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/line-max=%s/%s", c.mode, c.lineMax, c.w), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.log")
			opts := map[string]string{"mode": c.mode, "line-max": c.lineMax, "close-timeout": "60s"}
			switch c.mode {
			case "non-blocking":
				// Room for everything: this test is about not waiting,
				// the ring's drops are counted elsewhere.
				opts["max-buffer-size"] = "64m"
				opts["buffer-full"] = "block"
			case "spool":
				opts["spool-dir"] = filepath.Join(dir, "spool")
			}
			long := bytes.Repeat([]byte("a"), 4*c.lineMaxBytes)
			wide := bytes.Repeat([]byte("b"), 4*pipeCap)
			want := append(append(append(append(long, '\n'), wide...), '\n'), "after\n"...)
			if c.w == halfPages {
				long = long[:3<<20] // 1500 writes are enough
				want = append(append(append(append(long, '\n'), wide...), '\n'), "after\n"...)
			}
			env := []string{"DOCKERLOG_LOGPATH=" + path}
			if c.w == unsupervised {
				env = append(env, "DOCKERLOG_SUPERVISOR=off")
			}
			if c.w == grownPipe {
				raisePipeMaxSize(t, 8<<20)
			}
			l := StartLogger(t, Env("longlines", opts, env...), "json-file")
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				switch c.w {
				case oneWrite, unsupervised:
					_, err = l.Stdout.Write(want)
				case halfPages:
					for p := want; len(p) > 0 && err == nil; {
						n := min(2049, len(p))
						_, err = l.Stdout.Write(p[:n])
						p = p[n:]
					}
				case shrunkPipe:
					if _, err = unix.FcntlInt(l.Stdout.Fd(), unix.F_SETPIPE_SZ, os.Getpagesize()); err == nil {
						_, err = l.Stdout.Write(want)
					}
				case grownPipe:
					if _, err = unix.FcntlInt(l.Stdout.Fd(), unix.F_SETPIPE_SZ, 8<<20); err == nil {
						_, err = l.Stdout.Write(want)
					}
				}
				if err != nil {
					t.Errorf("write: %v", err)
				}
				l.Stdout.Close()
			}()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatalf("the writer is still blocked after 60 s: the logger waits for a newline; stderr: %s", l.Errors())
			}
			if code := l.Wait(t, 60*time.Second); code != 0 {
				t.Fatalf("logger exited %d; stderr: %s", code, l.Errors())
			}
			msgs := jfRead(t, "json-file", path, nil)
			for i, m := range msgs {
				if len(m.Line) > longestFromPipe {
					t.Fatalf("message %d has %d bytes, more than the pipe's window and 4 KiB, %d", i, len(m.Line), longestFromPipe)
				}
			}
			got := jfStreams(t, msgs)["stdout"]
			if !bytes.Equal(got, want) {
				t.Fatalf("read back %d bytes, want %d (first difference at %d); stderr: %s", len(got), len(want), firstDiff(got, want), l.Errors())
			}
			st := l.Stats(t)
			if st["lines_dropped"] != "0" || st["lines_read"] != st["lines_delivered"] {
				t.Fatalf("stats: read %s delivered %s dropped %s", st["lines_read"], st["lines_delivered"], st["lines_dropped"])
			}
		})
	}
}

// raisePipeMaxSize raises the sysctl fs.pipe-max-size to at least n for
// the test (an administrator's choice that lets any process grow its
// pipes that far), and puts it back after.
func raisePipeMaxSize(t *testing.T, n int) {
	t.Helper()
	const path = "/proc/sys/fs/pipe-max-size"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	was := strings.TrimSpace(string(b))
	if cur, _ := strconv.Atoi(was); cur >= n {
		return
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)), 0o644); err != nil {
		if inCI() {
			t.Fatalf("raise %s (CI runs as root): %v", path, err)
		}
		t.Skipf("raising %s needs root: %v", path, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, []byte(was), 0o644); err != nil {
			t.Errorf("put %s back to %s: %v", path, was, err)
		}
	})
}
