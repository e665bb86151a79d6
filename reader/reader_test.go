package reader_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/reader"
)

// rec is one message as the sink saw it, copied out of Docker's pool.
type rec struct {
	Line    string
	Source  string
	TS      time.Time
	Partial bool
	ID      string
	Ordinal int
	Last    bool
}

func (r rec) String() string {
	if !r.Partial {
		return fmt.Sprintf("%q", r.Line)
	}
	return fmt.Sprintf("%q[#%d last=%v]", r.Line, r.Ordinal, r.Last)
}

// recSink records every message, and how often it was flushed, as a
// driver would receive them.
type recSink struct {
	msgs    []rec
	flushes int
}

func (s *recSink) Log(m *logger.Message) error {
	r := rec{Line: string(m.Line), Source: m.Source, TS: m.Timestamp}
	if p := m.PLogMetaData; p != nil {
		r.Partial, r.ID, r.Ordinal, r.Last = true, p.ID, p.Ordinal, p.Last
	}
	s.msgs = append(s.msgs, r)
	logger.PutMessage(m) // the sink owns the message, as a driver does
	return nil
}

func (s *recSink) Flush() error { s.flushes++; return nil }

// tickClock returns a clock that advances one second per call, so every
// read gets its own, distinguishable timestamp.
func tickClock() func() time.Time {
	t := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

// run copies src through a Reader into a recording sink.
func run(t *testing.T, src io.Reader, lineMax int) (*recSink, *diag.Stream) {
	t.Helper()
	s := &recSink{}
	cnt := new(diag.Stream)
	r := &reader.Reader{Source: "stdout", LineMax: lineMax, Sink: s, Count: cnt, Now: tickClock()}
	if err := r.Copy(src); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	return s, cnt
}

// want describes an expected message: its line, and for a partial one its
// ordinal and whether it is the last part.
type want struct {
	line    string
	partial bool
	ordinal int
	last    bool
}

func line(s string) want                     { return want{line: s} }
func part(s string, ord int, last bool) want { return want{s, true, ord, last} }

func describe(ws []want) []string {
	var out []string
	for _, w := range ws {
		out = append(out, rec{Line: w.line, Partial: w.partial, Ordinal: w.ordinal, Last: w.last}.String())
	}
	return out
}

func got(rs []rec) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

// checkGroups asserts Docker's partial-message invariants: one ID per
// group, a new ID for each group, ordinals 1..n, Last only on the final
// part, and every part stamped with the first part's time.
// checkGroups checks the partial metadata; open says the input ended
// without a newline, so its last group ends with a part not marked last
// (as Docker's copier sends it), and every other group has a last part.
func checkGroups(t *testing.T, rs []rec, open bool) {
	t.Helper()
	if open && (len(rs) == 0 || !rs[len(rs)-1].Partial || rs[len(rs)-1].Last) {
		t.Errorf("input without a final newline: the last message is not a partial message without Last")
	}
	seen := map[string]bool{}
	var cur *rec
	for i, r := range rs {
		if !r.Partial {
			if cur != nil {
				t.Errorf("msg %d: complete line inside an open partial group %s", i, cur.ID)
			}
			continue
		}
		if r.ID == "" {
			t.Errorf("msg %d: partial message without an ID", i)
		}
		if cur == nil {
			if seen[r.ID] {
				t.Errorf("msg %d: partial ID %s reused for a new group", i, r.ID)
			}
			seen[r.ID] = true
			if r.Ordinal != 1 {
				t.Errorf("msg %d: first part has ordinal %d, want 1", i, r.Ordinal)
			}
			c := r
			cur = &c
		} else {
			if r.ID != cur.ID {
				t.Errorf("msg %d: ID %s inside group %s", i, r.ID, cur.ID)
			}
			if !r.TS.Equal(cur.TS) {
				t.Errorf("msg %d: timestamp %v, want the first part's %v", i, r.TS, cur.TS)
			}
			if r.Ordinal != cur.Ordinal+1 {
				t.Errorf("msg %d: ordinal %d after %d", i, r.Ordinal, cur.Ordinal)
			}
			cur.Ordinal = r.Ordinal
		}
		if r.Last {
			cur = nil
		}
	}
	if cur != nil && !open {
		t.Errorf("partial group %s never got a Last part", cur.ID)
	}
}

const lm = 8 // line-max of the table tests: small, so chunk edges are easy to hit

var cases = []struct {
	name  string
	in    string
	want  []want
	lines int64 // messages counted
	bytes int64 // message bytes counted (no newlines)
}{
	{"empty input", "", nil, 0, 0},
	{"plain lines", "one\ntwo\nthree\n", []want{line("one"), line("two"), line("three")}, 3, 11},
	{"empty lines", "\n\na\n\n", []want{line(""), line(""), line("a"), line("")}, 4, 1},
	{"CRLF kept", "a\r\nb\r\n", []want{line("a\r"), line("b\r")}, 2, 4},
	{"NUL and invalid UTF-8 byte for byte", "\x00\xff\xfe\n\xc3(\x00\n", []want{line("\x00\xff\xfe"), line("\xc3(\x00")}, 2, 6},
	// A final line without a newline is a partial message not marked
	// last, as Docker's copier sends it: no newline is added.
	{"final line without newline is an open partial", "a\nlast", []want{line("a"), part("last", 1, false)}, 2, 5},
	{"only an unterminated line", "x", []want{part("x", 1, false)}, 1, 1},
	{"exactly line-max", "12345678\n", []want{line("12345678")}, 1, 8},
	{"line-max+1", "123456789\n", []want{part("12345678", 1, false), part("9", 2, true)}, 2, 9},
	{"3*line-max+2", "aaaaaaaabbbbbbbbccccccccdd\nz\n",
		[]want{part("aaaaaaaa", 1, false), part("bbbbbbbb", 2, false), part("cccccccc", 3, false), part("dd", 4, true), line("z")}, 5, 27},
	// Two chunks exactly: the line fits its parts with nothing left over.
	{"long line ending at a chunk boundary", "aaaaaaaabbbbbbbb\nz\n",
		[]want{part("aaaaaaaa", 1, false), part("bbbbbbbb", 2, true), line("z")}, 3, 17},
	{"unterminated line of exactly line-max", "x\n12345678", []want{line("x"), part("12345678", 1, false)}, 2, 9},
	{"unterminated long line ending at a chunk boundary", "aaaaaaaabbbbbbbb",
		[]want{part("aaaaaaaa", 1, false), part("bbbbbbbb", 2, false)}, 2, 16},
	{"long unterminated line at EOF", "x\naaaaaaaabbb",
		[]want{line("x"), part("aaaaaaaa", 1, false), part("bbb", 2, false)}, 3, 12},
	{"two long lines get two groups", "aaaaaaaaa\nbbbbbbbbb\n",
		[]want{part("aaaaaaaa", 1, false), part("a", 2, true), part("bbbbbbbb", 1, false), part("b", 2, true)}, 4, 18},
}

func TestCopyOneRead(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.HasPrefix(c.name, "unterminated") {
			}
			s, cnt := run(t, strings.NewReader(c.in), lm)
			if g, w := got(s.msgs), describe(c.want); strings.Join(g, " ") != strings.Join(w, " ") {
				t.Errorf("messages\n got %v\nwant %v", g, w)
			}
			checkGroups(t, s.msgs, unterminated(c.in))
			for i, r := range s.msgs {
				if r.Source != "stdout" {
					t.Errorf("msg %d: source %q", i, r.Source)
				}
				if len(r.Line) > lm {
					t.Errorf("msg %d: %d bytes, longer than line-max %d", i, len(r.Line), lm)
				}
			}
			if cnt.Lines.Load() != c.lines || cnt.Bytes.Load() != c.bytes {
				t.Errorf("counted %d lines %d bytes, want %d lines %d bytes", cnt.Lines.Load(), cnt.Bytes.Load(), c.lines, c.bytes)
			}
			var partials int64
			for _, w := range c.want {
				if w.partial {
					partials++
				}
			}
			if cnt.Partial.Load() != partials {
				t.Errorf("counted %d partial messages, want %d", cnt.Partial.Load(), partials)
			}
		})
	}
}

// TestCopySplitReads feeds every case one byte per read, in halves, and
// split in two at every byte position: what comes out must not depend on
// how the kernel happened to cut the stream.
func TestCopySplitReads(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if exactChunkBug(c.in) {
			}
			w := strings.Join(describe(c.want), " ")
			srcs := map[string]func() io.Reader{
				"one byte":      func() io.Reader { return iotest.OneByteReader(strings.NewReader(c.in)) },
				"half":          func() io.Reader { return iotest.HalfReader(strings.NewReader(c.in)) },
				"data with EOF": func() io.Reader { return iotest.DataErrReader(strings.NewReader(c.in)) },
			}
			for i := 0; i <= len(c.in); i++ {
				i := i
				srcs[fmt.Sprintf("split at %d", i)] = func() io.Reader { return &splitReader{[]byte(c.in), i} }
			}
			for name, src := range srcs {
				s, cnt := run(t, src(), lm)
				if g := strings.Join(got(s.msgs), " "); g != w {
					t.Errorf("%s: messages\n got %v\nwant %v", name, g, w)
				}
				checkGroups(t, s.msgs, unterminated(c.in))
				if cnt.Lines.Load() != c.lines || cnt.Bytes.Load() != c.bytes {
					t.Errorf("%s: counted %d lines %d bytes, want %d, %d", name, cnt.Lines.Load(), cnt.Bytes.Load(), c.lines, c.bytes)
				}
			}
		})
	}
}

// exactChunkBug reports inputs holding a line whose length is a non-zero
// multiple of line-max: the reader cuts them differently depending on
// where a read ends.
func exactChunkBug(in string) bool {
	for _, l := range strings.SplitAfter(in, "\n") {
		n := len(strings.TrimSuffix(l, "\n"))
		if n > 0 && n%lm == 0 {
			return true
		}
	}
	return false
}

// splitReader returns its data in two reads, cut at pos, then EOF.
type splitReader struct {
	data []byte
	pos  int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if r.pos > 0 && r.pos < n {
		n = r.pos
	}
	r.pos = 0
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestPartialTimestamps checks that every part of a line cut across reads
// carries the time of the read that brought its first byte, while complete
// lines carry the time of their own read.
func TestPartialTimestamps(t *testing.T) {
	in := "aaaaaaaabbbbbbbbc\nd\n"
	s, _ := run(t, iotest.OneByteReader(strings.NewReader(in)), lm)
	if len(s.msgs) != 4 {
		t.Fatalf("got %v", got(s.msgs))
	}
	checkGroups(t, s.msgs, false)
	first := s.msgs[0].TS
	for _, r := range s.msgs[:3] {
		if !r.TS.Equal(first) {
			t.Errorf("part %q stamped %v, want the first part's %v", r.Line, r.TS, first)
		}
	}
	if !s.msgs[3].TS.After(first) {
		t.Errorf("later line stamped %v, not after %v", s.msgs[3].TS, first)
	}
	if s.msgs[3].TS.Location() != time.UTC {
		t.Errorf("timestamp not in UTC: %v", s.msgs[3].TS)
	}
}

// TestLargeLines uses the default line-max (16k) with lines that cross the
// reader's 64 KiB read size.
func TestLargeLines(t *testing.T) {
	const def = 16 << 10
	var in bytes.Buffer
	lens := []int{def, def + 1, 3 * def, 100 << 10, 0, 5}
	for i, n := range lens {
		in.Write(bytes.Repeat([]byte{byte('a' + i)}, n))
		in.WriteByte('\n')
	}
	s := &recSink{}
	r := &reader.Reader{Source: "stderr", Sink: s} // LineMax 0: the default
	if err := r.Copy(bytes.NewReader(in.Bytes())); err != nil {
		t.Fatal(err)
	}
	checkGroups(t, s.msgs, false)
	if g := reassemble(s.msgs, true); !bytes.Equal(g, in.Bytes()) {
		t.Errorf("reassembled %d bytes, want %d", len(g), in.Len())
	}
	for _, m := range s.msgs {
		if len(m.Line) > def {
			t.Errorf("message of %d bytes, longer than the default line-max", len(m.Line))
		}
		if m.Source != "stderr" {
			t.Errorf("source %q", m.Source)
		}
	}
	// def bytes: one line; def+1: 2 parts; 3*def: 3 parts; 100k: 7 parts.
	if len(s.msgs) != 1+2+3+7+1+1 {
		t.Errorf("got %d messages, want 15", len(s.msgs))
	}
}

// reassemble joins messages back into the stream they came from: parts
// are concatenated and a newline follows each complete line or Last part;
// terminated says whether the input ended with a newline.
func reassemble(rs []rec, terminated bool) []byte {
	var b bytes.Buffer
	for _, r := range rs {
		b.WriteString(r.Line)
		if !r.Partial || r.Last {
			b.WriteByte('\n')
		}
	}
	// A final line without a newline ends in a part not marked last:
	// nothing to take away.
	return b.Bytes()
}

func unterminated(in string) bool { return in != "" && !strings.HasSuffix(in, "\n") }

func TestReadErrorIsWrapped(t *testing.T) {
	boom := errors.New("boom")
	s := &recSink{}
	r := &reader.Reader{Source: "stderr", LineMax: lm, Sink: s}
	err := r.Copy(io.MultiReader(strings.NewReader("a\npending"), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("Copy returned %v, want it to wrap %v", err, boom)
	}
	if !strings.Contains(err.Error(), "stderr") {
		t.Errorf("error %q does not name the stream", err)
	}
	// What was read before the error is still delivered.
	if g := strings.Join(got(s.msgs), " "); g != `"a" "pending"[#1 last=false]` {
		t.Errorf("got %s", g)
	}
}

func TestFlushAfterEachRead(t *testing.T) {
	s, _ := run(t, iotest.OneByteReader(strings.NewReader("ab\ncd\n")), lm)
	// six reads that returned data, then the flush at EOF
	if s.flushes != 7 {
		t.Errorf("flushed %d times, want 7 (one per read with data, one at EOF)", s.flushes)
	}
}

// committing is a source that returns at most max bytes per read and
// keeps count of what was committed, as pipepeek.Peek does.
type committing struct {
	data      []byte
	read, max int
	committed int
}

func (c *committing) Read(b []byte) (int, error) {
	if c.read == len(c.data) {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), c.max)], c.data[c.read:])
	c.read += n
	return n, nil
}

func (c *committing) Commit(n int) error { c.committed += n; return nil }

// handedSink checks, as each message is handed over, what the ledger
// (Handed) says: it covers the message, it never covers bytes not read
// yet, and the first message of a round is covered to the byte.
type handedSink struct {
	t       *testing.T
	src     *committing
	handed  int64
	stores  int
	end     int // where the message being handed ends in the stream
	lastCom int // committed bytes when the last message was handed
	msgs    int
}

func (h *handedSink) Store(v int64) { h.handed = v; h.stores++ }

func (h *handedSink) Log(m *logger.Message) error {
	h.end += len(m.Line) + 1
	covered := h.src.committed + int(h.handed)
	switch {
	case covered < h.end:
		h.t.Fatalf("message %d ends at %d, the ledger covers %d", h.msgs, h.end, covered)
	case covered > h.src.read:
		h.t.Fatalf("message %d: the ledger covers %d, only %d read", h.msgs, covered, h.src.read)
	case h.msgs == 0 || h.src.committed != h.lastCom:
		if covered != h.end {
			h.t.Fatalf("message %d, first of its round, ends at %d: the ledger covers %d", h.msgs, h.end, covered)
		}
	case covered > h.end+16<<10:
		h.t.Fatalf("message %d ends at %d: the ledger covers %d, more than 16 KiB ahead", h.msgs, h.end, covered)
	}
	h.lastCom = h.src.committed
	h.msgs++
	logger.PutMessage(m)
	return nil
}

// TestHandedCoversEveryMessage: before each message is handed over, the
// ledger says it was, so a worker killed at any point leaves a count that
// covers what it may have delivered; and it is recorded far less often
// than once per line.
func TestHandedCoversEveryMessage(t *testing.T) {
	line := strings.Repeat("x", 99) + "\n"
	src := &committing{data: []byte(strings.Repeat(line, 20000)), max: 50_000}
	h := &handedSink{t: t, src: src}
	r := &reader.Reader{Source: "stdout", Sink: h, Handed: h}
	if err := r.Copy(src); err != nil {
		t.Fatal(err)
	}
	if h.msgs != 20000 || src.committed != len(src.data) || h.handed != 0 {
		t.Fatalf("%d messages, %d of %d bytes committed, ledger left at %d", h.msgs, src.committed, len(src.data), h.handed)
	}
	if h.stores > h.msgs/10 {
		t.Fatalf("%d stores to the ledger for %d messages", h.stores, h.msgs)
	}
	t.Logf("%d stores for %d messages", h.stores, h.msgs)
}

// borrowSink is a recSink that borrows (reader.Borrower): it must see the
// same messages, and the reader must not reuse a line before it returns.
type borrowSink struct{ recSink }

func (s *borrowSink) LogBorrowed(m *logger.Message) error {
	r := rec{Line: string(m.Line), Source: m.Source, TS: m.Timestamp}
	if p := m.PLogMetaData; p != nil {
		r.Partial, r.ID, r.Ordinal, r.Last = true, p.ID, p.Ordinal, p.Last
	}
	s.msgs = append(s.msgs, r)
	return nil
}

// TestBorrowerSeesTheSameMessages: lending the reader's buffer changes
// nothing a sink sees: lines, parts of long lines, ordinals, timestamps.
func TestBorrowerSeesTheSameMessages(t *testing.T) {
	in := "one\n" + strings.Repeat("x", 25) + "\n\nlast without newline"
	for _, lineMax := range []int{4, 10, 1 << 20} {
		var got [2][]rec
		for i, sink := range []reader.Sink{&recSink{}, &borrowSink{}} {
			r := &reader.Reader{Source: "stdout", LineMax: lineMax, Sink: sink, Now: tickClock()}
			if err := r.Copy(iotest.OneByteReader(strings.NewReader(in))); err != nil {
				t.Fatal(err)
			}
			switch s := sink.(type) {
			case *recSink:
				got[i] = s.msgs
			case *borrowSink:
				got[i] = s.msgs
			}
		}
		for i := range got[0] {
			got[0][i].ID, got[1][i].ID = "", "" // random per run
		}
		if !reflect.DeepEqual(got[0], got[1]) || len(got[0]) < 4 {
			t.Fatalf("line-max %d: Log saw %v, LogBorrowed %v", lineMax, got[0], got[1])
		}
	}
}

// leavingSink is a borrowSink that leaves the message numbered leave (from
// 0) to the next worker (reader.Leaver), as a spool closed for a handover
// does.
type leavingSink struct {
	borrowSink
	n, leave int
}

type handover struct{}

func (handover) Error() string  { return "left" }
func (handover) Handover() bool { return true }

func (s *leavingSink) FlushOrLeave() error { return nil }

func (s *leavingSink) LogOrLeave(m *logger.Message) error {
	if s.n == s.leave {
		return handover{}
	}
	s.n++
	return s.LogBorrowed(m)
}

type keeper struct{ last reader.PartialLine }

func (k *keeper) KeepPartial(p reader.PartialLine) { k.last = p }

// TestLeftMessageStaysInSource: a message the sink leaves (reader.Leaver)
// and all after it stay uncommitted in the source, uncounted, and the
// partial line being cut is kept as it was before it: a next reader on
// the rest hands over exactly the messages one reader alone would have,
// with the same partial ids and ordinals.
func TestLeftMessageStaysInSource(t *testing.T) {
	in := []byte("one\n" + strings.Repeat("x", 25) + "\n\ntwo\n" + strings.Repeat("y", 9) + "\nlast")
	id := func(base int) func(int64) string {
		return func(off int64) string { return fmt.Sprint(int64(base) + off) }
	}
	for _, lineMax := range []int{4, 10, 1 << 20} {
		alone := &borrowSink{}
		r := &reader.Reader{Source: "stdout", LineMax: lineMax, Sink: alone, PartialID: id(0)}
		if err := r.Copy(&committing{data: in, max: 7}); err != nil {
			t.Fatal(err)
		}
		for leave := range alone.msgs {
			first := &leavingSink{leave: leave}
			src := &committing{data: in, max: 7}
			cnt := new(diag.Stream)
			k := &keeper{}
			r := &reader.Reader{Source: "stdout", LineMax: lineMax, Sink: first, Count: cnt, Partial: k, PartialID: id(0)}
			if err := r.Copy(src); !errors.Is(err, reader.ErrStopped) {
				t.Fatalf("line-max %d, leaving message %d: Copy returned %v, want ErrStopped", lineMax, leave, err)
			}
			if got := cnt.Lines.Load(); got != int64(leave) {
				t.Errorf("line-max %d, leaving message %d: %d counted read, want %d", lineMax, leave, got, leave)
			}
			next := &borrowSink{}
			r2 := &reader.Reader{Source: "stdout", LineMax: lineMax, Sink: next, Resume: k.last, PartialID: id(src.committed)}
			if err := r2.Copy(&committing{data: in[src.committed:], max: 7}); err != nil {
				t.Fatal(err)
			}
			got := append(append([]rec{}, first.msgs...), next.msgs...)
			if fmt.Sprint(got) != fmt.Sprint(alone.msgs) || !sameIDs(got, alone.msgs) {
				t.Errorf("line-max %d, leaving message %d (committed %d):\n got %v\nwant %v", lineMax, leave, src.committed, got, alone.msgs)
			}
		}
	}
}

func sameIDs(a, b []rec) bool {
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Ordinal != b[i].Ordinal || a[i].Last != b[i].Last {
			return false
		}
	}
	return len(a) == len(b)
}

// unflushedSink takes every message but cannot flush the round: a
// handover with the sink down (reader.Leaver's FlushOrLeave).
type unflushedSink struct{ leavingSink }

func (s *unflushedSink) FlushOrLeave() error { return handover{} }

// TestUnflushedRoundStaysInSource: a round the sink cannot flush at a
// handover is not committed: Copy stops, and the next worker reads it
// all again.
func TestUnflushedRoundStaysInSource(t *testing.T) {
	src := &committing{data: []byte("one\ntwo\nthree\n"), max: 100}
	s := &unflushedSink{leavingSink{leave: -1}}
	r := &reader.Reader{Source: "stdout", Sink: s}
	if err := r.Copy(src); !errors.Is(err, reader.ErrStopped) {
		t.Fatalf("Copy returned %v, want ErrStopped", err)
	}
	if src.committed != 0 || len(s.msgs) != 3 {
		t.Fatalf("%d bytes committed, %d messages handed over; want 0 and 3", src.committed, len(s.msgs))
	}
}
