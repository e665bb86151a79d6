package test

// End-to-end tests of the syslog driver over RELP (syslog-address
// relp://host:port) against a real rsyslogd with imrelp (Debian's
// rsyslog-relp). Each test starts its own rsyslogd in the foreground with
// a private configuration, work directory and pid file, one imrelp
// listener on a loopback port, and writes every message it receives as a
// JSON line (the fields of syslog_test.go's syslogRecord). rsyslog itself
// is set up to lose nothing it acknowledged: its main queue is saved to
// the work directory at shutdown and processed at the next start, so a
// line missing at the sink after a restart is the logger's loss.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/rsyslogd"
)

const relpConf = rsyslogd.Lossless + rsyslogJSONOutput + rsyslogd.RELPInput

// relpd is one private rsyslogd with imrelp; it can be stopped and
// started again on the same port.
type relpd struct {
	*rsyslog // dir, out, records, waitRecords; only tcpPort is used (imrelp)
}

// newRelpd prepares (does not start) an rsyslogd with imrelp on a free
// loopback port.
func newRelpd(t *testing.T) *relpd {
	t.Helper()
	needCmd(t, "rsyslogd")
	need(t, rsyslogd.Module("imrelp"), "rsyslog's imrelp is not installed (Debian package rsyslog-relp)")
	r := &relpd{newRsyslogd(t)}
	r.tcpPort = sinkFreePort(t, "tcp")
	r.configure(t, strings.ReplaceAll(relpConf, "{{port}}", strconv.Itoa(r.tcpPort)))
	return r
}

func (r *relpd) address() string { return fmt.Sprintf("relp://127.0.0.1:%d", r.tcpPort) }

// start starts rsyslogd and waits until imrelp accepts connections.
func (r *relpd) start(t *testing.T) {
	t.Helper()
	r.launch(t, "rsyslogd to listen on its RELP port", func() bool {
		return sinkCanDial("tcp", fmt.Sprintf("127.0.0.1:%d", r.tcpPort))
	})
}

// relpByStream splits records into stdout's (severity info) and stderr's
// (err) messages, checking facility and tag; rfc3164-style formats have
// the space after "TAG[PID]:" in msg, which is removed.
func relpByStream(t *testing.T, recs []syslogRecord, facility, tag string) (out, errs []string) {
	t.Helper()
	for i, rec := range recs {
		if rec.Input != "imrelp" {
			t.Fatalf("message %d came in through %q, want imrelp: %+v", i, rec.Input, rec)
		}
		if rec.Facility != facility || rec.ProgramName != tag {
			t.Fatalf("message %d: facility %q programname %q, want %q and %q: %+v", i, rec.Facility, rec.ProgramName, facility, tag, rec)
		}
		msg := rec.Msg
		if syslogTagRE.MatchString(rec.SyslogTag) {
			msg = strings.TrimPrefix(msg, " ")
		}
		switch rec.Severity {
		case "info":
			out = append(out, msg)
		case "err":
			errs = append(errs, msg)
		default:
			t.Fatalf("message %d: severity %q, want info (stdout) or err (stderr): %+v", i, rec.Severity, rec)
		}
	}
	return out, errs
}

// TestRelpRsyslog sends stdout and stderr over RELP in every syslog-format
// and checks what rsyslog parsed: each non-empty line exactly once, in
// order per stream, stdout at info and stderr at err, the facility, the
// tag as program name (and APP-NAME and MSGID in rfc5424, with the host
// name), and the exit counters.
func TestRelpRsyslog(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"", "rfc3164", "rfc5424", "rfc5424micro"} {
		t.Run("format="+format, func(t *testing.T) {
			r := newRelpd(t)
			r.start(t)
			opts := map[string]string{"syslog-address": r.address(), "syslog-facility": "local2", "tag": "{{.Name}}"}
			wantTag := syslogName
			if format != "" {
				opts["syslog-format"] = format
			} else {
				// Docker's defaults: format (no hostname), tag {{.ID}}.
				delete(opts, "tag")
				wantTag = syslogID[:12]
			}
			l := StartLogger(t, Env(syslogID, opts, "DOCKERLOG_CONTAINERNAME=/"+syslogName), "syslog")
			special := []string{"héllo wörld 日本語 ✓", "", "tab\there", "  two leading and trailing  ", ""}
			out := append(append([]string{}, special...), Lines("stdout line", 2000)...)
			errs := Lines("stderr line", 2000)
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); WriteLines(t, l.Stdout, out) }()
			go func() { defer wg.Done(); WriteLines(t, l.Stderr, errs) }()
			wg.Wait()
			wantOut := sinkNonEmpty(out)
			recs := r.waitRecords(t, len(wantOut)+len(errs))
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
			}
			sinkExitStats(t, l, len(out)+len(errs))
			gotOut, gotErr := relpByStream(t, recs, "local2", wantTag)
			sinkSameLines(t, "stdout (severity info)", gotOut, wantOut)
			sinkSameLines(t, "stderr (severity err)", gotErr, errs)
			for i, rec := range recs {
				if strings.HasPrefix(format, "rfc5424") {
					if pid, err := strconv.Atoi(rec.ProcID); rec.AppName != wantTag || rec.MsgID != wantTag || rec.Hostname != hostname || err != nil || pid <= 0 {
						t.Fatalf("message %d: app-name %q msgid %q hostname %q procid %q, want %q, %q, %q and a pid",
							i, rec.AppName, rec.MsgID, rec.Hostname, rec.ProcID, wantTag, wantTag, hostname)
					}
				} else if !syslogTagRE.MatchString(rec.SyslogTag) {
					t.Fatalf("message %d: syslogtag %q, want %s[PID]:", i, rec.SyslogTag, wantTag)
				}
				if format == "rfc3164" && rec.Hostname != hostname {
					t.Fatalf("message %d: hostname %q, want %q", i, rec.Hostname, hostname)
				}
			}
		})
	}
}

// TestRelpSinkDownAtStart starts the logger while nothing listens on the
// RELP port: it signals ready, reports the driver not up, and delivers
// every line, in order, once rsyslog starts.
func TestRelpSinkDownAtStart(t *testing.T) {
	r := newRelpd(t)
	opts := map[string]string{"syslog-address": r.address(), "syslog-format": "rfc5424", "syslog-facility": "local3", "tag": "{{.Name}}"}
	l := StartLogger(t, Env(syslogID, opts, "DOCKERLOG_CONTAINERNAME=/"+syslogName), "syslog")
	out, errs := Lines("written while down out", 500), Lines("written while down err", 500)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		WriteLines(t, l.Stdout, out)
		WriteLines(t, l.Stderr, errs)
	}()
	Eventually(t, 15*time.Second, "the logger to report that the syslog driver is not up", func() bool {
		return strings.Contains(l.Errors(), "syslog driver not up") && strings.Contains(l.Errors(), "connection refused")
	})
	if n := len(r.records(t)); n != 0 {
		t.Fatalf("rsyslog has %d messages before it was started", n)
	}
	r.start(t)
	recs := r.waitRecords(t, len(out)+len(errs))
	<-wrote
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
	}
	sinkExitStats(t, l, len(out)+len(errs))
	gotOut, gotErr := relpByStream(t, recs, "local3", syslogName)
	sinkSameLines(t, "stdout (severity info)", gotOut, out)
	sinkSameLines(t, "stderr (severity err)", gotErr, errs)
}

// relpWindow is the RELP client's window (relp.DefaultWindow): the most
// lines one broken session can leave unacknowledged, so resend.
const relpWindow = 128

// TestRelpRestarts restarts rsyslog (SIGTERM, then start again on the same
// port) several times while both streams write numbered lines in blocking
// mode: every line arrives, first arrivals in order per stream; repeats
// (resent after a break) are allowed, said on the logger's stderr, and at
// most one window per restart; nothing is dropped.
func TestRelpRestarts(t *testing.T) {
	r := newRelpd(t)
	r.start(t)
	opts := map[string]string{"syslog-address": r.address(), "syslog-format": "rfc5424micro", "syslog-facility": "local4", "tag": "{{.Name}}"}
	l := StartLogger(t, Env(syslogID, opts, "DOCKERLOG_CONTAINERNAME=/"+syslogName), "syslog")
	const n = 6000
	out, errs := Lines("restart out", n), Lines("restart err", n)
	// Paced (about 2000 lines/s a stream) so that the restarts fall in
	// the middle of the stream.
	write := func(f *os.File, lines []string) {
		for i := 0; i < len(lines); i += 100 {
			WriteLines(t, f, lines[i:i+100])
			time.Sleep(50 * time.Millisecond) // pacing the application, not synchronisation
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); write(l.Stdout, out) }()
	go func() { defer wg.Done(); write(l.Stderr, errs) }()
	const restarts = 3
	for i := 0; i < restarts; i++ {
		// Wait for progress at the sink before each restart.
		before := len(r.records(t))
		Eventually(t, 20*time.Second, "new lines at rsyslog", func() bool { return len(r.records(t)) > before+200 })
		r.stop()
		r.start(t)
	}
	wg.Wait()
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
	}
	sinkExitStats(t, l, 2*n)
	var recs []syslogRecord
	Eventually(t, 30*time.Second, "every line at rsyslog", func() bool {
		recs = r.records(t)
		return distinctMsgs(recs) >= 2*n
	})
	gotOut, gotErr := relpByStream(t, recs, "local4", syslogName)
	dupOut, dupErr := firstArrivals(gotOut), firstArrivals(gotErr)
	sinkSameLines(t, "stdout first arrivals", gotOut[:len(gotOut)-len(dupOut)], out)
	sinkSameLines(t, "stderr first arrivals", gotErr[:len(gotErr)-len(dupErr)], errs)
	dups := len(dupOut) + len(dupErr)
	if dups > restarts*relpWindow {
		t.Fatalf("%d lines arrived twice over %d restarts: more than a window (%d) each", dups, restarts, relpWindow)
	}
	if dups > 0 && !strings.Contains(l.Errors(), "may arrive twice") {
		t.Fatalf("%d lines arrived twice, but the logger did not say it resent any; stderr: %s", dups, l.Errors())
	}
	// Every duplicate is one the logger counted as sent again.
	resent, err := strconv.Atoi(l.Stats(t)["lines_resent"])
	if err != nil || dups > resent || resent > restarts*relpWindow {
		t.Fatalf("lines_resent=%d (%v) for %d duplicates: want duplicates <= resent <= %d", resent, err, dups, restarts*relpWindow)
	}
	if !strings.Contains(l.Errors(), "connection lost") {
		t.Fatalf("the logger did not report the broken sessions; stderr: %s", l.Errors())
	}
	t.Logf("%d restarts: %d lines at rsyslog twice", restarts, dups)
}

// distinctMsgs counts the distinct messages of recs.
func distinctMsgs(recs []syslogRecord) int {
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.Severity+" "+r.Msg] = true
	}
	return len(seen)
}

// firstArrivals reorders msgs in place: first arrivals first (in their
// order), then the repeats, which it returns.
func firstArrivals(msgs []string) []string {
	seen := map[string]bool{}
	var first, dups []string
	for _, m := range msgs {
		if seen[m] {
			dups = append(dups, m)
			continue
		}
		seen[m] = true
		first = append(first, m)
	}
	copy(msgs, append(first, dups...))
	return msgs[len(first):]
}

// TestRelpStoppedForGood stops rsyslog for good in the middle of a stream
// (blocking mode, more lines than the window): when the container's
// output ends, the logger gives up at close-timeout with exit 1, counts
// the lines rsyslog never acknowledged as lines_dropped_close_timeout, and
// delivered + dropped = read, where delivered is exactly what rsyslog has.
func TestRelpStoppedForGood(t *testing.T) {
	r := newRelpd(t)
	r.start(t)
	opts := map[string]string{"syslog-address": r.address(), "syslog-format": "rfc5424", "tag": "{{.Name}}", "close-timeout": "3s", "failure-timeout": "5m"}
	l := StartLogger(t, Env(syslogID, opts, "DOCKERLOG_CONTAINERNAME=/"+syslogName), "syslog")
	first := Lines("before the stop", 300)
	WriteLines(t, l.Stdout, first)
	r.waitRecords(t, len(first))
	r.stop()
	// More than the window: the logger's reader ends up waiting on the
	// driver, and what it has not read stays in the pipe.
	rest := Lines("after the stop", 1000)
	WriteLines(t, l.Stdout, rest) // about 20 kB: fits in the pipe
	code := l.Wait(t, 60*time.Second)
	if code != 1 {
		t.Fatalf("logger exit code %d, want 1 (close-timeout); stderr: %s", code, l.Errors())
	}
	s := l.Stats(t)
	num := func(k string) int {
		v, err := strconv.Atoi(s[k])
		if err != nil {
			t.Fatalf("stats %s=%q: %v; stderr: %s", k, s[k], err, l.Errors())
		}
		return v
	}
	// A worker that gave up at close-timeout with lines still in the pipe
	// may be followed by one that counts them (DOCKERLOG_FINISH): drops
	// are carried across workers, reads and deliveries are each worker's.
	read, delivered, dropped := num("lines_read"), num("lines_delivered"), num("lines_dropped")
	earlier := 0
	if _, ok := s["lines_dropped_earlier_workers"]; ok {
		earlier = num("lines_dropped_earlier_workers")
	}
	if delivered+dropped-earlier != read {
		t.Fatalf("lines_read=%d lines_delivered=%d lines_dropped=%d (%d by earlier workers): delivered + dropped != read; stderr: %s",
			read, delivered, dropped, earlier, l.Errors())
	}
	if ct := num("lines_dropped_close_timeout"); ct+earlier != dropped || dropped == 0 {
		t.Fatalf("lines_dropped_close_timeout=%d, lines_dropped=%d (%d by earlier workers): want all drops counted as close-timeout, and some", ct, dropped, earlier)
	}
	// Every line is at rsyslog or counted dropped, none both: RELP
	// acknowledges each one.
	if got, written := len(r.records(t)), len(first)+len(rest); got+dropped != written {
		t.Fatalf("rsyslog has %d lines and %d are counted dropped, of %d written; stderr: %s", got, dropped, written, l.Errors())
	}
	if !strings.Contains(l.Errors(), "not acknowledged") {
		t.Fatalf("the logger did not say why; stderr: %s", l.Errors())
	}
}

// TestRelpValidate: a syslog-tls-* option with a relp:// address is a
// one-line error naming the option, exit 2; a relp:// address without a
// port too; a good one passes.
func TestRelpValidate(t *testing.T) {
	for _, tc := range []struct {
		opts map[string]string
		code int
		want string
	}{
		{map[string]string{"syslog-address": "relp://127.0.0.1:2514", "syslog-format": "rfc5424"}, 0, ""},
		{map[string]string{"syslog-address": "relp://127.0.0.1:2514", "syslog-tls-ca-cert": "/ca.pem"}, 2, "syslog-tls-ca-cert: relp over TLS is not supported yet"},
		{map[string]string{"syslog-address": "relp://127.0.0.1:2514", "syslog-tls-skip-verify": "true"}, 2, "syslog-tls-skip-verify: relp over TLS is not supported yet"},
		{map[string]string{"syslog-address": "relp://127.0.0.1"}, 2, "syslog-address"},
	} {
		_, stderr, code := RunCLI(t, Env(syslogID, tc.opts), "--validate", "syslog")
		if code != tc.code {
			t.Fatalf("%v: exit %d, want %d; stderr: %q", tc.opts, code, tc.code, stderr)
		}
		if tc.want == "" {
			continue
		}
		if !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || strings.Contains(stderr, "goroutine") {
			t.Fatalf("%v: stderr %q, want one line with %q", tc.opts, stderr, tc.want)
		}
	}
}
