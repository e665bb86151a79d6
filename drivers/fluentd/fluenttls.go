package fluentd

// fluentd over TLS with a CA, a client certificate and a key.
//
// fluent-logger-golang (v1.10.2) dials tls:// itself with a tls.Config
// that has only InsecureSkipVerify, and its hook for another dialer is
// unexported. So for every tls:// address the driver gives it a plain
// unix socket instead: an in-process bridge that, for each connection it
// accepts, dials the real server with our tls.Config and copies both
// ways. Acks (fluentd-request-ack) pass through unchanged, and when
// either side closes or fails both are closed, so fluent-logger-golang
// sees the failure and reconnects through its own retry logic.
//
// The bridge must not be a way in for anyone else: on Linux it listens
// on an abstract socket with a random name and serves only connections
// whose SO_PEERCRED pid is our own (fluenttls_linux.go); elsewhere on a
// socket in a fresh 0700 directory (fluenttls_other.go).
//
// It never falls back to plain text: the only thing it dials is TLS with
// verification (unless fluentd-tls-skip-verify says otherwise). A
// connection it accepted is not read until its TLS session is up, so what
// fluent-logger-golang wrote waits in the socket rather than being lost
// while the server is unreachable or refuses us; each failure is reported
// and the dial retried, with backoff, until it works or the driver closes.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/backoff"
	"github.com/joyent/dockerlogger/drivers/logopt"
)

const (
	fluentdTLSCACertKey     = "fluentd-tls-ca-cert"
	fluentdTLSCertKey       = "fluentd-tls-cert"
	fluentdTLSKeyKey        = "fluentd-tls-key"
	fluentdTLSSkipVerifyKey = "fluentd-tls-skip-verify"

	// fluentdTLSDialTimeout bounds one connect, handshake and acceptance
	// check.
	fluentdTLSDialTimeout = 5 * time.Second
	// fluentdTLSAcceptWait is how long, after a TLS 1.3 handshake in
	// which the server asked for a client certificate, we wait for the
	// server's verdict when it sends no session ticket (see confirm).
	fluentdTLSAcceptWait = time.Second
	// fluentdTLSMaxRetryWait caps the wait between failed dials.
	fluentdTLSMaxRetryWait = 10 * time.Second
)

// TLSKeys are the options this driver adds to Docker's fluentd driver's.
var TLSKeys = []string{fluentdTLSCACertKey, fluentdTLSCertKey, fluentdTLSKeyKey, fluentdTLSSkipVerifyKey}

// fluentdTLS is what the TLS options say: the tls.Config to dial with and
// the client certificate, kept apart so each dial can tell whether the
// server asked for it.
type fluentdTLS struct {
	config *tls.Config
	cert   *tls.Certificate // nil without fluentd-tls-cert
}

// parseFluentdTLS checks the TLS options against the address and loads
// their files: nil for an address that is not tls://. Errors name the
// option.
func parseFluentdTLS(cfg map[string]string, loc fluentdLocation) (*fluentdTLS, error) {
	skip := false
	if v := cfg[fluentdTLSSkipVerifyKey]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, logopt.BadOpt(cfg, fluentdTLSSkipVerifyKey, err)
		}
		skip = b
	}
	if loc.protocol != "tls" {
		for _, k := range TLSKeys {
			// fluentd-tls-skip-verify=false, its default, changes nothing.
			if cfg[k] != "" && (k != fluentdTLSSkipVerifyKey || skip) {
				addr := cfg[fluentdAddressKey]
				if addr == "" {
					addr = "tcp://127.0.0.1:24224 (the default)"
				}
				return nil, fmt.Errorf("log-opt %s needs a tls:// fluentd-address, not %s", k, addr)
			}
		}
		return nil, nil
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// fluent-logger-golang's own TLS checks the name too; keep that.
		ServerName:         loc.host,
		InsecureSkipVerify: skip,
	}
	if path := cfg[fluentdTLSCACertKey]; path != "" {
		pool, err := loadCAFile(path)
		if err != nil {
			return nil, logopt.BadOpt(cfg, fluentdTLSCACertKey, err)
		}
		c.RootCAs = pool
	} // else nil: the system's roots.
	certPath, keyPath := cfg[fluentdTLSCertKey], cfg[fluentdTLSKeyKey]
	switch {
	case certPath != "" && keyPath == "":
		return nil, fmt.Errorf("log-opt %s needs %s (the client certificate's private key)", fluentdTLSCertKey, fluentdTLSKeyKey)
	case keyPath != "" && certPath == "":
		return nil, fmt.Errorf("log-opt %s needs %s (the client certificate)", fluentdTLSKeyKey, fluentdTLSCertKey)
	}
	t := &fluentdTLS{config: c}
	if certPath != "" {
		certPEM, err := os.ReadFile(certPath)
		if err != nil {
			return nil, logopt.BadOpt(cfg, fluentdTLSCertKey, err)
		}
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, logopt.BadOpt(cfg, fluentdTLSKeyKey, err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("log-opt %s=%q with %s=%q: %w", fluentdTLSCertKey, certPath, fluentdTLSKeyKey, keyPath, err)
		}
		t.cert = &cert
	}
	return t, nil
}

// loadCAFile reads PEM certificates; a block that does not parse, or a
// file without any, is an error rather than a pool that trusts nothing.
func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

// fluentdBridge hands fluent-logger-golang's plain connections to TLS
// sessions with the server.
type fluentdBridge struct {
	address   string // fluentd-address, for errors
	target    string // host:port
	tls       *fluentdTLS
	retryWait time.Duration // first wait after a failed dial
	report    func(error)

	ln      *net.UnixListener
	path    string // what fluent-logger-golang dials (FluentSocketPath)
	cleanup func()

	// ctx ends dialing and waiting; cancelled when Close stops draining.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closing bool      // Close has begun: draining until drainBy
	drainBy time.Time // set with closing
	forced  bool      // drained or out of time: every connection closed
	first   net.Conn  // a session dialed before the first connection came
	conns   map[net.Conn]struct{}
	pairs   map[*bridgePair]struct{}
}

// bridgePair is one connection of fluent-logger-golang's and its TLS
// session.
type bridgePair struct{ client, up net.Conn }

// drain bounds what is left of the pair: the client's last bytes are
// forwarded until by, then both sides time out.
func (p *bridgePair) drain(by time.Time) {
	p.client.SetReadDeadline(by)
	p.up.SetWriteDeadline(by)
}

// fluentdTLSCloseDrain bounds how long Close forwards what
// fluent-logger-golang wrote before it closed its connection: without
// acks, it counts an event sent once the socket took it.
const fluentdTLSCloseDrain = 5 * time.Second

// newFluentdBridge listens and serves. report receives every failure to
// reach the server after the first (see dialFirst).
func newFluentdBridge(loc fluentdLocation, address string, t *fluentdTLS, retryWait time.Duration, report func(error)) (*fluentdBridge, error) {
	ln, path, cleanup, err := listenFluentdBridge()
	if err != nil {
		return nil, fmt.Errorf("fluentd-address %s: local TLS bridge: %w", address, err)
	}
	if retryWait <= 0 {
		retryWait = fluentdDefaultRetryWait * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &fluentdBridge{
		address: address, target: net.JoinHostPort(loc.host, strconv.Itoa(loc.port)), tls: t,
		retryWait: retryWait, report: report, ln: ln, path: path, cleanup: cleanup,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}, pairs: map[*bridgePair]struct{}{},
	}
	b.wg.Add(1)
	go b.serve()
	return b, nil
}

// dialFirst dials the server once, now, for the first connection: a
// driver created without fluentd-async fails to be created, with the
// reason, when the server cannot be reached or refuses us, as it does
// with tcp://.
func (b *fluentdBridge) dialFirst() error {
	c, err := b.dial()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		c.Close()
		return net.ErrClosed
	}
	b.first = c
	return nil
}

// Close stops listening, forwards what fluent-logger-golang wrote before
// it closed its connection (for at most fluentdTLSCloseDrain), then
// closes every connection and waits for the goroutines. Call it after
// closing fluent-logger-golang.
func (b *fluentdBridge) Close() error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	b.drainBy = time.Now().Add(fluentdTLSCloseDrain)
	// Wake serve, which takes what is queued and stops listening.
	b.ln.SetDeadline(time.Now())
	for p := range b.pairs {
		p.drain(b.drainBy)
	}
	b.mu.Unlock()
	// Out of time: stop dialing and close everything.
	timer := time.AfterFunc(fluentdTLSCloseDrain, b.force)
	b.wg.Wait()
	timer.Stop()
	b.force()
	b.cleanup()
	return nil
}

// force closes every connection and ends all dialing and waiting.
func (b *fluentdBridge) force() {
	b.cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forced = true
	b.ln.Close() // serve has, unless it failed
	for c := range b.conns {
		c.Close()
	}
	if b.first != nil {
		b.first.Close()
		b.first = nil
	}
}

// serve accepts connections, disconnects at once any that is not ours,
// and hands ours, in order, to bridgeAll. When Close wakes it, it takes
// the connections still queued in the kernel before it stops listening:
// fluent-logger-golang's connect returned as soon as its connection was
// queued, and may have written and closed it since.
func (b *fluentdBridge) serve() {
	defer b.wg.Done()
	queue := make(chan net.Conn, 16)
	defer close(queue)
	b.wg.Add(1)
	go b.bridgeAll(queue)
	for {
		c, err := b.ln.Accept()
		if err == nil {
			b.admit(c, queue)
			continue
		}
		b.mu.Lock()
		closing := b.closing
		b.mu.Unlock()
		if closing || errors.Is(err, net.ErrClosed) {
			pending, err := fluentdBridgeAcceptQueued(b.ln)
			for _, c := range pending {
				b.admit(c, queue)
			}
			if err != nil && !errors.Is(err, net.ErrClosed) {
				b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: %w", b.address, err))
			}
			b.ln.Close()
			return
		}
		// Out of descriptors, say: wait a little rather than spin.
		b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: %w", b.address, err))
		if !b.sleep(b.retryWait) {
			return
		}
	}
}

// admit queues c for bridgeAll if it comes from this process.
func (b *fluentdBridge) admit(c net.Conn, queue chan<- net.Conn) {
	if err := fluentdBridgePeerIsUs(c); err != nil {
		c.Close()
		b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: refused a connection: %w", b.address, err))
		return
	}
	if !b.track(c) {
		c.Close()
		return
	}
	select {
	case queue <- c:
	case <-b.ctx.Done(): // force closed c
	}
}

// bridgeAll bridges one connection at a time, each until it ends:
// fluent-logger-golang has one connection at a time, and taking the next
// only after the last is done keeps the events in order.
func (b *fluentdBridge) bridgeAll(queue <-chan net.Conn) {
	defer b.wg.Done()
	for c := range queue {
		b.bridge(c)
	}
}

// bridge copies between c (tracked) and a TLS session with the server
// until either side ends, then closes both.
func (b *fluentdBridge) bridge(c net.Conn) {
	defer b.untrack(c)
	up := b.upstream()
	if up == nil { // forced closed
		c.Close()
		return
	}
	p := &bridgePair{client: c, up: up}
	if !b.addPair(p) {
		up.Close()
		c.Close()
		return
	}
	defer b.removePair(p)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// upstream returns the session dialed in advance, or dials one, retrying
// with backoff and reporting each failure, until it works or the bridge
// is forced closed (nil).
func (b *fluentdBridge) upstream() net.Conn {
	b.mu.Lock()
	up := b.first
	b.first = nil
	b.mu.Unlock()
	if up != nil {
		return up
	}
	wait := backoff.New(b.retryWait, fluentdTLSMaxRetryWait)
	for {
		up, err := b.dial()
		if err == nil {
			return up
		}
		if b.ctx.Err() != nil {
			return nil
		}
		d := wait.Next()
		b.report(fmt.Errorf("%w (retrying in %v)", err, d))
		if !b.sleep(d) {
			return nil
		}
	}
}

// sleep waits d, or less when the bridge is forced closed (false).
func (b *fluentdBridge) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

func (b *fluentdBridge) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.forced {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *fluentdBridge) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// addPair registers a bridged pair (and its upstream for force); one
// that starts while Close drains gets the same deadline.
func (b *fluentdBridge) addPair(p *bridgePair) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.forced {
		return false
	}
	b.conns[p.up] = struct{}{}
	b.pairs[p] = struct{}{}
	if b.closing {
		p.drain(b.drainBy)
	}
	return true
}

func (b *fluentdBridge) removePair(p *bridgePair) {
	b.mu.Lock()
	delete(b.conns, p.up)
	delete(b.pairs, p)
	b.mu.Unlock()
}

// dial makes one TLS session with the server and checks that the server
// accepted it. Errors name the address and the reason.
func (b *fluentdBridge) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(b.ctx, fluentdTLSDialTimeout)
	defer cancel()
	cfg := b.tls.config.Clone()
	// Whether the server asked for a client certificate, for confirm.
	asked := false
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		if b.tls.cert != nil {
			return b.tls.cert, nil
		}
		return &tls.Certificate{}, nil // none: the server decides
	}
	tickets := &ticketSignal{}
	cfg.ClientSessionCache = tickets
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", b.target)
	if err != nil {
		return nil, fmt.Errorf("fluentd-address %s: %w", b.address, err)
	}
	c := nc.(*tls.Conn)
	if err := confirm(ctx, c, asked, tickets, b.tls.cert != nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("fluentd-address %s: %w", b.address, err)
	}
	return c, nil
}

// confirm waits for the server's verdict on our client certificate. In
// TLS 1.2 the handshake includes it. In TLS 1.3 the client's handshake
// ends before the server has checked the certificate: a refusal arrives
// as an alert on the first read, and what we had written by then would
// be lost. So read: an alert is a refusal; a session ticket, which
// servers (Go's, OpenSSL's) send only after accepting the client, or a
// short wait without either, is acceptance. A Forward server sends
// nothing unsolicited, so no data is expected; nothing read is lost
// either way (a timed-out read leaves the TLS state intact).
func confirm(ctx context.Context, c *tls.Conn, asked bool, tickets *ticketSignal, haveCert bool) error {
	if !asked || c.ConnectionState().Version < tls.VersionTLS13 {
		return nil
	}
	deadline := time.Now().Add(fluentdTLSAcceptWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	// Closing the driver ends the wait at once.
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	var one [1]byte
	tickets.conn.Store(c)
	n, err := c.Read(one[:])
	tickets.conn.Store(nil) // later tickets must not end the bridge's reads
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if n > 0 {
		return errors.New("the server sent data before any request (not a Forward protocol server?)")
	}
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		if haveCert {
			return fmt.Errorf("the server refused our client certificate: %w", err)
		}
		return fmt.Errorf("the server refused the session (it wants a client certificate: set %s and %s): %w",
			fluentdTLSCertKey, fluentdTLSKeyKey, err)
	}
	return c.SetReadDeadline(time.Time{})
}

// ticketSignal is a client session cache that stores nothing (each
// session is a full handshake, client certificate included) and ends the
// read in confirm as soon as the server sends a session ticket.
type ticketSignal struct {
	conn atomic.Pointer[tls.Conn] // set only while confirm reads
}

func (*ticketSignal) Get(string) (*tls.ClientSessionState, bool) { return nil, false }

func (s *ticketSignal) Put(_ string, cs *tls.ClientSessionState) {
	if c := s.conn.Load(); cs != nil && c != nil {
		c.SetReadDeadline(time.Now())
	}
}

// acceptQueued calls accept on ln's descriptor until nothing is queued.
func acceptQueued(ln *net.UnixListener, accept func(fd int) (int, error)) ([]net.Conn, error) {
	raw, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	var conns []net.Conn
	for {
		var nfd int
		var aerr error
		if err := raw.Control(func(fd uintptr) { nfd, aerr = accept(int(fd)) }); err != nil {
			return conns, err
		}
		switch {
		case aerr == syscall.EAGAIN || aerr == syscall.EWOULDBLOCK:
			return conns, nil
		case aerr == syscall.EINTR || aerr == syscall.ECONNABORTED:
			continue
		case aerr != nil:
			return conns, aerr
		}
		f := os.NewFile(uintptr(nfd), "fluentd-bridge")
		c, err := net.FileConn(f) // a duplicate: f is closed either way
		f.Close()
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
	}
}
