package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/joyent/dockerlogger/internal/rsyslogd"
)

// rsyslogConf is a private rsyslogd's configuration: rsyslogd.Lossless
// (rsyslog itself loses nothing it has read), one listener on loopback
// ({{input}}: imrelp, or imtcp for the plain-TCP variant) whose messages
// go, one line each, "SEVERITY MSG", to one file. The file action writes
// synchronously, flushed at the end of every batch, so what is in the file
// is what rsyslog has.
const rsyslogConf = rsyslogd.Lossless + `template(name="line" type="string" string="%syslogseverity-text% %msg%\n")
ruleset(name="all") {
  action(type="omfile" file="{{dir}}/out.log" template="line" flushOnTXEnd="on" asyncWriting="off")
}
{{input}}
`

// rsyslogTCP is the listener of the plain-TCP variant.
const rsyslogTCP = `module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{{port}}" ruleset="all" ratelimit.interval="0")`

// rsyslogSink is one private rsyslogd on a loopback TCP port, speaking
// RELP (imrelp, Debian's rsyslog-relp) or plain TCP syslog, started,
// stopped, stalled (SIGSTOP) and continued by the fault.
type rsyslogSink struct {
	d    *rsyslogd.Daemon
	port int
	relp bool // imrelp; false: imtcp
}

// newRsyslogSink prepares an rsyslogd on a port that was free a moment
// ago, in dir, without starting it: with RELP, or plain TCP syslog.
func newRsyslogSink(dir string, relp bool) (*rsyslogSink, error) {
	if err := haveRsyslog(relp); err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	d, err := rsyslogd.New(dir)
	if err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	port, err := rsyslogd.FreePort("tcp")
	if err != nil {
		return nil, fmt.Errorf("rsyslog sink: reserve a port: %w", err)
	}
	input := rsyslogTCP
	if relp {
		input = rsyslogd.RELPInput
	}
	conf := strings.NewReplacer("{{input}}", input).Replace(rsyslogConf)
	if err := d.Configure(strings.ReplaceAll(conf, "{{port}}", strconv.Itoa(port))); err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	return &rsyslogSink{d: d, port: port, relp: relp}, nil
}

// haveRsyslog says what is missing to run rsyslogd (with imrelp).
func haveRsyslog(relp bool) error {
	if relp {
		return rsyslogd.Installed("imrelp")
	}
	return rsyslogd.Installed()
}

func (r *rsyslogSink) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// Scheme is the syslog-address scheme of the transport.
func (r *rsyslogSink) Scheme() string {
	if r.relp {
		return "relp"
	}
	return "tcp"
}

func (r *rsyslogSink) URL() string { return r.Scheme() + "://" + r.Addr() }

// Start starts rsyslogd (again) on the same port and waits until it
// accepts connections.
func (r *rsyslogSink) Start() error {
	if err := r.d.Start(func() bool { return rsyslogd.CanDial("tcp", r.Addr()) }); err != nil {
		return fmt.Errorf("rsyslog sink: %w", err)
	}
	return nil
}

// Stop shuts rsyslogd down (SIGTERM) and waits for it to exit: the server
// goes down, its port closes, and its connections are closed.
func (r *rsyslogSink) Stop() { r.d.Stop() }

// Stall stops (SIGSTOP) or continues (SIGCONT) rsyslogd: a server that
// hangs, with its connections and listener open.
func (r *rsyslogSink) Stall(on bool) { r.d.Stall(on) }

func (r *rsyslogSink) Close() { r.d.Stop() }

// Messages waits up to d until rsyslog's file holds at least atLeast
// messages and returns them (the msg part). A message whose severity is
// not its stream's (info for stdout, err for stderr, as Docker's driver
// sends them) is an error: rsyslog got something else than was written.
func (r *rsyslogSink) Messages(atLeast int, d time.Duration) ([]string, error) {
	var msgs []string
	var rerr error
	waitFor(d, "", func() bool {
		msgs, rerr = r.read()
		return rerr != nil || len(msgs) >= atLeast
	})
	return msgs, rerr
}

// read returns every complete line of rsyslog's file, as its msg part.
func (r *rsyslogSink) read() ([]string, error) {
	lines, err := r.d.Lines("out.log")
	if err != nil {
		return nil, fmt.Errorf("rsyslog sink: %w", err)
	}
	var msgs []string
	for _, line := range lines {
		sev, msg, _ := strings.Cut(string(line), " ")
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
	return msgs, nil
}

// debug is rsyslogd's own output over all its starts, for FAULTS_DEBUG.
func (r *rsyslogSink) debug() string { return r.d.Output() }
