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
// verification (unless fluentd-tls-skip-verify says otherwise). Its
// socket takes fluent-logger-golang's connection only while a session
// with the server is up (bridgeGate): while the server is unreachable or
// refuses us, fluent-logger-golang's connect fails as it would with
// tcp://, so its events stay queued (counted pending, or dropped when it
// gives up) rather than being written into a socket and counted sent.
// Each failure is reported and the dial retried, with backoff, until it
// works or the driver closes.

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
	"golang.org/x/sys/unix"
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

// fluentdBridge hands fluent-logger-golang's plain connection to a TLS
// session with the server. Its socket takes a connection only while a
// session is ready for it (bridgeGate), so fluent-logger-golang sees what
// it would see with tcp://: while the server is down or refuses us its
// connect fails and its events stay queued, counted pending or given up,
// instead of being written into a socket whose bytes nobody can forward.
type fluentdBridge struct {
	address   string // fluentd-address, for errors
	target    string // host:port
	tls       *fluentdTLS
	retryWait time.Duration // first wait after a failed dial
	report    func(error)

	gate *bridgeGate
	path string // what fluent-logger-golang dials (FluentSocketPath)

	// ctx ends all dialing and waiting: cancelled when Close stops
	// draining. idle, its child, ends dialing for a connection that has
	// not come yet: cancelled when Close begins.
	ctx      context.Context
	cancel   context.CancelFunc
	idle     context.Context
	stopIdle context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	closing bool      // Close has begun: draining until drainBy
	drainBy time.Time // set with closing
	forced  bool      // drained or out of time: every connection closed
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

// newFluentdBridge listens and serves. With dialNow it makes the first
// session before it returns, and fails with the reason when the server
// cannot be reached or refuses us: a driver created without
// fluentd-async fails to be created then, as it does with tcp://.
// Otherwise the first session is dialed in the background. report
// receives every later failure.
func newFluentdBridge(loc fluentdLocation, address string, t *fluentdTLS, retryWait time.Duration, report func(error), dialNow bool) (*fluentdBridge, error) {
	gate, err := listenBridgeGate()
	if err != nil {
		return nil, fmt.Errorf("fluentd-address %s: local TLS bridge: %w", address, err)
	}
	if retryWait <= 0 {
		retryWait = fluentdDefaultRetryWait * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	idle, stopIdle := context.WithCancel(ctx)
	b := &fluentdBridge{
		address: address, target: net.JoinHostPort(loc.host, strconv.Itoa(loc.port)), tls: t,
		retryWait: retryWait, report: report, gate: gate, path: gate.path,
		ctx: ctx, cancel: cancel, idle: idle, stopIdle: stopIdle,
		conns: map[net.Conn]struct{}{}, pairs: map[*bridgePair]struct{}{},
	}
	var up net.Conn
	if dialNow {
		if up, err = b.dial(ctx); err == nil {
			// Open before the driver's first connect, which does not retry.
			if err = gate.open(); err != nil {
				up.Close()
				err = fmt.Errorf("fluentd-address %s: local TLS bridge: %w", address, err)
			}
		}
		if err != nil {
			cancel()
			gate.close()
			return nil, err
		}
	}
	b.wg.Add(1)
	go b.serve(up)
	return b, nil
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
	for p := range b.pairs {
		p.drain(b.drainBy)
	}
	b.mu.Unlock()
	b.stopIdle()
	b.gate.wake()
	// Out of time: stop dialing and close everything.
	timer := time.AfterFunc(fluentdTLSCloseDrain, b.force)
	b.wg.Wait()
	timer.Stop()
	b.force()
	return nil
}

// force closes every connection and ends all dialing and waiting.
func (b *fluentdBridge) force() {
	b.cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forced = true
	b.gate.close()
	for c := range b.conns {
		c.Close()
	}
}

func (b *fluentdBridge) isClosing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// serve pairs fluent-logger-golang's connections with sessions, one at a
// time, each until it ends: fluent-logger-golang has one connection at a
// time, and taking the next only after the last is done keeps the events
// in order. The session comes first, then the gate opens for the
// connection. up is a session dialed already, or nil.
func (b *fluentdBridge) serve(up net.Conn) {
	defer b.wg.Done()
	for !b.isClosing() {
		if up == nil {
			if up = b.upstream(b.idle); up == nil {
				break
			}
		}
		c, upAlive := b.acceptFor(up)
		if !upAlive {
			up.Close()
			up = nil
		}
		if c == nil {
			continue // the session ended first, or the bridge is closing
		}
		if up == nil {
			// The session ended as c came: c waits, unread, for the next.
			if up = b.upstream(b.ctx); up == nil {
				c.Close()
				b.untrack(c)
				break
			}
		}
		b.bridge(c, up)
		up = nil
	}
	if up != nil {
		up.Close()
	}
	b.bridgeQueued()
}

// bridgeQueued forwards, once the bridge is closing, the connections
// still queued on the socket: fluent-logger-golang's connect returned as
// soon as its connection was queued, and it may have written and closed
// it since.
func (b *fluentdBridge) bridgeQueued() {
	conns, err := b.gate.drain()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: %w", b.address, err))
	}
	for _, c := range conns {
		if !b.admit(c) {
			continue
		}
		up := b.upstream(b.ctx)
		if up == nil {
			c.Close()
			b.untrack(c)
			continue
		}
		b.bridge(c, up)
	}
}

// acceptFor opens the gate while up is ready and returns the next
// connection of ours (tracked), with the gate shut behind it; nil when
// the bridge is closing or up ended first. upAlive says whether up is
// still usable: a session the server closed while it waited is not.
func (b *fluentdBridge) acceptFor(up net.Conn) (c net.Conn, upAlive bool) {
	if err := b.gate.open(); err != nil {
		b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: %w", b.address, err))
		return nil, b.sleep(b.idle, b.retryWait)
	}
	w := watchSession(up, b.gate.interrupt)
	for {
		c, err := b.gate.accept()
		if err == nil {
			if !b.admit(c) {
				continue
			}
			if err := b.gate.shut(); err != nil {
				b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: %w", b.address, err))
			}
			return c, w.stop()
		}
		if b.isClosing() {
			return nil, w.stop()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Interrupted: the session ended.
			w.stop()
			if err := b.gate.shut(); err != nil {
				b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: %w", b.address, err))
			}
			return nil, false
		}
		// Out of descriptors, say: wait a little rather than spin.
		b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: %w", b.address, err))
		if !b.sleep(b.idle, b.retryWait) {
			return nil, w.stop()
		}
	}
}

// admit tracks c if it is fluent-logger-golang's: from this process, and
// not one that ended without a byte (a plug of the gate's, or a
// connection of ours that carried nothing).
func (b *fluentdBridge) admit(c net.Conn) bool {
	if err := fluentdBridgePeerIsUs(c); err != nil {
		c.Close()
		b.report(fmt.Errorf("fluentd-address %s: local TLS bridge: refused a connection: %w", b.address, err))
		return false
	}
	if fluentdBridgeConnIsEmpty(c) || !b.track(c) {
		c.Close()
		return false
	}
	return true
}

// fluentdBridgeConnIsEmpty reports whether c's peer closed it without
// writing anything, looking without reading.
func fluentdBridgeConnIsEmpty(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	var rerr error
	if err := raw.Control(func(fd uintptr) {
		var one [1]byte
		n, _, rerr = unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	return n == 0 && rerr == nil
}

// sessionWatch notices a session that ends while no connection uses it,
// by reading it: a Forward server sends nothing unasked.
type sessionWatch struct {
	up    net.Conn
	done  chan struct{}
	alive bool // set before done closes
}

// watchSession reads up until stop; if the read ends first (the server
// closed the session, or sent something unasked), ended is called.
func watchSession(up net.Conn, ended func()) *sessionWatch {
	w := &sessionWatch{up: up, done: make(chan struct{})}
	go func() {
		var one [1]byte
		n, err := up.Read(one[:])
		var ne net.Error
		// A read that timed out leaves the TLS session intact.
		w.alive = n == 0 && errors.As(err, &ne) && ne.Timeout()
		if !w.alive {
			ended()
		}
		close(w.done)
	}()
	return w
}

// stop ends the watch; false if the session ended before.
func (w *sessionWatch) stop() bool {
	w.up.SetReadDeadline(time.Now())
	<-w.done
	return w.alive && w.up.SetReadDeadline(time.Time{}) == nil
}

// bridge copies between c (tracked) and up until either side ends, then
// closes both.
func (b *fluentdBridge) bridge(c, up net.Conn) {
	defer b.untrack(c)
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

// upstream dials a session, retrying with backoff and reporting each
// failure, until it works or ctx ends (nil).
func (b *fluentdBridge) upstream(ctx context.Context) net.Conn {
	wait := backoff.New(b.retryWait, fluentdTLSMaxRetryWait)
	for {
		up, err := b.dial(ctx)
		if err == nil {
			return up
		}
		if ctx.Err() != nil {
			return nil
		}
		d := wait.Next()
		b.report(fmt.Errorf("%w (retrying in %v)", err, d))
		if !b.sleep(ctx, d) {
			return nil
		}
	}
}

// sleep waits d, or less when ctx ends (false).
func (b *fluentdBridge) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
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
func (b *fluentdBridge) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, fluentdTLSDialTimeout)
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
