package test

// End-to-end tests of the gcplogs driver delivering to Google Cloud
// Logging — to internal/sink/cloudlogging, an in-repo server speaking the
// real API (gRPC google.logging.v2.LoggingServiceV2 over TLS), since
// Google is out of reach.
//
// Docker's driver has no endpoint option: the Google client dials
// logging.googleapis.com:443 and trusts the system roots. So the logger
// runs in a private mount and network namespace (needs root) where
// /etc/hosts maps logging.googleapis.com to 127.0.0.1, only loopback
// exists, and the sink listens on 127.0.0.1:443 inside that namespace
// with a certificate for the name from a test CA given to the logger by
// SSL_CERT_FILE. The private network also keeps Docker's on-GCE probe
// (HTTP to 169.254.169.254, DNS for metadata.google.internal) from
// leaving the machine: it fails at once, as off GCE.
//
// Credentials are a service-account key file (GOOGLE_APPLICATION_CREDENTIALS)
// that the sink generated: the Google libraries sign a JWT with its key,
// which the sink verifies, so no token endpoint or metadata server is faked
// and Docker's gcp-meta-* options apply (on GCE it takes the metadata
// server's values instead).
//
// Validation and the failure without any credentials need neither root
// nor the sink; they are at the end.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/internal/sink/cloudlogging"
)

const (
	gcpProject = "dockerlogger-test"
	gcpID      = "4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee0"
	gcpLogName = "projects/" + gcpProject + "/logs/gcplogs-docker-driver"
)

// gcpNet is a private mount and network namespace, held by a process
// that lives until the test ends, with logging.googleapis.com in its
// /etc/hosts and its loopback up.
type gcpNet struct {
	pid     int
	account *cloudlogging.ServiceAccount
	certs   *cloudlogging.Certs
	dir     string
}

// gcpNamespaceScript runs in the new namespaces (Go makes the mounts
// private): it puts the test's hosts file over /etc/hosts, says so, and
// holds the namespaces until its stdin closes.
const gcpNamespaceScript = `set -e
mount --bind "$0" /etc/hosts
echo mounted
exec cat >/dev/null
`

func newGCPNet(t *testing.T) *gcpNet {
	t.Helper()
	needRoot(t)
	needCmd(t, "nsenter")
	needCmd(t, "mount")

	n := &gcpNet{dir: t.TempDir()}
	var err error
	if n.account, err = cloudlogging.NewServiceAccount(gcpProject, "dockerlogger"); err != nil {
		t.Fatal(err)
	}
	if n.certs, err = cloudlogging.NewCerts(cloudlogging.Host); err != nil {
		t.Fatal(err)
	}
	key, err := n.account.JSON()
	if err != nil {
		t.Fatal(err)
	}
	hosts := "127.0.0.1 localhost\n127.0.0.1 " + cloudlogging.Host + "\n"
	for name, b := range map[string][]byte{"key.json": key, "ca.pem": n.certs.CAPEM, "hosts": []byte(hosts)} {
		if err := os.WriteFile(filepath.Join(n.dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command("sh", "-c", gcpNamespaceScript, filepath.Join(n.dir, "hosts"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errs := &syncBuffer{}
	cmd.Stderr = errs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start namespace holder: %v", err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "mounted\n" {
		t.Fatalf("namespace holder: %q %v; stderr: %s", line, err, errs.String())
	}
	n.pid = cmd.Process.Pid
	// Loopback comes up down in a new network namespace: bring it up now,
	// so that a sink not yet listening refuses connections, as a server
	// that is down does.
	n.inNet(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("get lo flags: %w", err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		return nil
	})
	return n
}

// inNet runs f on a thread moved into the namespace's network. The thread
// is never handed back to other goroutines: it ends with f's goroutine.
func (n *gcpNet) inNet(t *testing.T, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			done <- n.enter(f)
			return // still locked: the thread exits with the goroutine
		}
		// The main thread is never ended: moved, it would stay in the
		// namespace, and /proc/self/net of the whole test with it. Hold
		// it while another thread does the work.
		other := make(chan error, 1)
		go func() { runtime.LockOSThread(); other <- n.enter(f) }()
		err := <-other
		runtime.UnlockOSThread()
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// enter moves the calling thread, which must be locked and must never be
// unlocked, into the namespace's network and runs f there.
func (n *gcpNet) enter(f func() error) error {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", n.pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the namespace: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter the namespace: %w", err)
	}
	return f()
}

// startSink serves a Cloud Logging sink on 127.0.0.1:443 in the
// namespace. The listening socket stays in the namespace it was made in.
func (n *gcpNet) startSink(t *testing.T, s *cloudlogging.Server) {
	t.Helper()
	var ln net.Listener
	n.inNet(t, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:443")
		return err
	})
	s.Serve(ln)
}

func (n *gcpNet) newSink(t *testing.T) *cloudlogging.Server {
	s := cloudlogging.New(n.account, n.certs.Server)
	t.Cleanup(s.Close)
	return s
}

// env is a logger environment with the key file and the test CA, and no
// other Google configuration to find.
func (n *gcpNet) env(opts map[string]string, extra ...string) []string {
	return Env(gcpID, opts, append([]string{
		"HOME=" + n.dir,
		"CLOUDSDK_CONFIG=" + filepath.Join(n.dir, "gcloud"),
		"GOOGLE_APPLICATION_CREDENTIALS=" + filepath.Join(n.dir, "key.json"),
		"SSL_CERT_FILE=" + filepath.Join(n.dir, "ca.pem"),
	}, extra...)...)
}

// startLogger starts the logger in the namespace, with the harness's
// pipes on fds 3, 4 and 5 (nsenter passes them on), not waiting for ready.
func (n *gcpNet) startLogger(t *testing.T, env []string) *Logger {
	t.Helper()
	return StartLoggerCmd(t, []string{needCmd(t, "nsenter"),
		fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.pid), fmt.Sprintf("--net=/proc/%d/ns/net", n.pid), "--",
		filepath.Join(bin, "dockerlogger"), "gcplogs"}, env)
}

// gcpPayload is Docker's gcplogs jsonPayload (dockerLogEntry).
type gcpPayload struct {
	Instance  map[string]string `json:"instance"`
	Container struct {
		Name      string            `json:"name"`
		ID        string            `json:"id"`
		ImageName string            `json:"imageName"`
		ImageID   string            `json:"imageId"`
		Created   string            `json:"created"`
		Command   string            `json:"command"`
		Metadata  map[string]string `json:"metadata"`
	} `json:"container"`
	Message string `json:"message"`
	// Other keys would be a change in Docker's format: caught below.
	rest map[string]any
}

func payloadOf(t *testing.T, e cloudlogging.Entry) gcpPayload {
	t.Helper()
	js := e.GetJsonPayload()
	if js == nil {
		t.Fatalf("entry %v has no jsonPayload", e.LogEntry)
	}
	b, err := json.Marshal(js.AsMap())
	if err != nil {
		t.Fatal(err)
	}
	var p gcpPayload
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &p.rest)
	delete(p.rest, "instance")
	delete(p.rest, "container")
	delete(p.rest, "message")
	return p
}

// messages is the payload messages with prefix, in the order received.
func messages(t *testing.T, es []cloudlogging.Entry, prefix string) []string {
	var got []string
	for _, e := range es {
		if m := payloadOf(t, e).Message; strings.HasPrefix(m, prefix) {
			got = append(got, m)
		}
	}
	return got
}

func gcpSameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: %d lines arrived, want %d in order; first %q", what, len(got), len(want), first(got))
	}
}

// TestGcplogsDelivers: the driver authenticates with the key file, pings
// the service, and every line reaches Cloud Logging as one entry in the
// log gcplogs-docker-driver, in order per stream, with Docker's payload
// (container name, id, image, creation time, command with gcp-log-cmd,
// labels and env attributes, and the line as "message"), the instance
// from gcp-meta-zone/name/id both in the payload and as a gce_instance
// resource, the time the line was read, and no severity (Docker sets
// none, so stdout and stderr look alike). Docker's Close flushes: every
// line is at the sink when the logger has exited 0.
func TestGcplogsDelivers(t *testing.T) {
	n := newGCPNet(t)
	s := n.newSink(t)
	n.startSink(t, s)
	created := "2024-05-06T07:08:09.123456789Z"
	l := n.startLogger(t, n.env(map[string]string{
		"gcp-project":   gcpProject,
		"gcp-log-cmd":   "true",
		"gcp-meta-zone": "europe-west1-b",
		"gcp-meta-name": "node-7",
		"gcp-meta-id":   "1234567890123",
		"labels":        "team",
		"env":           "STAGE",
	},
		"DOCKERLOG_CONTAINERNAME=/web",
		"DOCKERLOG_IMAGENAME=example/web:1.2",
		"DOCKERLOG_IMAGEID=sha256:0123456789abcdef",
		"DOCKERLOG_CREATETIME="+created,
		`DOCKERLOG_ENTRYPOINT=["/bin/sh","-c"]`,
		`DOCKERLOG_CMD=["exec web --port 80"]`,
		`DOCKERLOG_LABELS={"team":"blue","other":"x"}`,
		`DOCKERLOG_ENV=["STAGE=prod","OTHER=y"]`,
	))
	if err := l.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("not ready: %v; refused %v; stderr: %s", err, s.Refused(), l.Errors())
	}
	// The driver is up once ready: Docker's New pinged the service.
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].LogName != "projects/"+gcpProject+"/logs/ping" || reqs[0].Entries[0].GetTextPayload() != "ping" {
		t.Fatalf("requests before any line: %v, want Docker's one ping", reqs)
	}

	before := time.Now()
	out, errs := Lines("out", 300), Lines("err", 200)
	WriteLines(t, l.Stdout, out)
	WriteLines(t, l.Stderr, errs)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	exited := time.Now()
	// Exited: Close has flushed, so everything is there without waiting.
	var es []cloudlogging.Entry
	for _, e := range s.Entries() {
		if e.LogName == gcpLogName {
			es = append(es, e)
		}
	}
	if len(es) != 500 {
		t.Fatalf("%d entries in %s after exit, want 500; refused %v; stderr: %s", len(es), gcpLogName, s.Refused(), l.Errors())
	}
	gcpSameLines(t, "stdout", messages(t, es, "out"), out)
	gcpSameLines(t, "stderr", messages(t, es, "err"), errs)
	if st := l.Stats(t); st["lines_delivered"] != "500" || st["lines_dropped"] != "0" {
		t.Fatalf("stats %v: want 500 delivered, 0 dropped", st)
	}

	for _, e := range es {
		p := payloadOf(t, e)
		c := p.Container
		if c.Name != "/web" || c.ID != gcpID || c.ImageName != "example/web:1.2" || c.ImageID != "sha256:0123456789abcdef" ||
			c.Created != created || c.Command != "/bin/sh -c exec web --port 80" ||
			len(c.Metadata) != 2 || c.Metadata["team"] != "blue" || c.Metadata["STAGE"] != "prod" {
			t.Fatalf("container %+v", c)
		}
		if len(p.Instance) != 3 || p.Instance["zone"] != "europe-west1-b" || p.Instance["name"] != "node-7" || p.Instance["id"] != "1234567890123" {
			t.Fatalf("instance %v", p.Instance)
		}
		if len(p.rest) != 0 {
			t.Fatalf("payload keys beyond Docker's: %v", p.rest)
		}
		r := e.Resource
		if r.GetType() != "gce_instance" || len(r.GetLabels()) != 2 || r.Labels["zone"] != "europe-west1-b" || r.Labels["instance_id"] != "1234567890123" {
			t.Fatalf("resource %v", r)
		}
		if e.Severity.String() != "DEFAULT" {
			t.Fatalf("severity %v, want DEFAULT", e.Severity)
		}
		if ts := e.Timestamp.AsTime(); ts.Before(before) || ts.After(exited) {
			t.Fatalf("timestamp %v not from when the line was read (%v .. %v)", ts, before, exited)
		}
	}
}

// TestGcplogsPlain: with only gcp-project, the payload has no instance
// and no command, the resource is the project itself (type "project",
// which the Google library picks off GCE), and the entries are in the
// project given.
func TestGcplogsPlain(t *testing.T) {
	n := newGCPNet(t)
	s := n.newSink(t)
	n.startSink(t, s)
	l := n.startLogger(t, n.env(map[string]string{"gcp-project": gcpProject}, `DOCKERLOG_CMD=["web"]`))
	if err := l.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("not ready: %v; stderr: %s", err, l.Errors())
	}
	out := Lines("plain", 50)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	es, _ := s.Wait(gcpLogName, 0, 0)
	gcpSameLines(t, "stdout", messages(t, es, ""), out)
	for _, e := range es {
		p := payloadOf(t, e)
		if p.Instance != nil || p.Container.Command != "" || p.Container.Name != "" || p.Container.ID != gcpID {
			t.Fatalf("payload %+v: want no instance, no command, no name, id %s", p, gcpID)
		}
		if r := e.Resource; r.GetType() != "project" || len(r.GetLabels()) != 1 || r.Labels["project_id"] != gcpProject {
			t.Fatalf("resource %v, want the project %s", r, gcpProject)
		}
	}
}

// TestGcplogsWrongProject: a gcp-project the key has no right to write
// to is refused by the service at Docker's ping: the driver is not up,
// the error (PermissionDenied) is on the logger's stderr, the container
// still starts, and the logger gives up at close-timeout counting what it
// could not deliver.
func TestGcplogsWrongProject(t *testing.T) {
	n := newGCPNet(t)
	s := n.newSink(t)
	n.startSink(t, s)
	l := n.startLogger(t, n.env(map[string]string{"gcp-project": "someone-else", "close-timeout": "2s"}))
	if err := l.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("not ready: %v; stderr: %s", err, l.Errors())
	}
	WriteLines(t, l.Stdout, Lines("denied", 3))
	Eventually(t, 10*time.Second, "PermissionDenied on the logger's stderr", func() bool {
		return strings.Contains(l.Errors(), "gcplogs driver not up") && strings.Contains(l.Errors(), "PermissionDenied")
	})
	code := l.Wait(t, 20*time.Second)
	st := l.Stats(t)
	if code != 1 || st["lines_delivered"] != "0" || st["lines_dropped"] != "3" {
		t.Fatalf("exit %d, stats %v: want 1, 0 delivered, 3 dropped", code, st)
	}
	if len(s.Entries()) != 0 {
		t.Fatalf("entries accepted for another project: %v", s.Entries())
	}
}

// TestGcplogsReadyWhileSinkDown: nothing listens on
// logging.googleapis.com:443 when the container starts. The logger must
// still signal ready promptly: a sink that is down must not stop the
// container from starting.
func TestGcplogsReadyWhileSinkDown(t *testing.T) {
	n := newGCPNet(t)
	l := n.startLogger(t, n.env(map[string]string{"gcp-project": gcpProject, "close-timeout": "2s"}))
	if err := l.WaitReady(5 * time.Second); err != nil {
		t.Fatalf("not ready within 5 s while the service is down: %v; stderr: %s", err, l.Errors())
	}
	WriteLines(t, l.Stdout, Lines("down", 3))
	code := l.Wait(t, 20*time.Second)
	if st := l.Stats(t); code != 1 || st["lines_dropped"] != "3" {
		t.Fatalf("exit %d, stats %v: want 1 with the 3 lines counted as dropped", code, st)
	}
}

// TestGcplogsSinkComesUp: the service refuses connections when the
// container starts; once it is reachable the driver comes up (Docker's
// ping goes through), the logger is ready, and every line arrives in
// order before the logger exits 0.
func TestGcplogsSinkComesUp(t *testing.T) {
	n := newGCPNet(t)
	s := n.newSink(t)
	// A listener that takes the first connection and then goes away
	// tells us the driver has tried and failed at least once; from then
	// on connections are refused until the sink listens.
	var gate net.Listener
	n.inNet(t, func() (err error) {
		gate, err = net.Listen("tcp", "127.0.0.1:443")
		return err
	})
	l := n.startLogger(t, n.env(map[string]string{"gcp-project": gcpProject}))
	c, err := acceptWithin(gate, 20*time.Second)
	if err != nil {
		t.Fatalf("the driver never tried to connect: %v; stderr: %s", err, l.Errors())
	}
	c.Close()
	gate.Close()
	n.startSink(t, s)
	if err := l.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("not ready once the service is up: %v; refused %v; stderr: %s", err, s.Refused(), l.Errors())
	}
	out, errs := Lines("late-out", 100), Lines("late-err", 100)
	WriteLines(t, l.Stdout, out)
	WriteLines(t, l.Stderr, errs)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	es, _ := s.Wait(gcpLogName, 0, 0)
	gcpSameLines(t, "stdout", messages(t, es, "late-out"), out)
	gcpSameLines(t, "stderr", messages(t, es, "late-err"), errs)
	if len(es) != 200 {
		t.Fatalf("%d entries, want 200", len(es))
	}
}

// TestGcplogsSinkGoneCounted: lines the driver took after the service
// went away are never counted delivered: what it still holds when
// close-timeout ends the logger is dropped, counted, and the exit is 1.
// (Google's client, which Docker's driver uses, would hold them for ten
// minutes and lose them counted delivered.)
func TestGcplogsSinkGoneCounted(t *testing.T) {
	for _, mode := range []string{"blocking", "non-blocking"} {
		t.Run(mode, func(t *testing.T) {
			n := newGCPNet(t)
			s := n.newSink(t)
			n.startSink(t, s)
			l := n.startLogger(t, n.env(map[string]string{"gcp-project": gcpProject, "close-timeout": "2s", "mode": mode}))
			if err := l.WaitReady(20 * time.Second); err != nil {
				t.Fatalf("not ready: %v; refused %v; stderr: %s", err, s.Refused(), l.Errors())
			}
			WriteLines(t, l.Stdout, Lines("before", 3))
			if _, err := s.Wait(gcpLogName, 3, 10*time.Second); err != nil {
				t.Fatalf("%v; stderr: %s", err, l.Errors())
			}
			// The driver sends one batch at a time: once the next is at
			// the sink, the answer to the first reached the driver.
			WriteLines(t, l.Stdout, []string{"the next batch"})
			if _, err := s.Wait(gcpLogName, 4, 10*time.Second); err != nil {
				t.Fatalf("%v; stderr: %s", err, l.Errors())
			}
			s.Close()
			WriteLines(t, l.Stdout, Lines("after", 5))
			code := l.Wait(t, 30*time.Second)
			st := l.Stats(t)
			arrived := 0
			for _, e := range s.Entries() {
				if e.LogName == gcpLogName {
					arrived++
				}
			}
			delivered, _ := strconv.Atoi(st["lines_delivered"])
			dropped, _ := strconv.Atoi(st["lines_dropped"])
			// The answer to the last batch that arrived may be lost with
			// the sink: that batch is counted dropped, not delivered.
			if code != 1 || delivered < 3 || delivered > arrived || arrived != 4 || delivered+dropped != 9 || st["lines_read"] != "9" {
				t.Fatalf("exit %d, %d lines at the sink, stats %v: want exit 1, 4 at the sink, 3 or 4 of them delivered, the rest of 9 dropped; stderr: %s",
					code, arrived, st, l.Errors())
			}
		})
	}
}

// acceptWithin accepts one connection on ln, giving up after d.
func acceptWithin(ln net.Listener, d time.Duration) (net.Conn, error) {
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(d))
	return ln.Accept()
}

// TestGcplogsValidate: --validate gcplogs accepts Docker's options and
// names an unknown one, without network use.
func TestGcplogsValidate(t *testing.T) {
	runValidate(t, "gcplogs", []validateCase{
		{name: "good", opts: map[string]string{"gcp-project": "p", "gcp-log-cmd": "true", "gcp-meta-zone": "z", "gcp-meta-name": "n", "gcp-meta-id": "1", "labels": "a", "env": "B"}},
		// Docker's driver takes the project from the metadata server when
		// gcp-project is not set, so its absence is valid.
		{name: "no project", opts: map[string]string{}},
		{name: "unknown option", opts: map[string]string{"gcp-project": "p", "gcp-bogus": "1"}, names: "gcp-bogus"},
		{name: "tag is not a gcplogs option", opts: map[string]string{"gcp-project": "p", "tag": "x"}, names: "tag"},
		{name: "log-cmd", opts: map[string]string{"gcp-project": "p", "gcp-log-cmd": "maybe"}, names: "gcp-log-cmd"},
		{name: "our option", opts: map[string]string{"gcp-project": "p", "mode": "sometimes"}, names: "mode"},
	})
}

// TestGcplogsNoCredentials: with no Google credentials and no metadata
// server the driver cannot start. The logger still signals ready (the
// container starts), says why on one line per attempt without a stack
// trace, keeps retrying, and exits 0 when the inputs close with nothing
// read.
func TestGcplogsNoCredentials(t *testing.T) {
	for _, tc := range []struct{ name, project, says string }{
		{"with project", "my-project", "could not find default credentials"},
		{"without project", "", "No project was specified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]string{"close-timeout": "2s"}
			if tc.project != "" {
				opts["gcp-project"] = tc.project
			}
			l := StartLogger(t, gcpEnv(t, opts), "gcplogs")
			Eventually(t, 10*time.Second, "two attempts to create the driver on stderr", func() bool {
				return strings.Count(l.Errors(), "gcplogs driver not up") >= 2
			})
			code := waitOrKill(t, l, 15*time.Second)
			stderr := l.Errors()
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Fatalf("stack trace:\n%s", stderr)
			}
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !strings.HasPrefix(line, "dockerlogger: ") {
					t.Fatalf("stderr line without the dockerlogger: prefix (a multi-line error?): %q\n%s", line, stderr)
				}
			}
			if !strings.Contains(stderr, tc.says) {
				t.Fatalf("stderr does not say %q:\n%s", tc.says, stderr)
			}
			if code != 0 {
				t.Fatalf("exit code %d with nothing read; stderr:\n%s", code, stderr)
			}
		})
	}
}

// TestGcplogsNoCredentialsLinesLost: lines read while the driver never
// came up are dropped at close-timeout once the inputs close: the logger
// exits 1, counting them, and does not hang the container's stop.
func TestGcplogsNoCredentialsLinesLost(t *testing.T) {
	l := StartLogger(t, gcpEnv(t, map[string]string{"close-timeout": "2s", "gcp-project": "p"}), "gcplogs")
	WriteLines(t, l.Stdout, Lines("nowhere", 5))
	code := waitOrKill(t, l, 15*time.Second)
	st := l.Stats(t)
	if code != 1 || st["lines_delivered"] != "0" || st["lines_dropped"] != "5" {
		t.Fatalf("exit %d, stats %v: want 1, 0 delivered, 5 dropped", code, st)
	}
}

// gcpEnv is a logger environment with no Google credentials to find.
func gcpEnv(t *testing.T, opts map[string]string) []string {
	home := t.TempDir()
	return Env("gcp0000000001", opts, "HOME="+home, "CLOUDSDK_CONFIG="+filepath.Join(home, "gcloud"))
}
