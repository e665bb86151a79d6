package filelog_test

// These tests hold our json-file and local writers to Docker's own: the
// same messages, with the same timestamps, go through Docker's driver
// (daemon/logger/jsonfilelog, daemon/logger/local) and through ours into
// two directories, and the files must match byte for byte (gzip files by
// their header metadata and decompressed contents). Docker's own readers
// must then read every message back from our files.

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/api/types/backend"
	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/jsonfilelog"
	"github.com/docker/docker/daemon/logger/local"

	"github.com/joyent/dockerlogger/filelog"
)

// msg is a message to log, kept apart from the pooled logger.Message that
// each driver consumes.
type msg struct {
	line    string
	source  string
	ts      time.Time
	partial *backend.PartialLogMetaData
}

func (m msg) new() *logger.Message {
	lm := logger.NewMessage()
	lm.Line = append(lm.Line[:0], m.line...)
	lm.Source = m.source
	lm.Timestamp = m.ts
	if m.partial != nil {
		p := *m.partial
		lm.PLogMetaData = &p
	}
	return lm
}

var base = time.Date(2024, 3, 5, 7, 8, 9, 123456789, time.UTC)

// tricky is every kind of message the encoders treat differently.
func tricky() []msg {
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	p := func(id string, ord int, last bool) *backend.PartialLogMetaData {
		return &backend.PartialLogMetaData{ID: id, Ordinal: ord, Last: last}
	}
	return []msg{
		{line: "hello world", source: "stdout", ts: at(0)},
		{line: "", source: "stdout", ts: at(1)},
		{line: "héllo wörld ✓ 日本語 🙂", source: "stderr", ts: at(2)},
		{line: "bad \xff\xfe utf8 \xe2\x80", source: "stdout", ts: at(3)},
		{line: "\xe2\x80", source: "stdout", ts: at(3)},
		{line: "nul\x00byte", source: "stdout", ts: at(4)},
		{line: `<script>alert("x&y")</script> back\slash`, source: "stderr", ts: at(5)},
		{line: "tab\tcr\rbell\x07esc\x1b del\x7f", source: "stdout", ts: at(6)},
		{line: "sep\u2028para\u2029end", source: "stdout", ts: at(7)},
		{line: "part one ", source: "stdout", ts: at(8), partial: p("abc", 1, false)},
		{line: "", source: "stdout", ts: at(8), partial: p("abc", 2, false)},
		{line: "end of part", source: "stdout", ts: at(8), partial: p("abc", 3, true)},
		{line: "", source: "stderr", ts: at(9), partial: p("def", 1, true)},
		{line: "no stream", source: "", ts: at(10)},
		{line: "whole second", source: "stdout", ts: time.Date(2024, 3, 5, 7, 8, 10, 0, time.UTC)},
		{line: "trailing zeros", source: "stdout", ts: time.Date(2024, 3, 5, 7, 8, 10, 120000000, time.UTC)},
		{line: "other zone", source: "stdout", ts: base.In(time.FixedZone("X", -(3*3600 + 1800)))},
		{line: strings.Repeat("long line ", 1000), source: "stdout", ts: at(11)},
	}
}

func info(dir string, cfg map[string]string) logger.Info {
	return logger.Info{
		Config:          cfg,
		LogPath:         filepath.Join(dir, "ctr-json.log"),
		ContainerID:     "0123456789abcdef0123",
		ContainerName:   "/web",
		ContainerLabels: map[string]string{"app": "shop", "tier": "<front>"},
		ContainerEnv:    []string{"REGION=eu", "EMPTY=", "NOEQ"},
	}
}

func newDocker(t *testing.T, format string, in logger.Info) logger.Logger {
	t.Helper()
	var l logger.Logger
	var err error
	if format == "json-file" {
		l, err = jsonfilelog.New(in)
	} else {
		l, err = local.New(in)
	}
	if err != nil {
		t.Fatalf("docker %s: %v", format, err)
	}
	return l
}

type ours interface {
	logger.Logger
	Flush() error
}

func newOurs(t *testing.T, format string, in logger.Info) ours {
	t.Helper()
	var l ours
	var err error
	if format == "json-file" {
		l, err = filelog.NewJSONDriver(in, nil)
	} else {
		l, err = filelog.NewLocalDriver(in, nil)
	}
	if err != nil {
		t.Fatalf("our %s: %v", format, err)
	}
	return l
}

// write logs msgs with Docker's driver into dockerDir and with ours into
// ourDir, flushing ours every flushEvery messages (0: only at Close), and
// checks both accept and refuse the same messages.
func write(t *testing.T, format string, cfg map[string]string, msgs []msg, dockerDir, ourDir string, flushEvery int) {
	t.Helper()
	d := newDocker(t, format, info(dockerDir, cfg))
	o := newOurs(t, format, info(ourDir, cfg))
	for i, m := range msgs {
		derr := d.Log(m.new())
		oerr := o.Log(m.new())
		if (derr == nil) != (oerr == nil) {
			t.Fatalf("message %d: docker error %v, ours %v", i, derr, oerr)
		}
		if flushEvery > 0 && i%flushEvery == flushEvery-1 {
			if err := o.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
}

// compareDirs checks both directories hold the same file names with the
// same modes, the same bytes in plain files and, in gzip files, the same
// header metadata and decompressed bytes.
func compareDirs(t *testing.T, dockerDir, ourDir string) []string {
	t.Helper()
	names := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, e := range es {
			ns = append(ns, e.Name())
		}
		sort.Strings(ns)
		return ns
	}
	dn, on := names(dockerDir), names(ourDir)
	if strings.Join(dn, " ") != strings.Join(on, " ") {
		t.Fatalf("files differ: docker %v, ours %v", dn, on)
	}
	for _, n := range dn {
		db, dmode := readFile(t, filepath.Join(dockerDir, n))
		ob, omode := readFile(t, filepath.Join(ourDir, n))
		if dmode != omode {
			t.Errorf("%s: mode docker %v, ours %v", n, dmode, omode)
		}
		if strings.HasSuffix(n, ".gz") {
			dextra, dplain := gunzip(t, db)
			oextra, oplain := gunzip(t, ob)
			if dextra != oextra {
				t.Errorf("%s: gzip Extra docker %q, ours %q", n, dextra, oextra)
			}
			db, ob = dplain, oplain
		}
		if !bytes.Equal(db, ob) {
			t.Errorf("%s differs (%d bytes docker, %d ours):\n%s", n, len(db), len(ob), firstDiff(db, ob))
		}
	}
	return dn
}

func readFile(t *testing.T, path string) ([]byte, os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, st.Mode()
}

func gunzip(t *testing.T, b []byte) (string, []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(zr.Header.Extra), plain
}

func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	clip := func(x []byte) []byte {
		lo, hi := max(0, i-60), min(len(x), i+60)
		return x[lo:hi]
	}
	return fmt.Sprintf("at byte %d:\ndocker %q\nours   %q", i, clip(a), clip(b))
}

func TestSameBytesAsDocker(t *testing.T) {
	configs := map[string][]map[string]string{
		"json-file": {
			{},
			{"labels": "app,tier,missing", "env": "REGION,EMPTY", "tag": "{{.Name}}/{{.ID}}"},
			{"labels-regex": "^t", "env-regex": "^R"},
		},
		"local": {{}, {"compress": "false", "max-file": "1"}},
	}
	for format, cfgs := range configs {
		for i, cfg := range cfgs {
			t.Run(fmt.Sprintf("%s/%d", format, i), func(t *testing.T) {
				dd, od := t.TempDir(), t.TempDir()
				write(t, format, cfg, tricky(), dd, od, 3)
				files := compareDirs(t, dd, od)
				if len(files) != 1 {
					t.Fatalf("want one file, got %v", files)
				}
			})
		}
	}
}

// A year Docker cannot write is refused by both, and nothing is written.
func TestYearOutOfRange(t *testing.T) {
	dd, od := t.TempDir(), t.TempDir()
	msgs := []msg{
		{line: "before", source: "stdout", ts: base},
		{line: "far future", source: "stdout", ts: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{line: "after", source: "stdout", ts: base},
	}
	write(t, "json-file", map[string]string{}, msgs, dd, od, 0)
	compareDirs(t, dd, od)
}

// many returns n messages of varied sizes and streams, 1 ms apart.
func many(n int) []msg {
	ms := make([]msg, n)
	for i := range ms {
		src := "stdout"
		if i%3 == 0 {
			src = "stderr"
		}
		ms[i] = msg{
			line:   fmt.Sprintf("message %04d %s", i, strings.Repeat("x", (i*37)%300)),
			source: src,
			ts:     base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return ms
}

func TestRotationLikeDocker(t *testing.T) {
	cases := []struct {
		format string
		cfg    map[string]string
		files  int // files Docker is left with
	}{
		{"json-file", map[string]string{"max-size": "1k", "max-file": "3"}, 3},
		{"json-file", map[string]string{"max-size": "1k", "max-file": "3", "compress": "true"}, 3},
		{"json-file", map[string]string{"max-size": "1k", "max-file": "1"}, 1},
		{"json-file", map[string]string{"max-size": "2k", "max-file": "200"}, 0},
		{"local", map[string]string{"max-size": "1k", "max-file": "3"}, 3},
		{"local", map[string]string{"max-size": "1k", "max-file": "3", "compress": "false"}, 3},
		{"local", map[string]string{"max-size": "1k", "max-file": "1", "compress": "false"}, 1},
	}
	for _, c := range cases {
		for _, flushEvery := range []int{0, 1, 7} {
			t.Run(fmt.Sprintf("%s/%v/flush%d", c.format, c.cfg, flushEvery), func(t *testing.T) {
				dd, od := t.TempDir(), t.TempDir()
				write(t, c.format, c.cfg, many(150), dd, od, flushEvery)
				files := compareDirs(t, dd, od)
				if c.files > 0 && len(files) != c.files {
					t.Fatalf("want %d files, got %v", c.files, files)
				}
				if c.files == 0 && len(files) < 10 {
					t.Fatalf("want many rotated files, got %v", files)
				}
			})
		}
	}
}

// An existing file is appended to, and rotated first if it is already
// over max-size, as Docker does.
func TestReopenLikeDocker(t *testing.T) {
	for _, format := range []string{"json-file", "local"} {
		t.Run(format, func(t *testing.T) {
			cfg := map[string]string{"max-size": "3k", "max-file": "4", "compress": "true"}
			dd, od := t.TempDir(), t.TempDir()
			ms := many(90)
			write(t, format, cfg, ms[:40], dd, od, 5)
			compareDirs(t, dd, od)
			write(t, format, cfg, ms[40:], dd, od, 5)
			compareDirs(t, dd, od)
		})
	}
}

// readBack reads every message from the log at in.LogPath with Docker's
// own reader for format.
func readBack(t *testing.T, format string, in logger.Info) []*logger.Message {
	t.Helper()
	d := newDocker(t, format, in)
	defer d.Close()
	lr, ok := d.(logger.LogReader)
	if !ok {
		t.Fatalf("docker's %s driver cannot read", format)
	}
	w := lr.ReadLogs(context.Background(), logger.ReadConfig{Tail: -1, Follow: false})
	defer w.ConsumerGone()
	var got []*logger.Message
	for {
		select {
		case m, ok := <-w.Msg:
			if !ok {
				return got
			}
			got = append(got, m)
		case err := <-w.Err:
			t.Fatalf("docker's reader: %v", err)
		}
	}
}

func checkRead(t *testing.T, format string, want []msg, got []*logger.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("docker's reader got %d messages, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		line := w.line
		if w.partial == nil || w.partial.Last {
			line += "\n"
		}
		if format == "json-file" {
			line = replaceInvalid(line)
		}
		if string(g.Line) != line {
			t.Errorf("message %d: line %q, want %q", i, g.Line, line)
		}
		if g.Source != w.source || !g.Timestamp.Equal(w.ts) {
			t.Errorf("message %d: %s %v, want %s %v", i, g.Source, g.Timestamp, w.source, w.ts)
		}
		if format == "local" && (g.PLogMetaData == nil) != (w.partial == nil) {
			t.Errorf("message %d: partial %+v, want %+v", i, g.PLogMetaData, w.partial)
		}
		if format == "local" && w.partial != nil && *g.PLogMetaData != *w.partial {
			t.Errorf("message %d: partial %+v, want %+v", i, *g.PLogMetaData, *w.partial)
		}
	}
}

// replaceInvalid is what a JSON round trip makes of a line: Docker's
// encoder writes each invalid UTF-8 byte as \ufffd.
func replaceInvalid(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRuneInString(line[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(r)
		} else {
			b.WriteString(line[i : i+n])
		}
		i += n
	}
	return b.String()
}

func TestDockerReadsOurFiles(t *testing.T) {
	for _, format := range []string{"json-file", "local"} {
		for _, cfg := range []map[string]string{{}, {"max-size": "2k", "max-file": "100", "compress": "true"}} {
			t.Run(fmt.Sprintf("%s/%v", format, cfg), func(t *testing.T) {
				dir := t.TempDir()
				in := info(dir, cfg)
				o := newOurs(t, format, in)
				ms := append(tricky(), many(120)...)
				for _, m := range ms {
					if err := o.Log(m.new()); err != nil {
						t.Fatal(err)
					}
				}
				if err := o.Close(); err != nil {
					t.Fatal(err)
				}
				checkRead(t, format, ms, readBack(t, format, in))
			})
		}
	}
}

// Two streams logging at once lose nothing and keep each stream's order.
func TestConcurrentStreams(t *testing.T) {
	for _, format := range []string{"json-file", "local"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			in := info(dir, map[string]string{"max-size": "64k", "max-file": "1000", "compress": "false"})
			o := newOurs(t, format, in)
			const n = 5000
			var wg sync.WaitGroup
			for _, src := range []string{"stdout", "stderr"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < n; i++ {
						m := msg{line: fmt.Sprintf("%s %d", src, i), source: src, ts: base}
						if err := o.Log(m.new()); err != nil {
							t.Error(err)
							return
						}
						if i%50 == 0 {
							o.Flush()
						}
					}
				}()
			}
			wg.Wait()
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			got := readBack(t, format, in)
			next := map[string]int{}
			for _, g := range got {
				want := fmt.Sprintf("%s %d\n", g.Source, next[g.Source])
				if string(g.Line) != want {
					t.Fatalf("got %q, want %q", g.Line, want)
				}
				next[g.Source]++
			}
			if next["stdout"] != n || next["stderr"] != n {
				t.Fatalf("read back %v, want %d per stream", next, n)
			}
		})
	}
}

// When a file reaches max-size exactly, the next message rotates, as in
// Docker (the check is size >= max-size before each write).
func TestRotationAtExactSize(t *testing.T) {
	for _, format := range []string{"json-file", "local"} {
		t.Run(format, func(t *testing.T) {
			ms := make([]msg, 20)
			for i := range ms {
				ms[i] = msg{line: fmt.Sprintf("fixed size %02d", i), source: "stdout", ts: base.Add(time.Duration(i) * time.Second)}
			}
			// The size of one encoded message, from Docker's driver.
			probe := t.TempDir()
			d := newDocker(t, format, info(probe, map[string]string{"compress": "false"}))
			d.Log(ms[0].new())
			d.Close()
			st, err := os.Stat(filepath.Join(probe, "ctr-json.log"))
			if err != nil {
				t.Fatal(err)
			}
			cfg := map[string]string{"max-size": fmt.Sprint(3 * st.Size()), "max-file": "3", "compress": "false"}
			dd, od := t.TempDir(), t.TempDir()
			write(t, format, cfg, ms, dd, od, 2)
			files := compareDirs(t, dd, od)
			for _, n := range files {
				b, _ := readFile(t, filepath.Join(od, n))
				if n != "ctr-json.log" && int64(len(b)) != 3*st.Size() {
					t.Errorf("%s holds %d bytes, want exactly 3 messages (%d)", n, len(b), 3*st.Size())
				}
			}
		})
	}
}

// Our validators accept exactly Docker's option names, with Docker's
// error text.
func TestValidatorsLikeDocker(t *testing.T) {
	names := append(filelog.JSONOptionNames(), "mode", "max-buffer-size", "syslog-address", "log-path", "MAX-SIZE", "")
	for _, n := range names {
		cfg := map[string]string{n: "1"}
		if d, o := jsonfilelog.ValidateLogOpt(cfg), filelog.ValidateOptions("json-file", filelog.JSONOptionNames(), cfg); fmt.Sprint(d) != fmt.Sprint(o) {
			t.Errorf("json-file %q: docker %v, ours %v", n, d, o)
		}
		if d, o := local.ValidateLogOpt(cfg), filelog.ValidateOptions("local", filelog.LocalOptionNames(), cfg); fmt.Sprint(d) != fmt.Sprint(o) {
			t.Errorf("local %q: docker %v, ours %v", n, d, o)
		}
	}
}

// Docker's drivers and ours accept and refuse the same configurations.
func TestConfigsLikeDocker(t *testing.T) {
	cfgs := []map[string]string{
		{}, {"max-size": "0"}, {"max-size": "-1"}, {"max-size": "junk"}, {"max-size": "1k"},
		{"max-file": "0"}, {"max-file": "x"}, {"max-file": "2"},
		{"compress": "true"}, {"compress": "maybe"}, {"compress": "true", "max-file": "1"},
		{"compress": "true", "max-file": "2"}, {"compress": "true", "max-file": "2", "max-size": "1m"},
		{"compress": "false", "max-file": "1"}, {"labels-regex": "("}, {"tag": "{{.Nope}}"},
	}
	for _, format := range []string{"json-file", "local"} {
		for _, cfg := range cfgs {
			if format == "local" && (cfg["labels-regex"] != "" || cfg["tag"] != "") {
				continue
			}
			in := info(t.TempDir(), cfg)
			var d logger.Logger
			var derr, oerr error
			var o ours
			if format == "json-file" {
				d, derr = jsonfilelog.New(in)
				o, oerr = filelog.NewJSONDriver(info(t.TempDir(), cfg), nil)
			} else {
				d, derr = local.New(in)
				o, oerr = filelog.NewLocalDriver(info(t.TempDir(), cfg), nil)
			}
			if (derr == nil) != (oerr == nil) {
				t.Errorf("%s %v: docker %v, ours %v", format, cfg, derr, oerr)
			}
			if oerr != nil && strings.Contains(oerr.Error(), "\n") {
				t.Errorf("%s %v: error of more than one line: %q", format, cfg, oerr)
			}
			if derr == nil {
				d.Close()
			}
			if oerr == nil {
				o.Close()
			}
		}
	}
}
