package test

// The container ends while a queue with buffer-full=block is full and its
// sink is down. The sink is internal/sink/forward, an in-repo server
// speaking the real Fluentd Forward Protocol v1 (no fluentd runs here).

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/measure"
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

// TestUpgradeBlockFullSinkDown: with buffer-full=block, a live upgrade
// (SIGHUP) while the sink is down drops nothing. The worker handing over
// delivers its ring whole, however long the sink is down within
// close-timeout (nobody reads the pipes meanwhile, so the application may
// wait, as buffer-full=block says), and the next worker reads on. Before,
// it gave the ring 250 ms and counted the rest dropped.
func TestUpgradeBlockFullSinkDown(t *testing.T) {
	s, l, first, held := upgradeRingSinkDown(t, "upgradeblock0123", "30s")
	// Longer than the 250 ms a handover gives a ring whose
	// buffer-full drops.
	time.Sleep(1500 * time.Millisecond)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	after := Lines("after the upgrade", 100)
	WriteLines(t, l.Stdout, after)
	l.Close()
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	st := l.Stats(t)
	if st["lines_dropped"] != "0" || st["upgrades"] != "1" {
		t.Errorf("lines_dropped=%s upgrades=%s, want 0 and 1 (%s)", st["lines_dropped"], st["upgrades"], l.Errors())
	}
	got := sinkLogs(s)
	want := append(append(append([]string{}, first...), held...), after...)
	sinkSameLines(t, "at the sink", got, want)
}

// TestUpgradeBlockFullSinkDownPastCloseTimeout: with buffer-full=block a
// handover waits up to close-timeout for a sink that is down, then counts
// the ring's lines dropped (close-timeout) and hands over: an upgrade,
// not a worker failure. Before, the old worker exited 1 and the
// supervisor counted a crash and restarted (the soak's seed
// 15465468123250268097: "a worker died unprovoked").
func TestUpgradeBlockFullSinkDownPastCloseTimeout(t *testing.T) {
	s, l, first, _ := upgradeRingSinkDown(t, "upgradeblock0124", "2s")
	waitStat(t, l, "upgrades", "1")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	after := Lines("after the upgrade", 100)
	WriteLines(t, l.Stdout, after)
	l.Close()
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	st := l.Stats(t)
	if st["restarts"] != "0" || st["upgrades"] != "1" || st["lines_dropped"] != "100" || st["lines_dropped_earlier_workers"] != "100" {
		t.Errorf("restarts=%s upgrades=%s lines_dropped=%s lines_dropped_earlier_workers=%s, want 0, 1, 100, 100 (%s)",
			st["restarts"], st["upgrades"], st["lines_dropped"], st["lines_dropped_earlier_workers"], l.Errors())
	}
	if strings.Contains(l.Errors(), "restarting") {
		t.Errorf("the handover was taken for a failure: %s", l.Errors())
	}
	if !strings.Contains(l.Errors(), "lines_dropped_close_timeout=100 ") {
		t.Errorf("the old worker's last stats do not count the ring as dropped at close-timeout: %s", l.Errors())
	}
	got := sinkLogs(s)
	want := append(append([]string{}, first...), after...)
	sinkSameLines(t, "at the sink", got, want)
}

// upgradeRingSinkDown starts a non-blocking logger with buffer-full=block,
// stops its sink, fills its ring with 100 lines (held) and sends SIGHUP.
func upgradeRingSinkDown(t *testing.T, id, closeTimeout string) (*forward.Server, *Logger, []string, []string) {
	t.Helper()
	s, l, first := startThenOutage(t, id, map[string]string{
		"mode": "non-blocking", "buffer-full": "block", "max-buffer-size": "64k", "close-timeout": closeTimeout,
	})
	held := Lines("held in the ring", 100)
	WriteLines(t, l.Stdout, held)
	waitStat(t, l, "lines_read", "101")
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	return s, l, first, held
}

// TestSupervisorKilledDuringHandover: the supervisor is SIGKILLed as its
// worker hands over with the sink down. No next worker
// comes, so the worker, once it has delivered what it had, reads on
// without a supervisor from the inputs it kept open: the application
// never gets EPIPE, and every line reaches the sink in order. Before,
// the worker ended and closed the last read ends (the soak's seed
// 12402631723899099588: 12 lines lost uncounted and EPIPE).
func TestSupervisorKilledDuringHandover(t *testing.T) {
	s, l, first := startThenOutage(t, "orphanhandover01", map[string]string{"close-timeout": "30s"})
	sup := l.Cmd.Process.Pid
	workers := measure.Children(sup)
	if len(workers) != 1 {
		t.Fatalf("supervisor %d has children %v, want one worker", sup, workers)
	}
	// blocking: the worker holds this line, retrying, when the supervisor
	// dies and the handover request comes (SIGUSR2, as the supervisor
	// sends it on a SIGHUP; sent here after, so that the handover always
	// finds the supervisor gone). The worker leaves the line in the pipe
	// and hands over.
	held := []string{"held while the sink is down"}
	WriteLines(t, l.Stdout, held)
	Eventually(t, 20*time.Second, "the worker retrying", func() bool { return strings.Contains(l.Errors(), "retrying in") })
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, "the worker orphaned", func() bool { return measure.Parent(workers[0]) != sup })
	if err := syscall.Kill(workers[0], syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	after := Lines("after the supervisor", 2000)
	WriteLines(t, l.Stdout, after) // EPIPE fails the test here
	want := append(append(append([]string{}, first...), held...), after...)
	Eventually(t, 30*time.Second, "every line at the sink", func() bool { return len(s.Events()) >= len(want) })
	l.Close()
	Eventually(t, 30*time.Second, "the worker's end", func() bool { return !measure.Alive(workers[0]) })
	// Its last words may still be in the pipe to this test's reader.
	Eventually(t, 10*time.Second, "the worker's stats line", func() bool { return strings.Contains(l.Errors(), "dockerlogger: stats ") })
	got := sinkLogs(s)
	sinkSameLines(t, "at the sink", got, want)
	if !strings.Contains(l.Errors(), "the supervisor is gone: reading on without one") {
		t.Errorf("the worker never said it reads on alone: %s", l.Errors())
	}
	if st := parseStats(t, l.Errors()); st["lines_dropped"] != "0" {
		t.Errorf("lines_dropped=%s: %s", st["lines_dropped"], l.Errors())
	}
}

// TestFailureTimeoutWithoutSupervisor: with no supervisor to apply
// on-failure (DOCKERLOG_SUPERVISOR=off), a driver failing for
// failure-timeout does not end the logger, which would close the
// container's output under the application: it says so once and keeps
// trying, and delivers everything once the sink is back. Before, it
// exited 4 at failure-timeout.
func TestFailureTimeoutWithoutSupervisor(t *testing.T) {
	s, l, first := startThenOutage(t, "alonefailing01", map[string]string{
		"fluentd-max-retries": "1", "fluentd-retry-wait": "50ms", "failure-timeout": "500ms", "close-timeout": "20s",
	}, "DOCKERLOG_SUPERVISOR=off")
	held := Lines("while the sink is down", 10)
	WriteLines(t, l.Stdout, held)
	Eventually(t, 20*time.Second, "failure-timeout passed", func() bool {
		return strings.Contains(l.Errors(), "no supervisor to apply on-failure=restart: trying on")
	})
	select {
	case <-l.Done():
		t.Fatalf("the logger ended with its driver failing: %s", l.Errors())
	default:
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	after := Lines("after the outage", 10)
	WriteLines(t, l.Stdout, after)
	l.Close()
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
	got := sinkLogs(s)
	want := append(append(append([]string{}, first...), held...), after...)
	sinkSameLines(t, "at the sink", got, want)
}

// startThenOutage starts a fluentd logger against a Forward sink (with
// acknowledgements: a line written to a connection the sink is closing
// would count delivered and not be there; quick driver retries) and opts,
// sees one line to the sink, and takes the sink down. It returns the sink,
// the logger and the line.
func startThenOutage(t *testing.T, id string, opts map[string]string, env ...string) (*forward.Server, *Logger, []string) {
	t.Helper()
	s, err := forward.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	all := map[string]string{
		"fluentd-address":     s.URL(),
		"fluentd-max-retries": "2",
		"fluentd-retry-wait":  "100ms",
		"fluentd-request-ack": "true",
	}
	for k, v := range opts {
		all[k] = v
	}
	l := StartLogger(t, Env(id, all, env...), "fluentd")
	first := []string{"before the outage"}
	WriteLines(t, l.Stdout, first)
	Eventually(t, 20*time.Second, "the first line at the sink", func() bool { return len(s.Events()) == 1 })
	s.Stop()
	return s, l, first
}

// sinkLogs returns the "log" of every event at s, in order.
func sinkLogs(s *forward.Server) []string {
	var got []string
	for _, e := range s.Events() {
		got = append(got, fmt.Sprint(e.Record["log"]))
	}
	return got
}
