package test

// End-to-end tests of the fluentd driver. No fluentd runs here, so the
// logger talks to internal/sink/forward, an in-repo server implementing
// the real Fluentd Forward Protocol v1 (msgpack over TCP or a unix
// socket, EventTime, chunk acks) — not a mock of our own code: the bytes
// on the wire come from dockerlogger's fluentd driver (Docker's record
// format) and fluent-logger-golang.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
)

const fluentdID = "f1e2d3c4b5a6978812345678"

// startForward starts a Forward protocol sink on a free port (or on a
// unix socket when unix is true) and stops it when the test ends.
func startForward(t *testing.T, unix bool) *forward.Server {
	t.Helper()
	network, addr := "tcp", "127.0.0.1:0"
	if unix {
		network, addr = "unix", filepath.Join(t.TempDir(), "fluentd.sock")
	}
	s, err := forward.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// checkStream asserts that the events of one source carry exactly want, in
// order, as "log".
func checkStream(t *testing.T, evs []forward.Event, source string, want []string) {
	t.Helper()
	var got []string
	for _, e := range evs {
		if e.Str("source") == source && e.Str("partial_message") == "" {
			got = append(got, e.Str("log"))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d lines arrived, want %d (first: %q)", source, len(got), len(want), first(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s line %d = %q, want %q", source, i, got[i], want[i])
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// noProtocolErrors fails the test if the sink closed a connection for a
// malformed request.
func noProtocolErrors(t *testing.T, s *forward.Server) {
	t.Helper()
	if errs := s.Errors(); len(errs) > 0 {
		t.Fatalf("forward sink saw protocol errors: %v", errs)
	}
}

// TestFluentdRecords: every line arrives, per stream in order, with the
// record fields Docker's fluentd driver sends, the tag from the tag
// log-opt, and a long line cut by line-max into partial messages that
// carry Docker's partial_* fields and join back to the line.
func TestFluentdRecords(t *testing.T) {
	s := startForward(t, false)
	env := Env(fluentdID, map[string]string{
		"fluentd-address": s.URL(),
		"tag":             "docker.{{.Name}}.{{.ID}}",
		"line-max":        "1k",
	}, "DOCKERLOG_CONTAINERNAME=/web")
	l := StartLogger(t, env, "fluentd")

	out, errs := Lines("out", 100), Lines("err", 50)
	long := strings.Repeat("0123456789abcdef", 160) // 2560 bytes: three parts
	WriteLines(t, l.Stdout, out[:50])
	WriteLines(t, l.Stdout, []string{long})
	WriteLines(t, l.Stdout, out[50:])
	WriteLines(t, l.Stderr, errs)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}

	evs, err := s.Wait(153, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	noProtocolErrors(t, s)
	if len(evs) != 153 {
		t.Fatalf("%d events, want 153 (150 lines and 3 parts)", len(evs))
	}
	checkStream(t, evs, "stdout", out)
	checkStream(t, evs, "stderr", errs)

	var parts []forward.Event
	for _, e := range evs {
		if e.Tag != "docker.web."+fluentdID[:12] {
			t.Fatalf("tag %q, want %q", e.Tag, "docker.web."+fluentdID[:12])
		}
		if e.Str("container_id") != fluentdID {
			t.Fatalf("container_id %q, want the full id %q", e.Str("container_id"), fluentdID)
		}
		if e.Str("container_name") != "web" && e.Str("container_name") != "/web" {
			t.Fatalf("container_name %q, want the container's name", e.Str("container_name"))
		}
		if e.EventTime {
			t.Fatal("EventTime without fluentd-sub-second-precision")
		}
		if e.Str("partial_message") != "" {
			parts = append(parts, e)
		}
	}
	if len(parts) != 3 {
		t.Fatalf("%d partial messages, want 3", len(parts))
	}
	var joined string
	for i, p := range parts {
		if p.Str("partial_message") != "true" || p.Str("source") != "stdout" {
			t.Fatalf("part %d: %v", i, p.Record)
		}
		if p.Str("partial_id") == "" || p.Str("partial_id") != parts[0].Str("partial_id") {
			t.Fatalf("part %d partial_id %q, first part's %q", i, p.Str("partial_id"), parts[0].Str("partial_id"))
		}
		if got, want := p.Str("partial_ordinal"), fmt.Sprint(i+1); got != want {
			t.Fatalf("part %d partial_ordinal %q, want %q", i, got, want)
		}
		if got, want := p.Str("partial_last"), fmt.Sprint(i == 2); got != want {
			t.Fatalf("part %d partial_last %q, want %q", i, got, want)
		}
		if i < 2 && len(p.Str("log")) != 1024 {
			t.Fatalf("part %d is %d bytes, want line-max 1k = 1024", i, len(p.Str("log")))
		}
		joined += p.Str("log")
	}
	if joined != long {
		t.Fatalf("parts join to %d bytes, not the %d-byte line", len(joined), len(long))
	}
	// In the stdout order the parts sit between out 49 and out 50.
	var stdout []forward.Event
	for _, e := range evs {
		if e.Str("source") == "stdout" {
			stdout = append(stdout, e)
		}
	}
	for i := 0; i < 3; i++ {
		if got := stdout[50+i].Str("partial_ordinal"); got != fmt.Sprint(i+1) {
			t.Fatalf("stdout event %d has partial_ordinal %q, want part %d after %q", 50+i, got, i+1, out[49])
		}
	}
	st := l.Stats(t)
	if st["lines_delivered"] != "153" || st["lines_dropped"] != "0" {
		t.Fatalf("stats: %v", st)
	}
}

// TestFluentdRequestAck: with fluentd-request-ack=true every event is sent
// with a chunk id and acknowledged, over a unix socket address.
func TestFluentdRequestAck(t *testing.T) {
	s := startForward(t, true)
	l := StartLogger(t, Env(fluentdID, map[string]string{
		"fluentd-address":     s.URL(),
		"fluentd-request-ack": "true",
	}), "fluentd")
	out := Lines("acked", 200)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	evs := s.Events() // acked: every event is in before the logger exits
	noProtocolErrors(t, s)
	checkStream(t, evs, "stdout", out)
	if len(evs) != 200 || s.Acks() != 200 {
		t.Fatalf("%d events, %d acks; want 200 of each", len(evs), s.Acks())
	}
	if evs[0].Tag != fluentdID[:12] {
		t.Fatalf("default tag %q, want the short id %q", evs[0].Tag, fluentdID[:12])
	}
}

// TestFluentdAsync: with fluentd-async=true lines are queued by the
// driver and sent in the background: all of them arrive, per stream in
// order, while the logger runs.
func TestFluentdAsync(t *testing.T) {
	s := startForward(t, false)
	l := StartLogger(t, Env(fluentdID, map[string]string{
		"fluentd-address": s.URL(),
		"fluentd-async":   "true",
	}), "fluentd")
	out, errs := Lines("async-out", 500), Lines("async-err", 500)
	WriteLines(t, l.Stdout, out)
	WriteLines(t, l.Stderr, errs)
	evs, err := s.Wait(1000, 10*time.Second)
	if err != nil {
		t.Fatalf("%v; logger stderr: %s", err, l.Errors())
	}
	noProtocolErrors(t, s)
	checkStream(t, evs, "stdout", out)
	checkStream(t, evs, "stderr", errs)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
}

// TestFluentdAsyncCloseFlush: with fluentd-async=true, lines still in the
// driver's queue when the inputs close must arrive before the logger
// exits 0 (the container stopping is the normal end of a logger's life).
func TestFluentdAsyncCloseFlush(t *testing.T) {
	s := startForward(t, false)
	l := StartLogger(t, Env(fluentdID, map[string]string{
		"fluentd-address": s.URL(),
		"fluentd-async":   "true",
	}), "fluentd")
	out := Lines("tail", 500)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	// Sent before the exit, the events may still be in the sink's socket
	// (nothing acknowledges them): wait for them to be read.
	evs, _ := s.Wait(len(out), 10*time.Second)
	checkStream(t, evs, "stdout", out)
}

// TestFluentdContainerName: container_name is sent as Docker's daemon
// sends it, with the leading slash of Docker's container names
// (DOCKERLOG_CONTAINERNAME=/web gives "/web"), while {{.Name}} in a tag
// has no slash.
func TestFluentdContainerName(t *testing.T) {
	s := startForward(t, false)
	l := StartLogger(t, Env(fluentdID, map[string]string{
		"fluentd-address": s.URL(),
		"tag":             "{{.Name}}",
	}, "DOCKERLOG_CONTAINERNAME=/web"), "fluentd")
	WriteLines(t, l.Stdout, []string{"named"})
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	evs := s.Events()
	if len(evs) != 1 || evs[0].Str("container_name") != "/web" || evs[0].Tag != "web" {
		t.Fatalf("events %+v: want container_name \"/web\" and tag \"web\"", evs)
	}
}

// TestFluentdSubSecondPrecision: fluentd-sub-second-precision=true sends
// EventTime (nanoseconds) stamped when the line was read.
func TestFluentdSubSecondPrecision(t *testing.T) {
	s := startForward(t, false)
	l := StartLogger(t, Env(fluentdID, map[string]string{
		"fluentd-address":              s.URL(),
		"fluentd-sub-second-precision": "true",
	}), "fluentd")
	before := time.Now()
	out := Lines("precise", 20)
	WriteLines(t, l.Stdout, out)
	evs, err := s.Wait(20, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkStream(t, evs, "stdout", out)
	subSecond := false
	for _, e := range evs {
		if !e.EventTime {
			t.Fatalf("event %q came with integer time", e.Str("log"))
		}
		if e.Time.Before(before) || e.Time.After(after) {
			t.Fatalf("event time %v outside [%v, %v]", e.Time, before, after)
		}
		subSecond = subSecond || e.Time.Nanosecond() != 0
	}
	if !subSecond {
		t.Fatal("no event has a sub-second part")
	}
}

// TestFluentdSinkDownAtStart: the fluentd server is down when the
// container starts. The logger still signals ready (the container
// starts), the application's lines wait, and once the server comes up
// every line arrives, in order. With fluentd-async=false the driver
// fails to connect in New(), so the logger retries creating it; with
// fluentd-async=true the driver connects lazily and queues.
func TestFluentdSinkDownAtStart(t *testing.T) {
	for _, async := range []string{"false", "true"} {
		t.Run("async="+async, func(t *testing.T) {
			s, err := forward.Reserve()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			l := StartLogger(t, Env(fluentdID, map[string]string{
				"fluentd-address":    s.URL(),
				"fluentd-async":      async,
				"fluentd-retry-wait": "100ms",
			}), "fluentd")
			out := Lines("early", 50)
			WriteLines(t, l.Stdout, out)
			if async == "false" {
				// The driver could not be created: the user sees why.
				Eventually(t, 10*time.Second, "a 'driver not up' error on stderr", func() bool {
					return strings.Contains(l.Errors(), "fluentd driver not up")
				})
			}
			if n := len(s.Events()); n != 0 {
				t.Fatalf("%d events before the server started", n)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			evs, err := s.Wait(50, 15*time.Second)
			if err != nil {
				t.Fatalf("%v; logger stderr: %s", err, l.Errors())
			}
			more := Lines("late", 50)
			WriteLines(t, l.Stdout, more)
			if async == "true" {
				// Let the async queue drain while the logger runs, so the
				// test sees delivery, not only the flush at close.
				if _, err := s.Wait(100, 10*time.Second); err != nil {
					t.Fatalf("%v; logger stderr: %s", err, l.Errors())
				}
			}
			if code := l.Wait(t, 20*time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
			}
			// Synchronous sends are done when the logger exits.
			evs = s.Events()
			noProtocolErrors(t, s)
			checkStream(t, evs, "stdout", append(out, more...))
		})
	}
}

// TestFluentdValidate: --validate fluentd accepts good options and names
// the bad one, exit 2, without network use.
func TestFluentdValidate(t *testing.T) {
	runValidate(t, "fluentd", []validateCase{
		{name: "good", opts: map[string]string{"fluentd-address": "unix:///run/fluentd.sock", "fluentd-async": "true",
			"fluentd-request-ack": "true", "fluentd-retry-wait": "2s", "fluentd-max-retries": "5",
			"fluentd-buffer-limit": "8m", "fluentd-sub-second-precision": "true", "tag": "x.{{.ID}}"}},
		{name: "address scheme", opts: map[string]string{"fluentd-address": "ftp://host:24224"}, names: "fluentd-address"},
		{name: "address port", opts: map[string]string{"fluentd-address": "tcp://127.0.0.1:99999"}, names: "fluentd-address"},
		{name: "unknown option", opts: map[string]string{"fluentd-bogus": "1"}, names: "fluentd-bogus"},
		{name: "reconnect interval", opts: map[string]string{"fluentd-async-reconnect-interval": "1ms"}, names: "fluentd-async-reconnect-interval"},
		{name: "write timeout", opts: map[string]string{"fluentd-write-timeout": "-1s"}, names: "fluentd-write-timeout"},
		{name: "async", opts: map[string]string{"fluentd-async": "maybe"}, names: "fluentd-async"},
		{name: "retry wait", opts: map[string]string{"fluentd-retry-wait": "soon"}, names: "fluentd-retry-wait"},
		{name: "max retries", opts: map[string]string{"fluentd-max-retries": "many"}, names: "fluentd-max-retries"},
		{name: "buffer limit", opts: map[string]string{"fluentd-buffer-limit": "lots"}, names: "fluentd-buffer-limit"},
	})
}

// TestFluentdShortContainerID: a container id shorter than 12 characters
// (any length) works with the default tag {{.ID}}.
func TestFluentdShortContainerID(t *testing.T) {
	s := startForward(t, false)
	l := StartLogger(t, Env("abc", map[string]string{"fluentd-address": s.URL()}), "fluentd")
	WriteLines(t, l.Stdout, []string{"short"})
	if code := waitOrKill(t, l, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	evs := s.Events()
	if len(evs) != 1 || evs[0].Tag != "abc" || evs[0].Str("container_id") != "abc" {
		t.Fatalf("events %+v: want one, tag and container_id \"abc\"", evs)
	}
}

// TestFluentdAsyncUnsentCounted: with fluentd-async=true a line counts as
// delivered when the driver queues it, so what the queue still holds when
// the logger must go is moved to dropped. The server never comes up
// (a reserved port nobody listens on):
//   - with retries left, the 5 lines are still queued when close-timeout
//     ends the logger: lines_dropped_close_timeout=5, exit 1;
//   - with fluentd-max-retries=1 the driver gives up on each line itself:
//     lines_dropped_driver_gave_up=5, exit 1.
func TestFluentdAsyncUnsentCounted(t *testing.T) {
	for _, c := range []struct {
		name, retries, reason string
	}{
		{"queued at close-timeout", "100", "close_timeout"},
		{"driver gave up", "1", "driver_gave_up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := forward.Reserve()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			l := StartLogger(t, Env(fluentdID, map[string]string{
				"fluentd-address":     s.URL(),
				"fluentd-async":       "true",
				"fluentd-retry-wait":  "100ms",
				"fluentd-max-retries": c.retries,
				"close-timeout":       "2s",
			}), "fluentd")
			WriteLines(t, l.Stdout, Lines("unsent", 5))
			code := l.Wait(t, 20*time.Second)
			st := l.Stats(t)
			if code != 1 || st["lines_delivered"] != "0" || st["lines_dropped"] != "5" || st["lines_dropped_"+c.reason] != "5" ||
				st["bytes_delivered"] != "0" || st["bytes_dropped"] != st["bytes_read"] {
				t.Fatalf("exit %d, stats %v: want 1, 0 delivered, 5 dropped (%s), every byte dropped; stderr: %s",
					code, st, c.reason, l.Errors())
			}
		})
	}
}
