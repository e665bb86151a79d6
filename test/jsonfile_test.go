package test

// End-to-end tests of the file drivers: the built dockerlogger writes
// json-file and local logs, and Docker's OWN readers
// (daemon/logger/jsonfilelog and daemon/logger/local, ReadLogs as `docker
// logs` uses it) read them back. Where the exact bytes matter, Docker's
// json-file driver run in-process on the same messages is the oracle.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/jsonfilelog"
	"github.com/docker/docker/daemon/logger/local"
)

// jfMsg is one message as Docker's reader returned it.
type jfMsg struct {
	Source  string
	Line    []byte
	TS      time.Time
	Partial bool
	ID      string
	Ordinal int
	Last    bool
}

// jfRead reads a json-file or local log with Docker's own reader, as
// `docker logs` does (no follow, whole file, rotated files included).
func jfRead(t *testing.T, driver, path string, cfg map[string]string) []jfMsg {
	t.Helper()
	info := logger.Info{LogPath: path, Config: cfg, ContainerID: "reader"}
	var l logger.Logger
	var err error
	switch driver {
	case "json-file":
		l, err = jsonfilelog.New(info)
	case "local":
		l, err = local.New(info)
	default:
		t.Fatalf("no reader for %s", driver)
	}
	if err != nil {
		t.Fatalf("Docker's %s driver on %s: %v", driver, path, err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := l.(logger.LogReader).ReadLogs(ctx, logger.ReadConfig{Follow: false, Tail: -1})
	defer w.ConsumerGone()
	var out []jfMsg
	for {
		select {
		case m, ok := <-w.Msg:
			if !ok {
				return out
			}
			r := jfMsg{Source: m.Source, Line: append([]byte(nil), m.Line...), TS: m.Timestamp}
			if p := m.PLogMetaData; p != nil {
				r.Partial, r.ID, r.Ordinal, r.Last = true, p.ID, p.Ordinal, p.Last
			}
			out = append(out, r)
		case err := <-w.Err:
			t.Fatalf("Docker's %s reader: %v", driver, err)
		case <-ctx.Done():
			t.Fatalf("Docker's %s reader did not finish", driver)
		}
	}
}

// jfStreams joins what Docker's reader returned per stream, the way
// `docker logs` prints it, and checks the stream names and that
// timestamps never go back within a stream.
func jfStreams(t *testing.T, msgs []jfMsg) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	last := map[string]time.Time{}
	for i, m := range msgs {
		if m.Source != "stdout" && m.Source != "stderr" {
			t.Fatalf("message %d: stream %q", i, m.Source)
		}
		if m.TS.IsZero() {
			t.Errorf("message %d: no timestamp", i)
		}
		if m.TS.Before(last[m.Source]) {
			t.Errorf("%s message %d: timestamp %v before the previous %v", m.Source, i, m.TS, last[m.Source])
		}
		last[m.Source] = m.TS
		out[m.Source] = append(out[m.Source], m.Line...)
	}
	return out
}

func jfJoin(lines []string) []byte {
	if len(lines) == 0 {
		return nil
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// jfRun starts the logger for driver with opts, writes stdout and stderr
// concurrently, closes the inputs and waits for exit 0.
func jfRun(t *testing.T, driver string, opts map[string]string, path string, stdout, stderr []byte) *Logger {
	t.Helper()
	l := StartLogger(t, Env("c0ffee", opts, "DOCKERLOG_LOGPATH="+path), driver)
	var wg sync.WaitGroup
	for _, w := range []struct {
		f    *os.File
		data []byte
	}{{l.Stdout, stdout}, {l.Stderr, stderr}} {
		wg.Add(1)
		go func(f *os.File, data []byte) {
			defer wg.Done()
			if _, err := f.Write(data); err != nil {
				t.Errorf("write: %v", err)
			}
			f.Close()
		}(w.f, w.data)
	}
	wg.Wait()
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("logger exited %d; stderr: %s", code, l.Errors())
	}
	for _, bad := range []string{"panic", "goroutine "} {
		if strings.Contains(l.Errors(), bad) {
			t.Fatalf("logger stderr has %q: %s", bad, l.Errors())
		}
	}
	return l
}

func TestFileDriversLines(t *testing.T) {
	for _, driver := range []string{"json-file", "local"} {
		t.Run(driver, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c0ffee.log")
			out, errs := Lines("out", 2000), Lines("err", 1500)
			l := jfRun(t, driver, map[string]string{}, path, jfJoin(out), jfJoin(errs))
			got := jfStreams(t, jfRead(t, driver, path, map[string]string{}))
			if !bytes.Equal(got["stdout"], jfJoin(out)) {
				t.Errorf("stdout differs: got %d bytes, want %d", len(got["stdout"]), len(jfJoin(out)))
			}
			if !bytes.Equal(got["stderr"], jfJoin(errs)) {
				t.Errorf("stderr differs: got %d bytes, want %d", len(got["stderr"]), len(jfJoin(errs)))
			}
			st := l.Stats(t)
			var bytesRead int
			for _, s := range append(out, errs...) {
				bytesRead += len(s)
			}
			for k, v := range map[string]string{"lines_read": "3500", "lines_delivered": "3500", "lines_dropped": "0",
				"bytes_read": fmt.Sprint(bytesRead), "bytes_dropped": "0", "restarts": "0"} {
				if st[k] != v {
					t.Errorf("stats %s=%s, want %s", k, st[k], v)
				}
			}
		})
	}
}

// TestFileDriversUnterminated: a last line with no newline is written as
// Docker's copier writes it, a partial message not marked last, so that
// Docker's reader gives back exactly the bytes written, on each stream.
func TestFileDriversUnterminated(t *testing.T) {
	for _, driver := range []string{"json-file", "local"} {
		t.Run(driver, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			jfRun(t, driver, map[string]string{}, path, []byte("a\nno newline"), []byte("\n\nerr tail"))
			msgs := jfRead(t, driver, path, map[string]string{})
			got := jfStreams(t, msgs)
			if string(got["stdout"]) != "a\nno newline" || string(got["stderr"]) != "\n\nerr tail" {
				t.Errorf("got stdout %q stderr %q", got["stdout"], got["stderr"])
			}
			if driver != "local" {
				return // json-file keeps no partial metadata: the missing newline says it
			}
			last := map[string]jfMsg{}
			for _, m := range msgs {
				last[m.Source] = m
			}
			for _, s := range []string{"stdout", "stderr"} {
				if m := last[s]; !m.Partial || m.Last || m.Ordinal != 1 {
					t.Errorf("%s: last message %+v, want a partial message, ordinal 1, not last", s, m)
				}
			}
		})
	}
}

// jfOddLines are lines whose bytes a JSON encoder must take care of.
var jfOddLines = [][]byte{
	[]byte("plain ascii"),
	[]byte("invalid utf-8 \xff\xfe\xfd end"),
	[]byte("truncated \xe2\x82 rune"),
	[]byte("nul \x00 inside"),
	[]byte("\x00"),
	[]byte("escape \x1b[31mred\x1b[0m bell \x07 del \x7f"),
	[]byte("tab\tcarriage\rreturn"),
	[]byte(`quotes " and \ backslash and \n literal`),
	[]byte("html <script>&amp;</script>"),
	[]byte("unicode héllo ☃ 𝄞 \u2028 \u2029"),
	[]byte("surrogate half \xed\xa0\x80"),
	[]byte(""),
	[]byte("   "),
	[]byte("CRLF line\r"),
}

var jfTime = regexp.MustCompile(`"time":"[^"]*"`)

// TestJSONFileBytesAsDocker writes awkward bytes through the logger and,
// in-process, through Docker's own json-file driver: the two files must be
// byte-for-byte the same except for the timestamps, and Docker's reader
// must return the same lines from both.
func TestJSONFileBytesAsDocker(t *testing.T) {
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.log")
	var in bytes.Buffer
	for _, l := range jfOddLines {
		in.Write(l)
		in.WriteByte('\n')
	}
	jfRun(t, "json-file", map[string]string{}, ours, in.Bytes(), nil)

	theirs := filepath.Join(dir, "docker.log")
	dl, err := jsonfilelog.New(logger.Info{LogPath: theirs, Config: map[string]string{}, ContainerID: "c0ffee"})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, l := range jfOddLines {
		m := logger.NewMessage()
		m.Source, m.Timestamp = "stdout", ts
		m.Line = append(m.Line, l...)
		if err := dl.Log(m); err != nil {
			t.Fatal(err)
		}
	}
	dl.Close()

	a, _ := os.ReadFile(ours)
	b, _ := os.ReadFile(theirs)
	na := jfTime.ReplaceAll(a, []byte(`"time":"T"`))
	nb := jfTime.ReplaceAll(b, []byte(`"time":"T"`))
	if !bytes.Equal(na, nb) {
		al, bl := strings.Split(string(na), "\n"), strings.Split(string(nb), "\n")
		for i := 0; i < len(al) && i < len(bl); i++ {
			if al[i] != bl[i] {
				t.Errorf("line %d\n ours   %q\n docker %q", i, al[i], bl[i])
			}
		}
		if len(al) != len(bl) {
			t.Errorf("ours has %d lines, Docker's %d", len(al), len(bl))
		}
	}
	ra, rb := jfRead(t, "json-file", ours, nil), jfRead(t, "json-file", theirs, nil)
	if len(ra) != len(jfOddLines) || len(rb) != len(jfOddLines) {
		t.Fatalf("read %d and %d messages, want %d", len(ra), len(rb), len(jfOddLines))
	}
	for i := range ra {
		if !bytes.Equal(ra[i].Line, rb[i].Line) {
			t.Errorf("line %d: Docker's reader returns %q from ours, %q from Docker's", i, ra[i].Line, rb[i].Line)
		}
		// Valid UTF-8 survives exactly; invalid bytes become U+FFFD, as
		// Docker's own encoder makes them.
		if bytes.Equal(jfOddLines[i], bytes.ToValidUTF8(jfOddLines[i], nil)) && !bytes.Equal(ra[i].Line, append(append([]byte(nil), jfOddLines[i]...), '\n')) {
			t.Errorf("line %d: read back %q, want %q", i, ra[i].Line, jfOddLines[i])
		}
	}
}

// TestLocalBytesExact: the local driver stores raw bytes, so every odd
// line comes back exactly.
func TestLocalBytesExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	var in bytes.Buffer
	for _, l := range jfOddLines {
		in.Write(l)
		in.WriteByte('\n')
	}
	jfRun(t, "local", map[string]string{}, path, nil, in.Bytes())
	got := jfStreams(t, jfRead(t, "local", path, nil))
	if !bytes.Equal(got["stderr"], in.Bytes()) {
		t.Errorf("stderr\n got %q\nwant %q", got["stderr"], in.Bytes())
	}
}

// TestFileDriversPartials: lines longer than line-max are cut into
// partial messages that Docker's readers put back together; local keeps
// Docker's partial metadata.
func TestFileDriversPartials(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789abcdef"), 5000/16+1)[:5000]
	in := append(append([]byte("short\n"), long...), "\nafter\n"...)
	for _, driver := range []string{"json-file", "local"} {
		t.Run(driver, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			l := jfRun(t, driver, map[string]string{"line-max": "1k"}, path, in, nil)
			msgs := jfRead(t, driver, path, nil)
			if got := jfStreams(t, msgs)["stdout"]; !bytes.Equal(got, in) {
				t.Errorf("reassembled stdout differs:\n got %q\nwant %q", got, in)
			}
			// short, 5 parts (4 of 1024 and one of 904), after
			if len(msgs) != 7 {
				t.Fatalf("%d messages, want 7", len(msgs))
			}
			for i, m := range msgs[1:6] {
				want := 1024
				if i == 4 {
					want = 5000 - 4*1024 + 1 // with its newline
				}
				if len(m.Line) != want {
					t.Errorf("part %d: %d bytes, want %d", i+1, len(m.Line), want)
				}
				if !m.TS.Equal(msgs[1].TS) {
					t.Errorf("part %d stamped %v, first part %v", i+1, m.TS, msgs[1].TS)
				}
				if driver == "local" {
					if !m.Partial || m.ID != msgs[1].ID || m.Ordinal != i+1 || m.Last != (i == 4) {
						t.Errorf("part %d metadata %+v", i+1, m)
					}
				}
			}
			if st := l.Stats(t); st["lines_read"] != "7" || st["partial_messages"] != "5" || st["bytes_read"] != "5010" {
				t.Errorf("stats %v", st)
			}
		})
	}
}

// jfFiles lists the names in dir, sorted.
func jfFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestFileDriversRotation: with max-size=1k,max-file=3 the logger keeps
// exactly three files, Docker's reader reads what they hold in order, and
// that is the newest lines, the oldest rotated away.
func TestFileDriversRotation(t *testing.T) {
	for _, c := range []struct {
		driver string
		opts   map[string]string
		files  []string
	}{
		{"json-file", map[string]string{"max-size": "1k", "max-file": "3"}, []string{"c.log", "c.log.1", "c.log.2"}},
		{"json-file", map[string]string{"max-size": "1k", "max-file": "3", "compress": "true"}, []string{"c.log", "c.log.1.gz", "c.log.2.gz"}},
		{"local", map[string]string{"max-size": "1k", "max-file": "3", "compress": "false"}, []string{"c.log", "c.log.1", "c.log.2"}},
		{"local", map[string]string{"max-size": "1k", "max-file": "3"}, []string{"c.log", "c.log.1.gz", "c.log.2.gz"}},
	} {
		t.Run(c.driver+"_"+c.opts["compress"], func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.log")
			out := Lines("rotate", 400)
			jfRun(t, c.driver, c.opts, path, jfJoin(out), nil)
			if got := jfFiles(t, dir); strings.Join(got, " ") != strings.Join(c.files, " ") {
				t.Errorf("files %v, want %v", got, c.files)
			}
			for _, f := range c.files {
				st, err := os.Stat(filepath.Join(dir, f))
				if err == nil && !strings.HasSuffix(f, ".gz") && st.Size() > 1024+200 {
					t.Errorf("%s is %d bytes, more than max-size and one entry", f, st.Size())
				}
			}
			got := string(jfStreams(t, jfRead(t, c.driver, path, c.opts))["stdout"])
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if len(lines) < 10 || len(lines) >= len(out) {
				t.Fatalf("read %d lines of %d written: rotation kept too few or too many", len(lines), len(out))
			}
			// What is left is exactly the newest lines, in order.
			want := out[len(out)-len(lines):]
			if strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Errorf("retained lines are not the newest %d in order: first %q last %q", len(lines), lines[0], lines[len(lines)-1])
			}
			if strings.Contains(got, out[0]+"\n") {
				t.Errorf("the oldest line was not rotated away")
			}
		})
	}
}

// TestLocalDefaults: with no options the local driver rotates at Docker's
// default 20m and compresses the rotated file (default compress=true).
func TestLocalDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	line := bytes.Repeat([]byte("x"), 16<<10-1)
	line = append(line, '\n')
	n := (21 << 20) / len(line) // a little over 20m of messages
	in := bytes.Repeat(line, n)
	jfRun(t, "local", map[string]string{}, path, in, nil)
	if got := jfFiles(t, dir); strings.Join(got, " ") != "c.log c.log.1.gz" {
		t.Fatalf("files %v, want one rotation at 20m, compressed", got)
	}
	st, _ := os.Stat(filepath.Join(dir, "c.log.1.gz"))
	if st.Size() > 1<<20 {
		t.Errorf("c.log.1.gz is %d bytes: not compressed", st.Size())
	}
	msgs := jfRead(t, "local", path, map[string]string{})
	if len(msgs) != n {
		t.Errorf("read %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Line, line) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(m.Line), len(line))
		}
	}
}
