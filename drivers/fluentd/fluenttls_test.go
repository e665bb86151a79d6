package fluentd

// Tests of fluentd over TLS through the bridge (fluenttls.go) against
// internal/sink/forward listening with crypto/tls: a real TLS server
// speaking the real Forward protocol, here requiring client certificates.
// Certificates are made by the test.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/internal/sink/forward"
)

// certAuthority is a CA made for one test.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func makeCA(t *testing.T, dir, name string) *certAuthority {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := filepath.Join(dir, name+".pem")
	writePEM(t, p, "CERTIFICATE", der)
	return &certAuthority{cert: cert, key: key, path: p}
}

// leaf issues a certificate for 127.0.0.1 (server) or client.test
// (client), valid until notAfter, and writes dir/name.pem and
// dir/name-key.pem.
func (ca *certAuthority) leaf(t *testing.T, dir, name string, server bool, notAfter time.Time) (string, string) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{"client.test"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, k := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, c, "CERTIFICATE", der)
	writePEM(t, k, "PRIVATE KEY", kder)
	return c, k
}

// tlsFixture is a CA with a server and a client certificate.
type tlsFixture struct {
	dir                                string
	ca                                 *certAuthority
	server, serverKey, client, clientK string
}

func newTLSFixture(t *testing.T) *tlsFixture {
	dir := t.TempDir()
	f := &tlsFixture{dir: dir, ca: makeCA(t, dir, "ca")}
	later := time.Now().Add(time.Hour)
	f.server, f.serverKey = f.ca.leaf(t, dir, "server", true, later)
	f.client, f.clientK = f.ca.leaf(t, dir, "client", false, later)
	return f
}

// listenTLS starts the Forward sink presenting cert; with clientCA, it
// requires a client certificate from that CA.
func listenTLS(t *testing.T, cert, key, clientCA string) *forward.Server {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pool, err := forward.CertPoolFromFile(clientCA)
		if err != nil {
			t.Fatal(err)
		}
		cfg = forward.RequireClientCerts(cfg, pool)
	}
	s, err := forward.ListenTLS("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// plaintextSeen reports a sink error that says a client spoke plain
// text to the TLS listener.
func plaintextSeen(s *forward.Server) error {
	for _, err := range s.Errors() {
		if strings.Contains(err.Error(), "does not look like a TLS handshake") {
			return err
		}
	}
	return nil
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling the runtime: no signal exists
	}
}

// TestFluentdTLSClientCert: with a CA, a client certificate and a key,
// every event arrives, acked, at a server that requires a client
// certificate from that CA, in both TLS 1.2 and 1.3; Close closes the
// bridge, its socket and its goroutines.
func TestFluentdTLSClientCert(t *testing.T) {
	f := newTLSFixture(t)
	for _, async := range []string{"false", "true"} {
		t.Run("async="+async, func(t *testing.T) {
			before := runtime.NumGoroutine()
			s := listenTLS(t, f.server, f.serverKey, f.ca.path)
			l, err := newFluentd(logger.Info{ContainerID: "0123456789ab", Config: map[string]string{
				"fluentd-address": s.TLSURL(), "fluentd-request-ack": "true", "fluentd-async": async,
				"fluentd-tls-ca-cert": f.ca.path, "fluentd-tls-cert": f.client, "fluentd-tls-key": f.clientK,
			}})
			if err != nil {
				t.Fatal(err)
			}
			bridge := l.(*fluentdLogger).bridge
			for i := 0; i < 50; i++ {
				if err := l.Log(message("stdout", fmt.Sprint("line ", i), time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			evs := s.Events()
			if len(evs) != 50 || s.Acks() != 50 {
				t.Fatalf("%d events, %d acks, want 50 each; sink errors %v", len(evs), s.Acks(), s.Errors())
			}
			for i, e := range evs {
				if want := fmt.Sprint("line ", i); e.Str("log") != want {
					t.Fatalf("event %d = %q, want %q", i, e.Str("log"), want)
				}
			}
			if errs := s.Errors(); len(errs) > 0 {
				t.Fatalf("sink errors: %v", errs)
			}
			if c, err := net.Dial("unix", bridge.path); err == nil {
				c.Close()
				t.Fatalf("the bridge %s still accepts connections after Close", bridge.path)
			}
			s.Close()
			waitGoroutines(t, before)
		})
	}
}

// TestFluentdTLSRefusedAtCreation: without fluentd-async the first
// session is made while the driver is created, so a server we must not
// trust, or one that refuses our client certificate, fails the creation
// with the address and the reason, and the server sees no record.
func TestFluentdTLSRefusedAtCreation(t *testing.T) {
	f := newTLSFixture(t)
	other := makeCA(t, f.dir, "other")
	otherServer, otherServerKey := other.leaf(t, f.dir, "other-server", true, time.Now().Add(time.Hour))
	otherClient, otherClientKey := other.leaf(t, f.dir, "other-client", false, time.Now().Add(time.Hour))
	expired, expiredKey := f.ca.leaf(t, f.dir, "expired", true, time.Now().Add(-time.Hour))
	for _, tc := range []struct {
		name                 string
		cert, key, clientCA  string
		tlsMax               uint16
		opts                 map[string]string
		want                 string
		serverWantsClientErr string
	}{
		{name: "unknown authority", cert: otherServer, key: otherServerKey,
			opts: map[string]string{"fluentd-tls-ca-cert": f.ca.path},
			want: "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{name: "expired", cert: expired, key: expiredKey,
			opts: map[string]string{"fluentd-tls-ca-cert": f.ca.path},
			want: "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"},
		{name: "no client cert", cert: f.server, key: f.serverKey, clientCA: f.ca.path,
			opts: map[string]string{"fluentd-tls-ca-cert": f.ca.path},
			want: "the server refused the session (it wants a client certificate: set fluentd-tls-cert and fluentd-tls-key): remote error: tls: certificate required"},
		{name: "client cert of another CA", cert: f.server, key: f.serverKey, clientCA: f.ca.path,
			opts: map[string]string{"fluentd-tls-ca-cert": f.ca.path, "fluentd-tls-cert": otherClient, "fluentd-tls-key": otherClientKey},
			want: "the server refused our client certificate: remote error: tls: unknown certificate authority"},
		{name: "client cert of another CA, TLS 1.2", cert: f.server, key: f.serverKey, clientCA: f.ca.path, tlsMax: tls.VersionTLS12,
			opts: map[string]string{"fluentd-tls-ca-cert": f.ca.path, "fluentd-tls-cert": otherClient, "fluentd-tls-key": otherClientKey},
			want: "remote error: tls: unknown certificate authority"},
		{name: "system roots", cert: f.server, key: f.serverKey, opts: map[string]string{},
			want: "x509: certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(tc.cert, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MaxVersion: tc.tlsMax}
			if tc.clientCA != "" {
				pool, err := forward.CertPoolFromFile(tc.clientCA)
				if err != nil {
					t.Fatal(err)
				}
				cfg = forward.RequireClientCerts(cfg, pool)
			}
			s, err := forward.ListenTLS("127.0.0.1:0", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			opts := map[string]string{"fluentd-address": s.TLSURL()}
			for k, v := range tc.opts {
				opts[k] = v
			}
			l, err := newFluentd(logger.Info{ContainerID: "0123456789ab", Config: opts})
			if err == nil {
				l.Close()
				t.Fatal("driver created")
			}
			want := "fluentd-address " + s.TLSURL() + ": "
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line starting %q containing %q", err, want, tc.want)
			}
			if n := len(s.Events()); n != 0 {
				t.Fatalf("the server took %d events", n)
			}
			if err := plaintextSeen(s); err != nil {
				t.Fatalf("plain text reached the TLS server: %v", err)
			}
		})
	}
}

// TestFluentdTLSReconnect: the server goes down and comes back on the
// same port; the bridge closes fluent-logger-golang's connection with
// the TLS session, fluent-logger-golang reconnects through the bridge,
// and, with acks, every event arrives.
func TestFluentdTLSReconnect(t *testing.T) {
	f := newTLSFixture(t)
	s := listenTLS(t, f.server, f.serverKey, f.ca.path)
	addr := s.Addr()
	l, err := newFluentd(logger.Info{ContainerID: "0123456789ab", Config: map[string]string{
		"fluentd-address": s.TLSURL(), "fluentd-request-ack": "true", "fluentd-retry-wait": "10ms",
		"fluentd-tls-ca-cert": f.ca.path, "fluentd-tls-cert": f.client, "fluentd-tls-key": f.clientK,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 10; i++ {
		if err := l.Log(message("stdout", fmt.Sprint("before ", i), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	pair, err := tls.LoadX509KeyPair(f.server, f.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := forward.CertPoolFromFile(f.ca.path)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := forward.ListenTLS(addr, forward.RequireClientCerts(&tls.Config{Certificates: []tls.Certificate{pair}}, pool))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i := 0; i < 10; i++ {
		if err := l.Log(message("stdout", fmt.Sprint("after ", i), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	evs := s2.Events() // acked: all in
	if len(evs) != 10 {
		t.Fatalf("%d events after the restart, want 10", len(evs))
	}
	for i, e := range evs {
		if want := fmt.Sprint("after ", i); e.Str("log") != want {
			t.Fatalf("event %d = %q, want %q", i, e.Str("log"), want)
		}
	}
}

// TestFluentdTLSBridgeRefusesOthers: another process that connects to
// the bridge's socket while it is open (fluentd-async, no event yet) is
// disconnected before anything it sends reaches the server; the driver's
// own connection keeps working.
func TestFluentdTLSBridgeRefusesOthers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the pid check is Linux's; elsewhere a 0700 directory keeps others out")
	}
	f := newTLSFixture(t)
	s := listenTLS(t, f.server, f.serverKey, f.ca.path)
	l, err := newFluentd(logger.Info{ContainerID: "0123456789ab", Config: map[string]string{
		"fluentd-address": s.TLSURL(), "fluentd-request-ack": "true", "fluentd-async": "true",
		"fluentd-tls-ca-cert": f.ca.path, "fluentd-tls-cert": f.client, "fluentd-tls-key": f.clientK,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := l.(*fluentdLogger).bridge.path
	if !strings.HasPrefix(path, "@") {
		t.Fatalf("bridge socket %q is not abstract", path)
	}
	// The test binary again, as the other process (TestHelperBridgeIntruder).
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBridgeIntruder$")
	cmd.Env = append(os.Environ(), "FLUENTD_BRIDGE_INTRUDER="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "intruder: disconnected after connecting") {
		t.Fatalf("intruder: %v: %s", err, out)
	}
	if err := l.Log(message("stdout", "ours", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	evs := s.Events()
	if len(evs) != 1 || evs[0].Str("log") != "ours" {
		t.Fatalf("events %+v, want only ours", evs)
	}
}

// TestHelperBridgeIntruder runs only as the other process of
// TestFluentdTLSBridgeRefusesOthers: it sends a Forward message with an
// ack request to the bridge and expects to be disconnected unanswered,
// if its connect succeeds at all.
func TestHelperBridgeIntruder(t *testing.T) {
	path := os.Getenv("FLUENTD_BRIDGE_INTRUDER")
	if path == "" {
		t.Skip("helper process only")
	}
	// The gate opens once the driver's first session is up.
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gate never opened: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling a socket another process opens: no signal reaches us
	}
	defer c.Close()
	// ["intruder", 0, {"log": "x"}, {"chunk": "c1"}] in msgpack.
	msg := []byte("\x94\xa8intruder\x00\x81\xa3log\xa1x\x81\xa5chunk\xa2c1")
	c.Write(msg) // may already fail: disconnected
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if n > 0 {
		t.Fatalf("intruder got %d bytes of reply", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("intruder was not disconnected within 10s")
	}
	fmt.Println("intruder: disconnected after connecting:", err)
}

// TestFluentdTLSGateShutWhileRefused: with fluentd-async and a server
// that refuses us, the bridge's socket takes no connection, so
// fluent-logger-golang keeps its events queued (pending) and, when it
// gives up, they are told as given up: none is counted sent, none
// arrives, and a connect to the socket fails as a connect to a server
// that is down does.
func TestFluentdTLSGateShutWhileRefused(t *testing.T) {
	f := newTLSFixture(t)
	other := makeCA(t, f.dir, "other")
	cert, key := other.leaf(t, f.dir, "other-server", true, time.Now().Add(time.Hour))
	s := listenTLS(t, cert, key, "")
	l, err := newFluentd(logger.Info{ContainerID: "0123456789ab", Config: map[string]string{
		"fluentd-address": s.TLSURL(), "fluentd-async": "true", "fluentd-retry-wait": "10ms",
		"fluentd-max-retries": "3", "fluentd-tls-ca-cert": f.ca.path,
	}})
	if err != nil {
		t.Fatal(err)
	}
	fl := l.(*fluentdLogger)
	var mu sync.Mutex
	var gaveUp int64
	fl.OnGiveUp(func(lines, _ int64) { mu.Lock(); gaveUp += lines; mu.Unlock() })
	if c, err := net.Dial("unix", fl.bridge.path); err == nil {
		c.Close()
		t.Fatal("the bridge took a connection with no session to hand it to")
	}
	const n = 5
	for i := 0; i < n; i++ {
		if err := l.Log(message("stdout", fmt.Sprint("line ", i), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil { // returns once fluent-logger-golang gave up on each
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lines, _ := fl.Pending(); gaveUp != n || lines != 0 {
		t.Fatalf("%d events given up, %d pending, want %d and 0", gaveUp, lines, n)
	}
	if evs := s.Events(); len(evs) != 0 {
		t.Fatalf("the server took %d events", len(evs))
	}
}

// TestFluentdTLSGateShutAfterServerLost: without fluentd-async, once the
// session ends and the server that comes back refuses us, the driver's
// reconnect fails and Log says so, as with tcp://, instead of writing
// into the bridge's socket.
func TestFluentdTLSGateShutAfterServerLost(t *testing.T) {
	f := newTLSFixture(t)
	s := listenTLS(t, f.server, f.serverKey, "")
	addr := s.Addr()
	l, err := newFluentd(logger.Info{ContainerID: "0123456789ab", Config: map[string]string{
		"fluentd-address": s.TLSURL(), "fluentd-retry-wait": "10ms", "fluentd-max-retries": "3",
		"fluentd-tls-ca-cert": f.ca.path,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Log(message("stdout", "before", time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s.Close()
	other := makeCA(t, f.dir, "other")
	cert, key := other.leaf(t, f.dir, "other-server", true, time.Now().Add(time.Hour))
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := forward.ListenTLS(addr, &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// The bridge closes the driver's connection once it sees the session end.
	b := l.(*fluentdLogger).bridge
	for deadline := time.Now().Add(5 * time.Second); ; {
		b.mu.Lock()
		paired := len(b.pairs)
		b.mu.Unlock()
		if paired == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bridge still holds the ended session after 5s")
		}
		time.Sleep(5 * time.Millisecond) // polling the bridge's state: no signal exists
	}
	for i := 0; i < 3; i++ {
		if err := l.Log(message("stdout", fmt.Sprint("after ", i), time.Now())); err == nil {
			t.Fatalf("Log %d returned no error with no session to the server", i)
		}
	}
	if evs := s2.Events(); len(evs) != 0 {
		t.Fatalf("the refusing server took %d events", len(evs))
	}
}

// TestFluentdTLSNoAck: without acks (fluent-logger-golang counts an
// event sent once written) every event still arrives, in order, through
// a TLS 1.3 session whose server sends session tickets after the
// handshake: the bridge's acceptance check must not disturb the session
// it hands on, and Close forwards what was written before it.
func TestFluentdTLSNoAck(t *testing.T) {
	f := newTLSFixture(t)
	s := listenTLS(t, f.server, f.serverKey, "")
	l, err := newFluentd(logger.Info{ContainerID: "0123456789ab", Config: map[string]string{
		"fluentd-address": s.TLSURL(), "fluentd-tls-ca-cert": f.ca.path,
	}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := 0; i < n; i++ {
		if err := l.Log(message("stdout", fmt.Sprint("line ", i), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Wait(n, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if want := fmt.Sprint("line ", i); e.Str("log") != want {
			t.Fatalf("event %d = %q, want %q", i, e.Str("log"), want)
		}
	}
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
}
