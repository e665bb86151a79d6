package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/joyent/dockerlogger/internal/logproc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rsyslogConf is a private rsyslogd's configuration: one listener on
// loopback ({{input}}: imrelp, or imtcp for the plain-TCP variant) whose
// messages go, one line each, "SEVERITY MSG", to one file. It is set up so
// that rsyslog itself loses nothing it has read: no rate limit on the
// input, a main queue far larger than a run (so it never discards or
// throttles), disk-assisted and saved on shutdown (what a SIGTERM finds
// queued is written to the work directory and processed by the next
// start), and the file action writes synchronously, flushed at the end of
// every batch, so what is in the file is what rsyslog has. imrelp
// acknowledges a message once it is in that queue.
const rsyslogConf = `global(workDirectory="{{dir}}/work" parser.escapeControlCharactersOnReceive="off" maxMessageSize="64k")
main_queue(queue.type="LinkedList" queue.size="1000000" queue.discardMark="1000000"
  queue.filename="mainq" queue.saveOnShutdown="on" queue.maxDiskSpace="1g"
  queue.timeoutShutdown="10000" queue.timeoutEnqueue="10000")
template(name="line" type="string" string="%syslogseverity-text% %msg%\n")
ruleset(name="all") {
  action(type="omfile" file="{{dir}}/out.log" template="line" flushOnTXEnd="on" asyncWriting="off")
}
{{input}}
`

// The listener of each transport.
const (
	rsyslogRELP = `module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="{{port}}" ruleset="all")`
	rsyslogTCP = `module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{{port}}" ruleset="all" ratelimit.interval="0")`
)

// rsyslogd is one private rsyslogd (Debian's rsyslog) on a loopback TCP
// port, speaking RELP (imrelp, Debian's rsyslog-relp) or plain TCP
// syslog, started, stopped, stopped (SIGSTOP) and continued by the fault.
// The system's syslog is never touched.
type rsyslogd struct {
	dir  string
	port int
	relp bool // imrelp; false: imtcp
	cmd  *exec.Cmd
	out  *logproc.Buffer // rsyslogd's own stdout and stderr
	done chan struct{}
}

// newRsyslogd prepares an rsyslogd on a port that was free a moment ago,
// in dir, without starting it: with RELP, or plain TCP syslog.
func newRsyslogd(dir string, relp bool) (*rsyslogd, error) {
	if err := haveRsyslog(relp); err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("rsyslog sink: reserve a port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	input := rsyslogTCP
	if relp {
		input = rsyslogRELP
	}
	conf := strings.NewReplacer("{{input}}", input).Replace(rsyslogConf)
	conf = strings.NewReplacer("{{dir}}", dir, "{{port}}", strconv.Itoa(port)).Replace(conf)
	if err := os.WriteFile(filepath.Join(dir, "rsyslog.conf"), []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	return &rsyslogd{dir: dir, port: port, relp: relp}, nil
}

// haveRsyslog says what is missing to run rsyslogd (with imrelp).
func haveRsyslog(relp bool) error {
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		return fmt.Errorf("%w (Debian package rsyslog)", err)
	}
	if !relp {
		return nil
	}
	m, _ := filepath.Glob("/usr/lib/*/rsyslog/imrelp.so")
	m2, _ := filepath.Glob("/usr/lib/rsyslog/imrelp.so")
	if len(m)+len(m2) == 0 {
		return errors.New("no imrelp.so (Debian package rsyslog-relp)")
	}
	return nil
}

func (r *rsyslogd) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// Scheme is the syslog-address scheme of the transport.
func (r *rsyslogd) Scheme() string {
	if r.relp {
		return "relp"
	}
	return "tcp"
}

func (r *rsyslogd) URL() string { return r.Scheme() + "://" + r.Addr() }

func (r *rsyslogd) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Start starts rsyslogd (again) on the same port and waits until it
// accepts connections: it is another process, with nothing to notify us
// but its listening socket.
func (r *rsyslogd) Start() error {
	if r.running() {
		return nil
	}
	if r.out == nil {
		r.out = &logproc.Buffer{} // kept across restarts
	}
	r.done = make(chan struct{})
	r.cmd = exec.Command("rsyslogd", "-n", "-f", filepath.Join(r.dir, "rsyslog.conf"), "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("rsyslog sink: start rsyslogd: %w", err)
	}
	cmd, done := r.cmd, r.done
	go func() { cmd.Wait(); close(done) }()
	exited := false
	err := waitFor(15*time.Second, "rsyslogd to listen on "+r.Addr(), func() bool {
		if !r.running() {
			exited = true
			return true
		}
		c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if exited {
		return fmt.Errorf("rsyslog sink: rsyslogd exited at start: %v: %s", r.cmd.ProcessState, logproc.LastLine(string(r.out.Bytes())))
	}
	return err
}

// Stop shuts rsyslogd down as its service manager does (SIGTERM), and
// waits for it to exit: the server goes down, its port closes, and its
// connections are closed.
func (r *rsyslogd) Stop() {
	if !r.running() {
		return
	}
	r.cmd.Process.Signal(syscall.SIGCONT) // a stalled one must run to exit
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

// Stall stops (SIGSTOP) or continues (SIGCONT) rsyslogd: a server that
// hangs, with its connections and listener open.
func (r *rsyslogd) Stall(on bool) {
	if !r.running() {
		return
	}
	if on {
		r.cmd.Process.Signal(syscall.SIGSTOP)
	} else {
		r.cmd.Process.Signal(syscall.SIGCONT)
	}
}

func (r *rsyslogd) Close() { r.Stop() }

// Messages waits up to d until rsyslog's file holds at least atLeast
// messages and returns them (the msg part). A message whose severity is
// not its stream's (info for stdout, err for stderr, as Docker's driver
// sends them) is an error: rsyslog got something else than was written.
func (r *rsyslogd) Messages(atLeast int, d time.Duration) ([]string, error) {
	var msgs []string
	var rerr error
	waitFor(d, "", func() bool {
		msgs, rerr = r.read()
		return rerr != nil || len(msgs) >= atLeast
	})
	return msgs, rerr
}

// read returns every complete line of rsyslog's file, as its msg part.
func (r *rsyslogd) read() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, "out.log"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	// A last line without its newline is still being written.
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var msgs []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		sev, msg, _ := strings.Cut(sc.Text(), " ")
		// Docker's rfc5424 formatter puts a space between the structured
		// data and the message: rsyslog keeps it in msg.
		msg = strings.TrimPrefix(msg, " ")
		if n := seqOf(msg); n >= 0 {
			want := "info"
			if n >= errBase {
				want = "err"
			}
			if sev != want {
				return nil, fmt.Errorf("rsyslog sink: line seq=%d with severity %q, want %q", n, sev, want)
			}
		}
		msgs = append(msgs, msg)
	}
	return msgs, sc.Err()
}

// debug is rsyslogd's own output over all its starts, for FAULTS_DEBUG.
func (r *rsyslogd) debug() string {
	if r.out == nil {
		return ""
	}
	return string(r.out.Bytes())
}
