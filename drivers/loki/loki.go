// Package loki is our own driver "loki": it pushes lines to Grafana Loki's
// push API (/loki/api/v1/push), snappy-compressed protobuf (Loki's
// default) or gzip-compressed JSON, with the option names, defaults and
// stream labels of Grafana's Docker driver (options.go), so that a user
// moves over by changing the driver's name. Batching, retries and counting
// are drivers/httppush's: a Loki that is down or slow holds what the
// delivery mode lets it hold and nothing more (Grafana's driver blocks
// the daemon's copier and so the container, grafana/loki#2361).
//
// Loki's answers: 2xx taken; 429 and 5xx retried with backoff
// (loki-min-backoff to loki-max-backoff, and Retry-After) up to
// loki-retries posts, then given up on (counted "driver-gave-up"); 400
// names entries Loki ignored (out of order, too old, too long) and takes
// the others: those named in "total ignored: N out of M" are counted
// "rejected" (the whole batch when Loki does not say how many); any other
// code drops the batch, counted "rejected".
//
// Wire types are encoded by hand from Loki's published push.proto
// (pkg/push, Apache-2.0) with protowire: Loki's own module is under the
// AGPL and is never imported.
//
// It must never import package drivers (which imports it to register it),
// the reader, a delivery mode, the supervisor or the worker.
package loki

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/containerd/log"
	"github.com/docker/docker/daemon/logger"
	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/drivers/httppush"
)

// Name is the driver's name.
const Name = "loki"

func init() {
	if err := logger.RegisterLogDriver(Name, newDriver); err != nil {
		panic(err)
	}
	if err := logger.RegisterLogOptValidator(Name, func(cfg map[string]string) error {
		// Docker's validators see only the options; the labels' values
		// are checked again with the container's metadata at creation.
		_, err := parse(logger.Info{Config: cfg, ContainerLabels: map[string]string{}})
		return err
	}); err != nil {
		panic(err)
	}
}

type driver struct {
	*httppush.Pusher
}

var (
	_ capability.Flusher        = (*driver)(nil)
	_ capability.PendingLogger  = (*driver)(nil)
	_ capability.DroppingLogger = (*driver)(nil)
	_ capability.MarkerLogger   = (*driver)(nil)
)

func (*driver) Name() string { return Name }

// Log leaves out lines that are empty or only white space, as Grafana's
// driver does (they count as delivered).
func (d *driver) Log(msg *logger.Message) error {
	if len(bytes.TrimSpace(msg.Line)) == 0 {
		logger.PutMessage(msg)
		return nil
	}
	return d.Pusher.Log(msg)
}

const maxAnswer = 64 << 10

// ignored sums what Loki's 400 says it ignored: the ingester ends its
// text for each stream with "total ignored: N out of M for stream: ...".
// 0 when it does not say.
func ignored(answer []byte) int64 {
	const key = "total ignored: "
	var sum int64
	for {
		i := bytes.Index(answer, []byte(key))
		if i < 0 {
			return sum
		}
		answer = answer[i+len(key):]
		j := 0
		for j < len(answer) && '0' <= answer[j] && answer[j] <= '9' {
			j++
		}
		if n, err := strconv.ParseInt(string(answer[:j]), 10, 64); err == nil && bytes.HasPrefix(answer[j:], []byte(" out of ")) {
			sum += n
		}
	}
}

func newDriver(info logger.Info) (logger.Logger, error) {
	o, err := parse(info)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := o.tls.Config()
	if err != nil {
		return nil, err
	}
	client := httppush.NewClient(tlsConfig, o.proxy, o.timeout)
	base := labelString(o.labels)
	newBatch := func() httppush.Batch { return &batch{base: o.labels, baseStr: base, json: o.json} }
	contentType := "application/x-protobuf"
	if o.json {
		contentType = "application/json"
	}
	target := o.url.String()
	send := func(ctx context.Context, body []byte) httppush.Result {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return httppush.Result{Refused: -1, Reason: diag.Rejected, Err: err}
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("User-Agent", "dockerlogger")
		if o.json {
			req.Header.Set("Content-Encoding", "gzip")
		}
		if o.tenant != "" {
			req.Header.Set("X-Scope-OrgID", o.tenant)
		}
		if o.user != "" || o.pass != "" {
			req.SetBasicAuth(o.user, o.pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return httppush.Result{Retry: true, Err: fmt.Errorf("loki: push: %w", err)}
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		text := diag.Cut(strings.TrimSpace(string(answer)), 300)
		switch c := resp.StatusCode; {
		case c >= 200 && c < 300:
			return httppush.Result{}
		case c == http.StatusTooManyRequests || c >= 500:
			return httppush.Result{Retry: true, After: httppush.RetryAfter(resp.Header),
				Err: fmt.Errorf("loki: %s: %s", resp.Status, text)}
		case c == http.StatusBadRequest:
			n := ignored(answer)
			if n == 0 {
				n = -1
			}
			return httppush.Result{Refused: n, Reason: diag.Rejected, Err: fmt.Errorf("loki: %s: %s", resp.Status, text)}
		default:
			return httppush.Result{Refused: -1, Reason: diag.Rejected,
				Err: fmt.Errorf("loki: %s, batch dropped: %s", resp.Status, text)}
		}
	}
	p := httppush.New(httppush.Config{
		Name:       Name,
		NewBatch:   newBatch,
		BatchSize:  o.batchSize,
		BatchWait:  o.batchWait,
		MinBackoff: o.minBackoff,
		MaxBackoff: o.maxBackoff,
		Attempts:   o.retries,
		Send:       send,
		Report:     func(err error) { log.G(context.TODO()).Warn(err.Error()) },
	})
	return &driver{p}, nil
}

// labelString is a label set as Loki's protobuf carries it:
// {a="b", c="d"}, sorted by name.
func labelString(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// Field numbers of Loki's push.proto (logproto) and of
// google.protobuf.Timestamp.
const (
	pushStreams     = 1 // PushRequest
	streamLabelsNum = 1 // StreamAdapter
	streamEntries   = 2
	entryTime       = 1 // EntryAdapter
	entryLine       = 2
	tsSeconds       = 1 // Timestamp
	tsNanos         = 2
)

// stream is one stream of a batch: the base labels and a source.
type stream struct {
	source  string
	entries []byte // protobuf: EntryAdapter fields; JSON: ["ns","line"] values
	n       int
}

// batch holds a push request's streams, in the order they first came.
type batch struct {
	base    map[string]string
	baseStr string
	json    bool
	streams []*stream
	size    int
	out     []byte
}

func (b *batch) Size() int { return b.size }

func (b *batch) Reset() {
	for _, s := range b.streams {
		s.entries, s.n = s.entries[:0], 0
	}
	b.size = 0
}

func (b *batch) stream(source string) *stream {
	for _, s := range b.streams {
		if s.source == source {
			return s
		}
	}
	s := &stream{source: source}
	b.streams = append(b.streams, s)
	return s
}

func (b *batch) Add(msg *logger.Message) {
	s := b.stream(msg.Source)
	before := len(s.entries)
	if b.json {
		if s.n > 0 {
			s.entries = append(s.entries, ',')
		}
		s.entries = append(s.entries, `["`...)
		s.entries = strconv.AppendInt(s.entries, msg.Timestamp.UnixNano(), 10)
		s.entries = append(s.entries, `",`...)
		s.entries = appendJSONString(s.entries, msg.Line)
		s.entries = append(s.entries, ']')
	} else {
		ts := msg.Timestamp
		var t []byte
		t = protowire.AppendTag(t, tsSeconds, protowire.VarintType)
		t = protowire.AppendVarint(t, uint64(ts.Unix()))
		if ns := ts.Nanosecond(); ns != 0 {
			t = protowire.AppendTag(t, tsNanos, protowire.VarintType)
			t = protowire.AppendVarint(t, uint64(ns))
		}
		n := protowire.SizeTag(entryTime) + protowire.SizeBytes(len(t)) + protowire.SizeTag(entryLine) + protowire.SizeBytes(len(msg.Line))
		s.entries = protowire.AppendTag(s.entries, streamEntries, protowire.BytesType)
		s.entries = protowire.AppendVarint(s.entries, uint64(n))
		s.entries = protowire.AppendTag(s.entries, entryTime, protowire.BytesType)
		s.entries = protowire.AppendBytes(s.entries, t)
		s.entries = protowire.AppendTag(s.entries, entryLine, protowire.BytesType)
		s.entries = protowire.AppendBytes(s.entries, msg.Line)
	}
	s.n++
	b.size += len(s.entries) - before
}

func (b *batch) Encode() ([]byte, error) {
	if b.json {
		return b.encodeJSON()
	}
	var req []byte
	for _, s := range b.streams {
		if s.n == 0 {
			continue
		}
		labels := b.labels(s.source)
		n := protowire.SizeTag(streamLabelsNum) + protowire.SizeBytes(len(labels)) + len(s.entries)
		req = protowire.AppendTag(req, pushStreams, protowire.BytesType)
		req = protowire.AppendVarint(req, uint64(n))
		req = protowire.AppendTag(req, streamLabelsNum, protowire.BytesType)
		req = protowire.AppendString(req, labels)
		req = append(req, s.entries...)
	}
	b.out = snappy.Encode(b.out[:cap(b.out)], req)
	return b.out, nil
}

// labels is a stream's label string: the base and its source.
func (b *batch) labels(source string) string {
	if source == "" {
		return b.baseStr
	}
	m := make(map[string]string, len(b.base)+1)
	for k, v := range b.base {
		m[k] = v
	}
	m["source"] = source
	return labelString(m)
}

func (b *batch) encodeJSON() ([]byte, error) {
	var req []byte
	req = append(req, `{"streams":[`...)
	first := true
	for _, s := range b.streams {
		if s.n == 0 {
			continue
		}
		if !first {
			req = append(req, ',')
		}
		first = false
		req = append(req, `{"stream":{`...)
		names := make([]string, 0, len(b.base)+1)
		for k := range b.base {
			names = append(names, k)
		}
		sort.Strings(names)
		for i, k := range names {
			if i > 0 {
				req = append(req, ',')
			}
			req = appendJSONString(req, []byte(k))
			req = append(req, ':')
			req = appendJSONString(req, []byte(b.base[k]))
		}
		if s.source != "" {
			req = append(req, `,"source":`...)
			req = appendJSONString(req, []byte(s.source))
		}
		req = append(req, `},"values":[`...)
		req = append(req, s.entries...)
		req = append(req, "]}"...)
	}
	req = append(req, "]}"...)
	return httppush.Gzip(req)
}

// appendJSONString appends s as a JSON string; bytes that are not UTF-8
// become U+FFFD (JSON cannot carry them; protobuf pushes keep them).
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
