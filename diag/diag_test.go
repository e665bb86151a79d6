package diag

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func sample() *Counters {
	c := new(Counters)
	c.Stdout.Lines.Add(5)
	c.Stdout.Bytes.Add(50)
	c.Stdout.Partial.Add(2)
	c.Stderr.Lines.Add(2)
	c.Stderr.Bytes.Add(7)
	c.Delivered.Add(4)
	c.DeliveredBytes.Add(41)
	c.Retries.Add(6)
	c.DriverErrors.Add(7)
	c.Restarts.Add(1)
	c.BufferBytes.Add(99)
	c.Drop("buffer-full", 2, 10)
	c.Drop("close-timeout", 1, 5)
	c.Drop("buffer-full", 1, 1)
	return c
}

func TestLineOrderAndValues(t *testing.T) {
	c := sample()
	c.Set("version", "1.0 beta")
	c.Set("driver", "json-file")
	fields := strings.Fields(strings.Replace(c.Line(), `"1.0 beta"`, `"1.0_beta"`, 1))
	// The totals the README names come first, in its order.
	first := []string{"lines_read=7", "lines_delivered=4", "lines_dropped=4", "bytes_read=57", "bytes_dropped=16", "restarts=1"}
	if len(fields) < len(first) {
		t.Fatalf("line %q", c.Line())
	}
	for i, w := range first {
		if fields[i] != w {
			t.Errorf("field %d = %q, want %q (line %q)", i, fields[i], w, c.Line())
		}
	}
	m := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Errorf("field %q is not key=value", f)
		}
		if _, dup := m[k]; dup {
			t.Errorf("key %s twice", k)
		}
		m[k] = v
	}
	want := map[string]string{
		"bytes_delivered": "41", "retries": "6", "driver_errors": "7", "buffer_bytes": "99",
		"stdout_lines_read": "5", "stdout_bytes_read": "50", "stderr_lines_read": "2", "stderr_bytes_read": "7",
		"partial_messages":          "2",
		"lines_dropped_buffer_full": "3", "bytes_dropped_buffer_full": "11",
		"lines_dropped_close_timeout": "1", "bytes_dropped_close_timeout": "5",
		"version": `"1.0_beta"`, "driver": "json-file",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s=%q, want %q", k, m[k], v)
		}
	}
	if !strings.Contains(c.Line(), `version="1.0 beta"`) {
		t.Errorf("a value with a space is not quoted: %q", c.Line())
	}
	if strings.Contains(c.Line(), "\n") {
		t.Errorf("more than one line: %q", c.Line())
	}
	// Drop reasons in sorted order, lines before bytes.
	l := c.Line()
	if a, b := strings.Index(l, "lines_dropped_buffer_full"), strings.Index(l, "lines_dropped_close_timeout"); a < 0 || b < a {
		t.Errorf("reasons not sorted: %q", l)
	}
}

func TestZeroCounters(t *testing.T) {
	var c Counters
	want := "lines_read=0 lines_delivered=0 lines_dropped=0 bytes_read=0 bytes_dropped=0 restarts=0 "
	if !strings.HasPrefix(c.Line(), want) {
		t.Errorf("zero line %q", c.Line())
	}
	if strings.Contains(c.Line(), "lines_dropped_") {
		t.Errorf("a drop reason with no drop: %q", c.Line())
	}
}

func TestStream(t *testing.T) {
	var c Counters
	if c.Stream("stdout") != &c.Stdout || c.Stream("stderr") != &c.Stderr {
		t.Error("Stream does not return the named stream's counters")
	}
}

// TestConcurrentDrop: counters are added to from every stage at once.
func TestConcurrentDrop(t *testing.T) {
	var c Counters
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				c.Drop("r", 1, 2)
				c.Delivered.Add(1)
				_ = c.Line()
			}
		}()
	}
	wg.Wait()
	if c.Dropped.Load() != 8000 || c.DroppedBytes.Load() != 16000 || !strings.Contains(c.Line(), "lines_dropped_r=8000 bytes_dropped_r=16000") {
		t.Errorf("lost counts: %s", c.Line())
	}
}

// parseProm parses s with Prometheus's own text-format parser.
func parseProm(t *testing.T, s string) map[string]*model.Sample {
	t.Helper()
	dec := expfmt.SampleDecoder{Dec: expfmt.NewDecoder(strings.NewReader(s), expfmt.NewFormat(expfmt.TypeTextPlain)),
		Opts: &expfmt.DecodeOptions{Timestamp: model.Now()}}
	var all model.Vector
	for {
		var v model.Vector
		if err := dec.Decode(&v); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("Prometheus's parser rejects the stats text: %v\n%s", err, s)
			}
			break
		}
		all = append(all, v...)
	}
	m := map[string]*model.Sample{}
	for _, s := range all {
		m[s.Metric.String()] = s
	}
	return m
}

func TestPrometheus(t *testing.T) {
	c := sample()
	c.Set("driver", "json-file")
	c.Set("mode", "non-blocking")
	text := c.Prometheus()
	m := parseProm(t, text)
	for name, v := range map[string]float64{
		"dockerlogger_lines_read": 7, "dockerlogger_lines_delivered": 4, "dockerlogger_lines_dropped": 4,
		"dockerlogger_bytes_read": 57, "dockerlogger_bytes_dropped": 16, "dockerlogger_restarts": 1,
		"dockerlogger_lines_dropped_buffer_full": 3, "dockerlogger_bytes_dropped_close_timeout": 5,
		`dockerlogger_info{driver="json-file"}`: 1, `dockerlogger_info{mode="non-blocking"}`: 1,
	} {
		s, ok := m[name]
		if !ok {
			t.Errorf("%s missing from\n%s", name, text)
			continue
		}
		if float64(s.Value) != v {
			t.Errorf("%s = %v, want %v", name, s.Value, v)
		}
	}
	if n := strings.Count(text, "\n"); n != len(c.Snapshot()) {
		t.Errorf("%d lines for %d values", n, len(c.Snapshot()))
	}
}

// TestPrometheusTextValues: a value that is not a number must never be
// rendered as a sample value, even when it starts with digits, as a
// version from `git describe --always` does.
func TestPrometheusTextValues(t *testing.T) {
	for _, v := range []string{"3dd90e8", "1.2.3", "3dd90e8-dirty", `with "quotes" and \ backslash`, "dev"} {
		var c Counters
		c.Set("version", v)
		text := c.Prometheus()
		if strings.Contains(text, "dockerlogger_version ") {
			t.Errorf("version %q rendered as a sample: %q", v, text)
			continue
		}
		m := parseProm(t, text)
		found := false
		for _, s := range m {
			if string(s.Metric["__name__"]) == "dockerlogger_info" && string(s.Metric["version"]) == v {
				found = true
			}
		}
		if !found {
			t.Errorf("version %q not in dockerlogger_info: %q", v, text)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stats.prom")
	c := sample()
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != c.Prometheus() {
		t.Errorf("file holds %q, want %q", b, c.Prometheus())
	}
	// Replaced, not appended to, and no temporary file left behind.
	c.Delivered.Add(1000)
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if string(b) != c.Prometheus() || !strings.Contains(string(b), "dockerlogger_lines_delivered 1004\n") {
		t.Errorf("second write: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the stats file", len(ents))
	}
	// Atomic: a reader never sees a partial file while writes go on.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.Delivered.Add(1)
			if err := c.WriteFile(path); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 300; i++ {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read while replacing: %v", err)
		}
		if !bytes.HasPrefix(b, []byte("dockerlogger_lines_read ")) || !bytes.HasSuffix(b, []byte("\n")) ||
			!bytes.Contains(b, []byte("dockerlogger_partial_messages ")) {
			t.Fatalf("read a partial file: %q", b)
		}
	}
	close(stop)
	wg.Wait()
	// A directory that does not exist: an error naming the path, no panic.
	err = c.WriteFile(filepath.Join(dir, "nosuch", "stats.prom"))
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("write into a missing directory: %v", err)
	}
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestErrorsBurst runs on the real clock with a long interval: the burst
// and the suppression happen within microseconds, far inside it.
func TestErrorsBurst(t *testing.T) {
	var buf bytes.Buffer
	e := NewErrors(&buf)
	for i := 0; i < 25; i++ {
		e.Printf("error %d\nsecond line", i)
	}
	got := lines(buf.String())
	if len(got) != 10 {
		t.Fatalf("%d lines let through, want the burst of 10: %q", len(got), got)
	}
	for i, l := range got {
		if want := fmt.Sprintf("dockerlogger: error %d second line", i); l != want {
			t.Errorf("line %d = %q, want %q", i, l, want)
		}
	}
}

// TestErrorsRefill uses a small interval on the real clock: Errors reads
// time.Now, so the test waits out the interval itself (the time is what is
// under test, not a stand-in for a signal). An injectable clock would make
// this instant.
func TestErrorsRefill(t *testing.T) {
	const iv = 100 * time.Millisecond
	var buf bytes.Buffer
	e := NewErrors(&buf)
	e.Burst, e.tokens, e.Interval = 3, 3, iv
	start := time.Now()
	for i := 0; i < 7; i++ {
		e.Printf("burst %d", i)
	}
	if time.Since(start) > iv/2 {
		t.Skip("machine too slow for a 100 ms interval") // never seen; keeps the test honest
	}
	if got := lines(buf.String()); len(got) != 3 {
		t.Fatalf("burst: %q", got)
	}
	time.Sleep(iv + iv/2)
	e.Printf("after one interval")
	e.Printf("held back")
	got := lines(buf.String())
	if len(got) != 4 || got[3] != "dockerlogger: after one interval (4 similar lines suppressed)" {
		t.Fatalf("after one interval: %q", got)
	}
	// A long quiet spell refills the whole burst, never more.
	time.Sleep(5 * iv)
	buf.Reset()
	for i := 0; i < 5; i++ {
		e.Printf("again %d", i)
	}
	got = lines(buf.String())
	if len(got) != 3 || got[0] != "dockerlogger: again 0 (1 similar lines suppressed)" || got[2] != "dockerlogger: again 2" {
		t.Errorf("after a quiet spell: %q", got)
	}
}

// TestErrorsLiteral: Errors has exported fields, so a literal must work
// as well as NewErrors: its first line is printed.
func TestErrorsLiteral(t *testing.T) {
	var buf bytes.Buffer
	e := &Errors{W: &buf, Burst: 2, Interval: time.Hour}
	e.Printf("first")
	if buf.String() != "dockerlogger: first\n" {
		t.Errorf("got %q", buf.String())
	}
}
