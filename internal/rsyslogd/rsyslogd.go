// Package rsyslogd runs private rsyslogds (Debian's rsyslog) for the
// programs that test the logger from outside (test/, faults/): each in
// the foreground, with its own configuration, work directory and pid file
// in a directory of its own, started, stopped as a service manager stops
// it (SIGTERM), stalled (SIGSTOP) and started again on the same ports. The
// system's syslog (/dev/log, /var/log) is never touched. It also holds the
// configuration both use for a server that loses nothing it has read, the
// probes that tell when an rsyslogd listens, and the reading of the file
// it writes.
//
// What rsyslog writes, and how a caller checks it, stays with the caller:
// the configuration's inputs, templates and actions are the caller's.
//
// It must never import dockerlogger's own packages: like any syslog
// server, it sees the logger only through the wire.
package rsyslogd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
)

// Lossless is the start of a configuration under which rsyslog itself
// loses nothing it has read: control characters kept as they came (rsyslog
// escapes them to #ooo by default), messages up to 64 KiB, a main queue far
// larger than a run (so it never discards or throttles), disk-assisted and
// saved on shutdown (what a SIGTERM finds queued is written to the work
// directory and processed by the next start). imrelp acknowledges a
// message once it is in that queue. {{dir}} is the daemon's directory.
const Lossless = `global(workDirectory="{{dir}}/work" parser.escapeControlCharactersOnReceive="off" maxMessageSize="64k")
main_queue(queue.type="LinkedList" queue.size="1000000" queue.discardMark="1000000"
  queue.filename="mainq" queue.saveOnShutdown="on" queue.maxDiskSpace="1g"
  queue.timeoutShutdown="10000" queue.timeoutEnqueue="10000")
`

// RELPInput is an imrelp listener on 127.0.0.1:{{port}} feeding the
// ruleset "all".
const RELPInput = `module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="{{port}}" ruleset="all")
`

// Module reports whether rsyslog's loadable module name (imrelp,
// lmnsd_gtls, ...) is installed.
func Module(name string) bool {
	m, _ := filepath.Glob("/usr/lib/*/rsyslog/" + name + ".so")
	m2, _ := filepath.Glob("/usr/lib/rsyslog/" + name + ".so")
	return len(m)+len(m2) > 0
}

// Installed says what is missing to run rsyslogd with modules, with the
// Debian package to install; nil when nothing is.
func Installed(modules ...string) error {
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		return fmt.Errorf("%w (Debian package rsyslog)", err)
	}
	pkg := map[string]string{"imrelp": "rsyslog-relp", "lmnsd_gtls": "rsyslog-gnutls"}
	for _, m := range modules {
		if !Module(m) {
			if p := pkg[m]; p != "" {
				return fmt.Errorf("no %s.so (Debian package %s)", m, p)
			}
			return fmt.Errorf("no %s.so", m)
		}
	}
	return nil
}

// Daemon is one private rsyslogd in Dir, configured by Dir/rsyslog.conf.
type Daemon struct {
	Dir string

	out  logproc.Buffer // rsyslogd's stdout and stderr, over all its starts
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// New prepares a daemon in dir (and its work directory), without
// configuring or starting it.
func New(dir string) (*Daemon, error) {
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		return nil, err
	}
	return &Daemon{Dir: dir}, nil
}

// Configure writes the configuration conf, with {{dir}} replaced by the
// daemon's directory; the next Start reads it.
func (d *Daemon) Configure(conf string) error {
	conf = strings.ReplaceAll(conf, "{{dir}}", d.Dir)
	return os.WriteFile(filepath.Join(d.Dir, "rsyslog.conf"), []byte(conf), 0o644)
}

// Path is the file name in the daemon's directory.
func (d *Daemon) Path(name string) string { return filepath.Join(d.Dir, name) }

// Running reports whether rsyslogd was started and has not exited.
func (d *Daemon) Running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Start starts rsyslogd (again, if it was stopped) and waits up to 15 s
// until listening holds: it is another process, with nothing to notify us
// but its sockets. It returns an error if rsyslogd exits first, or never
// listens.
func (d *Daemon) Start(listening func() bool) error {
	if d.Running() {
		return nil
	}
	d.done = make(chan struct{})
	d.cmd = exec.Command("rsyslogd", "-n", "-f", d.Path("rsyslog.conf"), "-i", d.Path("rsyslogd.pid"))
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start rsyslogd: %w", err)
	}
	cmd, done := d.cmd, d.done
	go func() { cmd.Wait(); close(done) }()
	const limit = 15 * time.Second
	end := time.Now().Add(limit)
	for {
		if !d.Running() {
			return fmt.Errorf("rsyslogd exited at start: %v: %s", cmd.ProcessState, logproc.LastLine(d.Output()))
		}
		if listening() {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("rsyslogd not listening after %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts rsyslogd down as its service manager does (SIGTERM; a
// stalled one is continued first, to run to its exit) and waits for it to
// exit, which saves its queue; it is killed after 30 s.
func (d *Daemon) Stop() {
	if !d.Running() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGCONT)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// Stall stops (SIGSTOP) or continues (SIGCONT) rsyslogd: a server that
// hangs, with its connections and listeners open.
func (d *Daemon) Stall(on bool) {
	if !d.Running() {
		return
	}
	if on {
		d.cmd.Process.Signal(syscall.SIGSTOP)
	} else {
		d.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Output is what rsyslogd wrote on its stdout and stderr, over all its
// starts.
func (d *Daemon) Output() string { return string(d.out.Bytes()) }

// Lines returns every complete line of the file name in the daemon's
// directory (the file an omfile action writes), none if it does not exist
// yet. A last line without its newline is still being written, and is
// left for the next read.
func (d *Daemon) Lines(name string) ([][]byte, error) {
	b, err := os.ReadFile(d.Path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	return lines, sc.Err()
}

// CanDial reports whether something accepts a connection at addr.
func CanDial(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// UDPBound reports whether a socket is bound to 127.0.0.1:port, from
// /proc/net/udp: UDP has no handshake to probe.
func UDPBound(port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == want {
			return true
		}
	}
	return false
}

// FreePort returns a loopback port ("tcp" or "udp") that was free a
// moment ago.
func FreePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
