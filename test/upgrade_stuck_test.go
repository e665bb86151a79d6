package test

// Live upgrades while the driver cannot deliver: the worker handing over
// must not wait on its sink. The sink is internal/sink/forward, an in-repo
// server speaking the real Fluentd Forward Protocol v1 (no fluentd runs
// here).

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
)

// TestUpgradeDriverStuck: a SIGHUP while the driver is stuck in a call (a
// sink gone, and Docker's default fluentd retries: a Log that does not
// return for hours). The worker hands over at once, without the line
// stuck in the driver: in spool mode it stays in the spool and the next
// worker delivers it; in blocking mode it stays in the pipe (after a
// second in the call) and the next worker delivers it; in non-blocking
// mode it is counted dropped. The
// upgrade is an upgrade, not a failure (no restart). Before, the worker
// waited on the driver until close-timeout, then exited 1: counted as a
// crash, while the application waited (spool) or the supervisor dropped
// what it wrote (non-blocking).
func TestUpgradeDriverStuck(t *testing.T) {
	for _, mode := range []string{"spool", "non-blocking", "blocking"} {
		t.Run(mode, func(t *testing.T) {
			opts := map[string]string{"mode": mode, "close-timeout": "30s",
				// Docker's defaults: retry for ever, a second apart.
				"fluentd-max-retries": "2147483647", "fluentd-retry-wait": "1s"}
			if mode == "spool" {
				opts["spool-dir"] = t.TempDir()
			}
			s, l, first := startThenOutage(t, "upgradestuck0123", opts)
			held := Lines("held while the sink is down", 20)
			WriteLines(t, l.Stdout, held)
			read := "21"
			if mode == "blocking" {
				read = "2" // the reader waits in the driver call with the first
			}
			waitStat(t, l, "lines_read", read)
			if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			during := Lines("written during the upgrade", 20000) // 1 MB: more than a pipe holds
			wrote := make(chan struct{})
			go func() { defer close(wrote); WriteLines(t, l.Stdout, during) }()
			waitStat(t, l, "upgrades", "1")
			if mode != "blocking" {
				<-wrote // in blocking mode the writer waits for the sink
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			<-wrote
			after := Lines("after the upgrade", 100)
			WriteLines(t, l.Stdout, after)
			l.Close()
			if code := l.Wait(t, 60*time.Second); code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, l.Errors())
			}
			st := l.Stats(t)
			if st["restarts"] != "0" || st["upgrades"] != "1" {
				t.Errorf("restarts=%s upgrades=%s, want 0 and 1: %s", st["restarts"], st["upgrades"], l.Errors())
			}
			want := append(append(append(append([]string{}, first...), held...), during...), after...)
			got := sinkLogs(s)
			if mode != "non-blocking" {
				if st["lines_dropped"] != "0" {
					t.Errorf("lines_dropped=%s in %s mode: %s", st["lines_dropped"], mode, l.Errors())
				}
				sinkSameLines(t, "at the sink", got, want)
				return
			}
			// non-blocking: what arrived is in order, and the rest is
			// counted dropped.
			j := 0
			for _, g := range got {
				for j < len(want) && want[j] != g {
					j++
				}
				if j == len(want) {
					t.Fatalf("line %q at the sink out of order or not written", g)
				}
				j++
			}
			if n := int64(len(got)) + statInt(t, st, "lines_dropped"); n != int64(len(want)) {
				t.Errorf("%d lines at the sink + %s dropped = %d, want %d written: %v", len(got), st["lines_dropped"], n, len(want), st)
			}
		})
	}
}

// TestUpgradeSpoolDriverNeverUp: a SIGHUP in spool mode while the driver
// has never come up (the sink down since the start). The worker handing
// over does not wait for its consumer, which waits for the driver; the
// application waits on full pipes only while the next worker starts.
// Before, the handover waited a second for that consumer, and the soak
// (seed 18381052511627139061) saw a write blocked 908 ms.
func TestUpgradeSpoolDriverNeverUp(t *testing.T) {
	s, err := forward.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.Stop()
	l := StartLogger(t, Env("upgradenotup0123", map[string]string{
		"mode": "spool", "spool-dir": t.TempDir(), "close-timeout": "30s",
		"fluentd-address": s.URL(), "fluentd-request-ack": "true",
	}), "fluentd")
	before, during, longest := writeThroughUpgrade(t, l)
	// The next worker's exec and start take 10–100 ms on a loaded
	// machine; the wait for the consumer took a second.
	if longest > 750*time.Millisecond {
		t.Errorf("a write waited %v across the upgrade", longest)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	if st := l.Stats(t); st["lines_dropped"] != "0" || st["restarts"] != "0" {
		t.Errorf("lines_dropped=%s restarts=%s, want 0 and 0: %s", st["lines_dropped"], st["restarts"], l.Errors())
	}
	sinkSameLines(t, "at the sink", sinkLogs(s), append(append([]string{}, before...), during...))
	if strings.Contains(l.Errors(), "never came up") {
		t.Errorf("the handover reported its abandoned driver as a failure: %s", l.Errors())
	}
}

// waitStat asks the logger for its counters (SIGUSR1) until key says want.
func waitStat(t *testing.T, l *Logger, key, want string) {
	t.Helper()
	Eventually(t, 20*time.Second, key+"="+want, func() bool {
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(50 * time.Millisecond) // the stats line's way to stderr
		// fluent-logger-golang's own messages end without a newline.
		e := l.Errors()
		i := strings.LastIndex(e, "dockerlogger: stats ")
		return i >= 0 && strings.Contains(strings.SplitN(e[i:], "\n", 2)[0], " "+key+"="+want+" ")
	})
}

// TestUpgradeReadsBeforeDriverUp: after a SIGHUP in spool mode, the next
// worker reads into its spool before its driver's first attempt ends.
// The sink accepts no connection (its listen backlog is full), so each
// attempt waits for the connect timeout, and a worker waits up to 2 s
// for the first before it says it is ready. Before, it read only after
// that, while the application waited on full pipes.
func TestUpgradeReadsBeforeDriverUp(t *testing.T) {
	addr := unansweredTCP(t)
	spool := t.TempDir()
	l := StartLogger(t, Env("readsbeforeup0123", map[string]string{
		"mode": "spool", "spool-dir": spool, "close-timeout": "1s",
		"fluentd-address": "tcp://" + addr,
	}), "fluentd")
	before, during, longest := writeThroughUpgrade(t, l)
	if longest > 750*time.Millisecond {
		t.Errorf("a write waited %v across the upgrade", longest)
	}
	l.Close()
	l.Wait(t, 60*time.Second) // 1: lines left in the spool at close-timeout
	st := l.Stats(t)
	if st["lines_dropped"] != "0" || st["lines_spooled"] != fmt.Sprint(len(before)+len(during)) {
		t.Errorf("lines_dropped=%s lines_spooled=%s, want 0 and %d: %s", st["lines_dropped"], st["lines_spooled"], len(before)+len(during), l.Errors())
	}
}

// writeThroughUpgrade writes 20 lines and waits until they are read,
// sends SIGHUP, writes 2 MB more (more than the pipe holds, so a write
// waits out any gap in the reading) and waits for the upgrade. It returns
// the lines and the longest write(2) across the upgrade.
func writeThroughUpgrade(t *testing.T, l *Logger) (before, during []string, longest time.Duration) {
	t.Helper()
	before = Lines("before the upgrade", 20)
	WriteLines(t, l.Stdout, before)
	waitStat(t, l, "lines_read", "20")
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	during = Lines("written during the upgrade", 40000)
	longest = longestWrite(t, l, during)
	waitStat(t, l, "upgrades", "1")
	return before, during, longest
}

// longestWrite writes lines to the logger's stdout 64 KiB at a time and
// returns the longest write(2): the pipe is full within a few, so one of
// them waits out a gap in the reading.
func longestWrite(t *testing.T, l *Logger, lines []string) time.Duration {
	t.Helper()
	var all bytes.Buffer
	for _, line := range lines {
		fmt.Fprintf(&all, "%s\n", line)
	}
	var longest time.Duration
	for b := all.Bytes(); len(b) > 0; {
		n := min(len(b), 64<<10)
		start := time.Now()
		if _, err := l.Stdout.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		longest = max(longest, time.Since(start))
		b = b[n:]
	}
	return longest
}

// unansweredTCP returns the address of a TCP listener that completes no
// more connections: its backlog is 0 and one connection fills it, so a
// connect there waits for its timeout, as to a server that is overloaded
// or behind a firewall that drops.
func unansweredTCP(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c2, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c2.Close()
		t.Fatalf("%s still completes connections: the test needs Linux's backlog behaviour", addr)
	}
	return addr
}

// TestUpgradeSpoolBlockFull: spool mode with buffer-full=block, the sink
// down and the spool full, so a reader is blocked handing a line to the
// spool when SIGHUP closes it for the next worker. The line, and what the
// reader had read after it, stay in the pipe for the next worker: the
// upgrade loses nothing. Before, they were dropped (spool-closed,
// buffer-full), which block never does for room.
func TestUpgradeSpoolBlockFull(t *testing.T) {
	s, err := forward.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.Stop()
	l := StartLogger(t, Env("upgradeblockfull0", map[string]string{
		"mode": "spool", "spool-dir": t.TempDir(), "spool-max-size": "256k", "buffer-full": "block",
		"close-timeout": "30s", "fluentd-address": s.URL(), "fluentd-request-ack": "true",
	}), "fluentd")
	// 4 MB of distinct lines: more than the spool and the pipe hold.
	lines := Lines(strings.Repeat("l", 1000), 4000)
	wrote := make(chan error, 1)
	go func() {
		var all bytes.Buffer
		for _, line := range lines {
			fmt.Fprintf(&all, "%s\n", line)
		}
		_, err := l.Stdout.Write(all.Bytes())
		wrote <- err
	}()
	// The spool (256 KiB) full: its reader now waits on it with a line
	// in hand.
	Eventually(t, 20*time.Second, "the spool full", func() bool {
		l.Cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(50 * time.Millisecond) // the stats line's way to stderr
		if !strings.Contains(l.Errors(), "dockerlogger: stats ") {
			return false
		}
		n, _ := strconv.Atoi(l.Stats(t)["lines_read"])
		return n >= 250
	})
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitStat(t, l, "upgrades", "1")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the writer still blocked 60 s after the sink came back; stderr: %s", l.Errors())
	}
	l.Close()
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	if st := l.Stats(t); st["lines_dropped"] != "0" || st["restarts"] != "0" {
		t.Errorf("lines_dropped=%s restarts=%s, want 0 and 0: %s", st["lines_dropped"], st["restarts"], l.Errors())
	}
	sinkSameLines(t, "at the sink", sinkLogs(s), lines)
}

// TestUpgradeBlockingSinkDown: in blocking mode a live upgrade does not
// wait for the sink. The reader retrying a line the driver refuses (the
// sink went down), or waiting for a driver never up, leaves it in the
// pipe for the next worker, which delivers it once the sink is back:
// nothing lost, nothing twice, in order. Before, the worker never handed
// over while the sink was down.
func TestUpgradeBlockingSinkDown(t *testing.T) {
	for _, neverUp := range []bool{false, true} {
		t.Run(map[bool]string{false: "sink-down-mid-stream", true: "driver-never-up"}[neverUp], func(t *testing.T) {
			var s *forward.Server
			var l *Logger
			var first []string
			if neverUp {
				var err error
				if s, err = forward.Listen("tcp", "127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				s.Stop()
				l = StartLogger(t, Env("blockingneverup01", map[string]string{
					"mode": "blocking", "close-timeout": "30s", "fluentd-address": s.URL(), "fluentd-request-ack": "true",
				}), "fluentd")
			} else {
				s, l, first = startThenOutage(t, "blockingupgrade01", map[string]string{"mode": "blocking", "close-timeout": "30s"})
			}
			held := Lines("held while the sink is down", 10)
			WriteLines(t, l.Stdout, held)
			Eventually(t, 20*time.Second, "the worker waiting on the sink", func() bool {
				return strings.Contains(l.Errors(), "retrying")
			})
			if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
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
			if st := l.Stats(t); st["lines_dropped"] != "0" || st["restarts"] != "0" {
				t.Errorf("lines_dropped=%s restarts=%s, want 0 and 0: %s", st["lines_dropped"], st["restarts"], l.Errors())
			}
			sinkSameLines(t, "at the sink", sinkLogs(s), append(append(append([]string{}, first...), held...), after...))
		})
	}
}

// TestUpgradeBlockingAsyncDriverSinkDown: in blocking mode a driver that
// queues what it takes and has no Flush (fluentd-async) has the lines
// already: they are not in the pipe for the next worker. A SIGHUP while
// its sink is down ends the old worker with them still queued, so they
// are counted dropped (close-timeout in the old worker's stats, carried
// as lines_dropped_earlier_workers), never only taken off delivered.
func TestUpgradeBlockingAsyncDriverSinkDown(t *testing.T) {
	s, err := forward.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.Stop()
	l := StartLogger(t, Env("blockingasync0001", map[string]string{
		"mode": "blocking", "close-timeout": "2s", "fluentd-address": s.URL(), "fluentd-async": "true",
		"fluentd-retry-wait": "100ms",
	}), "fluentd")
	WriteLines(t, l.Stdout, Lines("queued while the sink is down", 10))
	waitStat(t, l, "lines_read", "10")
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitStat(t, l, "upgrades", "1")
	l.Close()
	code := l.Wait(t, 30*time.Second)
	st := l.Stats(t)
	if st["lines_dropped"] != "10" || st["lines_dropped_earlier_workers"] != "10" || st["restarts"] != "0" {
		t.Fatalf("exit %d, stats %v: want lines_dropped=lines_dropped_earlier_workers=10, restarts=0; stderr: %s", code, st, l.Errors())
	}
	if !strings.Contains(l.Errors(), "lines_dropped_close_timeout=10") {
		t.Fatalf("no lines_dropped_close_timeout=10 in the old worker's stats: %s", l.Errors())
	}
}

// TestBlockingFailureTimeoutLeavesRound: in blocking mode a worker that
// gives up on its failing driver (failure-timeout, on-failure=restart)
// leaves to the next worker the line it was retrying and every line its
// reader had read after it: the next worker delivers them all, once, in
// order. Before, the reader, told only "not delivered", went on through
// its round and consumed it from the pipe if it got there before the
// worker's exit: under load the fault matrix lost 32 such lines ("sink
// down mid-stream", blocking, an outage as long as failure-timeout).
// That race is mode's TestBlockingHandOverStopsReader; here the exit
// wins it, so this checks the whole path, not the race.
func TestBlockingFailureTimeoutLeavesRound(t *testing.T) {
	s, l, first := startThenOutage(t, "blockingfailure01", map[string]string{
		"mode": "blocking", "failure-timeout": "1s", "close-timeout": "30s",
	})
	// One write: the reader takes the whole round at once.
	round := Lines("read in one round", 300)
	WriteLines(t, l.Stdout, round)
	Eventually(t, 20*time.Second, "the worker giving up", func() bool {
		return strings.Contains(l.Errors(), "giving up (on-failure=restart)")
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if code := l.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	if st := l.Stats(t); st["lines_dropped"] != "0" {
		t.Errorf("lines_dropped=%s, want 0: %s", st["lines_dropped"], l.Errors())
	}
	sinkSameLines(t, "at the sink", sinkLogs(s), append(append([]string{}, first...), round...))
}
