package forward

import (
	"bytes"
	"compress/gzip"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
	"github.com/tinylib/msgp/msgp"
)

// The modes Docker's driver does not use are checked with hand-made
// requests built from the spec's examples.

func appendEventTime(b []byte, t time.Time) []byte {
	var d [8]byte
	sec, nsec := uint32(t.Unix()), uint32(t.Nanosecond())
	d[0], d[1], d[2], d[3] = byte(sec>>24), byte(sec>>16), byte(sec>>8), byte(sec)
	d[4], d[5], d[6], d[7] = byte(nsec>>24), byte(nsec>>16), byte(nsec>>8), byte(nsec)
	b, _ = msgp.AppendExtension(b, &msgp.RawExtension{Type: 0, Data: d[:]})
	return b
}

func appendEntry(b []byte, sec int64, msg string) []byte {
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendInt64(b, sec)
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(b, "message")
	return msgp.AppendString(b, msg)
}

// send sends req on a new connection, checks the ack, and waits until
// the server holds total events (connections are not ordered).
func send(t *testing.T, s *Server, req []byte, wantAck string, total int) {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if wantAck != "" {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := msgp.NewReader(c)
		m, err := r.ReadIntf()
		if err != nil {
			t.Fatalf("read ack: %v", err)
		}
		if got := m.(map[string]any)["ack"]; got != wantAck {
			t.Fatalf("ack = %v, want %q", got, wantAck)
		}
	}
	if _, err := s.Wait(total, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestModes(t *testing.T) {
	s, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	et := time.Unix(1441588984, 123456789)
	var req []byte
	// Heartbeat, then Message mode with EventTime and a chunk to ack.
	req = msgp.AppendNil(req)
	req = msgp.AppendArrayHeader(req, 4)
	req = msgp.AppendString(req, "tag.msg")
	req = appendEventTime(req, et)
	req = msgp.AppendMapHeader(req, 1)
	req = msgp.AppendString(req, "message")
	req = msgp.AppendString(req, "one")
	req = msgp.AppendMapHeader(req, 1)
	req = msgp.AppendString(req, "chunk")
	req = msgp.AppendString(req, "c1")
	send(t, s, req, "c1", 1)

	// Forward mode, no option.
	req = msgp.AppendArrayHeader(nil, 2)
	req = msgp.AppendString(req, "tag.fwd")
	req = msgp.AppendArrayHeader(req, 2)
	req = appendEntry(req, 1441588985, "two")
	req = appendEntry(req, 1441588986, "three")
	send(t, s, req, "", 3)

	// PackedForward with size.
	stream := appendEntry(appendEntry(nil, 1, "four"), 2, "five")
	req = msgp.AppendArrayHeader(nil, 3)
	req = msgp.AppendString(req, "tag.packed")
	req = msgp.AppendBytes(req, stream)
	req = msgp.AppendMapHeader(req, 1)
	req = msgp.AppendString(req, "size")
	req = msgp.AppendInt(req, 2)
	send(t, s, req, "", 5)

	// CompressedPackedForward, two gzip members.
	var z bytes.Buffer
	for _, msg := range []string{"six", "seven"} {
		w := gzip.NewWriter(&z)
		w.Write(appendEntry(nil, 3, msg))
		w.Close()
	}
	req = msgp.AppendArrayHeader(nil, 3)
	req = msgp.AppendString(req, "tag.gz")
	req = msgp.AppendBytes(req, z.Bytes())
	req = msgp.AppendMapHeader(req, 2)
	req = msgp.AppendString(req, "compressed")
	req = msgp.AppendString(req, "gzip")
	req = msgp.AppendString(req, "chunk")
	req = msgp.AppendString(req, "c2")
	send(t, s, req, "c2", 7)

	evs, err := s.Wait(7, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ tag, msg, mode string }{
		{"tag.msg", "one", "message"}, {"tag.fwd", "two", "forward"}, {"tag.fwd", "three", "forward"},
		{"tag.packed", "four", "packed"}, {"tag.packed", "five", "packed"},
		{"tag.gz", "six", "compressed"}, {"tag.gz", "seven", "compressed"},
	}
	for i, w := range want {
		e := evs[i]
		if e.Tag != w.tag || e.Str("message") != w.msg || e.Mode != w.mode {
			t.Errorf("event %d = %s %q %s, want %s %q %s", i, e.Tag, e.Str("message"), e.Mode, w.tag, w.msg, w.mode)
		}
	}
	if !evs[0].EventTime || !evs[0].Time.Equal(et) {
		t.Errorf("EventTime: got %v (event_time=%v), want %v", evs[0].Time, evs[0].EventTime, et)
	}
	if evs[1].EventTime || evs[1].Time.Unix() != 1441588985 {
		t.Errorf("integer time: got %v (event_time=%v)", evs[1].Time, evs[1].EventTime)
	}
	if s.Acks() != 2 {
		t.Errorf("acks = %d, want 2", s.Acks())
	}
	if errs := s.Errors(); len(errs) != 0 {
		t.Errorf("protocol errors: %v", errs)
	}
}

func TestBadRequestClosesConnection(t *testing.T) {
	s, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(msgp.AppendString(nil, "not an array"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after a bad request")
	}
	if len(s.Errors()) != 1 {
		t.Fatalf("errors = %v, want one", s.Errors())
	}
}

// TestClientStopStartStall uses the real fluent-logger-golang client over a
// unix socket: acks, a restart on the same path, and a stall.
func TestClientStopStartStall(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fwd.sock")
	s, err := Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := fluent.New(fluent.Config{FluentNetwork: "unix", FluentSocketPath: sock, RequestAck: true, SubSecondPrecision: true, RetryWait: 10, MaxRetry: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Post("a", map[string]string{"log": "first"}); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	// The first write after the restart may hit the dead connection; the
	// client reconnects and resends.
	if err := f.Post("a", map[string]string{"log": "second"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Wait(2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if evs[len(evs)-1].Str("log") != "second" || !evs[0].EventTime {
		t.Fatalf("events: %+v", evs)
	}

	s.Stall(true)
	posted := make(chan error, 1)
	go func() { posted <- f.Post("a", map[string]string{"log": "third"}) }()
	select {
	case err := <-posted:
		t.Fatalf("post returned (%v) while the server stalls: no ack can have come", err)
	case <-time.After(200 * time.Millisecond):
	}
	s.Stall(false)
	if err := <-posted; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(len(evs)+1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
