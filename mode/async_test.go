package mode

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/backend"
	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/diag"
)

// testDriver behaves as Docker's drivers do where it matters here: it
// owns each message once Log is called, and puts it back in the pool even
// when it fails.
type testDriver struct {
	entered chan struct{} // when set, told of each call to Log
	mu      sync.Mutex
	got     []*logger.Message // copies
	gate    chan struct{}     // when set, Log waits for it to close
	down    bool              // Log fails while down
	fails   int
}

func (d *testDriver) Log(m *logger.Message) error {
	d.mu.Lock()
	gate := d.gate
	d.mu.Unlock()
	if d.entered != nil {
		d.entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	defer logger.PutMessage(m)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		d.fails++
		return errors.New("sink down")
	}
	c := *m
	c.Line = append([]byte(nil), m.Line...)
	if m.PLogMetaData != nil {
		p := *m.PLogMetaData
		c.PLogMetaData = &p
	}
	d.got = append(d.got, &c)
	return nil
}

func (d *testDriver) Flush() error { return nil }

func (d *testDriver) setDown(v bool) { d.mu.Lock(); d.down = v; d.mu.Unlock() }

func (d *testDriver) lines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, m := range d.got {
		out = append(out, m.Source+" "+string(m.Line))
	}
	return out
}

func newCounters() (*diag.Counters, *diag.Errors) {
	return &diag.Counters{}, &diag.Errors{W: &strings.Builder{}, Burst: 1 << 30}
}

func msg(src, line string) *logger.Message {
	m := logger.NewMessage()
	m.Source, m.Line, m.Timestamp = src, append(m.Line[:0], line...), time.Now()
	return m
}

var markerRE = regexp.MustCompile(`^(stdout|stderr) dockerlogger: dropped (\d+) lines \((\d+) bytes\) from (stdout|stderr) between (\S+) and (\S+): buffer full$`)

// split separates markers from lines and checks each marker's stream.
func split(t *testing.T, got []string) (lines []string, markers [][]string) {
	t.Helper()
	for _, g := range got {
		if m := markerRE.FindStringSubmatch(g); m != nil {
			if m[1] != m[4] {
				t.Fatalf("marker on the wrong stream: %q", g)
			}
			markers = append(markers, m)
			continue
		}
		if strings.Contains(g, "dockerlogger:") {
			t.Fatalf("malformed marker %q", g)
		}
		lines = append(lines, g)
	}
	return
}

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

func TestRingStalledDriver(t *testing.T) {
	for _, policy := range []config.BufferFull{config.DropOldest, config.DropNewest} {
		t.Run(string(policy), func(t *testing.T) {
			count, errs := newCounters()
			d := &testDriver{gate: make(chan struct{}), entered: make(chan struct{}, 10000)}
			a, err := NewAsync(AsyncConfig{Mode: "non-blocking", MaxBufferSize: 4096, BufferFull: policy,
				Driver: d, Count: count, Errors: errs, DropMarker: true})
			if err != nil {
				t.Fatal(err)
			}
			const n = 2000
			var bytes int64
			for i := range n {
				l := fmt.Sprintf("line %04d", i)
				bytes += int64(len(l))
				a.Log(msg("stdout", l)) // the driver is stalled: this must not block
				if i == 0 {
					<-d.entered // the first line is with the driver, which stalls
				}
			}
			close(d.gate) // the sink resumes
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			lines, markers := split(t, d.lines())
			dl, db := count.Dropped.Load(), count.DroppedBytes.Load()
			if int64(len(lines))+dl != n || count.Delivered.Load() != int64(len(lines)) {
				t.Fatalf("delivered %d (counted %d) + dropped %d != %d", len(lines), count.Delivered.Load(), dl, n)
			}
			if count.DeliveredBytes.Load()+db != bytes {
				t.Fatalf("bytes delivered %d + dropped %d != %d", count.DeliveredBytes.Load(), db, bytes)
			}
			if dl == 0 || len(markers) != 1 || atoi(markers[0][2]) != dl || atoi(markers[0][3]) != db {
				t.Fatalf("dropped %d lines %d bytes; markers %q", dl, db, markers)
			}
			checkGaps(t, d.lines(), n)
			all := d.lines()
			first, last := lines[0], lines[len(lines)-1]
			switch policy {
			case "drop-oldest": // the first line was with the driver; the newest are kept
				if first != "stdout line 0000" || last != fmt.Sprintf("stdout line %04d", n-1) || all[1] != markers[0][0] {
					t.Fatalf("drop-oldest kept %q..%q, marker at %q", first, last, all[1])
				}
			case "drop-newest": // the oldest are kept, the marker comes after them
				if first != "stdout line 0000" || last != fmt.Sprintf("stdout line %04d", len(lines)-1) || all[len(all)-1] != markers[0][0] {
					t.Fatalf("drop-newest kept %q..%q, last %q", first, last, all[len(all)-1])
				}
			}
			if count.BufferBytes.Load() != 0 {
				t.Fatalf("buffer_bytes %d after drain", count.BufferBytes.Load())
			}
			if s := count.Line(); !strings.Contains(s, "stdout_lines_dropped="+fmt.Sprint(dl)) || !strings.Contains(s, "drop_markers=1") {
				t.Fatalf("stats %s", s)
			}
		})
	}
}

func TestRingRetriesWithoutLoss(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{down: true}
	a, err := NewAsync(AsyncConfig{Mode: "non-blocking", MaxBufferSize: 1 << 20, Driver: d, Count: count, Errors: errs, DropMarker: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		a.Log(msg([]string{"stdout", "stderr"}[i%2], fmt.Sprint("m", i)))
	}
	for count.DriverErrors.Load() < 2 {
		time.Sleep(5 * time.Millisecond) // the consumer is retrying: no signal to wait on
	}
	d.setDown(false)
	if err := a.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := d.lines()
	if len(got) != 100 || got[0] != "stdout m0" || got[99] != "stderr m99" || count.Dropped.Load() != 0 {
		t.Fatalf("got %d lines (%q..), dropped %d", len(got), got[0], count.Dropped.Load())
	}
	if count.Retries.Load() < 2 || count.DriverErrors.Load() < 2 {
		t.Fatalf("retries %d errors %d", count.Retries.Load(), count.DriverErrors.Load())
	}
}

func TestRingTooLarge(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{}
	a, _ := NewAsync(AsyncConfig{Mode: "non-blocking", MaxBufferSize: 200, Driver: d, Count: count, Errors: errs, DropMarker: true})
	a.Log(msg("stderr", strings.Repeat("x", 300)))
	a.Log(msg("stderr", "small"))
	a.Drain(context.Background())
	got := d.lines()
	if len(got) != 2 || !strings.HasPrefix(got[0], "stderr dockerlogger: dropped 1 lines (300 bytes) from stderr") ||
		!strings.HasSuffix(got[0], "line larger than the buffer") || got[1] != "stderr small" {
		t.Fatalf("got %q", got)
	}
}

func TestRingDrainTimeout(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{down: true}
	a, _ := NewAsync(AsyncConfig{Mode: "non-blocking", MaxBufferSize: 1 << 20, Driver: d, Count: count, Errors: errs})
	for i := range 50 {
		a.Log(msg("stdout", fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain: %v", err)
	}
	<-a.done
	if count.Dropped.Load() != 50 || !strings.Contains(count.Line(), "lines_dropped_close_timeout=50") {
		t.Fatalf("%s", count.Line())
	}
}

func TestSpoolOutageAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	count, errs := newCounters()
	d := &testDriver{down: true}
	cfg := AsyncConfig{Mode: "spool", SpoolDir: dir, SpoolMaxSize: 1 << 20, SpoolSync: "always", Driver: d, Count: count, Errors: errs, DropMarker: true}
	a, err := NewAsync(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAsync(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second logger on the same spool: %v", err)
	}
	var want []string
	for i := range 300 {
		m := msg("stdout", fmt.Sprint("line ", i))
		if i == 7 {
			m.Source = "stderr"
		}
		want = append(want, m.Source+" "+string(m.Line))
		a.Log(m)
		if i%50 == 0 {
			a.Flush()
		}
	}
	a.Flush()
	// The sink is down for the whole run: Drain gives up, the spool keeps all.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := a.Drain(ctx); err == nil || !strings.Contains(err.Error(), "left in spool") {
		t.Fatalf("drain with the sink down: %v", err)
	}
	<-a.done
	if count.Dropped.Load() != 0 || count.Delivered.Load() != 0 {
		t.Fatalf("spool dropped %d delivered %d with the sink down", count.Dropped.Load(), count.Delivered.Load())
	}
	// A new logger on the same spool, the sink up: everything, in order.
	count2, errs2 := newCounters()
	d.setDown(false)
	cfg.Count, cfg.Errors = count2, errs2
	a, err = NewAsync(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Log(msg("stdout", "after restart"))
	if err := a.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = append(want, "stdout after restart")
	got := d.lines()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after restart got %d lines, want %d:\n%q", len(got), len(want), got[:min(5, len(got))])
	}
	// The first process handed out one batch it never got accepted.
	if r := atoi(stat(count2, "spool_replayed")); r < 1 || r > 300 {
		t.Fatalf("stats after restart: %s", count2.Line())
	}
}

func TestSpoolPartialMetadata(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{}
	a, err := NewAsync(AsyncConfig{Mode: "spool", SpoolDir: filepath.Join(t.TempDir(), "s"), SpoolMaxSize: 1 << 20, Driver: d, Count: count, Errors: errs})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	m := msg("stderr", "part")
	m.Timestamp = ts
	m.PLogMetaData = &backend.PartialLogMetaData{ID: "abc", Ordinal: 2, Last: true}
	a.Log(m)
	a.Drain(context.Background())
	g := d.got[0]
	if g.Source != "stderr" || !g.Timestamp.Equal(ts) || g.PLogMetaData == nil || *g.PLogMetaData != (backend.PartialLogMetaData{ID: "abc", Ordinal: 2, Last: true}) {
		t.Fatalf("got %+v %+v", g, g.PLogMetaData)
	}
}

func TestSpoolFullMarker(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{gate: make(chan struct{}), entered: make(chan struct{}, 1000)}
	a, err := NewAsync(AsyncConfig{Mode: "spool", SpoolDir: filepath.Join(t.TempDir(), "s"), SpoolMaxSize: 4096, BufferFull: "drop-newest",
		Driver: d, Count: count, Errors: errs, DropMarker: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		a.Log(msg("stdout", fmt.Sprintf("line %04d", i)))
		if i == 0 {
			a.Flush()
			<-d.entered // the sink stalls with the first line
		}
	}
	a.Flush()
	close(d.gate)
	a.Drain(context.Background())
	lines, markers := split(t, d.lines())
	dl := count.Dropped.Load()
	if dl == 0 || int64(len(lines))+dl != 500 || len(markers) != 1 || atoi(markers[0][2]) != dl {
		t.Fatalf("%d lines, %d dropped, markers %q", len(lines), dl, markers)
	}
	for i, l := range lines {
		if l != fmt.Sprintf("stdout line %04d", i) {
			t.Fatalf("line %d = %q: drop-newest keeps the oldest", i, l)
		}
	}
}

// checkGaps checks that the lines ("stdout line %04d", n of them
// written) come in order and that each marker stands exactly where its
// lines went missing and counts them.
func checkGaps(t *testing.T, got []string, n int) {
	t.Helper()
	prev, pending := -1, 0
	for _, g := range got {
		if m := markerRE.FindStringSubmatch(g); m != nil {
			pending += int(atoi(m[2]))
			continue
		}
		var k int
		fmt.Sscanf(g, "stdout line %d", &k)
		if k != prev+1+pending {
			t.Fatalf("line %d after line %d and markers for %d lines", k, prev, pending)
		}
		prev, pending = k, 0
	}
	if prev+1+pending != n {
		t.Fatalf("last line %d and markers for %d lines, %d written", prev, pending, n)
	}
}

func stat(c *diag.Counters, key string) string {
	for _, kv := range c.Snapshot() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// TestLogAfterDrain: a reader still going when Drain began (SIGTERM, then
// close-timeout with the input open) has its lines counted, not lost
// silently.
func TestLogAfterDrain(t *testing.T) {
	for _, m := range []string{"non-blocking", "spool"} {
		count, errs := newCounters()
		d := &testDriver{}
		a, err := NewAsync(AsyncConfig{Mode: m, MaxBufferSize: 1 << 20, SpoolDir: filepath.Join(t.TempDir(), "s"),
			SpoolMaxSize: 1 << 20, Driver: d, Count: count, Errors: errs})
		if err != nil {
			t.Fatal(err)
		}
		a.Log(msg("stdout", "before"))
		if err := a.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		a.Log(msg("stdout", "after"))
		if got := d.lines(); len(got) != 1 || count.Delivered.Load() != 1 || count.Dropped.Load() != 1 || count.DroppedBytes.Load() != 5 {
			t.Fatalf("%s: delivered %q (%d), dropped %d lines %d bytes", m, got, count.Delivered.Load(), count.Dropped.Load(), count.DroppedBytes.Load())
		}
	}
}

// BenchmarkRingFullDropOldest is the non-blocking mode's hot path while
// the sink is down: each message goes into a full ring and pushes the
// oldest out (counted). Its allocations are what the collector must
// keep up with per line.
func BenchmarkRingFullDropOldest(b *testing.B) {
	for _, size := range []int{100, 4 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			c, e := newCounters()
			d := &testDriver{gate: make(chan struct{})}
			a, err := NewAsync(AsyncConfig{Mode: "non-blocking", MaxBufferSize: 1 << 20, Driver: d, Count: c, Errors: e, DropMarker: true})
			if err != nil {
				b.Fatal(err)
			}
			line := strings.Repeat("x", size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				a.Log(msg("stdout", line))
			}
			b.StopTimer()
			close(d.gate)
			d.setDown(true)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			a.Drain(ctx)
		})
	}
}

// TestSpoolBlockedAtCloseTimeout: with buffer-full=block, a full spool and
// the sink down, a reader blocked in Log when Drain gives up has its line
// dropped as close-timeout's (not buffer-full's: block never drops for
// room), and every line logged is either left in the spool or dropped,
// counted once.
func TestSpoolBlockedAtCloseTimeout(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{down: true}
	a, err := NewAsync(AsyncConfig{Mode: "spool", SpoolDir: filepath.Join(t.TempDir(), "s"), SpoolMaxSize: 64 << 10,
		BufferFull: config.BlockFull, Driver: d, Count: count, Errors: errs})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000)
	logged := make(chan int)
	go func() {
		n := 0
		defer func() { logged <- n }()
		for range 200 { // about three times what the spool holds
			n++
			if a.Log(msg("stdout", line)) != nil {
				return
			}
		}
	}()
	// Wait until the reader is blocked on the full spool.
	for deadline := time.Now().Add(5 * time.Second); a.spool.Len() < 60<<10; {
		if time.Now().After(deadline) {
			t.Fatalf("the spool never filled: %d bytes", a.spool.Len())
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Drain(ctx); err == nil || !strings.Contains(err.Error(), "left in spool") {
		t.Fatalf("drain with the sink down: %v", err)
	}
	n := int64(<-logged)
	spooled := atoi(stat(count, "lines_spooled"))
	if n == 200 || spooled == 0 {
		t.Fatalf("the reader was not blocked: %d lines logged, %d spooled", n, spooled)
	}
	if got := atoi(stat(count, "lines_dropped_close_timeout")); got != 1 || count.Dropped.Load() != 1 {
		t.Fatalf("the blocked line: dropped %d, as close-timeout %d (want 1): %s", count.Dropped.Load(), got, count.Line())
	}
	if spooled+count.Dropped.Load() != n {
		t.Fatalf("%d lines logged, %d spooled + %d dropped: %s", n, spooled, count.Dropped.Load(), count.Line())
	}
}
