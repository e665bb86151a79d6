package test

// End-to-end test of dockerlogger as containerd's binary:// logging binary.
// The sink is real: Debian's containerd 1.6 with runc, started privately
// per test run (config in containerd/config.toml.tmpl), running a busybox
// container from a plain directory (`ctr run --rootfs`, no image registry),
// whose output containerd's shim hands to bin/dockerlogger on fds 3/4 with
// the ready pipe on fd 5. What the logger wrote is read back with Docker's
// own json-file reader. The sink-down case points syslog at a port where
// nothing listens, on purpose: what is tested there is containerd's start
// and stop, not delivery.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/jsonfilelog"
)

// ctrdNamespace is the containerd namespace the tests run in; containers
// get random ids, so runs never collide.
const ctrdNamespace = "dockerlogger-test"

// ctrd is one private containerd.
type ctrd struct {
	dir, sock, logPath string
	cmd                *exec.Cmd
	done               chan struct{}
}

// ctrdStart starts containerd with its own root, state and sockets in
// a temp dir, waits until `ctr version` answers, and stops it (removing
// every task and container first) when the test ends.
func ctrdStart(t *testing.T) *ctrd {
	t.Helper()
	needRoot(t)
	for _, c := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2", "busybox"} {
		needCmd(t, c)
	}
	// A short path: the grpc socket's path must fit in sun_path.
	dir, err := os.MkdirTemp("", "dlctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmpl, err := template.ParseFiles("containerd/config.toml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var cfg bytes.Buffer
	if err := tmpl.Execute(&cfg, struct{ Dir string }{dir}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), cfg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &ctrd{dir: dir, sock: filepath.Join(dir, "c.sock"), logPath: filepath.Join(dir, "containerd.log"), done: make(chan struct{})}
	logf, err := os.Create(c.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	Eventually(t, 20*time.Second, "containerd to answer `ctr version`", func() bool {
		select {
		case <-c.done:
			t.Fatalf("containerd exited at start: %s", c.log())
		default:
		}
		return exec.Command("ctr", "--address", c.sock, "version").Run() == nil
	})
	return c
}

// ctr runs ctr against this containerd to completion.
func (c *ctrd) ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.sock, "-n", ctrdNamespace}, args...)...).CombinedOutput()
	return string(out), err
}

// runcRoot is runc's state dir for this containerd's containers: in the
// temp dir rather than under /run/containerd/runc.
func (c *ctrd) runcRoot() string { return filepath.Join(c.dir, "runc") }

// log is what containerd (and, through their log FIFOs, its shims) wrote.
func (c *ctrd) log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// stop kills and removes whatever the test left behind, then stops
// containerd. Shims outlive containerd, so tasks go first.
func (c *ctrd) stop() {
	if out, err := c.ctr("tasks", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			c.ctr("tasks", "kill", "-s", "SIGKILL", id)
			c.ctr("tasks", "rm", "-f", id)
		}
	}
	if out, err := c.ctr("containers", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			c.ctr("containers", "rm", id)
		}
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	// runc leaves the namespace's level of the cgroup (v1 or v2) behind.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ctrdNamespace)
	dirs = append(dirs, "/sys/fs/cgroup/"+ctrdNamespace)
	for _, d := range dirs {
		syscall.Rmdir(d)
	}
}

// ctrdRootfs makes a container root filesystem from busybox-static:
// /bin/busybox and the applets the scripts use, /emit.sh, and a FIFO at
// /ctl/go that the test writes to when the container may finish.
func ctrdRootfs(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "ctl"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(needCmd(t, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "echo", "seq", "cat", "sleep", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"emit.sh", "kill.sh"} {
		script, err := os.ReadFile("containerd/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), script, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "ctl/go"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func ctrdRandomID(t *testing.T, prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// ctrdLoggerURI is the --log-uri for bin/dockerlogger with a raw query.
func ctrdLoggerURI(query string) string {
	return "binary://" + filepath.Join(bin, "dockerlogger") + "?" + query
}

// ctrdLoggerPIDs are the processes containerd started as the logger of
// container id (and any children they started): they alone carry
// containerd's CONTAINER_ID and CONTAINER_NAMESPACE.
func ctrdLoggerPIDs(t *testing.T, id string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		vars := strings.Split(string(env), "\x00")
		if ctrdContains(vars, "CONTAINER_ID="+id) && ctrdContains(vars, "CONTAINER_NAMESPACE="+ctrdNamespace) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func ctrdContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ctrdFD is what /proc/PID/fd/FD points at, or "" when it is not open.
func ctrdFD(pid, fd int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	return s
}

// Access modes of a descriptor, from /proc/PID/fdinfo.
const (
	ctrdRead  = 1
	ctrdWrite = 2
)

// ctrdPipes maps each pipe ("pipe:[inode]") that process pid holds to
// the union of the access modes it holds it with.
func ctrdPipes(pid int) map[string]int {
	m := map[string]int{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		target := ctrdFD(pid, fd)
		if !strings.HasPrefix(target, "pipe:") {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				flags, _ := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				switch flags & syscall.O_ACCMODE {
				case syscall.O_RDONLY:
					m[target] |= ctrdRead
				case syscall.O_WRONLY:
					m[target] |= ctrdWrite
				default:
					m[target] |= ctrdRead | ctrdWrite
				}
			}
		}
	}
	return m
}

// ctrdPPID is the parent of process pid, or 0.
func ctrdPPID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// ctrdReadJSONFile reads a json-file log with Docker's own reader, as
// `docker logs` would.
func ctrdReadJSONFile(t *testing.T, path string) []*logger.Message {
	t.Helper()
	l, err := jsonfilelog.New(logger.Info{LogPath: path, Config: map[string]string{}})
	if err != nil {
		t.Fatalf("open %s with Docker's json-file driver: %v", path, err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := l.(logger.LogReader).ReadLogs(ctx, logger.ReadConfig{Tail: -1})
	defer w.ConsumerGone()
	var msgs []*logger.Message
	for {
		select {
		case m, ok := <-w.Msg:
			if !ok {
				return msgs
			}
			msgs = append(msgs, m)
		case err := <-w.Err:
			t.Fatalf("Docker's json-file reader: %v", err)
		case <-ctx.Done():
			t.Fatalf("Docker's json-file reader did not finish")
		}
	}
}

// TestContainerd runs containers under a private containerd with
// dockerlogger as their binary:// logger.
func TestContainerd(t *testing.T) {
	c := ctrdStart(t)
	rootfs := ctrdRootfs(t, c.dir)
	t.Run("lines", func(t *testing.T) { testContainerdLines(t, c, rootfs) })
	t.Run("sink-down", func(t *testing.T) { testContainerdSinkDown(t, c, rootfs) })
	t.Run("bad-log-opt", func(t *testing.T) { testContainerdBadOpt(t, c, rootfs) })
	t.Run("worker-killed", func(t *testing.T) { testContainerdWorkerKilled(t, c, rootfs) })
}

// ctrdKilledLogger is what containerd 1.6 logs when the logger has not
// exited 12 s after SIGTERM and it kills it.
const ctrdKilledLogger = "failed to wait for shim logger process to exit, killing"

// testContainerdLines: every line of both streams arrives in the json-file
// in order, the long line in parts no longer than line-max, the logger
// holds no ready pipe once ready, `ctr run` returns promptly after the
// container's last write, and the logger has exited on its own.
func testContainerdLines(t *testing.T, c *ctrd, rootfs string) {
	const n = 5000
	id := ctrdRandomID(t, "dl-")
	logPath := filepath.Join(c.dir, id+"-json.log")
	pidFile := filepath.Join(c.dir, id+".pid")
	uri := ctrdLoggerURI("driver=json-file&log-path=" + logPath + "&max-size=10m")

	run := exec.Command("ctr", "--address", c.sock, "-n", ctrdNamespace, "run", "--rm", "--runc-root", c.runcRoot(),
		"--pid-file", pidFile, "--log-uri", uri, "--rootfs", rootfs, id, "/bin/sh", "/emit.sh", strconv.Itoa(n))
	var runOut syncBuffer
	run.Stdout, run.Stderr = &runOut, &runOut
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { run.Wait(); close(runDone) }()
	defer func() {
		select {
		case <-runDone:
		default: // a failure before the container was told to finish
			run.Process.Kill()
			<-runDone
		}
	}()

	// The container has written everything but its last lines once both
	// markers are in the file.
	Eventually(t, 30*time.Second, "both streams' markers in the json-file", func() bool {
		select {
		case <-runDone:
			t.Fatalf("ctr run ended early (%v): %s\ncontainerd: %s", run.ProcessState, runOut.String(), c.log())
		default:
		}
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte(`{"log":"out waiting\n","stream":"stdout"`)) &&
			bytes.Contains(b, []byte(`{"log":"err waiting\n","stream":"stderr"`))
	})

	// The ready pipe: the container started, so containerd saw the
	// handshake. Once ready, no process of the logger's may hold a pipe
	// it writes to unless one of them reads it (its own pipes) or the shim
	// writes to it too (inherited from the shim): anything else is the
	// ready pipe, kept or leaked into a child.
	pids := ctrdLoggerPIDs(t, id)
	if len(pids) == 0 {
		t.Fatalf("no dockerlogger process for container %s while it runs", id)
	}
	inTree := map[int]bool{}
	for _, pid := range pids {
		inTree[pid] = true
	}
	shim, treeReads := 0, map[string]bool{}
	for _, pid := range pids {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if exe != filepath.Join(bin, "dockerlogger") {
			t.Errorf("process %d has containerd's CONTAINER_ID=%s but runs %q", pid, id, exe)
		}
		if pp := ctrdPPID(pid); !inTree[pp] {
			shim = pp
		}
		for target, mode := range ctrdPipes(pid) {
			if mode&ctrdRead != 0 {
				treeReads[target] = true
			}
		}
	}
	shimPipes := ctrdPipes(shim)
	for _, pid := range pids {
		for target, mode := range ctrdPipes(pid) {
			if mode&ctrdWrite != 0 && !treeReads[target] && shimPipes[target]&ctrdWrite == 0 {
				t.Errorf("logger process %d still holds the write end of %s after signalling ready (fd 5 is %q)", pid, target, ctrdFD(pid, 5))
			}
		}
	}
	if got := ctrdFD(pids[0], 3); !strings.HasPrefix(got, "pipe:") {
		t.Errorf("logger's fd 3 is %q, want the stdout pipe", got)
	}
	// Nothing of the logger's leaks into the container either: its init
	// has no pipes but its stdout and stderr.
	pidText, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	initPID, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", initPID))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		n, _ := strconv.Atoi(fd.Name())
		if n != 1 && n != 2 && strings.HasPrefix(ctrdFD(initPID, n), "pipe:") {
			t.Errorf("container init holds fd %d = %s", n, ctrdFD(initPID, n))
		}
	}

	// Let the container finish; time `ctr run` from its last write.
	goFIFO, err := os.OpenFile(filepath.Join(rootfs, "ctl/go"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	goFIFO.Write([]byte("go\n"))
	goFIFO.Close()
	select {
	case <-runDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("ctr run still running 30s after the container's last write; containerd: %s", c.log())
	}
	took := time.Since(start)
	if !run.ProcessState.Success() {
		t.Fatalf("ctr run: %v: %s\ncontainerd: %s", run.ProcessState, runOut.String(), c.log())
	}
	// containerd SIGTERMs the logger when the task is deleted and kills
	// it 12 s later; a logger that exits on EOF costs well under 5 s.
	if took > 5*time.Second {
		t.Errorf("ctr run returned %v after the container's last write (want < 5s)", took)
	}
	t.Logf("ctr run returned %v after the container's last write", took)
	if pids := ctrdLoggerPIDs(t, id); len(pids) != 0 {
		t.Errorf("dockerlogger processes %v still running after ctr run returned", pids)
	}
	if l := c.log(); strings.Contains(l, ctrdKilledLogger) {
		t.Errorf("containerd had to kill the logger:\n%s", l)
	}

	// Every line, per stream, in order, read back as `docker logs` would.
	msgs := ctrdReadJSONFile(t, logPath)
	got := map[string]*bytes.Buffer{"stdout": {}, "stderr": {}}
	var partials int
	for _, m := range msgs {
		b, ok := got[m.Source]
		if !ok {
			t.Fatalf("message with stream %q: %q", m.Source, m.Line)
		}
		b.Write(m.Line)
		if len(bytes.TrimSuffix(m.Line, []byte("\n"))) > 16*1024 {
			t.Errorf("a %s message of %d bytes: longer than line-max 16k", m.Source, len(m.Line))
		}
		if !bytes.HasSuffix(m.Line, []byte("\n")) {
			partials++
		}
	}
	var long strings.Builder
	for i := 1; i <= 9000; i++ {
		if i > 1 {
			long.WriteByte(',')
		}
		long.WriteString(strconv.Itoa(i))
	}
	want := map[string][]string{}
	for _, s := range []string{"out", "err"} {
		var ls []string
		for i := 0; i < n; i++ {
			ls = append(ls, fmt.Sprintf("%s %d", s, i))
		}
		if s == "out" {
			ls = append(ls, long.String())
		}
		want[s] = append(ls, s+" waiting", s+" last")
	}
	ctrdCheckStream(t, "stdout", got["stdout"].String(), want["out"])
	ctrdCheckStream(t, "stderr", got["stderr"].String(), want["err"])
	// 43,892 bytes at line-max 16k: three messages, the first two partial.
	if partials != 2 {
		t.Errorf("%d partial messages, want 2: the %d-byte line cut at line-max 16k", partials, long.Len())
	}
}

// ctrdCheckStream compares one stream's reassembled text with the lines sent.
func ctrdCheckStream(t *testing.T, stream, text string, want []string) {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("%s does not end with a newline: ...%q", stream, ctrdTail(text))
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("%s: %d lines, want %d", stream, len(lines), len(want))
	}
	for i := 0; i < len(lines) && i < len(want); i++ {
		if lines[i] != want[i] {
			t.Errorf("%s line %d: %q, want %q", stream, i, ctrdTail(lines[i]), ctrdTail(want[i]))
			return
		}
	}
}

func ctrdTail(s string) string {
	if len(s) > 60 {
		return "..." + s[len(s)-60:]
	}
	return s
}

// testContainerdSinkDown: with the syslog server down (nothing listens on
// the port), the container still starts at once, and the logger, holding
// lines it cannot deliver, gives up at the default close-timeout (10s) and
// exits before containerd's 12 s kill.
func testContainerdSinkDown(t *testing.T, c *ctrd, rootfs string) {
	id := ctrdRandomID(t, "dl-down-")
	pidFile := filepath.Join(c.dir, id+".pid")
	uri := ctrdLoggerURI("driver=syslog&syslog-address=tcp://127.0.0.1:1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, "ctr", "--address", c.sock, "-n", ctrdNamespace, "run", "--rm", "--runc-root", c.runcRoot(),
		"--pid-file", pidFile, "--log-uri", uri, "--rootfs", rootfs, id, "/bin/sh", "-c", "echo hello; echo world >&2")
	var out syncBuffer
	run.Stdout, run.Stderr = &out, &out
	start := time.Now()
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { run.Wait(); close(runDone) }()
	defer func() { <-runDone }() // the context kills it after 30s
	Eventually(t, 5*time.Second, "the container to start with its log sink down", func() bool {
		_, err := os.Stat(pidFile)
		return err == nil
	})
	t.Logf("container started %v after ctr run", time.Since(start))
	<-runDone
	took := time.Since(start)
	t.Logf("ctr run took %v", took)
	if ctx.Err() != nil {
		t.Fatalf("ctr run hung with the sink down; containerd: %s", c.log())
	}
	if !run.ProcessState.Success() {
		t.Errorf("ctr run: %v: %s", run.ProcessState, out.String())
	}
	if took >= 12*time.Second || strings.Contains(c.log(), ctrdKilledLogger) {
		t.Errorf("ctr run took %v: containerd had to kill the logger (it waits 12 s after SIGTERM)", took)
	}
	if pids := ctrdLoggerPIDs(t, id); len(pids) != 0 {
		t.Errorf("dockerlogger processes %v still running after ctr run returned", pids)
	}
}

// testContainerdBadOpt: a bad log-opt in the binary:// query. containerd
// 1.6 takes the logger's exit (EOF on the ready pipe, no byte) as ready and
// starts the container anyway, with nobody reading its output, so the
// container dies on its first write. What must hold: `ctr run` ends
// promptly and non-zero, nothing is logged, no logger is left, and the
// logger's one-line error reaches the user somewhere.
func testContainerdBadOpt(t *testing.T, c *ctrd, rootfs string) {
	id := ctrdRandomID(t, "dl-bad-")
	logPath := filepath.Join(c.dir, id+"-json.log")
	uri := ctrdLoggerURI("driver=json-file&log-path=" + logPath + "&max-size=bogus")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "ctr", "--address", c.sock, "-n", ctrdNamespace, "run", "--rm", "--runc-root", c.runcRoot(),
		"--log-uri", uri, "--rootfs", rootfs, id, "/bin/sh", "-c", "echo hello; echo world >&2").CombinedOutput()
	took := time.Since(start)
	t.Logf("ctr run took %v, %v, output %q", took, err, out)
	if ctx.Err() != nil {
		t.Fatalf("ctr run hung with a bad log-opt; containerd: %s", c.log())
	}
	if err == nil {
		t.Errorf("ctr run exited 0 with a bad log-opt and the container's output lost")
	}
	if took > 5*time.Second {
		t.Errorf("ctr run took %v with a bad log-opt (want < 5s)", took)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("log file %s exists (%v) though the configuration was refused", logPath, err)
	}
	if pids := ctrdLoggerPIDs(t, id); len(pids) != 0 {
		t.Errorf("dockerlogger processes %v still running", pids)
	}
	t.Run("error-visible", func(t *testing.T) {
		l := c.log()
		if !strings.Contains(l, `dockerlogger: json-file: log-opt max-size="bogus"`) {
			t.Errorf("the logger's error is nowhere a user can see it; ctr said %q; containerd's log:\n%s", out, l)
		}
	})
}

// testContainerdWorkerKilled: with the supervisor in place, SIGKILL the
// worker twice while the container runs, once between its phases and once
// while it writes: the supervisor holds the pipes, a new worker reads on,
// and every line arrives (at least once, in order per stream).
func testContainerdWorkerKilled(t *testing.T, c *ctrd, rootfs string) {
	id := ctrdRandomID(t, "dk-")
	logPath := filepath.Join(c.dir, id+"-json.log")
	uri := ctrdLoggerURI("driver=json-file&log-path=" + logPath)
	run := exec.Command("ctr", "--address", c.sock, "-n", ctrdNamespace, "run", "--rm", "--runc-root", c.runcRoot(),
		"--log-uri", uri, "--rootfs", rootfs, id, "/bin/sh", "/kill.sh")
	var runOut syncBuffer
	run.Stdout, run.Stderr = &runOut, &runOut
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { run.Wait(); close(runDone) }()
	defer func() {
		select {
		case <-runDone:
		default:
			run.Process.Kill()
			<-runDone
		}
	}()
	// worker returns the logger process whose parent is the supervisor.
	worker := func() int {
		pids := ctrdLoggerPIDs(t, id)
		in := map[int]bool{}
		for _, p := range pids {
			in[p] = true
		}
		for _, p := range pids {
			if in[ctrdPPID(p)] {
				return p
			}
		}
		return 0
	}
	has := func(stream, line string) bool {
		if _, err := os.Stat(logPath); err != nil {
			return false // not created yet
		}
		for _, l := range jsonLines(t, logPath)[stream] {
			if l == line {
				return true
			}
		}
		return false
	}
	next := func() {
		f, err := os.OpenFile(filepath.Join(rootfs, "ctl/go"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("go\n"))
		f.Close()
	}
	kill := func(not int) int {
		var w int
		Eventually(t, 10*time.Second, "a worker", func() bool { w = worker(); return w != 0 && w != not })
		if err := syscall.Kill(w, syscall.SIGKILL); err != nil {
			t.Fatalf("kill worker %d: %v", w, err)
		}
		return w
	}
	Eventually(t, 30*time.Second, "phase 1 in the log", func() bool { return has("stdout", "out 1 2999") && has("stderr", "err 1 2999") })
	w := kill(0) // between phases
	next()
	kill(w) // while phase 2 is written
	Eventually(t, 30*time.Second, "phase 2 in the log", func() bool { return has("stdout", "out 2 2999") && has("stderr", "err 2 2999") })
	next()
	Eventually(t, 30*time.Second, "phase 3 in the log", func() bool { return has("stdout", "out 3 2999") && has("stderr", "err 3 2999") })
	next()
	select {
	case <-runDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("ctr run still running 30s after the container's last write; containerd: %s", c.log())
	}
	if !run.ProcessState.Success() {
		t.Fatalf("ctr run: %v: %s\ncontainerd: %s", run.ProcessState, runOut.String(), c.log())
	}
	// The supervisor's word of each restart reaches containerd's log
	// through the shim's log FIFO.
	if n := strings.Count(c.log(), "worker killed by signal 9"); n != 2 {
		t.Errorf("containerd's log tells of %d worker kills, want 2:\n%s", n, c.log())
	}
	got := jsonLines(t, logPath)
	for _, s := range []struct{ stream, prefix string }{{"stdout", "out"}, {"stderr", "err"}} {
		var want []string
		for phase := 1; phase <= 3; phase++ {
			for i := 0; i < 3000; i++ {
				want = append(want, fmt.Sprintf("%s %d %d", s.prefix, phase, i))
			}
		}
		want = append(want, s.prefix+" last")
		dups := checkAtLeastOnce(t, s.stream, got[s.stream], want)
		t.Logf("%s: %d lines, %d duplicates after 2 worker kills", s.stream, len(want), dups)
	}
}
