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
	"testing"
	"time"
)

// server is an in-process RELP server for these unit tests, written from
// the specification independently of the client's parser. The end-to-end
// tests (test/relp_test.go) use rsyslog's imrelp.
type server struct {
	t  *testing.T
	ln net.Listener
	// onSyslog decides per message: ack with code 200 (return 200), refuse
	// (another code), drop the connection without answer (-1), or send
	// serverclose and drop it (-2). nil acks all.
	onSyslog func(session int, msg string) int
	noAck    bool // never answer syslog frames

	mu       sync.Mutex
	msgs     []string // every syslog message received, duplicates too
	sessions int
	closes   int // close commands received
	conns    []net.Conn
}

func newServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, ln: ln}
	go s.accept()
	t.Cleanup(s.stop)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) stop() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

func (s *server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.sessions++
		n := s.sessions
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go s.serve(c, n)
	}
}

// srvFrame reads one frame with fmt's scanning: "TXNR CMD LEN[ DATA]\n".
func srvFrame(r *bufio.Reader) (tx int, cmd string, data string, err error) {
	hdr, err := r.ReadString(' ')
	if err != nil {
		return 0, "", "", err
	}
	tx, err = strconv.Atoi(strings.TrimSpace(hdr))
	if err != nil {
		return 0, "", "", err
	}
	cmd, err = r.ReadString(' ')
	if err != nil {
		return 0, "", "", err
	}
	cmd = strings.TrimSpace(cmd)
	var lenStr []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, "", "", err
		}
		if b == ' ' || b == '\n' {
			n, err := strconv.Atoi(string(lenStr))
			if err != nil {
				return 0, "", "", err
			}
			if n == 0 {
				return tx, cmd, "", nil
			}
			buf := make([]byte, n+1)
			if _, err := io.ReadFull(r, buf); err != nil {
				return 0, "", "", err
			}
			if buf[n] != '\n' {
				return 0, "", "", fmt.Errorf("trailer %q", buf[n])
			}
			return tx, cmd, string(buf[:n]), nil
		}
		lenStr = append(lenStr, b)
	}
}

func rsp(w io.Writer, tx int, data string) {
	if data == "" {
		fmt.Fprintf(w, "%d rsp 0\n", tx)
		return
	}
	fmt.Fprintf(w, "%d rsp %d %s\n", tx, len(data), data)
}

func (s *server) serve(c net.Conn, session int) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		tx, cmd, data, err := srvFrame(r)
		if err != nil {
			return
		}
		switch cmd {
		case "open":
			if !strings.Contains(data, "relp_version=0") || !strings.Contains(data, "commands=syslog") {
				s.t.Errorf("open offers %q", data)
			}
			rsp(w, tx, "200 OK\nrelp_version=0\nrelp_software=test\ncommands=syslog")
		case "syslog":
			s.mu.Lock()
			s.msgs = append(s.msgs, data)
			s.mu.Unlock()
			if s.noAck {
				continue
			}
			code := 200
			if s.onSyslog != nil {
				code = s.onSyslog(session, data)
			}
			switch code {
			case -1:
				return
			case -2:
				w.WriteString("0 serverclose 0\n")
				w.Flush()
				return
			case 200:
				rsp(w, tx, "200 OK")
			default:
				rsp(w, tx, strconv.Itoa(code)+" go away")
			}
		case "close":
			s.mu.Lock()
			s.closes++
			s.mu.Unlock()
			rsp(w, tx, "")
			w.Flush()
			return
		default:
			s.t.Errorf("unexpected command %q", cmd)
			return
		}
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
}

func (s *server) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func msgs(n int) []string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf("<14>message %05d with a space", i)
	}
	return m
}

// checkInOrder checks that got holds every message of want, first
// arrivals in order, and returns how many were duplicates.
func checkInOrder(t *testing.T, got, want []string) int {
	t.Helper()
	index := map[string]int{}
	for i, m := range want {
		index[m] = i
	}
	seen := map[string]bool{}
	last, dups := -1, 0
	for _, m := range got {
		i, ok := index[m]
		if !ok {
			t.Fatalf("server got %q, which was never sent", m)
		}
		if seen[m] {
			dups++
			continue
		}
		seen[m] = true
		if i < last {
			t.Fatalf("message %d arrived after message %d", i, last)
		}
		last = i
	}
	if len(seen) != len(want) {
		t.Fatalf("server got %d distinct messages, want %d", len(seen), len(want))
	}
	return dups
}

func TestSendAndClose(t *testing.T) {
	s := newServer(t)
	c, err := Dial(context.Background(), s.addr(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := msgs(5000)
	for _, m := range want {
		if err := c.Send([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, b := c.Pending(); n != 0 || b != 0 {
		t.Fatalf("pending %d messages %d bytes after Wait, want 0", n, b)
	}
	if got := len(s.received()); got != len(want) {
		t.Fatalf("Wait returned with %d messages at the server, want %d", got, len(want))
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := s.received()
	if len(got) != len(want) {
		t.Fatalf("server got %d messages, want %d", len(got), len(want))
	}
	checkInOrder(t, got, want)
	s.mu.Lock()
	closes := s.closes
	s.mu.Unlock()
	if closes != 1 {
		t.Fatalf("server got %d close commands, want 1", closes)
	}
	if c.Resent() != 0 {
		t.Fatalf("resent %d with no broken connection", c.Resent())
	}
	if err := c.Send([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
}

func TestDialRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err := Dial(context.Background(), addr, Options{})
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Dial to a closed port: %v, want an error naming %s and the refusal", err, addr)
	}
}

// A server that never acknowledges: the window fills, Send waits
// SendTimeout and says so, Pending counts the window, and Close gives up
// when its context ends.
func TestWindowFullBackPressure(t *testing.T) {
	s := newServer(t)
	s.noAck = true
	c, err := Dial(context.Background(), s.addr(), Options{Window: 8, SendTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if err := c.Send([]byte("m" + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	err = c.Send([]byte("one too many"))
	if err == nil || !strings.Contains(err.Error(), "8 messages not acknowledged") {
		t.Fatalf("Send into a full window: %v", err)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Fatalf("Send returned after %v, before SendTimeout", d)
	}
	if n, b := c.Pending(); n != 8 || b != 16 {
		t.Fatalf("pending %d, %d bytes; want 8, 16", n, b)
	}
	waitUntil(t, "8 messages at the server", func() bool { return len(s.received()) == 8 })
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	if err := c.Wait(wctx); err == nil || !strings.Contains(err.Error(), "8 messages not acknowledged") {
		t.Fatalf("Wait with nothing acknowledged: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = c.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "8 messages not acknowledged") {
		t.Fatalf("Close: %v", err)
	}
	if n, _ := c.Pending(); n != 8 {
		t.Fatalf("pending %d after Close gave up, want 8", n)
	}
}

// Connections that break in every way the client must ride out: dropped
// without an answer, serverclose, and a refusal (rsp 500). Every message
// arrives, first arrivals in order, and every duplicate is a resend.
func TestReconnectResends(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
	}{{"dropped", -1}, {"serverclose", -2}, {"refused", 500}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			var mu sync.Mutex
			count := 0
			// Every 300th message breaks its session.
			s.onSyslog = func(_ int, msg string) int {
				mu.Lock()
				defer mu.Unlock()
				count++
				if count%300 == 0 {
					return tc.code
				}
				return 200
			}
			var reports []error
			var rmu sync.Mutex
			c, err := Dial(context.Background(), s.addr(), Options{Window: 32, MinBackoff: time.Millisecond,
				Report: func(err error) { rmu.Lock(); reports = append(reports, err); rmu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			want := msgs(3000)
			for _, m := range want {
				if err := c.Send([]byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := s.received()
			dups := checkInOrder(t, got, want)
			if int64(dups) > c.Resent() {
				t.Fatalf("%d duplicates at the server, but only %d resends counted", dups, c.Resent())
			}
			s.mu.Lock()
			sessions := s.sessions
			s.mu.Unlock()
			if sessions < 5 {
				t.Fatalf("%d sessions: the breaks did not happen", sessions)
			}
			// Each break resends at most one window.
			if c.Resent() > int64(32*(sessions-1)) {
				t.Fatalf("resent %d over %d breaks, more than a window each", c.Resent(), sessions-1)
			}
			if c.Resent() == 0 {
				t.Fatalf("no resends counted over %d breaks", sessions-1)
			}
			rmu.Lock()
			defer rmu.Unlock()
			if len(reports) == 0 || !strings.Contains(reports[0].Error(), "connection lost") {
				t.Fatalf("breaks not reported: %v", reports)
			}
		})
	}
}

// A server that goes away and comes back on the same address later:
// messages queue (up to the window), Send then fails with the reason, and
// everything arrives once the server is back.
func TestServerDownThenBack(t *testing.T) {
	s := newServer(t)
	addr := s.addr()
	c, err := Dial(context.Background(), addr, Options{Window: 16, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, SendTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.stop()
	waitUntil(t, "the client to see the break", func() bool { return !c.Connected() })
	want := msgs(16)
	for _, m := range want {
		if err := c.Send([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	err = c.Send([]byte("seventeenth"))
	if err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("Send with the server down and the window full: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	s2 := &server{t: t, ln: ln}
	go s2.accept()
	t.Cleanup(s2.stop)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s2.received(); len(got) != 16 {
		t.Fatalf("second server got %d messages, want 16: %q", len(got), got)
	}
	checkInOrder(t, s2.received(), want)
}

func TestNewLazy(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c := New(addr, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	c.Start()
	if err := c.Send([]byte("before the server")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	s := &server{t: t, ln: ln}
	go s.accept()
	t.Cleanup(s.stop)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.received(); len(got) != 1 || got[0] != "before the server" {
		t.Fatalf("server got %q", got)
	}
	if c.Resent() != 0 {
		t.Fatalf("a message first written after connecting counted as resent")
	}
}

func TestReadFrame(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want frame
		err  string
	}{
		{in: "12 rsp 6 200 OK\n", want: frame{tx: 12, cmd: "rsp", data: []byte("200 OK")}},
		{in: "0 serverclose 0\n", want: frame{tx: 0, cmd: "serverclose"}},
		{in: "3 rsp 6 200 OK", err: "unexpected EOF"},
		{in: "3 rsp 2 200 OK\n", err: "trailer"},
		{in: "x rsp 0\n", err: "bad transaction number"},
		{in: "3 rsp 99999999999 a\n", err: "data length over"},
		{in: "3 rsp\n", err: "malformed frame header"},
		{in: "3 rsp 5x\n", err: "no space before"},
	} {
		f, err := readFrame(bufio.NewReader(strings.NewReader(tc.in)))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || f.tx != tc.want.tx || f.cmd != tc.want.cmd || string(f.data) != string(tc.want.data) {
			t.Errorf("%q: %+v %v, want %+v", tc.in, f, err, tc.want)
		}
	}
	if code, text, rest := parseRsp([]byte("200 OK\nrelp_version=0\ncommands=syslog")); code != 200 || text != "OK" || !offersSyslog(rest) {
		t.Errorf("parseRsp: %d %q %q", code, text, rest)
	}
	if offersSyslog("relp_version=0\ncommands=other") {
		t.Errorf("offersSyslog accepted commands=other")
	}
}
