// Package forward is a test sink: the server side of Fluentd's Forward
// Protocol v1 (https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1),
// as fluentd's in_forward plugin speaks it, for the end-to-end tests of
// the fluentd driver where no real fluentd runs.
//
// It accepts TCP and unix-socket connections carrying msgpack arrays in
// all four carrier modes — Message [tag, time, record, option], Forward
// [tag, [[time, record]...], option], PackedForward (entries as a msgpack
// bin/str event stream) and CompressedPackedForward (option
// compressed=gzip) — with time as an integer or as EventTime (ext type 0,
// seconds and nanoseconds), and a nil heartbeat. When an option carries
// "chunk", it replies {"ack": chunk} as the spec requires. Not
// implemented: the optional HELO/PING/PONG authentication handshake, UDP
// heartbeats and in_forward's JSON convenience format.
//
// For fault tests it can be stopped and started again on the same address
// and told to stall (stop reading from its connections).
//
// It must never import dockerlogger's own packages: it stands for a real
// server and knows nothing of the client under test.
package forward

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/store"
	"github.com/tinylib/msgp/msgp"
)

// Event is one event as the server decoded it.
type Event struct {
	Tag string `json:"tag"`
	// Time is the event time; EventTime says whether it came as the
	// EventTime extension (nanoseconds) rather than integer seconds.
	Time      time.Time      `json:"time"`
	EventTime bool           `json:"event_time"`
	Record    map[string]any `json:"record"`
	// Mode is the carrier mode the event arrived in: message, forward,
	// packed or compressed.
	Mode string `json:"mode"`
}

// Str returns the record field key as a string ("" if missing or not a
// string).
func (e Event) Str(key string) string {
	switch v := e.Record[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// Server is a Forward protocol server.
type Server struct {
	network, address string

	// Store holds the events received; its Wait waits for N of them and
	// its Notify signals the next.
	store.Store[Event]

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]chan struct{} // each conn's close signal
	gate  chan struct{}              // closed while not stalled
	acks  int
	// unacked: see Unacked.
	unacked int
	errs    []error
	wg      sync.WaitGroup
}

// Listen starts a server on network ("tcp" or "unix") and address (for
// tcp, "127.0.0.1:0" picks a free port).
func Listen(network, address string) (*Server, error) {
	s := newServer(network, "")
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("forward sink: listen %s %s: %w", network, address, err)
	}
	s.address = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// Reserve picks a free TCP address on 127.0.0.1 without serving on it
// yet: for tests of a client that starts before its server.
func Reserve() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("forward sink: reserve a port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return newServer("tcp", addr), nil
}

// newServer is a server on network and address that serves nothing yet.
func newServer(network, address string) *Server {
	gate := make(chan struct{})
	close(gate)
	return &Server{Store: store.Store[Event]{Name: "forward sink"}, network: network, address: address,
		conns: map[net.Conn]chan struct{}{}, gate: gate}
}

// URL is the address in the form of Docker's fluentd-address log-opt:
// tcp://host:port or unix:///path.
func (s *Server) URL() string {
	if s.network == "unix" {
		return "unix://" + s.address
	}
	return "tcp://" + s.address
}

// Addr is the listening address (host:port, or the socket path).
func (s *Server) Addr() string { return s.address }

func (s *Server) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			done := make(chan struct{})
			s.mu.Lock()
			if s.ln != ln { // stopped meanwhile
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = done
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(c, done)
				s.mu.Lock()
				if ch, ok := s.conns[c]; ok {
					delete(s.conns, c)
					close(ch)
				}
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
}

// Stop closes the listener and every connection, as a server that goes
// down does. Events received so far are kept.
func (s *Server) Stop() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	for c, done := range s.conns {
		c.Close()
		close(done)
		delete(s.conns, c)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.wg.Wait()
}

// Start listens again on the same address after Stop (or after Reserve).
func (s *Server) Start() error {
	s.mu.Lock()
	running := s.ln != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	if s.network == "unix" {
		os.Remove(s.address) // a socket file left by a crashed run
	}
	ln, err := net.Listen(s.network, s.address)
	if err != nil {
		return fmt.Errorf("forward sink: listen again on %s: %w", s.address, err)
	}
	s.serve(ln)
	return nil
}

// Close stops the server for good.
func (s *Server) Close() { s.Stall(false); s.Stop() }

// Stall stops (true) or resumes (false) reading from every connection:
// the client's writes then fill the socket buffers and block, as with a
// server that hangs.
func (s *Server) Stall(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := isOpen(s.gate)
	switch {
	case on && open:
		s.gate = make(chan struct{})
		// Interrupt reads in progress; gatedReader then waits at the gate.
		for c := range s.conns {
			c.SetReadDeadline(time.Now())
		}
	case !on && !open:
		close(s.gate)
	}
}

// Events returns a copy of the events received so far, in arrival order.
func (s *Server) Events() []Event { return s.All() }

// Acks is how many ack responses the server sent.
func (s *Server) Acks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks
}

// Unacked is how many events the server stored but could not acknowledge
// (the connection closed under the ack): their sender saw an error.
func (s *Server) Unacked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unacked
}

// Errors returns the protocol errors seen (each closed its connection).
func (s *Server) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// add stores evs, counting the ack first: a caller that waited for the
// events sees it.
func (s *Server) add(evs []Event, ack bool) {
	if ack {
		s.mu.Lock()
		s.acks++
		s.mu.Unlock()
	}
	s.Add(evs...)
}

// gatedReader reads from the connection only while the server is not
// stalled, and gives up when the connection is closed by Stop.
type gatedReader struct {
	s    *Server
	c    net.Conn
	done <-chan struct{}
}

func (g gatedReader) Read(p []byte) (int, error) {
	for {
		// Checking the gate and clearing the deadline under the lock that
		// Stall takes means a stall either is seen here or interrupts the
		// Read below through the deadline it sets.
		g.s.mu.Lock()
		gate := g.s.gate
		open := isOpen(gate)
		if open {
			g.c.SetReadDeadline(time.Time{})
		}
		g.s.mu.Unlock()
		if !open {
			select {
			case <-gate:
				continue
			case <-g.done:
				return 0, net.ErrClosed
			}
		}
		n, err := g.c.Read(p)
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // stalled while reading: wait at the gate
		}
		return n, err
	}
}

func isOpen(gate chan struct{}) bool {
	select {
	case <-gate:
		return true
	default:
		return false
	}
}

// handle decodes requests from one connection until EOF or a protocol
// error, which closes the connection as in_forward does.
func (s *Server) handle(c net.Conn, done <-chan struct{}) {
	r := msgp.NewReader(gatedReader{s, c, done})
	for {
		evs, chunk, err := readRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				s.errs = append(s.errs, fmt.Errorf("forward sink: connection from %s: %w", c.RemoteAddr(), err))
				s.mu.Unlock()
			}
			return
		}
		if chunk != "" {
			// The ack is sent after the events are stored: a client that
			// sees it may rely on them having arrived.
			var b []byte
			b = msgp.AppendMapHeader(b, 1)
			b = msgp.AppendString(b, "ack")
			b = msgp.AppendString(b, chunk)
			s.add(evs, true)
			if _, err := c.Write(b); err != nil {
				// Stored, but the client never hears so (the sink
				// stopped under it): it may count them lost.
				s.mu.Lock()
				s.unacked += len(evs)
				s.mu.Unlock()
				return
			}
			continue
		}
		if evs != nil {
			s.add(evs, false)
		}
	}
}

// readRequest decodes one top-level msgpack value: nil (heartbeat) or an
// array in one of the carrier modes. It returns the events and the chunk
// option to acknowledge, if any.
func readRequest(r *msgp.Reader) ([]Event, string, error) {
	t, err := r.NextType()
	if err != nil {
		return nil, "", err
	}
	if t == msgp.NilType {
		return nil, "", r.ReadNil()
	}
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, "", fmt.Errorf("request is not an array: %w", err)
	}
	if n < 2 || n > 4 {
		return nil, "", fmt.Errorf("request array has %d elements, want 2 to 4", n)
	}
	tag, err := r.ReadString()
	if err != nil {
		return nil, "", fmt.Errorf("tag: %w", err)
	}
	t, err = r.NextType()
	if err != nil {
		return nil, "", err
	}
	var evs []Event
	var mode string
	var packed []byte
	rest := n - 2 // elements after tag and the second one
	switch t {
	case msgp.ArrayType: // Forward mode
		mode = "forward"
		m, err := r.ReadArrayHeader()
		if err != nil {
			return nil, "", err
		}
		for i := uint32(0); i < m; i++ {
			ev, err := readEntry(r)
			if err != nil {
				return nil, "", fmt.Errorf("forward entry %d: %w", i, err)
			}
			evs = append(evs, ev)
		}
	case msgp.BinType, msgp.StrType: // PackedForward, maybe compressed
		mode = "packed"
		if t == msgp.BinType {
			packed, err = r.ReadBytes(nil)
		} else {
			var s string
			s, err = r.ReadString()
			packed = []byte(s)
		}
		if err != nil {
			return nil, "", err
		}
	default: // Message mode: time, record
		mode = "message"
		if n < 3 {
			return nil, "", errors.New("message mode needs tag, time and record")
		}
		tm, et, err := readTime(r)
		if err != nil {
			return nil, "", err
		}
		rec, err := readRecord(r)
		if err != nil {
			return nil, "", err
		}
		evs = []Event{{Time: tm, EventTime: et, Record: rec}}
		rest = n - 3
	}
	var opt map[string]any
	switch rest {
	case 0:
	case 1:
		if opt, err = readOption(r); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", fmt.Errorf("%s mode request has %d elements", mode, n)
	}
	if packed != nil {
		if c, _ := opt["compressed"].(string); c != "" {
			if c != "gzip" {
				return nil, "", fmt.Errorf("compressed=%q: only gzip is defined", c)
			}
			mode = "compressed"
			zr, err := gzip.NewReader(bytes.NewReader(packed))
			if err != nil {
				return nil, "", fmt.Errorf("compressed entries: %w", err)
			}
			// gzip.Reader reads concatenated members, which the spec allows.
			if packed, err = io.ReadAll(zr); err != nil {
				return nil, "", fmt.Errorf("compressed entries: %w", err)
			}
		}
		pr := msgp.NewReader(bytes.NewReader(packed))
		for i := 0; ; i++ {
			if _, err := pr.NextType(); errors.Is(err, io.EOF) {
				break
			}
			ev, err := readEntry(pr)
			if err != nil {
				return nil, "", fmt.Errorf("packed entry %d: %w", i, err)
			}
			evs = append(evs, ev)
		}
	}
	if size, ok := opt["size"]; ok {
		if want, ok := asInt(size); !ok || want != int64(len(evs)) {
			return nil, "", fmt.Errorf("option size=%v but %d events", size, len(evs))
		}
	}
	for i := range evs {
		evs[i].Tag, evs[i].Mode = tag, mode
	}
	chunk, _ := opt["chunk"].(string)
	return evs, chunk, nil
}

// readEntry decodes one Entry: [time, record].
func readEntry(r *msgp.Reader) (Event, error) {
	n, err := r.ReadArrayHeader()
	if err != nil {
		return Event{}, err
	}
	if n != 2 {
		return Event{}, fmt.Errorf("entry has %d elements, want 2", n)
	}
	tm, et, err := readTime(r)
	if err != nil {
		return Event{}, err
	}
	rec, err := readRecord(r)
	if err != nil {
		return Event{}, err
	}
	return Event{Time: tm, EventTime: et, Record: rec}, nil
}

// readTime decodes an integer time or an EventTime: ext type 0 with 8
// bytes, big-endian 32-bit seconds then 32-bit nanoseconds.
func readTime(r *msgp.Reader) (time.Time, bool, error) {
	t, err := r.NextType()
	if err != nil {
		return time.Time{}, false, err
	}
	switch t {
	case msgp.IntType, msgp.UintType:
		sec, err := r.ReadInt64()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("time: %w", err)
		}
		return time.Unix(sec, 0), false, nil
	case msgp.ExtensionType:
		typ, data, err := r.ReadExtensionRaw()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("time: %w", err)
		}
		if typ != 0 || len(data) != 8 {
			return time.Time{}, false, fmt.Errorf("time: ext type %d of %d bytes is not an EventTime (type 0, 8 bytes)", typ, len(data))
		}
		sec := binary.BigEndian.Uint32(data[:4])
		nsec := binary.BigEndian.Uint32(data[4:])
		return time.Unix(int64(sec), int64(nsec)), true, nil
	}
	return time.Time{}, false, fmt.Errorf("time is a msgpack %v, want integer or EventTime", t)
}

// readRecord decodes a record: a map with string keys.
func readRecord(r *msgp.Reader) (map[string]any, error) {
	n, err := r.ReadMapHeader()
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	rec := make(map[string]any, n)
	for i := uint32(0); i < n; i++ {
		k, err := r.ReadString()
		if err != nil {
			return nil, fmt.Errorf("record key: %w", err)
		}
		v, err := r.ReadIntf()
		if err != nil {
			return nil, fmt.Errorf("record[%q]: %w", k, err)
		}
		rec[k] = v
	}
	return rec, nil
}

func readOption(r *msgp.Reader) (map[string]any, error) {
	if r.IsNil() {
		return nil, r.ReadNil()
	}
	opt, err := readRecord(r)
	if err != nil {
		return nil, fmt.Errorf("option: %w", err)
	}
	return opt, nil
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), true
	}
	return 0, false
}
