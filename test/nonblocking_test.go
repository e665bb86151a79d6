package test

// End-to-end tests of mode=non-blocking against a stalled sink. The sink
// is internal/sink/forward, an in-repo server speaking the real Fluentd
// Forward Protocol v1 (no fluentd runs here); the bytes on the wire come
// from Docker's fluentd driver. Stall makes it stop reading, so the
// driver's writes block in the kernel as with a hung server.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
)

// markerRE matches the line the logger writes where it lost lines.
var markerRE = regexp.MustCompile(`^dockerlogger: dropped (\d+) lines \((\d+) bytes\) from (stdout|stderr) between (\S+) and (\S+): buffer full$`)

// writeAll writes lines to w in one go in a goroutine, and reports the
// write error (nil when every byte went into the pipe).
func writeAll(w interface{ Write([]byte) (int, error) }, lines []string) <-chan error {
	done := make(chan error, 1)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	go func() { _, err := w.Write([]byte(b.String())); done <- err }()
	return done
}

func statInt(t *testing.T, st map[string]string, key string) int64 {
	t.Helper()
	v, ok := st[key]
	if !ok {
		t.Fatalf("no %s in stats %v", key, st)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("stats %s=%q: %v", key, v, err)
	}
	return n
}

// TestNonBlockingStalledSink: with a sink that stops reading, the
// application's writes never block; every line is either delivered or
// counted as dropped (exactly, in lines and bytes); markers in the stream
// stand exactly where lines went missing and count them; drop-oldest keeps
// the newest lines (the last line written arrives) and drop-newest the
// oldest (the last line written, arriving at a full ring, is lost). The
// exact choice of each policy is tested deterministically in mode.
func TestNonBlockingStalledSink(t *testing.T) {
	for _, policy := range []string{"drop-oldest", "drop-newest"} {
		t.Run(policy, func(t *testing.T) {
			s, err := forward.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Stall(true)
			l := StartLogger(t, Env("nonblock0123456789", map[string]string{
				"fluentd-address": s.URL(),
				"mode":            "non-blocking",
				"max-buffer-size": "64k",
				"buffer-full":     policy,
			}), "fluentd")
			// Far more than the ring and the socket buffers hold.
			const n = 200000
			lines := Lines("nonblocking line with some padding to make it longer", n)
			var bytes int64
			for _, x := range lines {
				bytes += int64(len(x))
			}
			select {
			case err := <-writeAll(l.Stdout, lines):
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the application blocked writing to a non-blocking logger; stderr: %s", l.Errors())
			}
			// Everything written has been read (the sink is still stalled).
			Eventually(t, 20*time.Second, "the logger to read every line", func() bool {
				l.Cmd.Process.Signal(syscall.SIGUSR1)
				st := parseStatsMaybe(l.Errors())
				return st["lines_read"] == strconv.Itoa(n)
			})
			s.Stall(false)
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, l.Errors())
			}
			st := l.Stats(t)
			read, delivered, dropped := statInt(t, st, "lines_read"), statInt(t, st, "lines_delivered"), statInt(t, st, "lines_dropped")
			if read != n || delivered+dropped != n || dropped == 0 {
				t.Fatalf("read %d delivered %d dropped %d, want %d = delivered + dropped with drops", read, delivered, dropped, n)
			}
			if statInt(t, st, "bytes_read") != bytes || statInt(t, st, "bytes_delivered")+statInt(t, st, "bytes_dropped") != bytes {
				t.Fatalf("bytes: %v, %d written", st, bytes)
			}
			if statInt(t, st, "stdout_lines_dropped") != dropped || statInt(t, st, "lines_dropped_buffer_full") != dropped {
				t.Fatalf("per-stream/per-reason drops: %v", st)
			}
			// The sink may still be reading what the driver sent before it closed.
			Eventually(t, 20*time.Second, "every delivered line and marker at the sink", func() bool {
				var lines, marked int64
				for _, e := range s.Events() {
					if m := markerRE.FindStringSubmatch(e.Str("log")); m != nil {
						c, _ := strconv.ParseInt(m[1], 10, 64)
						marked += c
					} else {
						lines++
					}
				}
				return lines >= delivered && marked >= dropped
			})
			evs := s.Events()
			var got []string
			var markLines, markBytes int64
			prev, pending := -1, int64(0)
			for _, e := range evs {
				if e.Str("source") != "stdout" {
					t.Fatalf("event from %q", e.Str("source"))
				}
				msg := e.Str("log")
				if m := markerRE.FindStringSubmatch(msg); m != nil {
					c, _ := strconv.ParseInt(m[1], 10, 64)
					b, _ := strconv.ParseInt(m[2], 10, 64)
					if m[3] != "stdout" {
						t.Fatalf("marker names %s", m[3])
					}
					markLines += c
					markBytes += b
					pending += c
					continue
				}
				var k int
				if _, err := fmt.Sscanf(msg[strings.LastIndexByte(msg, ' ')+1:], "%d", &k); err != nil || msg != lines[k] {
					t.Fatalf("event %q is not a line written", msg)
				}
				if int64(k) != int64(prev)+1+pending {
					t.Fatalf("line %d after line %d and markers for %d lines", k, prev, pending)
				}
				prev, pending = k, 0
				got = append(got, msg)
			}
			if int64(prev)+1+pending != n {
				t.Fatalf("last line %d, then markers for %d lines, of %d", prev, pending, n)
			}
			if int64(len(got)) != delivered || markLines != dropped || markBytes != statInt(t, st, "bytes_dropped") {
				t.Fatalf("sink has %d lines, markers for %d lines %d bytes; stats %v", len(got), markLines, markBytes, st)
			}
			switch policy {
			case "drop-oldest":
				if got[len(got)-1] != lines[n-1] {
					t.Fatalf("drop-oldest lost the newest line; last is %q", got[len(got)-1])
				}
			case "drop-newest":
				// The oldest line went into an empty ring and nothing ever
				// evicts it. (Whether the very last line was dropped
				// depends on whether the ring had room at that moment.)
				if got[0] != lines[0] {
					t.Fatalf("drop-newest did not keep the oldest line: first is %q", got[0])
				}
			}
			t.Logf("%s: %d delivered, %d dropped in %d markers' worth", policy, delivered, dropped, markLines)
		})
	}
}

// parseStatsMaybe is parseStats without failing when there is no stats
// line yet.
func parseStatsMaybe(stderr string) map[string]string {
	var last string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "dockerlogger: stats ") {
			last = strings.TrimPrefix(line, "dockerlogger: stats ")
		}
	}
	m := map[string]string{}
	for _, f := range strings.Fields(last) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}
