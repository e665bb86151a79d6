// Package hec is a test sink: a Splunk HTTP Event Collector endpoint
// speaking the real HEC protocol (https://docs.splunk.com/Documentation/Splunk/latest/Data/HECRESTendpoints
// and https://docs.splunk.com/Documentation/Splunk/latest/Data/TroubleshootHTTPEventCollector
// for the status codes), for the end-to-end tests of the splunk driver
// where no Splunk runs.
//
// It serves POST /services/collector/event/1.0 (and /services/collector,
// /services/collector/event) with `Authorization: Splunk <token>`, a
// body of concatenated JSON event objects, optionally gzip-encoded
// (Content-Encoding: gzip), answers like Splunk: 200 {"text":"Success",
// "code":0}, 401 for a missing or malformed Authorization, 403 for a
// wrong token, 400 for bad data; with index acknowledgment on, it
// requires X-Splunk-Request-Channel and returns an ackId per channel.
// OPTIONS on the endpoint answers 200, which is the health check
// Docker's driver makes when splunk-verify-connection=true.
//
// For fault tests it can be stopped and started on the same address and
// told to answer every request with a given status.
//
// It must never import dockerlogger's own packages: it stands for a real
// server and knows nothing of the client under test.
package hec

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/store"
)

// Event is one HEC event object as received.
type Event struct {
	Time       string          `json:"time"`
	Host       string          `json:"host"`
	Source     string          `json:"source,omitempty"`
	SourceType string          `json:"sourcetype,omitempty"`
	Index      string          `json:"index,omitempty"`
	Event      json.RawMessage `json:"event"`
	// Gzip says whether the request carrying the event was gzip-encoded.
	Gzip bool `json:"gzip"`
}

// Request records one request's outcome.
type Request struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	Status  int    `json:"status"`
	Auth    string `json:"auth"`
	Channel string `json:"channel,omitempty"`
	Events  int    `json:"events"`
}

// Server is an HEC endpoint.
type Server struct {
	token    string
	indexAck bool
	address  string

	// Store holds the events accepted; it changes at every request, and
	// its Wait waits for N events.
	store.Store[Event]

	mu       sync.Mutex
	srv      *http.Server
	requests []Request
	fail     int              // status forced on every request; 0: none
	acks     map[string]int64 // next ackId per channel
}

// Listen serves on address ("127.0.0.1:0" picks a free port), accepting
// token. indexAck turns on index acknowledgment, as on a token with
// "Enable indexer acknowledgement" checked.
func Listen(address, token string, indexAck bool) (*Server, error) {
	s := &Server{Store: store.Store[Event]{Name: "hec sink"}, token: token, indexAck: indexAck, acks: map[string]int64{}}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("hec sink: listen %s: %w", address, err)
	}
	s.address = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// URL is the base URL for Docker's splunk-url log-opt.
func (s *Server) URL() string { return "http://" + s.address }

// Addr is the host:port served.
func (s *Server) Addr() string { return s.address }

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// Stop closes the listener and every connection, as a server going down.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Start serves again on the same address after Stop.
func (s *Server) Start() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	ln, err := net.Listen("tcp", s.address)
	if err != nil {
		return fmt.Errorf("hec sink: listen again on %s: %w", s.address, err)
	}
	s.serve(ln)
	return nil
}

// Close stops the server for good.
func (s *Server) Close() { s.Stop() }

// Fail makes every POST answer status (503 is Splunk's "Server is busy");
// 0 restores normal service.
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = status
}

// Events returns a copy of the events accepted so far, in arrival order.
func (s *Server) Events() []Event { return s.All() }

// Requests returns a copy of every request served.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WaitRequests waits until at least n requests were answered with status
// (any status if 0) or d passes.
func (s *Server) WaitRequests(n, status int, d time.Duration) error {
	got := 0
	if s.Until(d, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		got = 0
		for _, r := range s.requests {
			if status == 0 || r.Status == status {
				got++
			}
		}
		return got >= n
	}) {
		return nil
	}
	return fmt.Errorf("hec sink: %d of %d requests with status %d after %v", got, n, status, d)
}

// reply is Splunk's JSON answer body.
type reply struct {
	Text    string `json:"text"`
	Code    int    `json:"code"`
	Invalid *int   `json:"invalid-event-number,omitempty"`
	AckID   *int64 `json:"ackId,omitempty"`
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Channel: r.Header.Get("X-Splunk-Request-Channel")}
	var evs []Event
	status, body := s.answer(r, &rec, &evs)
	rec.Status = status
	rec.Events = len(evs)

	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	s.Add(evs...) // and wakes the waiters on requests

	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (s *Server) answer(r *http.Request, rec *Request, evs *[]Event) (int, reply) {
	switch r.URL.Path {
	case "/services/collector", "/services/collector/event", "/services/collector/event/1.0":
	default:
		return http.StatusNotFound, reply{Text: "The requested URL was not found on this server.", Code: 404}
	}
	if r.Method == http.MethodOptions {
		return http.StatusOK, reply{Text: "Success", Code: 0}
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, reply{Text: "Method not allowed", Code: 405}
	}
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != 0 {
		return fail, reply{Text: http.StatusText(fail), Code: 9}
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return http.StatusUnauthorized, reply{Text: "Token is required", Code: 2}
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || scheme != "Splunk" || token == "" {
		return http.StatusUnauthorized, reply{Text: "Invalid authorization", Code: 3}
	}
	if token != s.token {
		return http.StatusForbidden, reply{Text: "Invalid token", Code: 4}
	}
	if s.indexAck && rec.Channel == "" {
		return http.StatusBadRequest, reply{Text: "Data channel is missing", Code: 10}
	}
	var body io.Reader = r.Body
	gz := false
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return http.StatusBadRequest, reply{Text: "Invalid data format", Code: 6}
		}
		body, gz = zr, true
	default:
		return http.StatusUnsupportedMediaType, reply{Text: "Unsupported content encoding " + enc, Code: 6}
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return http.StatusBadRequest, reply{Text: "Invalid data format", Code: 6}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return http.StatusBadRequest, reply{Text: "No data", Code: 5}
	}
	// Splunk indexes the events before a bad one and names the bad one.
	dec := json.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var ev Event
		err := dec.Decode(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		n := i
		if err != nil {
			return http.StatusBadRequest, reply{Text: "Invalid data format", Code: 6, Invalid: &n}
		}
		if len(ev.Event) == 0 || string(ev.Event) == "null" {
			return http.StatusBadRequest, reply{Text: "Event field is required", Code: 12, Invalid: &n}
		}
		if string(ev.Event) == `""` {
			return http.StatusBadRequest, reply{Text: "Event field cannot be blank", Code: 13, Invalid: &n}
		}
		ev.Gzip = gz
		*evs = append(*evs, ev)
	}
	ok200 := reply{Text: "Success", Code: 0}
	if s.indexAck {
		s.mu.Lock()
		id := s.acks[rec.Channel]
		s.acks[rec.Channel] = id + 1
		s.mu.Unlock()
		ok200.AckID = &id
	}
	return http.StatusOK, ok200
}
