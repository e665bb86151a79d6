package filelog_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/filelog"
)

// logOne hands l one pooled message, as the reader does.
func logOne(l logger.Logger, line []byte, ts time.Time) error {
	m := logger.NewMessage()
	m.Line = append(m.Line[:0], line...)
	m.Source = "stdout"
	m.Timestamp = ts
	return l.Log(m)
}

func newBenchLoggers(tb testing.TB) map[string]ours {
	dir := tb.TempDir()
	j, err := filelog.NewJSONDriver(logger.Info{Config: map[string]string{"max-size": "10m", "max-file": "2"}, LogPath: filepath.Join(dir, "j.log")}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := filelog.NewLocalDriver(logger.Info{Config: map[string]string{"max-size": "10m", "max-file": "2", "compress": "false"}, LogPath: filepath.Join(dir, "l.log")}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { j.Close(); l.Close() })
	return map[string]ours{"json-file": j, "local": l}
}

// Logging a message allocates nothing once buffers are warm, rotation and
// flushes included.
func TestLogAllocatesNothing(t *testing.T) {
	line := []byte(strings.Repeat("a<b&c\"d ", 12))
	ts := time.Now().UTC()
	for name, l := range newBenchLoggers(t) {
		for i := 0; i < 1000; i++ {
			logOne(l, line, ts)
		}
		allocs := testing.AllocsPerRun(20000, func() {
			if err := logOne(l, line, ts); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per message", name, allocs)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	for _, size := range []int{100, 1000} {
		line := []byte(strings.Repeat("x", size-1))
		ts := time.Now().UTC()
		b.Run(strings.Repeat("", 0)+itoa(size), func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buf = filelog.AppendJSON(buf[:0], line, true, "stdout", nil, ts)
			}
		})
	}
}

func BenchmarkLog(b *testing.B) {
	for _, size := range []int{100, 1000} {
		line := []byte(strings.Repeat("x", size-1))
		ts := time.Now().UTC()
		for name, l := range newBenchLoggers(b) {
			b.Run(name+"/"+itoa(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if err := logOne(l, line, ts); err != nil {
						b.Fatal(err)
					}
				}
				l.Flush()
			})
		}
	}
}

func itoa(n int) string {
	if n == 100 {
		return "100B"
	}
	return "1000B"
}

// BenchmarkLogLong: lines of 256 KiB, text and control bytes (six bytes
// each as JSON), through json-file: encoded in 16 KiB pieces since a
// message's whole encoding is no longer buffered.
func BenchmarkLogLong(b *testing.B) {
	text := []byte(strings.Repeat("x", 256<<10))
	ctrl := make([]byte, 256<<10)
	for i := range ctrl {
		ctrl[i] = byte(i % 32)
	}
	ts := time.Now().UTC()
	for _, c := range []struct {
		name string
		line []byte
	}{{"text", text}, {"control", ctrl}} {
		l := newBenchLoggers(b)["json-file"]
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.line)))
			for i := 0; i < b.N; i++ {
				if err := logOne(l, c.line, ts); err != nil {
					b.Fatal(err)
				}
			}
			l.Flush()
		})
	}
}
