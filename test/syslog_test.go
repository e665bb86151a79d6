package test

// End-to-end tests of the syslog driver against a real rsyslogd (Debian's
// rsyslog package). Each test starts its own rsyslogd in the foreground
// with a private configuration, work directory and pid file, listening on
// loopback UDP and TCP ports, a unix stream socket (imptcp) and a unix
// datagram socket (imuxsock), and writing every message it receives as one
// JSON object per line, with the fields rsyslog parsed out of it. The
// system's syslog (/dev/log, /var/log) is never touched.
//
// The helpers named sink* here are shared with journald_test.go and
// gelf_test.go.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/rsyslogd"
)

// rsyslog is one private rsyslogd and the inputs it listens on.
type rsyslog struct {
	dir     string
	out     string // the JSON-lines file every message goes to
	udpPort int
	tcpPort int
	tlsPort int    // TCP with TLS (rsyslog-gnutls), certificate in cert.pem; 0: none
	stream  string // unix stream socket (imptcp)
	dgram   string // unix datagram socket (imuxsock)
	d       *rsyslogd.Daemon
}

// syslogRecord is what rsyslog parsed out of one message.
type syslogRecord struct {
	Facility    string `json:"facility"`
	Severity    string `json:"severity"`
	Hostname    string `json:"hostname"`
	ProgramName string `json:"programname"`
	AppName     string `json:"appname"`
	ProcID      string `json:"procid"`
	MsgID       string `json:"msgid"`
	SyslogTag   string `json:"syslogtag"`
	Msg         string `json:"msg"`
	Input       string `json:"input"`
	Raw         string `json:"raw"`
}

// rsyslogJSONOutput is the output of every test's rsyslogd: one ruleset,
// "all", whose only action writes a JSON line per message to out.json.
const rsyslogJSONOutput = `template(name="json" type="list" option.jsonf="on") {
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="programname" name="programname" format="jsonf")
  property(outname="appname" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="syslogtag" name="syslogtag" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
}
ruleset(name="all") {
  action(type="omfile" file="{{dir}}/out.json" template="json" flushOnTXEnd="on" asyncWriting="off")
}
`

// rsyslogConf is the configuration: every input feeds one ruleset whose
// only action writes a JSON line per message. Control characters are kept
// as they came (rsyslog escapes them to #ooo by default), so the file holds
// exactly what the logger sent.
const rsyslogConf = `global(workDirectory="{{dir}}/work" parser.escapeControlCharactersOnReceive="off")
module(load="imudp")
module(load="imtcp")
module(load="imptcp")
module(load="imuxsock" SysSock.Use="off")
` + rsyslogJSONOutput + `input(type="imudp" address="127.0.0.1" port="{{udp}}" ruleset="all")
input(type="imtcp" address="127.0.0.1" port="{{tcp}}" ruleset="all")
input(type="imptcp" path="{{dir}}/stream.sock" unlink="on" ruleset="all")
input(type="imuxsock" socket="{{dir}}/dgram.sock" ruleset="all" ratelimit.interval="0")
`

// rsyslogTLSConf adds a TLS listener (rsyslog-gnutls). It is added only
// where a test uses it: gnutls makes rsyslogd slow to start.
const rsyslogTLSConf = `global(defaultNetstreamDriverCAFile="{{dir}}/cert.pem"
  defaultNetstreamDriverCertFile="{{dir}}/cert.pem" defaultNetstreamDriverKeyFile="{{dir}}/key.pem")
input(type="imtcp" address="127.0.0.1" port="{{tls}}" ruleset="all" name="imtcp-tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`

// newRsyslogd is a private rsyslogd (internal/rsyslogd) in a directory of
// the test's, not configured or started yet, whose messages go to
// out.json; it is stopped at the test's end.
func newRsyslogd(t *testing.T) *rsyslog {
	t.Helper()
	needCmd(t, "rsyslogd")
	d, err := rsyslogd.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &rsyslog{d: d, dir: d.Dir, out: d.Path("out.json")}
	t.Cleanup(r.stop)
	return r
}

// newRsyslog prepares (but does not start) an rsyslogd listening on
// tcpPort, or on a free TCP port if tcpPort is 0.
func newRsyslog(t *testing.T, tcpPort int, withTLS bool) *rsyslog {
	t.Helper()
	r := newRsyslogd(t)
	if tcpPort == 0 {
		tcpPort = sinkFreePort(t, "tcp")
	}
	r.udpPort, r.tcpPort = sinkFreePort(t, "udp"), tcpPort
	r.stream, r.dgram = filepath.Join(r.dir, "stream.sock"), filepath.Join(r.dir, "dgram.sock")
	if withTLS {
		sinkSelfSignedCert(t, filepath.Join(r.dir, "cert.pem"), filepath.Join(r.dir, "key.pem"))
		r.tlsPort = sinkFreePort(t, "tcp")
	}
	return r
}

// startRsyslog starts a private rsyslogd and waits until every input
// listens.
func startRsyslog(t *testing.T, withTLS bool) *rsyslog {
	t.Helper()
	r := newRsyslog(t, 0, withTLS)
	r.start(t)
	return r
}

func (r *rsyslog) start(t *testing.T) {
	t.Helper()
	conf := rsyslogConf
	if r.tlsPort != 0 {
		conf += rsyslogTLSConf
	}
	r.configure(t, strings.NewReplacer("{{udp}}", strconv.Itoa(r.udpPort),
		"{{tcp}}", strconv.Itoa(r.tcpPort), "{{tls}}", strconv.Itoa(r.tlsPort)).Replace(conf))
	r.launch(t, "rsyslogd to listen on every input", func() bool {
		return sinkCanDial("tcp", fmt.Sprintf("127.0.0.1:%d", r.tcpPort)) &&
			(r.tlsPort == 0 || sinkCanDial("tcp", fmt.Sprintf("127.0.0.1:%d", r.tlsPort))) &&
			sinkCanDial("unix", r.stream) && sinkCanDial("unixgram", r.dgram) && sinkUDPBound(r.udpPort)
	})
}

// configure writes rsyslogd's configuration ({{dir}} is its directory).
func (r *rsyslog) configure(t *testing.T, conf string) {
	t.Helper()
	if err := r.d.Configure(conf); err != nil {
		t.Fatal(err)
	}
}

// launch starts rsyslogd and waits until listening holds; stop, which
// also runs at the test's end, ends it. It may be launched again after a
// stop: its output is kept across runs.
func (r *rsyslog) launch(t *testing.T, what string, listening func() bool) {
	t.Helper()
	if err := r.d.Start(listening); err != nil {
		t.Fatalf("waiting for %s: %v; output: %s", what, err, r.d.Output())
	}
}

// stop sends SIGTERM, as a service manager does, and waits for the exit
// (rsyslogd saves its queue first), killing it after 30 s.
func (r *rsyslog) stop() { r.d.Stop() }

// sinkCanDial reports whether something accepts a connection at addr.
func sinkCanDial(network, addr string) bool { return rsyslogd.CanDial(network, addr) }

// sinkUDPBound reports whether a socket is bound to 127.0.0.1:port, from
// /proc/net/udp: UDP has no handshake to probe.
func sinkUDPBound(port int) bool { return rsyslogd.UDPBound(port) }

// sinkFreePort returns a loopback port that was free a moment ago.
func sinkFreePort(t testing.TB, network string) int {
	t.Helper()
	port, err := rsyslogd.FreePort(network)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// records reads every message rsyslog has written so far.
func (r *rsyslog) records(t testing.TB) []syslogRecord {
	t.Helper()
	lines, err := r.d.Lines(filepath.Base(r.out))
	if err != nil {
		t.Fatal(err)
	}
	var recs []syslogRecord
	for _, line := range lines {
		var rec syslogRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			break // read again at the next poll, as a line being written
		}
		recs = append(recs, rec)
	}
	return recs
}

// waitRecords polls until rsyslog has written n messages, and fails if it
// writes more.
func (r *rsyslog) waitRecords(t testing.TB, n int) []syslogRecord {
	t.Helper()
	var recs []syslogRecord
	Eventually(t, 30*time.Second, fmt.Sprintf("%d messages in rsyslog's file", n), func() bool {
		recs = r.records(t)
		return len(recs) >= n
	})
	if len(recs) != n {
		t.Fatalf("rsyslog got %d messages, want %d", len(recs), n)
	}
	return recs
}

// syslogTagRE is an rfc3164 TAG as Docker's driver sends it: "TAG[PID]:".
var syslogTagRE = regexp.MustCompile(`^[^\[\]]+\[[1-9][0-9]*\]:$`)

// syslogCase is one way of reaching rsyslog.
type syslogCase struct {
	name     string
	address  func(r *rsyslog) string
	input    string // rsyslog's inputname for that transport
	format   string // syslog-format ("" is Docker's default)
	facility string // syslog-facility ("" is Docker's default, daemon)
	tag      string // the tag log-opt ("" is Docker's default, {{.ID}})
	lines    int    // per stream
}

// Container metadata every syslog test logs with.
const (
	syslogID   = "5e1f0c0ffee1234567890abcdef5e1f0c0ffee1234567890abcdef12345678"
	syslogName = "web-1"
)

// TestSyslogRsyslog sends stdout and stderr through every transport and
// format Docker's syslog driver has, and checks what rsyslog parsed: each
// non-empty line exactly once, in order per stream; stdout at severity
// info and stderr at err (Docker's driver calls Info and Err); the
// facility from syslog-facility; the tag from the tag log-opt as the
// program name (rfc3164) or APP-NAME and MSGID (rfc5424); and the
// logger's exit counters.
func TestSyslogRsyslog(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cases := []syslogCase{
		{name: "udp-rfc3164", address: func(r *rsyslog) string { return fmt.Sprintf("udp://127.0.0.1:%d", r.udpPort) },
			input: "imudp", format: "rfc3164", facility: "local3", tag: "{{.Name}}", lines: 50},
		{name: "udp-rfc5424", address: func(r *rsyslog) string { return fmt.Sprintf("udp://127.0.0.1:%d", r.udpPort) },
			input: "imudp", format: "rfc5424", facility: "local0", tag: "{{.Name}}", lines: 50},
		{name: "tcp-rfc5424", address: func(r *rsyslog) string { return fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort) },
			input: "imtcp", format: "rfc5424", facility: "local7", tag: "{{.Name}}", lines: 2000},
		{name: "tcp-rfc3164", address: func(r *rsyslog) string { return fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort) },
			input: "imtcp", format: "rfc3164", facility: "19", tag: "{{.Name}}", lines: 2000},
		// rfc5424 over TLS is framed with octet counts (RFC 5425).
		{name: "tcp+tls-rfc5424", address: func(r *rsyslog) string { return fmt.Sprintf("tcp+tls://127.0.0.1:%d", r.tlsPort) },
			input: "imtcp-tls", format: "rfc5424", facility: "local5", tag: "{{.Name}}", lines: 2000},
		{name: "unix-rfc5424micro", address: func(r *rsyslog) string { return "unix://" + r.stream },
			input: "imptcp", format: "rfc5424micro", facility: "user", tag: "{{.Name}}", lines: 2000},
		// Docker's default format (no hostname) and facility (daemon) and
		// tag (the first 12 characters of the id), to a local datagram
		// socket as a host's syslog daemon has.
		{name: "unixgram-default", address: func(r *rsyslog) string { return "unixgram://" + r.dgram },
			input: "imuxsock", lines: 2000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := startRsyslog(t, strings.HasPrefix(c.name, "tcp+tls"))
			opts := map[string]string{"syslog-address": c.address(r)}
			if c.format != "" {
				opts["syslog-format"] = c.format
			}
			if c.facility != "" {
				opts["syslog-facility"] = c.facility
			}
			if c.tag != "" {
				opts["tag"] = c.tag
			}
			if strings.HasPrefix(c.name, "tcp+tls") {
				opts["syslog-tls-ca-cert"] = filepath.Join(r.dir, "cert.pem")
			}
			l := StartLogger(t, Env(syslogID, opts, "DOCKERLOG_CONTAINERNAME=/"+syslogName), "syslog")

			// A few lines users have: non-ASCII, a tab, runs of spaces, and
			// empty lines, which Docker's syslog driver does not send.
			special := []string{"héllo wörld 日本語 ✓", "", "tab\there", "  two leading and trailing  ", ""}
			out := append(append([]string{}, special...), Lines("stdout line", c.lines-len(special))...)
			errs := Lines("stderr line", c.lines)
			WriteLines(t, l.Stdout, out)
			WriteLines(t, l.Stderr, errs)
			wantOut := sinkNonEmpty(out)

			recs := r.waitRecords(t, len(wantOut)+len(errs))
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
			}
			sinkExitStats(t, l, len(out)+len(errs))

			wantFacility := map[string]string{"": "daemon", "19": "local3"}[c.facility]
			if wantFacility == "" {
				wantFacility = c.facility
			}
			wantTag := syslogName
			if c.tag == "" {
				wantTag = syslogID[:12]
			}
			var gotOut, gotErr []string
			for i, rec := range recs {
				if rec.Input != c.input {
					t.Fatalf("message %d came in through %q, want %q: %+v", i, rec.Input, c.input, rec)
				}
				if rec.Facility != wantFacility {
					t.Fatalf("message %d: facility %q, want %q: %+v", i, rec.Facility, wantFacility, rec)
				}
				if rec.ProgramName != wantTag || rec.AppName != wantTag {
					t.Fatalf("message %d: programname %q app-name %q, want the tag %q: %+v", i, rec.ProgramName, rec.AppName, wantTag, rec)
				}
				msg := rec.Msg
				if strings.HasPrefix(c.format, "rfc5424") {
					// Docker puts the tag in APP-NAME and MSGID and the
					// sending process's pid (here the worker's) in PROCID,
					// and sends the host name.
					if pid, err := strconv.Atoi(rec.ProcID); rec.MsgID != wantTag || rec.Hostname != hostname || err != nil || pid <= 0 {
						t.Fatalf("message %d: msgid %q hostname %q procid %q, want %q, %q and a pid: %+v",
							i, rec.MsgID, rec.Hostname, rec.ProcID, wantTag, hostname, rec)
					}
				} else {
					// "TAG[PID]: MSG": rsyslog keeps the space after the
					// colon in %msg%.
					if !syslogTagRE.MatchString(rec.SyslogTag) || rec.ProgramName != wantTag {
						t.Fatalf("message %d: syslogtag %q, want %s[PID]: %+v", i, rec.SyslogTag, wantTag, rec)
					}
					if !strings.HasPrefix(msg, " ") {
						t.Fatalf("message %d: rfc3164 msg %q does not start with the space after the tag", i, msg)
					}
					msg = msg[1:]
					if c.format == "rfc3164" && rec.Hostname != hostname {
						t.Fatalf("message %d: hostname %q, want %q: %+v", i, rec.Hostname, hostname, rec)
					}
				}
				switch rec.Severity {
				case "info":
					gotOut = append(gotOut, msg)
				case "err":
					gotErr = append(gotErr, msg)
				default:
					t.Fatalf("message %d: severity %q, want info (stdout) or err (stderr): %+v", i, rec.Severity, rec)
				}
			}
			sinkSameLines(t, "stdout (severity info)", gotOut, wantOut)
			sinkSameLines(t, "stderr (severity err)", gotErr, errs)
		})
	}
}

// TestSyslogSinkDownAtStart starts the logger while nothing listens on the
// syslog TCP port: it must still signal ready (a sink that is down must not
// stop the container from starting), keep the lines written meanwhile, and
// deliver every one of them, in order, once rsyslog comes up on that port.
func TestSyslogSinkDownAtStart(t *testing.T) {
	r := newRsyslog(t, sinkFreePort(t, "tcp"), false)
	opts := map[string]string{
		"syslog-address":  fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort),
		"syslog-format":   "rfc5424",
		"syslog-facility": "local3",
		"tag":             "{{.Name}}",
	}
	l := StartLogger(t, Env(syslogID, opts, "DOCKERLOG_CONTAINERNAME=/"+syslogName), "syslog")

	out, errs := Lines("written while down out", 500), Lines("written while down err", 500)
	// In blocking mode the logger stops reading while the driver is not up,
	// so these writes may block until rsyslog is there.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		WriteLines(t, l.Stdout, out)
		WriteLines(t, l.Stderr, errs)
	}()
	Eventually(t, 15*time.Second, "the logger to report that the syslog driver is not up", func() bool {
		return strings.Contains(l.Errors(), "syslog driver not up")
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
	var gotOut, gotErr []string
	for i, rec := range recs {
		if rec.Facility != "local3" || rec.AppName != syslogName {
			t.Fatalf("message %d: facility %q app-name %q, want local3 and %q", i, rec.Facility, rec.AppName, syslogName)
		}
		switch rec.Severity {
		case "info":
			gotOut = append(gotOut, rec.Msg)
		case "err":
			gotErr = append(gotErr, rec.Msg)
		default:
			t.Fatalf("message %d: severity %q", i, rec.Severity)
		}
	}
	sinkSameLines(t, "stdout (severity info)", gotOut, out)
	sinkSameLines(t, "stderr (severity err)", gotErr, errs)
}

// sinkNonEmpty drops empty lines: what Docker's syslog and gelf drivers send.
func sinkNonEmpty(lines []string) []string {
	var ls []string
	for _, l := range lines {
		if l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// sinkSameLines fails with the first difference between got and want.
func sinkSameLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Fatalf("%s: line %d is %q, want %q", what, i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got %d lines, want %d", what, len(got), len(want))
	}
}

// sinkExitStats checks the exit counters of a logger that read n lines
// and had to deliver every one.
func sinkExitStats(t testing.TB, l *Logger, n int) {
	t.Helper()
	s := l.Stats(t)
	want := strconv.Itoa(n)
	if s["lines_read"] != want || s["lines_delivered"] != want || s["lines_dropped"] != "0" {
		t.Fatalf("exit stats lines_read=%s lines_delivered=%s lines_dropped=%s, want %s, %s, 0; stderr: %s",
			s["lines_read"], s["lines_delivered"], s["lines_dropped"], want, want, l.Errors())
	}
}

// sinkSelfSignedCert writes a self-signed certificate for 127.0.0.1 and
// its key, for rsyslog's TLS listener and the logger's syslog-tls-ca-cert.
func sinkSelfSignedCert(t testing.TB, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSyslogShortContainerIDDefaultTag logs with Docker's default tag,
// {{.ID}} (the first 12 characters of the id), and a container id shorter
// than that, as containerd's CONTAINER_ID may be ("web"): the interface contract says
// any length. Every line must arrive tagged with the whole id.
func TestSyslogShortContainerIDDefaultTag(t *testing.T) {
	r := startRsyslog(t, false)
	opts := map[string]string{"syslog-address": fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort), "syslog-format": "rfc5424"}
	l := StartLogger(t, Env("web", opts), "syslog")
	out := Lines("short id out", 20)
	WriteLines(t, l.Stdout, out)
	recs := r.waitRecords(t, len(out))
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
	}
	sinkExitStats(t, l, len(out))
	var got []string
	for i, rec := range recs {
		if rec.AppName != "web" {
			t.Fatalf("message %d: app-name %q, want the whole id %q", i, rec.AppName, "web")
		}
		got = append(got, rec.Msg)
	}
	sinkSameLines(t, "stdout", got, out)
}
