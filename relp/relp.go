// Package relp owns the client side of RELP, rsyslog's Reliable Event
// Logging Protocol (https://www.rsyslog.com/doc/relp.html): the open,
// syslog and close commands, transaction numbers, a window of commands
// sent but not yet acknowledged, the server's rsp acknowledgements, and,
// when a connection breaks (write or read error, EOF, serverclose, or an
// rsp other than 200), reconnection with backoff, a new open, and the
// resend, in order, of every message not acknowledged: at-least-once.
//
// It must never import the reader, the delivery modes, the worker or
// Docker's packages: it carries opaque messages and knows nothing of logs.
package relp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/joyent/dockerlogger/backoff"
)

// Defaults of Options.
const (
	DefaultWindow      = 128
	DefaultDialTimeout = 5 * time.Second
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultSendTimeout = 2 * time.Second
)

// maxDataLen bounds a frame from the server: an rsp carries a status line
// and the open offers, never a log message.
const maxDataLen = 64 << 10

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("relp: client closed")

// Options tune a Client; zero values take the defaults.
type Options struct {
	// Window is the most messages sent or queued but not acknowledged;
	// Send waits while it is full (back-pressure).
	Window int
	// DialTimeout bounds one connection attempt and its open handshake.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, doubling from one to the other.
	MinBackoff, MaxBackoff time.Duration
	// SendTimeout is the longest Send waits for room in a full window
	// before it returns an error saying why the server is not
	// acknowledging (down, or not answering): the caller can count the
	// failure and try again, and nothing was queued.
	SendTimeout time.Duration
	// Software is sent in the open offers (relp_software).
	Software string
	// Dial makes the TCP connection; nil is a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Report, if set, is told of every broken connection and failed
	// reconnection, with the cause.
	Report func(error)
	// Reconnected, if set, is told when a new session is open after a
	// broken one, with the number of messages it is about to resend.
	Reconnected func(resend int)
}

// Client sends messages to one RELP server. It is safe for concurrent use;
// messages are delivered in the order Send accepted them (resends keep
// that order).
type Client struct {
	addr string
	opt  Options

	// wmu serialises writes to the connection, so that transaction
	// numbers go out in ascending order. Taken before mu.
	wmu sync.Mutex

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change of state
	queue   []*entry      // not acknowledged, in Send order
	qbytes  int64
	conn    *conn // nil while down
	lastErr error // why the last connection broke or attempt failed
	closing bool  // Close called: Send refuses
	aborted bool  // Close gave up: Send and waits return
	resent  int64 // messages written again after a reconnection
	local   string
	stop    chan struct{}
	done    chan struct{} // closed when the reconnecting goroutine ends
}

// entry is one message until the server acknowledges it.
type entry struct {
	data  []byte
	size  int64 // what Pending counts for it
	on    *conn // the connection it was last written on
	sent  bool  // written on some connection before (a resend counts)
	acked bool
}

// conn is one connection and its transactions.
type conn struct {
	nc       net.Conn
	w        *bufio.Writer
	next     int            // next transaction number
	inflight map[int]*entry // by transaction number
	closeTx  int            // the close command's number, 0 until sent
	closing  bool           // close was sent (under Client.mu)
	closed   chan struct{}  // the close command was acknowledged
	broken   chan struct{}  // closed once, when the connection fails
	once     sync.Once
}

// Dial connects to address (host:port), sends open and waits for the
// server's answer: an error says why the server cannot be used now. The
// returned Client reconnects by itself from then on.
func Dial(ctx context.Context, address string, opt Options) (*Client, error) {
	c := New(address, opt)
	cn, err := c.connect(ctx)
	if err != nil {
		close(c.done)
		return nil, err
	}
	c.mu.Lock()
	c.conn = cn
	c.local = cn.nc.LocalAddr().String()
	c.mu.Unlock()
	go c.read(cn)
	go c.keep()
	return c, nil
}

// New returns a Client that connects lazily, in the background: Send
// queues until the server is there (up to the window).
func New(address string, opt Options) *Client {
	if opt.Window <= 0 {
		opt.Window = DefaultWindow
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = DefaultDialTimeout
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = DefaultMaxBackoff
	}
	if opt.SendTimeout <= 0 {
		opt.SendTimeout = DefaultSendTimeout
	}
	if opt.Software == "" {
		opt.Software = "dockerlogger"
	}
	if opt.Dial == nil {
		d := &net.Dialer{}
		opt.Dial = d.DialContext
	}
	return &Client{addr: address, opt: opt, changed: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Start begins connecting a Client made by New.
func (c *Client) Start() { go c.keep() }

// notify wakes every waiter. Call with mu held.
func (c *Client) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Send queues data as one syslog message and writes it when connected. It
// returns once the message is in the window (written to the connection if
// there is one); the server's acknowledgement comes later (Pending). It
// waits while the window is full, at most SendTimeout, then returns an
// error and queues nothing.
func (c *Client) Send(data []byte) error {
	return c.SendSized(data, int64(len(data)))
}

// SendSized is Send, with size the bytes Pending counts for the message
// (a caller that frames a payload counts the payload).
func (c *Client) SendSized(data []byte, size int64) error {
	var timer <-chan time.Time
	c.mu.Lock()
	for len(c.queue) >= c.opt.Window {
		if c.closing {
			c.mu.Unlock()
			return ErrClosed
		}
		if timer == nil {
			t := time.NewTimer(c.opt.SendTimeout)
			defer t.Stop()
			timer = t.C
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timer:
			c.mu.Lock()
			err := c.fullError()
			c.mu.Unlock()
			return err
		}
		c.mu.Lock()
	}
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	e := &entry{data: append([]byte(nil), data...), size: size}
	c.queue = append(c.queue, e)
	c.qbytes += size
	c.mu.Unlock()
	c.writeQueued()
	return nil
}

// fullError says why the window stayed full. Call with mu held.
func (c *Client) fullError() error {
	if c.conn == nil {
		cause := c.lastErr
		if cause == nil {
			cause = errors.New("not connected yet")
		}
		return fmt.Errorf("relp %s: %d messages not acknowledged, not connected: %w", c.addr, len(c.queue), cause)
	}
	return fmt.Errorf("relp %s: %d messages not acknowledged within %v", c.addr, len(c.queue), c.opt.SendTimeout)
}

// writeQueued writes, in order, every queued message not yet written on
// the current connection.
func (c *Client) writeQueued() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	cn := c.conn
	if cn == nil {
		c.mu.Unlock()
		return
	}
	// What was written on cn is a prefix of the queue: find where the
	// rest begins from the end, so that a Send costs O(1).
	i := len(c.queue)
	for i > 0 && c.queue[i-1].on != cn {
		i--
	}
	var frames []byte
	for _, e := range c.queue[i:] {
		if e.acked {
			continue
		}
		e.on = cn
		if e.sent {
			c.resent++
		}
		e.sent = true
		tx := cn.take()
		cn.inflight[tx] = e
		frames = appendFrame(frames, tx, "syslog", e.data)
	}
	c.mu.Unlock()
	if len(frames) == 0 {
		return
	}
	if err := cn.write(frames); err != nil {
		c.broke(cn, fmt.Errorf("write: %w", err))
	}
}

// take returns the next transaction number: 1 to 999999999, then 1 again.
func (cn *conn) take() int {
	tx := cn.next
	if cn.next++; cn.next > 999999999 {
		cn.next = 1
	}
	return tx
}

func (cn *conn) write(b []byte) error {
	if _, err := cn.w.Write(b); err != nil {
		return err
	}
	return cn.w.Flush()
}

// appendFrame appends "TXNR SP COMMAND SP DATALEN [SP DATA] LF".
func appendFrame(b []byte, tx int, cmd string, data []byte) []byte {
	b = strconv.AppendInt(b, int64(tx), 10)
	b = append(b, ' ')
	b = append(b, cmd...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	if len(data) > 0 {
		b = append(b, ' ')
		b = append(b, data...)
	}
	return append(b, '\n')
}

// Pending returns the messages sent or queued but not yet acknowledged,
// and their bytes.
func (c *Client) Pending() (messages, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.queue)), c.qbytes
}

// Resent returns how many messages were written again after a connection
// broke before the server acknowledged them: each may have arrived twice.
func (c *Client) Resent() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resent
}

// LocalAddr is the local address of the last session, "" before one.
func (c *Client) LocalAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// Connected reports whether the client has an open session now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// broke marks cn as failed for err: it is closed, and the reconnecting
// goroutine opens a new one and resends what cn left unacknowledged.
func (c *Client) broke(cn *conn, err error) {
	first := false
	cn.once.Do(func() { first = true; close(cn.broken) })
	if !first {
		return
	}
	cn.nc.Close()
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.lastErr = err
	// After close was sent, the server ending the session is the answer.
	report := !c.aborted && !cn.closing
	c.notify()
	c.mu.Unlock()
	if report && c.opt.Report != nil {
		c.opt.Report(fmt.Errorf("relp %s: connection lost: %w", c.addr, err))
	}
}

// keep reconnects whenever there is no connection, until Close.
func (c *Client) keep() {
	defer close(c.done)
	wait := backoff.New(c.opt.MinBackoff, c.opt.MaxBackoff)
	for {
		c.mu.Lock()
		cn := c.conn
		c.mu.Unlock()
		if cn != nil {
			select {
			case <-cn.broken:
			case <-c.stop:
				return
			}
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		cn, err := c.connect(ctx)
		cancel()
		if err != nil {
			c.mu.Lock()
			c.lastErr = err
			aborted := c.aborted
			c.notify()
			c.mu.Unlock()
			if !aborted && c.opt.Report != nil {
				c.opt.Report(err)
			}
			if !wait.Wait(c.stop) {
				return
			}
			continue
		}
		wait.Reset()
		c.mu.Lock()
		if c.aborted {
			c.mu.Unlock()
			cn.nc.Close()
			return
		}
		c.conn = cn
		c.local = cn.nc.LocalAddr().String()
		resend := 0
		for _, e := range c.queue {
			if e.sent && !e.acked {
				resend++
			}
		}
		c.notify()
		c.mu.Unlock()
		if c.opt.Reconnected != nil {
			c.opt.Reconnected(resend)
		}
		go c.read(cn)
		// Everything not acknowledged goes again, in order.
		c.writeQueued()
	}
}

// connect dials, sends open and reads the server's answer.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.DialTimeout)
	defer cancel()
	nc, err := c.opt.Dial(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("relp %s: %w", c.addr, err)
	}
	cn := &conn{nc: nc, w: bufio.NewWriterSize(nc, 64<<10), next: 1, inflight: map[int]*entry{},
		closed: make(chan struct{}), broken: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	offers := "relp_version=0\nrelp_software=" + c.opt.Software + "\ncommands=syslog"
	tx := cn.take()
	if err := cn.write(appendFrame(nil, tx, "open", []byte(offers))); err != nil {
		nc.Close()
		return nil, fmt.Errorf("relp %s: open: %w", c.addr, err)
	}
	br := bufio.NewReader(nc)
	f, err := readFrame(br)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("relp %s: open: %w", c.addr, err)
	}
	if f.cmd != "rsp" || f.tx != tx {
		nc.Close()
		return nil, fmt.Errorf("relp %s: open: server answered %q to transaction %d", c.addr, f.cmd, f.tx)
	}
	code, text, rest := parseRsp(f.data)
	if code != 200 {
		nc.Close()
		return nil, fmt.Errorf("relp %s: open refused: %d %s", c.addr, code, text)
	}
	if !offersSyslog(rest) {
		nc.Close()
		return nil, fmt.Errorf("relp %s: open: server does not offer the syslog command", c.addr)
	}
	if !stop() || ctx.Err() != nil {
		nc.Close()
		return nil, fmt.Errorf("relp %s: open: %w", c.addr, context.Cause(ctx))
	}
	cn.nc = &bufConn{Conn: nc, r: br}
	return cn, nil
}

// bufConn keeps what the handshake's reader buffered.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// offersSyslog reports whether the open answer's offers include the
// syslog command ("commands=syslog,..."). An answer without a commands
// offer is taken as yes, as librelp does for old servers.
func offersSyslog(offers string) bool {
	for _, l := range strings.Split(offers, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		if k != "commands" {
			continue
		}
		for _, cmd := range strings.Split(v, ",") {
			if strings.TrimSpace(cmd) == "syslog" {
				return true
			}
		}
		return false
	}
	return true
}

// read handles the server's frames on cn until it breaks.
func (c *Client) read(cn *conn) {
	br := bufio.NewReader(cn.nc)
	for {
		f, err := readFrame(br)
		if err != nil {
			c.broke(cn, fmt.Errorf("read: %w", err))
			return
		}
		switch f.cmd {
		case "rsp":
			code, text, _ := parseRsp(f.data)
			c.mu.Lock()
			if f.tx == cn.closeTx && cn.closeTx != 0 {
				cn.closeTx = 0
				c.mu.Unlock()
				close(cn.closed)
				continue
			}
			e := cn.inflight[f.tx]
			if e == nil {
				c.mu.Unlock()
				c.broke(cn, fmt.Errorf("rsp to transaction %d, which is not outstanding", f.tx))
				return
			}
			if code != 200 {
				c.mu.Unlock()
				c.broke(cn, fmt.Errorf("server refused transaction %d: %d %s", f.tx, code, text))
				return
			}
			delete(cn.inflight, f.tx)
			e.acked = true
			c.popAcked()
			c.notify()
			c.mu.Unlock()
		case "serverclose":
			c.broke(cn, errors.New("server closed the session (serverclose)"))
			return
		default:
			c.broke(cn, fmt.Errorf("unexpected command %q from server", f.cmd))
			return
		}
	}
}

// popAcked drops the acknowledged messages at the head of the queue
// (acknowledgements may come out of order). Call with mu held.
func (c *Client) popAcked() {
	n := 0
	for n < len(c.queue) && c.queue[n].acked {
		c.qbytes -= c.queue[n].size
		c.queue[n] = nil
		n++
	}
	c.queue = c.queue[n:]
}

// Wait returns once the server has acknowledged every message queued so
// far, or with an error saying how many were not when ctx ends first.
func (c *Client) Wait(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && !c.aborted {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			return fmt.Errorf("relp %s: %d messages not acknowledged: %w", c.addr, len(c.queue), context.Cause(ctx))
		}
		c.mu.Lock()
	}
	if len(c.queue) > 0 {
		return fmt.Errorf("relp %s: %d messages not acknowledged: %w", c.addr, len(c.queue), ErrClosed)
	}
	return nil
}

// Close waits until the server has acknowledged every message, then sends
// close, waits for its answer and closes the connection. When ctx ends
// first it gives up: the connection is closed, and the error says how many
// messages were never acknowledged (Pending still counts them).
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closing = true
	c.notify()
	for len(c.queue) > 0 {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return c.abort(ctx)
		}
		c.mu.Lock()
	}
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		c.wmu.Lock()
		c.mu.Lock()
		tx := cn.take()
		cn.closeTx, cn.closing = tx, true
		c.mu.Unlock()
		err := cn.write(appendFrame(nil, tx, "close", nil))
		c.wmu.Unlock()
		if err == nil {
			select {
			case <-cn.closed:
			case <-cn.broken: // the server may close first: all is acknowledged
			case <-ctx.Done():
			}
		}
	}
	c.shutdown()
	return nil
}

// abort ends a Close that ran out of time.
func (c *Client) abort(ctx context.Context) error {
	c.mu.Lock()
	n := len(c.queue)
	cause := c.lastErr
	c.mu.Unlock()
	c.shutdown()
	err := fmt.Errorf("relp %s: %d messages not acknowledged: %w", c.addr, n, context.Cause(ctx))
	if cause != nil {
		err = fmt.Errorf("%w (last connection error: %v)", err, cause)
	}
	return err
}

// shutdown stops reconnecting and closes the connection.
func (c *Client) shutdown() {
	c.mu.Lock()
	c.aborted = true
	cn := c.conn
	c.notify()
	c.mu.Unlock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if cn != nil {
		c.broke(cn, ErrClosed)
	}
	<-c.done
}

// frame is one RELP frame.
type frame struct {
	tx   int
	cmd  string
	data []byte
}

// readFrame reads "TXNR SP COMMAND SP DATALEN [SP DATA] LF".
func readFrame(r *bufio.Reader) (frame, error) {
	var f frame
	tx, err := readToken(r, 9)
	if err != nil {
		return f, err
	}
	if f.tx, err = strconv.Atoi(tx); err != nil || f.tx < 0 {
		return f, fmt.Errorf("bad transaction number %q", tx)
	}
	if f.cmd, err = readToken(r, 32); err != nil {
		return f, err
	}
	n, sep, err := readLen(r)
	if err != nil {
		return f, err
	}
	if n > 0 {
		if sep != ' ' {
			return f, fmt.Errorf("frame %d %s: no space before %d bytes of data", f.tx, f.cmd, n)
		}
		f.data = make([]byte, n)
		if _, err := io.ReadFull(r, f.data); err != nil {
			return f, unexpected(err)
		}
		if sep, err = r.ReadByte(); err != nil {
			return f, unexpected(err)
		}
	}
	if sep != '\n' {
		return f, fmt.Errorf("frame %d %s: trailer %q, want LF", f.tx, f.cmd, sep)
	}
	return f, nil
}

// readToken reads up to a space: at most max bytes, not empty.
func readToken(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		ch, err := r.ReadByte()
		if err != nil {
			if len(b) > 0 {
				err = unexpected(err)
			}
			return "", err
		}
		if ch == ' ' {
			if len(b) == 0 {
				return "", errors.New("empty field in frame header")
			}
			return string(b), nil
		}
		if ch == '\n' || len(b) == max {
			return "", fmt.Errorf("malformed frame header %q", append(b, ch))
		}
		b = append(b, ch)
	}
}

// readLen reads DATALEN and the byte after it (SP before data, or LF).
func readLen(r *bufio.Reader) (int, byte, error) {
	n, digits := 0, 0
	for {
		ch, err := r.ReadByte()
		if err != nil {
			return 0, 0, unexpected(err)
		}
		if ch < '0' || ch > '9' {
			if digits == 0 {
				return 0, 0, fmt.Errorf("malformed data length at %q", ch)
			}
			return n, ch, nil
		}
		if n = n*10 + int(ch-'0'); n > maxDataLen {
			return 0, 0, fmt.Errorf("data length over %d", maxDataLen)
		}
		digits++
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseRsp splits an rsp's data: "CODE [TEXT]" then, after LF, the rest.
func parseRsp(data []byte) (code int, text, rest string) {
	line, rest, _ := strings.Cut(string(data), "\n")
	c, text, _ := strings.Cut(line, " ")
	code, err := strconv.Atoi(c)
	if err != nil {
		return 0, line, rest
	}
	return code, text, rest
}
