package test

// End-to-end tests of the journald driver against a real, private
// systemd-journald (Debian's systemd package).
//
// Docker's journald driver (through go-systemd) always writes to the fixed
// socket /run/systemd/journal/socket, and nothing overrides that path. So
// each test runs its own systemd-journald in a private mount namespace
// with a fresh tmpfs over /run (and over /var/log/journal), where it
// creates that socket and keeps a volatile journal; the logger is started
// in the same namespace with nsenter, and journalctl reads the journal
// files through /proc/PID/root. The host's journal, if any, is never
// touched.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// journald is one private systemd-journald in its own mount namespace.
type journald struct {
	cmd    *exec.Cmd
	pid    int
	output *syncBuffer
	done   chan struct{}
}

// journaldScript runs in the new mount namespace (made private by Go's
// Unshareflags): it hides the host's /run and /var/log/journal under
// tmpfs, configures journald for a volatile journal with no rate limit and
// no forwarding, and execs journald in its own place.
const journaldScript = `set -e
mount -t tmpfs -o mode=0755 tmpfs /run
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=0755 tmpfs /var/log/journal; fi
mkdir -p /run/systemd/journald.conf.d
cat > /run/systemd/journald.conf.d/dockerlogger-test.conf <<'EOF'
[Journal]
Storage=volatile
RateLimitIntervalSec=0
RateLimitBurst=0
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
EOF
exec "$0"
`

// journaldBinary is where Debian's systemd package puts journald.
const journaldBinary = "/lib/systemd/systemd-journald"

func startJournald(t *testing.T) *journald {
	t.Helper()
	needRoot(t)
	_, err := os.Stat(journaldBinary)
	need(t, err == nil, journaldBinary+" is not installed (Debian package systemd)")
	needCmd(t, "journalctl")
	needCmd(t, "nsenter")

	j := &journald{output: &syncBuffer{}, done: make(chan struct{})}
	j.cmd = exec.Command("sh", "-c", journaldScript, journaldBinary)
	j.cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	// journald's own messages go to its stderr, not to /dev/kmsg.
	j.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SYSTEMD_LOG_TARGET=console"}
	j.cmd.Stdout, j.cmd.Stderr = j.output, j.output
	if err := j.cmd.Start(); err != nil {
		t.Fatalf("start journald: %v", err)
	}
	j.pid = j.cmd.Process.Pid
	go func() { j.cmd.Wait(); close(j.done) }()
	t.Cleanup(func() {
		j.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-j.done:
		case <-time.After(10 * time.Second):
			j.cmd.Process.Kill()
			<-j.done
		}
	})
	sock := filepath.Join(j.root(), "run/systemd/journal/socket")
	Eventually(t, 15*time.Second, "journald's socket", func() bool {
		select {
		case <-j.done:
			t.Fatalf("journald exited: %v; output: %s", j.cmd.ProcessState, j.output.String())
		default:
		}
		return sinkCanDial("unixgram", sock)
	})
	return j
}

// root is the namespace's view of the file system.
func (j *journald) root() string { return fmt.Sprintf("/proc/%d/root", j.pid) }

// startLogger starts the logger inside journald's mount namespace, with
// the harness's pipes on fds 3, 4 and 5 (nsenter passes them on), and
// waits until it is ready.
func (j *journald) startLogger(t *testing.T, env []string, args ...string) *Logger {
	t.Helper()
	nsenter := needCmd(t, "nsenter")
	l := StartLoggerCmd(t, append([]string{nsenter, fmt.Sprintf("--mount=/proc/%d/ns/mnt", j.pid), "--",
		filepath.Join(bin, "dockerlogger")}, args...), env)
	if err := l.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("logger not ready: %v; stderr: %s", err, l.Errors())
	}
	return l
}

// journalEntry is one entry as `journalctl -o json` prints it: a field is
// a string, an array of byte values (not printable or not UTF-8), or an
// array of those (a field given more than once).
type journalEntry map[string]json.RawMessage

// field returns the one value of a field, and whether it is there.
func (e journalEntry) field(t testing.TB, name string) (string, bool) {
	t.Helper()
	raw, ok := e[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var b []byte
	var nums []int
	if err := json.Unmarshal(raw, &nums); err == nil {
		for _, n := range nums {
			b = append(b, byte(n))
		}
		return string(b), true
	}
	t.Fatalf("journal field %s: more than one value or not understood: %s", name, raw)
	return "", false
}

// get returns a field that must be there.
func (e journalEntry) get(t testing.TB, name string) string {
	t.Helper()
	v, ok := e.field(t, name)
	if !ok {
		t.Fatalf("journal entry has no %s: %v", name, e.String())
	}
	return v
}

func (e journalEntry) String() string {
	b, _ := json.Marshal(map[string]json.RawMessage(e))
	return string(b)
}

// entries reads the journal entries of one container, oldest first.
func (j *journald) entries(t testing.TB, fullID string) []journalEntry {
	t.Helper()
	cmd := exec.Command("journalctl", "--no-pager", "-o", "json", "--all",
		"--directory", filepath.Join(j.root(), "run/log/journal"), "CONTAINER_ID_FULL="+fullID)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("journalctl: %v: %s", err, errb.String())
	}
	var es []journalEntry
	dec := json.NewDecoder(&out)
	for dec.More() {
		var e journalEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("journalctl output: %v", err)
		}
		es = append(es, e)
	}
	return es
}

// waitEntries polls until the container has n entries, and fails if it
// has more.
func (j *journald) waitEntries(t testing.TB, fullID string, n int) []journalEntry {
	t.Helper()
	var es []journalEntry
	Eventually(t, 30*time.Second, fmt.Sprintf("%d journal entries", n), func() bool {
		es = j.entries(t, fullID)
		return len(es) >= n
	})
	if len(es) != n {
		t.Fatalf("journal has %d entries for the container, want %d", len(es), n)
	}
	return es
}

// TestJournald logs stdout and stderr through the journald driver and
// reads the private journal back with journalctl: every line (empty ones
// too: Docker's journald driver sends them) in order per stream, with
// PRIORITY 6 for stdout and 3 for stderr; CONTAINER_ID (the first 12
// characters), CONTAINER_ID_FULL, CONTAINER_NAME, CONTAINER_TAG and
// SYSLOG_IDENTIFIER from the tag log-opt, IMAGE_NAME, a label from the
// labels log-opt, SYSLOG_TIMESTAMP; CONTAINER_LOG_ORDINAL counting 1..n in
// the order the driver sent; and a line longer than line-max=1k arriving
// as partial messages whose parts concatenate to the line, all but the
// last marked CONTAINER_PARTIAL_MESSAGE=true. Then the logger's exit
// counters.
func TestJournald(t *testing.T) {
	j := startJournald(t)
	const id = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
	opts := map[string]string{"tag": "{{.Name}}/{{.ImageName}}", "line-max": "1k", "labels": "com.example.team"}
	env := Env(id, opts, "DOCKERLOG_CONTAINERNAME=/db-1", "DOCKERLOG_IMAGENAME=postgres:16",
		`DOCKERLOG_LABELS={"com.example.team":"storage","other":"x"}`)
	start := time.Now()
	l := j.startLogger(t, env, "journald")

	long := strings.Repeat("0123456789abcdef", 190) + "end" // 3043 bytes: parts of 1024, 1024, 995
	out := append([]string{"héllo wörld 日本語 ✓", "", "tab\there", "  spaced  "}, Lines("stdout line", 996)...)
	errs := append(Lines("stderr line", 500), long)
	errs = append(errs, Lines("stderr after long", 499)...)
	WriteLines(t, l.Stdout, out)
	WriteLines(t, l.Stderr, errs)
	// The long line is three messages.
	total := len(out) + len(errs) + 2
	es := j.waitEntries(t, id, total)
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
	}
	sinkExitStats(t, l, total)
	end := time.Now()

	want := map[string]string{
		"CONTAINER_ID":      id[:12],
		"CONTAINER_ID_FULL": id,
		"CONTAINER_NAME":    "db-1",
		"CONTAINER_TAG":     "db-1/postgres:16",
		"SYSLOG_IDENTIFIER": "db-1/postgres:16",
		"IMAGE_NAME":        "postgres:16",
		"COM_EXAMPLE_TEAM":  "storage",
	}
	var gotOut, gotErr, parts []string
	ordinals := map[int]bool{}
	lastOrdinal := map[string]int{}
	for i, e := range es {
		for k, v := range want {
			if got := e.get(t, k); got != v {
				t.Fatalf("entry %d: %s=%q, want %q: %v", i, k, got, v, e)
			}
		}
		if _, ok := e.field(t, "OTHER"); ok {
			t.Fatalf("entry %d has label OTHER, which the labels log-opt did not ask for: %v", i, e)
		}
		ts, err := time.Parse(time.RFC3339Nano, e.get(t, "SYSLOG_TIMESTAMP"))
		if err != nil || ts.Before(start.Add(-time.Second)) || ts.After(end) {
			t.Fatalf("entry %d: SYSLOG_TIMESTAMP %q not between %v and %v (%v)", i, e.get(t, "SYSLOG_TIMESTAMP"), start, end, err)
		}
		ord, err := strconv.Atoi(e.get(t, "CONTAINER_LOG_ORDINAL"))
		if err != nil || ord < 1 || ord > total || ordinals[ord] {
			t.Fatalf("entry %d: CONTAINER_LOG_ORDINAL %q is not a new number in 1..%d", i, e.get(t, "CONTAINER_LOG_ORDINAL"), total)
		}
		ordinals[ord] = true
		prio := e.get(t, "PRIORITY")
		stream := map[string]string{"6": "stdout", "3": "stderr"}[prio]
		if stream == "" {
			t.Fatalf("entry %d: PRIORITY %q, want 6 (stdout) or 3 (stderr): %v", i, prio, e)
		}
		if ord <= lastOrdinal[stream] {
			t.Fatalf("entry %d: %s entries out of the driver's order (ordinal %d after %d)", i, stream, ord, lastOrdinal[stream])
		}
		lastOrdinal[stream] = ord
		msg := e.get(t, "MESSAGE")

		if pid, ok := e.field(t, "CONTAINER_PARTIAL_ID"); ok {
			n := len(parts) + 1
			last := e.get(t, "CONTAINER_PARTIAL_LAST")
			pm, marked := e.field(t, "CONTAINER_PARTIAL_MESSAGE")
			wantLast := n == 3
			if stream != "stderr" || pid == "" || e.get(t, "CONTAINER_PARTIAL_ORDINAL") != strconv.Itoa(n) ||
				last != strconv.FormatBool(wantLast) || marked == wantLast || (marked && pm != "true") {
				t.Fatalf("entry %d: partial message %d of 3 has the wrong fields: %v", i, n, e)
			}
			if len(msg) != 1024 && !wantLast {
				t.Fatalf("entry %d: partial message of %d bytes, want line-max 1024", i, len(msg))
			}
			parts = append(parts, msg)
			if !wantLast {
				continue
			}
			msg = strings.Join(parts, "")
		} else if _, ok := e.field(t, "CONTAINER_PARTIAL_MESSAGE"); ok {
			t.Fatalf("entry %d: CONTAINER_PARTIAL_MESSAGE without CONTAINER_PARTIAL_ID: %v", i, e)
		}
		if stream == "stdout" {
			gotOut = append(gotOut, msg)
		} else {
			gotErr = append(gotErr, msg)
		}
	}
	if len(parts) != 3 {
		t.Fatalf("the %d-byte line came as %d partial messages, want 3", len(long), len(parts))
	}
	sinkSameLines(t, "stdout (PRIORITY 6)", gotOut, out)
	sinkSameLines(t, "stderr (PRIORITY 3)", gotErr, errs)
}

// TestJournaldShortContainerID logs with a container id shorter than 12
// characters, as containerd's CONTAINER_ID may be ("web"): the interface contract says
// any length. Every line must arrive, with CONTAINER_ID and
// CONTAINER_ID_FULL the id padded to 12 characters with "_" (Docker's
// driver slices it), and the logger must exit 0.
func TestJournaldShortContainerID(t *testing.T) {
	j := startJournald(t)
	const id = "web"
	l := j.startLogger(t, Env(id, map[string]string{"tag": "{{.Name}}"}, "DOCKERLOG_CONTAINERNAME=/web"), "journald")
	out, errs := Lines("short id out", 20), Lines("short id err", 20)
	WriteLines(t, l.Stdout, out)
	WriteLines(t, l.Stderr, errs)
	es := j.waitEntries(t, id+"_________", len(out)+len(errs))
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
	}
	sinkExitStats(t, l, len(out)+len(errs))
	var gotOut, gotErr []string
	for i, e := range es {
		// Docker's journald driver slices the id to 12 characters, so a
		// shorter one reaches it padded with "_" (README: decisions).
		if padded := id + "_________"; e.get(t, "CONTAINER_ID") != padded || e.get(t, "CONTAINER_ID_FULL") != padded {
			t.Fatalf("entry %d: CONTAINER_ID %q CONTAINER_ID_FULL %q, want %q", i, e.get(t, "CONTAINER_ID"), e.get(t, "CONTAINER_ID_FULL"), padded)
		}
		if e.get(t, "PRIORITY") == "3" {
			gotErr = append(gotErr, e.get(t, "MESSAGE"))
		} else {
			gotOut = append(gotOut, e.get(t, "MESSAGE"))
		}
	}
	sinkSameLines(t, "stdout", gotOut, out)
	sinkSameLines(t, "stderr", gotErr, errs)
}
