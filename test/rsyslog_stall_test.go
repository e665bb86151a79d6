package test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNonBlockingRsyslogStopped: rsyslog, a real syslog server, is stopped
// with SIGSTOP while the application writes far more than the socket
// buffers and the ring hold. In non-blocking mode the application never
// blocks; drop-oldest drops the oldest lines, counts every one, and once
// rsyslog is continued a marker line in the stream itself says how many
// were lost. Lines written = lines at rsyslog + lines_dropped, exactly.
func TestNonBlockingRsyslogStopped(t *testing.T) {
	r := startRsyslog(t, false)
	l := StartLogger(t, Env("rsyslogstall0123", map[string]string{
		"syslog-address": fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort), "syslog-format": "rfc5424",
		"mode": "non-blocking", "max-buffer-size": "256k",
	}), "syslog")
	// A first line proves the connection before rsyslog stops.
	WriteLines(t, l.Stdout, []string{"hello before the stop"})
	r.waitRecords(t, 1)
	r.d.Stall(true)
	defer r.d.Stall(false)
	lines := Lines("written while rsyslog is stopped, padded to be a little longer", 100000)
	select {
	case err := <-writeAll(l.Stdout, lines):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the application blocked writing to a non-blocking logger; stderr: %s", l.Errors())
	}
	r.d.Stall(false)
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	st := l.Stats(t)
	dropped := statInt(t, st, "lines_dropped")
	want := map[string]bool{"hello before the stop": true}
	for _, x := range lines {
		want[x] = true
	}
	var got, markers []string
	Eventually(t, 30*time.Second, "rsyslog to write what the logger delivered", func() bool {
		got, markers = nil, nil
		for _, rec := range r.records(t) {
			msg := strings.TrimPrefix(rec.Msg, " ")
			if want[msg] {
				got = append(got, msg)
			} else {
				markers = append(markers, msg)
			}
		}
		return int64(len(got)) == statInt(t, st, "lines_delivered")
	})
	if int64(len(got))+dropped != int64(len(want)) || dropped == 0 {
		t.Fatalf("written %d, at rsyslog %d, dropped %d: want written = delivered + dropped, with drops", len(want), len(got), dropped)
	}
	// drop-oldest keeps the newest: the last line written arrived.
	if got[len(got)-1] != lines[len(lines)-1] {
		t.Fatalf("last line at rsyslog %q, want %q", got[len(got)-1], lines[len(lines)-1])
	}
	if len(markers) == 0 || !strings.Contains(strings.Join(markers, "\n"), "dropped") {
		t.Fatalf("no drop marker at rsyslog; other messages: %q", markers)
	}
	t.Logf("%d delivered, %d dropped; marker: %q", len(got), dropped, markers[0])
}
