package test

// End-to-end tests of TLS: the syslog driver's tcp+tls transport with a CA,
// a client certificate and key (syslog-tls-ca-cert, -cert, -key) against a
// private rsyslogd (Debian's rsyslog with rsyslog-gnutls) in x509/name
// mode, which checks our client certificate as we check its server
// certificate; and the fluentd driver's tls:// address against the in-repo
// Forward protocol sink (internal/sink/forward) listening with crypto/tls.
// Every certificate is made by the test with crypto/x509. A certificate the
// logger must not trust (another CA, expired) is refused with an error
// naming the problem, and nothing is sent, in plain text or otherwise.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string // its certificate, PEM
}

var tlsSerial = time.Now().UnixNano()

func tlsKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func tlsWritePEM(t testing.TB, path, typ string, der []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
}

// newTestCA makes a CA and writes its certificate to dir/name.pem.
func newTestCA(t testing.TB, dir, name string) *testCA {
	t.Helper()
	key := tlsKey(t)
	tlsSerial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(tlsSerial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".pem")
	tlsWritePEM(t, p, "CERTIFICATE", der, 0o644)
	return &testCA{cert: cert, key: key, path: p}
}

// issue makes a leaf certificate for cn (server: for 127.0.0.1 and
// localhost; client: for the DNS name cn) valid from notBefore to
// notAfter, and writes dir/name.pem and dir/name-key.pem.
func (ca *testCA) issue(t testing.TB, dir, name, cn string, server bool, notBefore, notAfter time.Time) (certPath, keyPath string) {
	t.Helper()
	key := tlsKey(t)
	tlsSerial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(tlsSerial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     []string{cn},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = append(tmpl.DNSNames, "localhost")
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	tlsWritePEM(t, certPath, "CERTIFICATE", der, 0o644)
	tlsWritePEM(t, keyPath, "PRIVATE KEY", kder, 0o600)
	return certPath, keyPath
}

// rsyslogX509Conf is one imtcp TLS input in x509/name mode: rsyslog
// verifies the client's certificate against the CA and accepts only the
// peer name client.test. Every message goes to out.json as in
// syslog_test.go.
const rsyslogX509Conf = `global(workDirectory="{{dir}}/work"
  defaultNetstreamDriverCAFile="{{ca}}" defaultNetstreamDriverCertFile="{{cert}}" defaultNetstreamDriverKeyFile="{{key}}")
module(load="imtcp")
template(name="json" type="list" option.jsonf="on") {
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="appname" name="app-name" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
}
ruleset(name="all") {
  action(type="omfile" file="{{dir}}/out.json" template="json" flushOnTXEnd="on" asyncWriting="off")
}
input(type="imtcp" address="127.0.0.1" port="{{port}}" ruleset="all" name="imtcp-x509"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/name" permittedPeer=["client.test"])
`

// startRsyslogX509 starts a private rsyslogd whose TLS listener presents
// serverCert (with serverKey) and trusts clientCA for client
// certificates.
func startRsyslogX509(t *testing.T, clientCA, serverCert, serverKey string) *rsyslog {
	t.Helper()
	needCmd(t, "rsyslogd")
	need(t, fileExists("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so") || fileExists("/usr/lib/rsyslog/lmnsd_gtls.so") ||
		globAny("/usr/lib/*/rsyslog/lmnsd_gtls.so"), "rsyslog-gnutls is not installed")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &rsyslog{dir: dir, out: filepath.Join(dir, "out.json"), tlsPort: sinkFreePort(t, "tcp")}
	conf := strings.NewReplacer("{{dir}}", dir, "{{ca}}", clientCA, "{{cert}}", serverCert, "{{key}}", serverKey,
		"{{port}}", strconv.Itoa(r.tlsPort)).Replace(rsyslogX509Conf)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r.stderr = &syncBuffer{}
	r.done = make(chan struct{})
	r.cmd = exec.Command("rsyslogd", "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	Eventually(t, 15*time.Second, "rsyslogd to listen with TLS", func() bool {
		select {
		case <-r.done:
			t.Fatalf("rsyslogd exited: %v; output: %s", r.cmd.ProcessState, r.stderr.String())
		default:
		}
		return sinkCanDial("tcp", fmt.Sprintf("127.0.0.1:%d", r.tlsPort))
	})
	return r
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func globAny(pattern string) bool { m, _ := filepath.Glob(pattern); return len(m) > 0 }

// TestSyslogTLSClientCert: with syslog-tls-ca-cert, -cert and -key every
// line arrives through rsyslog's x509/name listener, which only accepts a
// client certificate from its CA naming client.test: the logger's client
// certificate was sent and checked.
func TestSyslogTLSClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	now := time.Now()
	srvCert, srvKey := ca.issue(t, dir, "server", "localhost", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	cliCert, cliKey := ca.issue(t, dir, "client", "client.test", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	r := startRsyslogX509(t, ca.path, srvCert, srvKey)

	opts := map[string]string{
		"syslog-address":     fmt.Sprintf("tcp+tls://127.0.0.1:%d", r.tlsPort),
		"syslog-format":      "rfc5424",
		"syslog-tls-ca-cert": ca.path,
		"syslog-tls-cert":    cliCert,
		"syslog-tls-key":     cliKey,
		"tag":                "tlsapp",
	}
	l := StartLogger(t, Env(syslogID, opts), "syslog")
	out, errs := Lines("tls out", 200), Lines("tls err", 200)
	WriteLines(t, l.Stdout, out)
	WriteLines(t, l.Stderr, errs)
	recs := r.waitRecords(t, len(out)+len(errs))
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
	}
	sinkExitStats(t, l, len(out)+len(errs))
	var gotOut, gotErr []string
	for i, rec := range recs {
		if rec.Input != "imtcp-x509" || rec.AppName != "tlsapp" {
			t.Fatalf("message %d: input %q app-name %q: %+v", i, rec.Input, rec.AppName, rec)
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
	sinkSameLines(t, "stdout", gotOut, out)
	sinkSameLines(t, "stderr", gotErr, errs)
}

// TestSyslogTLSRefused: a server certificate the logger must not trust —
// signed by another CA, or expired — is refused. The logger still starts
// (a sink that fails must not stop the container), says on stderr which
// certificate problem it met, never falls back to plain text (rsyslog's
// file stays empty), and at exit counts the lines it could not deliver
// and exits 1.
func TestSyslogTLSRefused(t *testing.T) {
	cases := []struct {
		name  string
		make  func(t *testing.T, dir string, ca *testCA) (cert, key string)
		error string // what stderr must say
	}{
		{"other CA", func(t *testing.T, dir string, ca *testCA) (string, string) {
			other := newTestCA(t, dir, "other-ca")
			now := time.Now()
			return other.issue(t, dir, "server", "localhost", true, now.Add(-time.Hour), now.Add(24*time.Hour))
		}, "certificate signed by unknown authority"},
		{"expired", func(t *testing.T, dir string, ca *testCA) (string, string) {
			now := time.Now()
			return ca.issue(t, dir, "server", "localhost", true, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
		}, "certificate has expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ca := newTestCA(t, dir, "ca")
			srvCert, srvKey := c.make(t, dir, ca)
			now := time.Now()
			cliCert, cliKey := ca.issue(t, dir, "client", "client.test", false, now.Add(-time.Hour), now.Add(24*time.Hour))
			r := startRsyslogX509(t, ca.path, srvCert, srvKey)
			opts := map[string]string{
				"syslog-address":     fmt.Sprintf("tcp+tls://127.0.0.1:%d", r.tlsPort),
				"syslog-format":      "rfc5424",
				"syslog-tls-ca-cert": ca.path,
				"syslog-tls-cert":    cliCert,
				"syslog-tls-key":     cliKey,
				"close-timeout":      "1s",
			}
			l := StartLogger(t, Env(syslogID, opts), "syslog")
			lines := Lines("must not arrive", 5)
			WriteLines(t, l.Stdout, lines)
			Eventually(t, 15*time.Second, "the certificate error on the logger's stderr", func() bool {
				return strings.Contains(l.Errors(), c.error)
			})
			code := l.Wait(t, 30*time.Second)
			stderr := l.Errors()
			if code != 1 {
				t.Errorf("exit code %d, want 1 (lines not delivered); stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, "syslog driver not up") {
				t.Errorf("stderr does not say the driver is not up: %s", stderr)
			}
			noPanic(t, "stderr", stderr)
			st := l.Stats(t)
			if st["lines_delivered"] != "0" || st["lines_read"] != "5" || st["lines_dropped"] != "5" {
				t.Errorf("stats %v: want 5 read, 0 delivered, 5 dropped", st)
			}
			// rsyslog got nothing: its file does not even exist.
			if b, err := os.ReadFile(r.out); err == nil || len(b) > 0 {
				t.Errorf("rsyslog wrote %q (err %v), want nothing", b, err)
			}
		})
	}
}

// startForwardTLS starts the Forward sink with TLS, presenting cert.
func startForwardTLS(t *testing.T, certPath, keyPath string) *forward.Server {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := forward.ListenTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestFluentdTLS: fluentd-address tls://host:port. Docker's fluentd driver
// has no CA option (only fluentd-address): it trusts the system's roots,
// which a Go program on Linux takes from SSL_CERT_FILE (or SSL_CERT_DIR)
// when set. With the test CA there, every line arrives over TLS; with a
// CA that did not sign the server's certificate, or with an expired
// certificate, the logger says why on stderr, nothing arrives, and the
// lines are counted as not delivered.
func TestFluentdTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	other := newTestCA(t, dir, "other-ca")
	now := time.Now()
	good, goodKey := ca.issue(t, dir, "server", "localhost", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	old, oldKey := ca.issue(t, dir, "expired", "localhost", true, now.Add(-48*time.Hour), now.Add(-24*time.Hour))

	t.Run("trusted", func(t *testing.T) {
		s := startForwardTLS(t, good, goodKey)
		l := StartLogger(t, Env(fluentdID, map[string]string{"fluentd-address": s.TLSURL()}, "SSL_CERT_FILE="+ca.path), "fluentd")
		out, errs := Lines("tls out", 100), Lines("tls err", 100)
		WriteLines(t, l.Stdout, out)
		WriteLines(t, l.Stderr, errs)
		if code := l.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
		}
		evs := s.Events()
		noProtocolErrors(t, s)
		checkStream(t, evs, "stdout", out)
		checkStream(t, evs, "stderr", errs)
		sinkExitStats(t, l, len(out)+len(errs))
	})
	for _, c := range []struct {
		name, cert, key, roots, error string
	}{
		{"other CA", good, goodKey, other.path, "certificate signed by unknown authority"},
		{"expired", old, oldKey, ca.path, "certificate has expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startForwardTLS(t, c.cert, c.key)
			l := StartLogger(t, Env(fluentdID, map[string]string{"fluentd-address": s.TLSURL(), "close-timeout": "1s"},
				"SSL_CERT_FILE="+c.roots), "fluentd")
			WriteLines(t, l.Stdout, Lines("must not arrive", 5))
			Eventually(t, 15*time.Second, "the certificate error on the logger's stderr", func() bool {
				return strings.Contains(l.Errors(), c.error)
			})
			code := l.Wait(t, 30*time.Second)
			stderr := l.Errors()
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr: %s", code, stderr)
			}
			noPanic(t, "stderr", stderr)
			if st := l.Stats(t); st["lines_delivered"] != "0" || st["lines_dropped"] != "5" {
				t.Errorf("stats %v: want 0 delivered, 5 dropped", st)
			}
			if n := len(s.Events()); n != 0 {
				t.Errorf("the sink got %d events over a refused connection", n)
			}
		})
	}
}
