// Package loki is a test sink: Grafana Loki's push API
// (POST /loki/api/v1/push) as its distributor and ingesters answer it, for
// the end-to-end tests of the loki driver where no Loki runs (Loki's
// server is under the AGPL and stays out of this repository). It decodes
// what Loki decodes — snappy-compressed protobuf PushRequest
// (application/x-protobuf, from Loki's published push.proto) and JSON
// (application/json), either optionally gzip-compressed
// (Content-Encoding: gzip) — and refuses what Loki refuses:
//
//   - a missing X-Scope-OrgID when multi-tenant: 401 "no org id";
//   - a body it cannot decode: 400;
//   - an entry older than the last accepted one of its stream (Loki with
//     unordered_writes off), older than RejectOldSamplesMaxAge, or longer
//     than MaxLineSize: ignored, while the push's other entries are taken,
//     and the answer is 400 with the ingester's text: one "entry with
//     timestamp T ignored, reason: '...'," line per entry, then "user
//     'TENANT', total ignored: N out of M for stream: LABELS";
//   - an entry equal to one of its stream at the stream's last time (time
//     and line): taken and not stored, as Loki's head block deduplicates
//     (a push sent again after its answer was lost);
//   - while Limit is set, every push: 429 (a tenant over its ingestion rate).
//
// For fault tests it can be stopped and started on the same address,
// stalled, and told to answer the next pushes with a status (Fail).
//
// It must never import dockerlogger's own packages: it stands for a real
// server and knows nothing of the client under test.
package loki

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/joyent/dockerlogger/internal/sink/store"
)

// Entry is one log line Loki stored.
type Entry struct {
	Tenant string
	Labels map[string]string
	Time   time.Time
	Line   string
	// Format is "protobuf" or "json"; Gzip, whether the push was gzipped.
	Format string
	Gzip   bool
}

// Server is a Loki push endpoint.
type Server struct {
	store.Store[Entry]

	// MultiTenant requires X-Scope-OrgID (auth_enabled: true).
	MultiTenant bool
	// RejectOldSamplesMaxAge refuses entries older than this (Loki's
	// reject_old_samples_max_age, 7 days by default).
	RejectOldSamplesMaxAge time.Duration
	// MaxLineSize refuses longer lines (Loki's max_line_size, 256 KB).
	MaxLineSize int

	address string
	tls     *tls.Config // nil: plain HTTP
	mu      sync.Mutex
	srv     *http.Server
	last    map[string]*head // per tenant and stream: its last time
	fail    []failure
	limit   bool
	stalled chan struct{} // while set, pushes wait until it is closed
	pushes  []int         // status of every push, in order
}

type failure struct {
	status     int
	retryAfter string
}

// Listen serves on address ("127.0.0.1:0" picks a free port).
func Listen(address string) (*Server, error) { return listen(address, nil, true) }

// ListenTLS serves HTTPS on address with cfg (which may require client
// certificates), as a Loki behind a TLS-terminating gateway.
func ListenTLS(address string, cfg *tls.Config) (*Server, error) { return listen(address, cfg, true) }

// Reserve picks a free address and does not serve it until Start.
func Reserve() (*Server, error) { return listen("127.0.0.1:0", nil, false) }

func listen(address string, cfg *tls.Config, serve bool) (*Server, error) {
	s := &Server{Store: store.Store[Entry]{Name: "loki sink"}, RejectOldSamplesMaxAge: 7 * 24 * time.Hour,
		MaxLineSize: 256 << 10, last: map[string]*head{}, tls: cfg}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("loki sink: listen %s: %w", address, err)
	}
	s.address = ln.Addr().String()
	if !serve {
		ln.Close()
		return s, nil
	}
	s.serve(ln)
	return s, nil
}

// URL is the push URL, for loki-url.
func (s *Server) URL() string {
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + s.address + "/loki/api/v1/push"
}

func (s *Server) serve(ln net.Listener) {
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// Stop closes the listener and every connection, as a Loki going down.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Start serves again on the same address.
func (s *Server) Start() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	ln, err := net.Listen("tcp", s.address)
	if err != nil {
		return fmt.Errorf("loki sink: listen again on %s: %w", s.address, err)
	}
	s.serve(ln)
	return nil
}

// Close stops the server.
func (s *Server) Close() { s.Stop() }

// Fail answers the next n pushes with status (and Retry-After when
// retryAfter is not empty), storing nothing.
func (s *Server) Fail(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, failure{status, retryAfter})
	}
}

// Limit sets whether every push is refused as over the rate limit (429).
func (s *Server) Limit(on bool) {
	s.mu.Lock()
	s.limit = on
	s.mu.Unlock()
}

// Stall holds (true) or lets go (false) every push before it is read: a
// Loki that hangs with its connections open.
func (s *Server) Stall(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.stalled == nil:
		s.stalled = make(chan struct{})
	case !on && s.stalled != nil:
		close(s.stalled)
		s.stalled = nil
	}
}

// Pushes returns the status of every push so far.
func (s *Server) Pushes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.pushes...)
}

// head is a stream's last time and the lines stored at that time.
type head struct {
	t     time.Time
	lines map[string]bool
}

// stream is one decoded stream of a push.
type stream struct {
	labels  map[string]string
	key     string // the labels, sorted, as Loki prints them
	entries []struct {
		t    time.Time
		line string
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	stalled := s.stalled
	s.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-r.Context().Done():
			return
		}
	}
	status, text := s.push(w, r)
	s.mu.Lock()
	s.pushes = append(s.pushes, status)
	s.mu.Unlock()
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	http.Error(w, text, status)
}

func (s *Server) push(w http.ResponseWriter, r *http.Request) (int, string) {
	if r.Method != http.MethodPost || r.URL.Path != "/loki/api/v1/push" {
		return http.StatusNotFound, "404 page not found"
	}
	tenant := r.Header.Get("X-Scope-OrgID")
	if tenant == "" {
		if s.MultiTenant {
			return http.StatusUnauthorized, "no org id"
		}
		tenant = "fake" // Loki's single tenant
	}
	s.mu.Lock()
	if len(s.fail) > 0 {
		f := s.fail[0]
		s.fail = s.fail[1:]
		s.mu.Unlock()
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		return f.status, http.StatusText(f.status)
	}
	limited := s.limit
	s.mu.Unlock()
	if limited {
		return http.StatusTooManyRequests, fmt.Sprintf("Ingestion rate limit exceeded for user %s (limit: 4194304 bytes/sec) while attempting to ingest lines", tenant)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 100<<20))
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	gz := r.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return http.StatusBadRequest, "gzip: " + err.Error()
		}
		if body, err = io.ReadAll(zr); err != nil {
			return http.StatusBadRequest, "gzip: " + err.Error()
		}
	}
	var streams []*stream
	format := "protobuf"
	switch ct := r.Header.Get("Content-Type"); {
	case ct == "application/json":
		format = "json"
		streams, err = decodeJSON(body)
	case ct == "" || ct == "application/x-protobuf":
		streams, err = decodeProtobuf(body)
	default:
		return http.StatusUnsupportedMediaType, "unsupported Content-Type " + strconv.Quote(ct)
	}
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	return s.store(tenant, format, gz, streams)
}

// store takes each stream's valid entries and says what it ignored.
func (s *Server) store(tenant, format string, gz bool, streams []*stream) (int, string) {
	now := time.Now()
	var msgs []string
	var took []Entry
	s.mu.Lock()
	for _, st := range streams {
		var ignored []string
		for _, e := range st.entries {
			key := tenant + "\x00" + st.key
			h, seen := s.last[key]
			var why string
			switch {
			case len(e.line) > s.MaxLineSize:
				why = fmt.Sprintf("Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes", s.MaxLineSize, st.key, len(e.line))
			case e.t.Before(now.Add(-s.RejectOldSamplesMaxAge)):
				why = fmt.Sprintf("entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s", st.key, e.t.Format(time.RFC3339), now.Add(-s.RejectOldSamplesMaxAge).Format(time.RFC3339))
			case seen && e.t.Before(h.t):
				why = "entry out of order"
			case seen && e.t.Equal(h.t) && h.lines[e.line]:
				continue // a duplicate: taken, not stored
			}
			if why != "" {
				ignored = append(ignored, fmt.Sprintf("entry with timestamp %s ignored, reason: '%s',", e.t, why))
				continue
			}
			ent := Entry{Tenant: tenant, Labels: st.labels, Time: e.t, Line: e.line, Format: format, Gzip: gz}
			if !seen || !e.t.Equal(h.t) {
				h = &head{t: e.t, lines: map[string]bool{}}
				s.last[key] = h
			}
			h.lines[e.line] = true
			took = append(took, ent)
		}
		if len(ignored) > 0 {
			msgs = append(msgs, strings.Join(ignored, "\n")+fmt.Sprintf("\nuser '%s', total ignored: %d out of %d for stream: %s", tenant, len(ignored), len(st.entries), st.key))
		}
	}
	s.mu.Unlock()
	s.Add(took...)
	if len(msgs) > 0 {
		return http.StatusBadRequest, strings.Join(msgs, "\n")
	}
	return http.StatusNoContent, ""
}

// Field numbers of push.proto and google.protobuf.Timestamp.
const (
	pushStreams   = 1
	streamLabels  = 1
	streamEntries = 2
	entryTime     = 1
	entryLine     = 2
	tsSeconds     = 1
	tsNanos       = 2
)

func decodeProtobuf(body []byte) ([]*stream, error) {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	var streams []*stream
	err = fields(raw, func(num protowire.Number, v []byte) error {
		if num != pushStreams {
			return nil
		}
		st := &stream{}
		err := fields(v, func(num protowire.Number, v []byte) error {
			switch num {
			case streamLabels:
				labels, err := parseLabels(string(v))
				if err != nil {
					return err
				}
				st.labels = labels
			case streamEntries:
				var e struct {
					t    time.Time
					line string
				}
				var sec, nsec int64
				err := fields(v, func(num protowire.Number, v []byte) error {
					switch num {
					case entryTime:
						return varints(v, func(num protowire.Number, x uint64) {
							switch num {
							case tsSeconds:
								sec = int64(x)
							case tsNanos:
								nsec = int64(x)
							}
						})
					case entryLine:
						e.line = string(v)
					}
					return nil
				})
				if err != nil {
					return err
				}
				e.t = time.Unix(sec, nsec)
				st.entries = append(st.entries, e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if st.labels == nil {
			return errors.New("stream without labels")
		}
		st.key = labelKey(st.labels)
		streams = append(streams, st)
		return nil
	})
	return streams, err
}

// fields calls f for each length-delimited field of a message; other
// wire types are skipped.
func fields(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := f(num, v); err != nil {
				return err
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}

// varints calls f for each varint field of a message.
func varints(b []byte, f func(protowire.Number, uint64)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			f(num, v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}

// parseLabels reads {a="b", c="d"} as Loki's push path does (the values
// are Go-quoted strings).
func parseLabels(s string) (map[string]string, error) {
	bad := fmt.Errorf("parse error: labels %q", s)
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, bad
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	m := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, bad
		}
		name := strings.TrimSpace(s[:eq])
		rest := strings.TrimSpace(s[eq+1:])
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return nil, bad
		}
		v, _ := strconv.Unquote(q)
		m[name] = v
		s = strings.TrimSpace(rest[len(q):])
		s = strings.TrimSpace(strings.TrimPrefix(s, ","))
	}
	if len(m) == 0 {
		return nil, errors.New("error parsing labels: at least one label pair is required")
	}
	return m, nil
}

func labelKey(m map[string]string) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func decodeJSON(body []byte) ([]*stream, error) {
	var req struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values [][]string        `json:"values"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("loghttp: %w", err)
	}
	var streams []*stream
	for _, js := range req.Streams {
		if len(js.Stream) == 0 {
			return nil, errors.New("error parsing labels: at least one label pair is required")
		}
		st := &stream{labels: js.Stream, key: labelKey(js.Stream)}
		for _, v := range js.Values {
			if len(v) < 2 {
				return nil, errors.New("loghttp: a value is not [timestamp, line]")
			}
			ns, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("loghttp: timestamp %q: %w", v[0], err)
			}
			st.entries = append(st.entries, struct {
				t    time.Time
				line string
			}{time.Unix(0, ns), v[1]})
		}
		streams = append(streams, st)
	}
	return streams, nil
}
