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
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"

	"github.com/joyent/dockerlogger/internal/rsyslogd"
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
	need(t, rsyslogd.Module("lmnsd_gtls"), "rsyslog-gnutls is not installed")
	r := newRsyslogd(t)
	r.tlsPort = sinkFreePort(t, "tcp")
	r.configure(t, strings.NewReplacer("{{ca}}", clientCA, "{{cert}}", serverCert, "{{key}}", serverKey,
		"{{port}}", strconv.Itoa(r.tlsPort)).Replace(rsyslogX509Conf))
	r.launch(t, "rsyslogd to listen with TLS", func() bool {
		return sinkCanDial("tcp", fmt.Sprintf("127.0.0.1:%d", r.tlsPort))
	})
	return r
}

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
// when set; without the fluentd-tls-* options dockerlogger does the same,
// through the TLS bridge it uses for every tls:// address. With the test CA there, every line arrives over TLS; with a
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
		// No acks: what the logger sent before it exited may still be
		// on its way through the sink.
		evs, err := s.Wait(len(out)+len(errs), 10*time.Second)
		if err != nil {
			t.Error(err)
		}
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

// startForwardMTLS starts the Forward sink with TLS, presenting cert and
// requiring a client certificate signed by clientCA, as in_forward does
// with client_cert_auth.
func startForwardMTLS(t *testing.T, certPath, keyPath, clientCA string) *forward.Server {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := forward.CertPoolFromFile(clientCA)
	if err != nil {
		t.Fatal(err)
	}
	cfg := forward.RequireClientCerts(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, pool)
	s, err := forward.ListenTLS("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// noPlaintext fails the test if anything reached the TLS sink as plain
// text: its listener reports such a client as a record that is not a TLS
// handshake.
func noPlaintext(t *testing.T, s *forward.Server) {
	t.Helper()
	for _, err := range s.Errors() {
		if strings.Contains(err.Error(), "does not look like a TLS handshake") {
			t.Errorf("plain text reached the TLS sink: %v", err)
		}
	}
}

// TestFluentdTLSClientCert: with fluentd-tls-ca-cert, fluentd-tls-cert and
// fluentd-tls-key every line arrives, in order per stream and acked, at a
// Forward sink that requires a client certificate from the test CA and
// trusts nothing else — so the logger verified the server with our CA (the
// system roots do not hold it) and presented our client certificate.
// Synchronous and fluentd-async.
func TestFluentdTLSClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	now := time.Now()
	srv, srvKey := ca.issue(t, dir, "server", "localhost", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	cli, cliKey := ca.issue(t, dir, "client", "client.test", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	for _, async := range []string{"false", "true"} {
		t.Run("async="+async, func(t *testing.T) {
			s := startForwardMTLS(t, srv, srvKey, ca.path)
			l := StartLogger(t, Env(fluentdID, map[string]string{
				"fluentd-address": s.TLSURL(), "fluentd-request-ack": "true", "fluentd-async": async,
				"fluentd-tls-ca-cert": ca.path, "fluentd-tls-cert": cli, "fluentd-tls-key": cliKey,
			}), "fluentd")
			out, errs := Lines("mtls out", 150), Lines("mtls err", 150)
			WriteLines(t, l.Stdout, out)
			WriteLines(t, l.Stderr, errs)
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
			}
			evs := s.Events()
			noProtocolErrors(t, s)
			checkStream(t, evs, "stdout", out)
			checkStream(t, evs, "stderr", errs)
			if s.Acks() != len(evs) {
				t.Errorf("%d acks for %d events", s.Acks(), len(evs))
			}
			sinkExitStats(t, l, len(out)+len(errs))
		})
	}
}

// TestFluentdTLSClientCertRefused: what must not be trusted is refused,
// never sent in plain text, and said on the logger's stderr in one line
// naming the address and the reason: a server certificate from another
// CA, an expired one, and, at a sink that requires a client certificate,
// none or one from another CA. The logger still starts, delivers nothing,
// counts the lines as dropped and exits 1.
func TestFluentdTLSClientCertRefused(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	other := newTestCA(t, dir, "other-ca")
	now := time.Now()
	good, goodKey := ca.issue(t, dir, "server", "localhost", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	foreign, foreignKey := other.issue(t, dir, "foreign-server", "localhost", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	expired, expiredKey := ca.issue(t, dir, "expired", "localhost", true, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	cli, cliKey := ca.issue(t, dir, "client", "client.test", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	otherCli, otherCliKey := other.issue(t, dir, "other-client", "client.test", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	for _, c := range []struct {
		name, cert, key string
		clientCert      []string // cert, key
		error           string   // what the logger's stderr must say
		sinkError       string   // why the sink closed the connection, if it was the one to refuse
	}{
		{"server from another CA", foreign, foreignKey, []string{cli, cliKey},
			"x509: certificate signed by unknown authority", ""},
		{"server certificate expired", expired, expiredKey, []string{cli, cliKey},
			"x509: certificate has expired", ""},
		{"no client certificate", good, goodKey, nil,
			"the server refused the session (it wants a client certificate: set fluentd-tls-cert and fluentd-tls-key): remote error: tls: certificate required",
			"client didn't provide a certificate"},
		{"client certificate from another CA", good, goodKey, []string{otherCli, otherCliKey},
			"the server refused our client certificate: remote error: tls: unknown certificate authority",
			"x509: certificate signed by unknown authority"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startForwardMTLS(t, c.cert, c.key, ca.path)
			opts := map[string]string{"fluentd-address": s.TLSURL(), "fluentd-request-ack": "true",
				"fluentd-tls-ca-cert": ca.path, "close-timeout": "1s"}
			if c.clientCert != nil {
				opts["fluentd-tls-cert"], opts["fluentd-tls-key"] = c.clientCert[0], c.clientCert[1]
			}
			l := StartLogger(t, Env(fluentdID, opts), "fluentd")
			WriteLines(t, l.Stdout, Lines("must not arrive", 5))
			want := "fluentd driver not up: fluentd-address " + s.TLSURL() + ": "
			Eventually(t, 15*time.Second, "the refusal on the logger's stderr", func() bool {
				return strings.Contains(l.Errors(), c.error)
			})
			code := l.Wait(t, 30*time.Second)
			stderr := l.Errors()
			var line string
			for _, ln := range strings.Split(stderr, "\n") {
				if strings.Contains(ln, c.error) {
					line = ln
					break
				}
			}
			if !strings.Contains(line, want) {
				t.Errorf("error line %q does not say %q", line, want)
			}
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr: %s", code, stderr)
			}
			noPanic(t, "stderr", stderr)
			if st := l.Stats(t); st["lines_read"] != "5" || st["lines_delivered"] != "0" || st["lines_dropped"] != "5" {
				t.Errorf("stats %v: want 5 read, 0 delivered, 5 dropped", st)
			}
			if n := len(s.Events()); n != 0 {
				t.Errorf("the sink took %d events over a refused connection", n)
			}
			noPlaintext(t, s)
			if c.sinkError != "" {
				found := false
				for _, err := range s.Errors() {
					found = found || strings.Contains(err.Error(), c.sinkError)
				}
				if !found {
					t.Errorf("the sink's errors %v do not say %q", s.Errors(), c.sinkError)
				}
			}
		})
	}
}

// TestFluentdTLSValidate: --validate checks the TLS options without the
// network: a certificate without its key (and the reverse), a CA file
// that is missing or holds no certificate, a key that does not match,
// and any of them with an address that is not tls:// exit 2 with one line
// naming the option; a good set exits 0.
func TestFluentdTLSValidate(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	now := time.Now()
	cli, cliKey := ca.issue(t, dir, "client", "client.test", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	_, otherKey := ca.issue(t, dir, "other", "other.test", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const addr = "tls://127.0.0.1:24224"
	for _, c := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"fluentd-address": addr, "fluentd-tls-cert": cli}, "fluentd-tls-cert needs fluentd-tls-key"},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-key": cliKey}, "fluentd-tls-key needs fluentd-tls-cert"},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-ca-cert": filepath.Join(dir, "nope.pem")},
			"fluentd-tls-ca-cert=\"" + filepath.Join(dir, "nope.pem") + "\": open "},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-ca-cert": junk}, "fluentd-tls-ca-cert=\"" + junk + "\": no PEM certificate"},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-cert": cli, "fluentd-tls-key": otherKey},
			"private key does not match public key"},
		{map[string]string{"fluentd-address": "tcp://127.0.0.1:24224", "fluentd-tls-ca-cert": ca.path},
			"fluentd-tls-ca-cert needs a tls:// fluentd-address"},
		{map[string]string{"fluentd-address": "tcp://127.0.0.1:24224", "fluentd-tls-cert": cli, "fluentd-tls-key": cliKey},
			"fluentd-tls-cert needs a tls:// fluentd-address"},
		{map[string]string{"fluentd-address": "tcp://127.0.0.1:24224", "fluentd-tls-skip-verify": "true"},
			"fluentd-tls-skip-verify needs a tls:// fluentd-address"},
	} {
		stdout, stderr, code := RunCLI(t, Env(fluentdID, c.opts), "--validate", "fluentd")
		noPanic(t, "stderr", stderr)
		if code != 2 || strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 and one line saying %q", c.opts, code, stderr, stdout, c.want)
		}
	}
	ok := map[string]string{"fluentd-address": addr, "fluentd-tls-ca-cert": ca.path, "fluentd-tls-cert": cli, "fluentd-tls-key": cliKey}
	if _, stderr, code := RunCLI(t, Env(fluentdID, ok), "--validate", "fluentd"); code != 0 {
		t.Errorf("good TLS options: exit %d: %s", code, stderr)
	}
}

// TestFluentdTLSAsyncRefused: with fluentd-async the driver is created
// without connecting (Docker's behaviour), so a refusal cannot fail the
// creation: each attempt is reported as a driver error naming the
// address and the reason, nothing reaches the sink, in plain text or
// otherwise, the exit (close-timeout, events still queued) is 1, and the
// stats count every line dropped, none delivered.
func TestFluentdTLSAsyncRefused(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	other := newTestCA(t, dir, "other-ca")
	now := time.Now()
	foreign, foreignKey := other.issue(t, dir, "server", "localhost", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	s := startForwardTLS(t, foreign, foreignKey)
	l := StartLogger(t, Env(fluentdID, map[string]string{"fluentd-address": s.TLSURL(), "fluentd-async": "true",
		"fluentd-tls-ca-cert": ca.path, "fluentd-retry-wait": "100ms", "close-timeout": "1s"}), "fluentd")
	WriteLines(t, l.Stdout, Lines("must not arrive", 5))
	want := "driver error: fluentd-address " + s.TLSURL() + ": tls: failed to verify certificate: x509: certificate signed by unknown authority (retrying in "
	Eventually(t, 15*time.Second, "the refusal on the logger's stderr", func() bool {
		return strings.Contains(l.Errors(), want)
	})
	code := l.Wait(t, 30*time.Second)
	stderr := l.Errors()
	if code != 1 {
		t.Errorf("exit code %d, want 1; stderr: %s", code, stderr)
	}
	noPanic(t, "stderr", stderr)
	if n := len(s.Events()); n != 0 {
		t.Errorf("the sink took %d events over a refused connection", n)
	}
	noPlaintext(t, s)
	if st := l.Stats(t); st["lines_delivered"] != "0" || st["lines_dropped"] != "5" || st["lines_dropped_close_timeout"] != "5" {
		t.Errorf("stats %v: want lines_delivered=0, lines_dropped=lines_dropped_close_timeout=5", st)
	}
}
