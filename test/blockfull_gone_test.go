package test

// The container ends while a queue with buffer-full=block is full and its
// sink is down. The sink is internal/sink/forward, an in-repo server
// speaking the real Fluentd Forward Protocol v1 (no fluentd runs here).

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
)

// TestBlockFullContainerGone: with buffer-full=block the readers wait for
// room in the ring (non-blocking) or spool (spool) and see no EOF; when
// the sink is down and the container is gone, the logger still ends
// within close-timeout, and every line written is at the sink, counted
// dropped, or left in the spool (lines_spooled).
func TestBlockFullContainerGone(t *testing.T) {
	for _, mode := range []string{"non-blocking", "spool"} {
		t.Run(mode, func(t *testing.T) {
			s, err := forward.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			opts := map[string]string{
				"fluentd-address":     s.URL(),
				"fluentd-max-retries": "2",
				"fluentd-retry-wait":  "100ms",
				"mode":                mode,
				"buffer-full":         "block",
				"close-timeout":       "2s",
			}
			if mode == "spool" {
				opts["spool-dir"] = t.TempDir()
				opts["spool-max-size"] = "1m"
			} else {
				opts["max-buffer-size"] = "64k"
			}
			l := StartLogger(t, Env("blockfullgone0123", opts), "fluentd")
			WriteLines(t, l.Stdout, []string{"before the outage"})
			Eventually(t, 20*time.Second, "the first line at the sink", func() bool { return len(s.Events()) == 1 })
			// A worker with nothing to do stops its timers after a
			// check finds it quiet (at most a second apart): what
			// follows must wake it.
			time.Sleep(2500 * time.Millisecond)
			s.Stop()

			// Far more than the queue and the pipe hold: the writer
			// blocks, and gives up when its pipe is closed under it.
			var all bytes.Buffer
			for _, line := range Lines(strings.Repeat("x", 200), 40000) {
				all.WriteString(line)
				all.WriteByte('\n')
			}
			wrote := make(chan int, 1)
			go func() { n, _ := l.Stdout.Write(all.Bytes()); wrote <- n }()
			time.Sleep(time.Second) // the writer is blocked by then; nothing waits on it
			l.Close()
			n := <-wrote
			if n == all.Len() {
				t.Fatalf("all %d bytes went in: the queue never filled", n)
			}
			whole := int64(bytes.Count(all.Bytes()[:n], []byte{'\n'})) + 1 // and the first line
			start := time.Now()
			select {
			case <-l.Done():
			case <-time.After(15 * time.Second):
				t.Fatalf("still running 15 s after the container went, with close-timeout 2s; stderr: %s", l.Errors())
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("ended %v after the container went, with close-timeout 2s", d)
			}
			// The last stats line is the last worker's: its drops
			// include those of the workers before it.
			st := l.Stats(t)
			dropped := statInt(t, st, "lines_dropped")
			var spooled int64
			if mode == "spool" {
				spooled = statInt(t, st, "lines_spooled")
			}
			atSink := int64(len(s.Events()))
			// A line cut by the closed pipe is read as a last partial
			// message: one more than written whole, at most.
			if got := atSink + dropped + spooled; got < whole || got > whole+1 {
				t.Fatalf("%d lines written whole; at the sink %d + dropped %d + spooled %d = %d; stats %v", whole, atSink, dropped, spooled, got, st)
			}
		})
	}
}
