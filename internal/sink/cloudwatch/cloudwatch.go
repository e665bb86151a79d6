// Package cloudwatch is a test sink: a stub of the Amazon CloudWatch Logs
// API speaking its real wire protocol — AWS JSON 1.1 (POST /, Content-Type
// application/x-amz-json-1.1, the operation in X-Amz-Target:
// Logs_20140328.<Operation>, errors as {"__type", "message"} with status
// 400; https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/)
// — for the end-to-end tests of the awslogs driver where AWS is out of
// reach.
//
// It implements CreateLogGroup, CreateLogStream and PutLogEvents with the
// checks the service makes that a client can trip over: the group and
// stream must exist (ResourceNotFoundException), may not be created twice
// (ResourceAlreadyExistsException), and the events of one PutLogEvents
// call must be in chronological order and within its count and size
// limits (InvalidParameterException). Requests must be signed with
// Signature Version 4 for the access key, region and the "logs" service
// given to New; the signature itself is not recomputed.
//
// It must never import dockerlogger's own packages: it stands for the
// real service and knows nothing of the client under test.
package cloudwatch

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/store"
)

// Event is one log event as stored.
type Event struct {
	Group     string `json:"group"`
	Stream    string `json:"stream"`
	Timestamp int64  `json:"timestamp"` // milliseconds since the epoch
	Message   string `json:"message"`
}

// Server is a CloudWatch Logs endpoint.
type Server struct {
	accessKey, region string
	address           string
	srv               *http.Server

	// Store holds the events stored; it changes at every request, and
	// its Wait waits for N events.
	store.Store[Event]

	mu     sync.Mutex
	groups map[string]map[string]bool // group -> streams
	calls  []string                   // operations served, in order, with their status
}

// Listen serves on address ("127.0.0.1:0" picks a free port) for
// requests signed with accessKey in region.
func Listen(address, accessKey, region string) (*Server, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("cloudwatch sink: listen %s: %w", address, err)
	}
	s := &Server{Store: store.Store[Event]{Name: "cloudwatch sink"}, accessKey: accessKey, region: region,
		address: ln.Addr().String(), groups: map[string]map[string]bool{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the endpoint for Docker's awslogs-endpoint log-opt.
func (s *Server) URL() string { return "http://" + s.address }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// CreateGroup creates a log group, as an operator would beforehand.
func (s *Server) CreateGroup(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[name] == nil {
		s.groups[name] = map[string]bool{}
	}
}

// Streams returns the streams of group, or nil if it does not exist.
func (s *Server) Streams(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.groups[group] {
		names = append(names, n)
	}
	return names
}

// Events returns a copy of every event stored, in arrival order.
func (s *Server) Events() []Event { return s.All() }

// Calls returns the operations served, as "Operation status".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// apiError is an error in the AWS JSON protocol.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func bad(typ, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, typ, fmt.Sprintf(format, args...)}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	op, out, err := s.serve(r)
	status := http.StatusOK
	if err != nil {
		status = err.status
	}
	s.mu.Lock()
	s.calls = append(s.calls, op+" "+strconv.Itoa(status))
	s.mu.Unlock()
	s.Signal()

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", fmt.Sprintf("00000000-0000-0000-0000-%012d", len(s.Calls())))
	if err != nil {
		w.Header().Set("X-Amzn-ErrorType", err.typ)
		w.WriteHeader(err.status)
		json.NewEncoder(w).Encode(map[string]string{"__type": err.typ, "message": err.msg})
		return
	}
	w.WriteHeader(status)
	if out == nil {
		out = struct{}{}
	}
	json.NewEncoder(w).Encode(out)
}

func (s *Server) serve(r *http.Request) (string, any, *apiError) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "Logs_20140328.")
	if r.Method != http.MethodPost || r.URL.Path != "/" || !ok {
		return target, nil, bad("UnknownOperationException", "unknown operation %q %s %s", target, r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		return op, nil, bad("SerializationException", "Content-Type %q, want application/x-amz-json-1.1", ct)
	}
	if err := s.checkSignature(r); err != nil {
		return op, nil, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return op, nil, bad("SerializationException", "read body: %v", err)
	}
	switch op {
	case "CreateLogGroup":
		var in struct{ LogGroupName string }
		if err := json.Unmarshal(body, &in); err != nil || in.LogGroupName == "" {
			return op, nil, bad("InvalidParameterException", "logGroupName is required")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.groups[in.LogGroupName] != nil {
			return op, nil, bad("ResourceAlreadyExistsException", "The specified log group already exists")
		}
		s.groups[in.LogGroupName] = map[string]bool{}
		return op, nil, nil
	case "CreateLogStream":
		var in struct{ LogGroupName, LogStreamName string }
		if err := json.Unmarshal(body, &in); err != nil || in.LogGroupName == "" || in.LogStreamName == "" {
			return op, nil, bad("InvalidParameterException", "logGroupName and logStreamName are required")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		g := s.groups[in.LogGroupName]
		if g == nil {
			return op, nil, bad("ResourceNotFoundException", "The specified log group does not exist.")
		}
		if g[in.LogStreamName] {
			return op, nil, bad("ResourceAlreadyExistsException", "The specified log stream already exists")
		}
		g[in.LogStreamName] = true
		return op, nil, nil
	case "PutLogEvents":
		return op, nil, s.put(body)
	}
	return op, nil, bad("UnknownOperationException", "operation %s is not implemented by this stub", op)
}

// put is PutLogEvents. Its reply, nextSequenceToken, is ignored by
// today's service but still returned.
func (s *Server) put(body []byte) *apiError {
	var in struct {
		LogGroupName, LogStreamName string
		LogEvents                   []struct {
			Timestamp *int64
			Message   *string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return bad("SerializationException", "%v", err)
	}
	if n := len(in.LogEvents); n < 1 || n > 10000 {
		return bad("InvalidParameterException", "1 to 10000 log events per call, got %d", n)
	}
	size := 0
	var evs []Event
	for i, e := range in.LogEvents {
		if e.Timestamp == nil || e.Message == nil {
			return bad("InvalidParameterException", "log event %d lacks timestamp or message", i)
		}
		if i > 0 && *e.Timestamp < *in.LogEvents[i-1].Timestamp {
			return bad("InvalidParameterException", "Log events in a single PutLogEvents request must be in chronological order.")
		}
		size += len(*e.Message) + 26
		evs = append(evs, Event{in.LogGroupName, in.LogStreamName, *e.Timestamp, *e.Message})
	}
	if size > 1048576 {
		return bad("InvalidParameterException", "batch of %d bytes exceeds 1048576", size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[in.LogGroupName]
	if g == nil {
		return bad("ResourceNotFoundException", "The specified log group does not exist.")
	}
	if !g[in.LogStreamName] {
		return bad("ResourceNotFoundException", "The specified log stream does not exist.")
	}
	s.Add(evs...)
	return nil
}

// checkSignature checks the SigV4 Authorization header's credential
// scope: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/logs/aws4_request.
func (s *Server) checkSignature(r *http.Request) *apiError {
	denied := func(why string) *apiError {
		return &apiError{http.StatusBadRequest, "UnrecognizedClientException", why}
	}
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 Credential=")
	if !ok {
		return denied("Missing Authentication Token")
	}
	cred, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[3] != "logs" {
		return denied("malformed credential scope " + cred)
	}
	if parts[0] != s.accessKey {
		return denied("The security token included in the request is invalid.")
	}
	if parts[2] != s.region {
		return &apiError{http.StatusBadRequest, "InvalidSignatureException", "Credential should be scoped to a valid region, not '" + parts[2] + "'."}
	}
	if r.Header.Get("X-Amz-Date") == "" {
		return denied("missing X-Amz-Date")
	}
	return nil
}
