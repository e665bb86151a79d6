package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/measure"
)

// workerPID returns the pid of the supervisor's worker (its oldest live
// child), or 0 while there is none.
func workerPID(t testing.TB, supervisor int) int {
	t.Helper()
	// Oldest first: during a live upgrade the worker that reads is older
	// than the one started ahead, which waits.
	for _, pid := range measure.Children(supervisor) {
		if measure.Alive(pid) {
			return pid
		}
	}
	return 0
}

// jsonLines reads a json-file log and returns the "log" values per stream.
func jsonLines(t testing.TB, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var e struct{ Log, Stream string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad json-file line %q: %v", sc.Text(), err)
		}
		out[e.Stream] = append(out[e.Stream], strings.TrimSuffix(e.Log, "\n"))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkAtLeastOnce asserts every wanted line arrived, first arrivals in
// order, and returns how many extra (duplicate) lines there were.
func checkAtLeastOnce(t testing.TB, stream string, got, want []string) int {
	t.Helper()
	seen := map[string]bool{}
	next := 0
	for _, g := range got {
		if seen[g] {
			continue
		}
		seen[g] = true
		if next >= len(want) || g != want[next] {
			t.Fatalf("%s: line %q arrived out of order or unexpected (want %q next)", stream, g, want[min(next, len(want)-1)])
		}
		next++
	}
	if next != len(want) {
		t.Fatalf("%s: %d of %d lines arrived; first missing %q", stream, next, len(want), want[next])
	}
	return len(got) - len(want)
}

// TestWorkerKilledLosesNothing kills the worker with SIGKILL again and
// again while the container streams numbered lines in blocking mode: the
// supervisor holds the pipes, the worker reads them with tee(2) and
// consumes only what the driver accepted, so every line arrives, in order
// per stream, with duplicates bounded by one batch (64 KiB) per kill.
func TestWorkerKilledLosesNothing(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "c-json.log")
	l := StartLogger(t, Env("kill-me", map[string]string{}, "DOCKERLOG_LOGPATH="+logPath), "json-file")
	sup := l.Cmd.Process.Pid

	// The application writes numbered lines steadily until the kills are
	// done: 500 to stdout and 100 to stderr every millisecond or so.
	out, errs := Lines("out", 2000000), Lines("err", 400000)
	stop := make(chan struct{})
	written := make(chan [2]int, 1)
	go func() {
		i := 0
		for ; i < len(out)/500; i++ {
			select {
			case <-stop:
				written <- [2]int{i * 500, i * 100}
				return
			default:
			}
			WriteLines(t, l.Stdout, out[i*500:(i+1)*500])
			WriteLines(t, l.Stderr, errs[i*100:(i+1)*100])
			time.Sleep(time.Millisecond)
		}
		written <- [2]int{i * 500, i * 100}
	}()
	const kills = 5
	for k := 0; k < kills; k++ {
		var w int
		Eventually(t, 10*time.Second, "a worker", func() bool { w = workerPID(t, sup); return w != 0 })
		// Let the worker deliver something before it dies.
		size := fileSize(logPath)
		Eventually(t, 10*time.Second, "the log to grow", func() bool { return fileSize(logPath) > size })
		if err := syscall.Kill(w, syscall.SIGKILL); err != nil {
			t.Fatalf("kill worker %d: %v", w, err)
		}
		Eventually(t, 10*time.Second, "the next worker", func() bool { n := workerPID(t, sup); return n != 0 && n != w })
	}
	close(stop)
	n := <-written
	out, errs = out[:n[0]], errs[:n[1]]
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	got := jsonLines(t, logPath)
	dupOut := checkAtLeastOnce(t, "stdout", got["stdout"], out)
	dupErr := checkAtLeastOnce(t, "stderr", got["stderr"], errs)
	// One batch is at most one read: 256 KiB and a line-max (16 KiB).
	batch := kills * (256<<10 + 16<<10) / 11
	if dupOut+dupErr > batch {
		t.Fatalf("%d duplicate lines after %d kills, more than one batch per kill (%d)", dupOut+dupErr, kills, batch)
	}
	if n := strings.Count(l.Errors(), "restarting"); n != kills {
		t.Fatalf("supervisor reported %d restarts, want %d; stderr: %s", n, kills, l.Errors())
	}
	st := l.Stats(t)
	if st["restarts"] != fmt.Sprint(kills) {
		t.Fatalf("restarts=%s in the last worker's stats, want %d", st["restarts"], kills)
	}
	// Every duplicate is counted: a worker records what it hands to the
	// driver before it does, and the next one counts those lines as
	// replayed. The count may exceed the duplicates by what a worker
	// consumed just before it died, at most one batch per kill.
	replayed, _ := strconv.Atoi(st["lines_replayed"])
	if dups := dupOut + dupErr; replayed < dups || replayed > dups+batch {
		t.Fatalf("%d duplicates but lines_replayed=%d\n%s", dups, replayed, l.Errors())
	}
	t.Logf("%d stdout and %d stderr duplicates after %d kills, lines_replayed=%d", dupOut, dupErr, kills, replayed)
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func jsonDecoder(r io.Reader) *json.Decoder { return json.NewDecoder(r) }

// TestWorkerNoNewPrivs: the worker, which runs the driver code, can never
// gain privileges through anything it executes.
func TestWorkerNoNewPrivs(t *testing.T) {
	l := StartLogger(t, Env("privs", map[string]string{}, "DOCKERLOG_LOGPATH="+filepath.Join(t.TempDir(), "p.log")), "json-file")
	var w int
	Eventually(t, 10*time.Second, "a worker", func() bool { w = workerPID(t, l.Cmd.Process.Pid); return w != 0 })
	// Every thread of the worker, once it is ready (fd 5 answered).
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", w))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of worker %d: %v", w, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "NoNewPrivs:\t1") {
			t.Fatalf("%s: no no_new_privs", task)
		}
	}
	if code := l.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
}

// TestWorkerIgnoresSIGHUP: SIGHUP is the supervisor's live-upgrade signal.
// A worker that gets one too (a broad `pkill -HUP dockerlogger`) must not
// stop logging, and neither must a logger run without a supervisor.
func TestWorkerIgnoresSIGHUP(t *testing.T) {
	for _, supervised := range []bool{true, false} {
		t.Run(fmt.Sprintf("supervised=%v", supervised), func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "hup.log")
			env := Env("hup", map[string]string{"close-timeout": "1s"}, "DOCKERLOG_LOGPATH="+logPath)
			if !supervised {
				env = append(env, "DOCKERLOG_SUPERVISOR=off")
			}
			l := StartLogger(t, env, "json-file")
			target := l.Cmd.Process.Pid
			if supervised {
				Eventually(t, 10*time.Second, "a worker", func() bool { target = workerPID(t, l.Cmd.Process.Pid); return target != 0 })
			}
			before := Lines("before", 100)
			WriteLines(t, l.Stdout, before)
			Eventually(t, 10*time.Second, "the first lines", func() bool { return len(jsonLines(t, logPath)["stdout"]) == 100 })
			if err := syscall.Kill(target, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			// Longer than close-timeout: a logger that took SIGHUP for
			// SIGTERM would be gone by now.
			time.Sleep(1500 * time.Millisecond)
			after := Lines("after", 100)
			WriteLines(t, l.Stdout, after)
			if code := l.Wait(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, l.Errors())
			}
			sinkSameLines(t, "stdout", jsonLines(t, logPath)["stdout"], append(before, after...))
		})
	}
}

// TestWorkerCapabilities: run as root, the worker keeps only what its
// output needs: CAP_DAC_OVERRIDE and CAP_FOWNER to write log files, none
// for a driver that only talks to a socket. The supervisor, which may
// have to kill init, keeps its own.
func TestWorkerCapabilities(t *testing.T) {
	needRoot(t)
	capEff := func(pid int) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
				return v
			}
		}
		t.Fatalf("no CapEff for %d", pid)
		return ""
	}
	for _, c := range []struct{ driver, want string }{
		{"json-file", "000000000000000a"}, // CAP_DAC_OVERRIDE (1) and CAP_FOWNER (3)
		{"none", "0000000000000000"},
	} {
		t.Run(c.driver, func(t *testing.T) {
			l := StartLogger(t, Env("caps", map[string]string{}, "DOCKERLOG_LOGPATH="+filepath.Join(t.TempDir(), "c.log")), c.driver)
			var w int
			Eventually(t, 10*time.Second, "a worker", func() bool { w = workerPID(t, l.Cmd.Process.Pid); return w != 0 })
			// Ready was signalled, so the worker has dropped them by now.
			if got := capEff(w); got != c.want {
				t.Fatalf("worker CapEff %s, want %s", got, c.want)
			}
			if got := capEff(l.Cmd.Process.Pid); got == c.want {
				t.Fatalf("supervisor CapEff %s: it should keep root's", got)
			}
			WriteLines(t, l.Stdout, Lines("still logging", 10))
			if code := l.Wait(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, l.Errors())
			}
		})
	}
}
