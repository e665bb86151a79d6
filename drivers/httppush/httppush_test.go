package httppush

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
)

// lineBatch joins lines with newlines.
type lineBatch struct{ lines []string }

func (b *lineBatch) Add(m *logger.Message) { b.lines = append(b.lines, string(m.Line)) }
func (b *lineBatch) Size() int {
	n := 0
	for _, l := range b.lines {
		n += len(l) + 1
	}
	return n
}
func (b *lineBatch) Encode() ([]byte, error) { return []byte(strings.Join(b.lines, "\n")), nil }
func (b *lineBatch) Reset()                  { b.lines = b.lines[:0] }

// server records posts and answers each with the next of its results.
type server struct {
	mu      sync.Mutex
	posts   []string
	answers []Result
}

func (s *server) send(_ context.Context, body []byte) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts = append(s.posts, string(body))
	if len(s.answers) == 0 {
		return Result{}
	}
	r := s.answers[0]
	s.answers = s.answers[1:]
	return r
}

func (s *server) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.posts...)
}

type drops struct {
	mu sync.Mutex
	m  map[string][2]int64
}

func (d *drops) add(reason string, lines, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.m[reason]
	d.m[reason] = [2]int64{v[0] + lines, v[1] + bytes}
}

func newPusher(t *testing.T, s *server, size int, wait time.Duration, attempts int) (*Pusher, *drops) {
	t.Helper()
	p := New(Config{Name: "test", NewBatch: func() Batch { return &lineBatch{} }, BatchSize: size, BatchWait: wait,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Attempts: attempts, Send: s.send, Report: func(error) {}})
	d := &drops{m: map[string][2]int64{}}
	p.OnDrop(d.add)
	return p, d
}

func logLine(t *testing.T, p *Pusher, line string) {
	t.Helper()
	m := logger.NewMessage()
	m.Line = append(m.Line, line...)
	if err := p.Log(m); err != nil {
		t.Fatal(err)
	}
}

// TestBatchesBySize: a batch goes out when it reaches BatchSize, the rest
// at Flush, in order.
func TestBatchesBySize(t *testing.T) {
	s := &server{}
	p, _ := newPusher(t, s, 12, time.Hour, 0)
	for i := range 5 {
		logLine(t, p, fmt.Sprintf("line%d", i)) // 6 bytes each with the newline
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.got(), "|")
	if got != "line0\nline1|line2\nline3|line4" {
		t.Fatalf("posts %q", got)
	}
	if n, b := p.Pending(); n != 0 || b != 0 {
		t.Fatalf("pending %d %d after Flush", n, b)
	}
	p.Close()
}

// TestBatchesByTime: a batch below the size goes out BatchWait after its
// first line, without Flush.
func TestBatchesByTime(t *testing.T) {
	s := &server{}
	p, _ := newPusher(t, s, 1<<20, 50*time.Millisecond, 0)
	start := time.Now()
	logLine(t, p, "a")
	logLine(t, p, "b")
	for len(s.got()) == 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("no post after BatchWait")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("posted after %v, before BatchWait", d)
	}
	if got := s.got(); len(got) != 1 || got[0] != "a\nb" {
		t.Fatalf("posts %q", got)
	}
	p.Close()
}

// TestRetriesThenRefuses: a retryable answer is sent again; a refusal of
// part of a batch drops that many lines with the reason and the batch's
// average bytes; a refusal of all drops the whole batch.
func TestRetriesThenRefuses(t *testing.T) {
	s := &server{answers: []Result{{Retry: true}, {Retry: true}, {},
		{Refused: 1, Reason: diag.PartialReject}, {Refused: -1, Reason: diag.Rejected}}}
	p, d := newPusher(t, s, 1<<20, time.Hour, 0)
	logLine(t, p, "one")
	p.Flush()
	logLine(t, p, "aaaa")
	logLine(t, p, "bb")
	p.Flush()
	logLine(t, p, "gone")
	p.Flush()
	if got := strings.Join(s.got(), "|"); got != "one|one|one|aaaa\nbb|gone" {
		t.Fatalf("posts %q", got)
	}
	if d.m[diag.PartialReject] != [2]int64{1, 3} || d.m[diag.Rejected] != [2]int64{1, 4} || len(d.m) != 2 {
		t.Fatalf("drops %v", d.m)
	}
	p.Close()
}

// TestGivesUpAfterAttempts: with Attempts set, a batch the server never
// takes is dropped as driver-gave-up after that many posts.
func TestGivesUpAfterAttempts(t *testing.T) {
	s := &server{}
	for range 10 {
		s.answers = append(s.answers, Result{Retry: true})
	}
	p, d := newPusher(t, s, 1<<20, time.Hour, 3)
	logLine(t, p, "x")
	logLine(t, p, "yy")
	p.Close()
	if n := len(s.got()); n != 3 {
		t.Fatalf("%d posts, want 3", n)
	}
	if d.m[diag.DriverGaveUp] != [2]int64{2, 3} {
		t.Fatalf("drops %v", d.m)
	}
}

// TestFlushAndLogBounded: while the server does not take anything, Flush
// returns an error after flushWait, and Log fails once maxQueued batches
// wait, taking nothing; Pending counts what is held.
func TestFlushAndLogBounded(t *testing.T) {
	release := make(chan struct{})
	p := New(Config{Name: "test", NewBatch: func() Batch { return &lineBatch{} }, BatchSize: 1, BatchWait: time.Hour,
		Send: func(context.Context, []byte) Result { <-release; return Result{} }, Report: func(error) {}})
	for i := range maxQueued {
		logLine(t, p, fmt.Sprint(i))
	}
	start := time.Now()
	if err := p.Flush(); err == nil || time.Since(start) < flushWait {
		t.Fatalf("Flush = %v after %v", err, time.Since(start))
	}
	m := logger.NewMessage()
	m.Line = append(m.Line, "more"...)
	start = time.Now()
	if err := p.Log(m); err == nil || time.Since(start) < queueWait {
		t.Fatalf("Log = %v after %v", err, time.Since(start))
	}
	if n, b := p.Pending(); n != maxQueued || b != maxQueued {
		t.Fatalf("pending %d lines %d bytes", n, b)
	}
	close(release)
	p.Close()
	if n, _ := p.Pending(); n != 0 {
		t.Fatalf("pending %d after Close", n)
	}
}

// TestMarkers: a drop marker is sent as any line, alone too, but is not
// held (Pending) nor reported dropped: the logger never read it.
func TestMarkers(t *testing.T) {
	release := make(chan struct{})
	s := &server{}
	p := New(Config{Name: "test", NewBatch: func() Batch { return &lineBatch{} }, BatchSize: 1 << 20, BatchWait: time.Hour,
		Attempts: 1, Send: func(ctx context.Context, b []byte) Result {
			<-release
			s.send(ctx, b)
			return Result{Retry: true}
		}, Report: func(error) {}})
	d := &drops{m: map[string][2]int64{}}
	p.OnDrop(d.add)
	m := logger.NewMessage()
	m.Line = append(m.Line, "marker"...)
	if err := p.LogMarker(m); err != nil {
		t.Fatal(err)
	}
	logLine(t, p, "line")
	if n, b := p.Pending(); n != 1 || b != 4 {
		t.Fatalf("pending %d %d, want the line only", n, b)
	}
	m = logger.NewMessage()
	m.Line = append(m.Line, "alone"...)
	close(release)
	p.Flush()
	if err := p.LogMarker(m); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got := strings.Join(s.got(), "|"); got != "marker\nline|alone" {
		t.Fatalf("posts %q", got)
	}
	if d.m[diag.DriverGaveUp] != [2]int64{1, 4} || len(d.m) != 1 {
		t.Fatalf("drops %v", d.m)
	}
}

// TestBatchesByRecords: with MaxRecords set, a batch goes out once it
// holds that many messages, drop markers among them, whatever its size.
func TestBatchesByRecords(t *testing.T) {
	s := &server{}
	p := New(Config{Name: "test", NewBatch: func() Batch { return &lineBatch{} }, BatchSize: 1 << 20, BatchWait: time.Hour,
		MaxRecords: 2, Send: s.send, Report: func(error) {}})
	m := logger.NewMessage()
	m.Line = append(m.Line, "marker"...)
	if err := p.LogMarker(m); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		logLine(t, p, fmt.Sprintf("line%d", i))
	}
	p.Close()
	if got := strings.Join(s.got(), "|"); got != "marker\nline0|line1\nline2|line3" {
		t.Fatalf("posts %q", got)
	}
}

// fittingBatch is a lineBatch that would rather be sent than grow past
// the limit (Fitter).
type fittingBatch struct{ lineBatch }

func (b *fittingBatch) Fits(m *logger.Message, limit int) bool {
	return b.Size()+len(m.Line)+1 <= limit
}

// TestFitterSealsBefore: a Fitter batch goes out before the message that
// would take it past BatchSize; that message starts the next batch, and
// one larger than BatchSize alone still goes (in a batch of its own).
func TestFitterSealsBefore(t *testing.T) {
	s := &server{}
	p := New(Config{Name: "test", NewBatch: func() Batch { return &fittingBatch{} }, BatchSize: 12, BatchWait: time.Hour,
		Send: s.send, Report: func(error) {}})
	for _, l := range []string{"aaaa", "bbbb", "cccc", "a-line-longer-than-twelve", "dd"} {
		logLine(t, p, l)
	}
	p.Close()
	if got := strings.Join(s.got(), "|"); got != "aaaa\nbbbb|cccc|a-line-longer-than-twelve|dd" {
		t.Fatalf("posts %q", got)
	}
}
