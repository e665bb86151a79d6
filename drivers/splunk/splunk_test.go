package splunk

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/internal/sink/hec"
)

const token = "00000000-1111-2222-3333-444444444444"

func noEnv(string) string { return "" }

func base(kv ...string) map[string]string {
	m := map[string]string{urlKey: "https://splunk.example.com:8088", tokenKey: token}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestOptionsAccepted: every option validates with its default or a
// plausible value; the defaults are Docker's.
func TestOptionsAccepted(t *testing.T) {
	ca := writeCA(t)
	plausible := map[string]string{"tag": "{{.Name}}", "labels": "a,b", "labels-regex": "^a", "env": "A,B", "env-regex": "^A",
		urlKey: "http://127.0.0.1:8088/", tokenKey: "t", sourceKey: "s", sourceTypeKey: "st", indexKey: "i", caPathKey: ca, caNameKey: "splunk"}
	for _, o := range Options {
		v, ok := plausible[o[0]]
		if !ok {
			v = o[1]
		}
		if v == "" {
			t.Errorf("%s: no plausible value in the test", o[0])
			continue
		}
		if _, err := parse(base(o[0], v), noEnv); err != nil {
			t.Errorf("%s=%q: %v", o[0], v, err)
		}
	}
	o, err := parse(base(), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.url != "https://splunk.example.com:8088/services/collector/event/1.0" || o.format != formatInline || !o.verify ||
		o.gzip || o.gzipLevel != gzip.DefaultCompression || o.indexAck || o.tls.SkipVerify ||
		o.batchWait != 5*time.Second || o.batchRecords != 1000 {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parse(base(urlKey, "http://user:pw@h:1/"), func(k string) string {
		return map[string]string{frequencyEnv: "50ms", batchSizeEnv: "7"}[k]
	})
	if err != nil || o.url != "http://h:1/services/collector/event/1.0" || o.batchWait != 50*time.Millisecond || o.batchRecords != 7 {
		t.Errorf("url and environment: %+v, %v", o, err)
	}
}

// TestOptionsRefused: a bad value fails with an error naming the option
// (or variable), and never quoting the token or the URL.
func TestOptionsRefused(t *testing.T) {
	for _, c := range []struct {
		cfg   map[string]string
		env   map[string]string
		names string
	}{
		{base("splunk-bogus", "1"), nil, "splunk-bogus"},
		{map[string]string{tokenKey: token}, nil, urlKey},
		{map[string]string{urlKey: "https://h:8088"}, nil, tokenKey},
		{base(tokenKey, "a\r\nX-Evil: 1"), nil, tokenKey},
		{base(urlKey, "ftp://user:"+token+"@h:1"), nil, urlKey},
		{base(urlKey, "https://user:"+token+"@h:1/path"), nil, urlKey},
		{base(urlKey, "https://h:1?q="+token), nil, urlKey},
		{base(urlKey, "https://h:1/#"+token), nil, urlKey},
		{base(urlKey, "https://"), nil, urlKey},
		{base(urlKey, "h:8088"), nil, urlKey},
		{base(formatKey, "xml"), nil, formatKey},
		{base(gzipKey, "maybe"), nil, gzipKey},
		{base(gzipLevelKey, "10"), nil, gzipLevelKey},
		{base(gzipLevelKey, "-2"), nil, gzipLevelKey},
		{base(verifyKey, "yes please"), nil, verifyKey},
		{base(skipVerifyKey, "2"), nil, skipVerifyKey},
		{base(indexAckKey, "on"), nil, indexAckKey},
		{base(caPathKey, "/nonexistent/ca.pem"), nil, caPathKey},
		{base("labels-regex", "("), nil, "labels-regex"},
		{base(), map[string]string{frequencyEnv: "0s"}, frequencyEnv},
		{base(), map[string]string{frequencyEnv: "soon"}, frequencyEnv},
		{base(), map[string]string{batchSizeEnv: "0"}, batchSizeEnv},
	} {
		_, err := parse(c.cfg, func(k string) string { return c.env[k] })
		if err == nil {
			t.Errorf("%v %v: accepted", c.cfg, c.env)
			continue
		}
		if !strings.Contains(err.Error(), c.names) {
			t.Errorf("%v: error %q does not name %s", c.cfg, err, c.names)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%v: error %q quotes the token", c.cfg, err)
		}
	}
}

// dockerMessage and dockerEvent are the JSON shape of Docker's driver's
// events (its splunkMessage and splunkMessageEvent), which its
// json.Marshal gives: the reference the encoding is held to.
type dockerMessage struct {
	Event      any    `json:"event"`
	Time       string `json:"time"`
	Host       string `json:"host"`
	Source     string `json:"source,omitempty"`
	SourceType string `json:"sourcetype,omitempty"`
	Index      string `json:"index,omitempty"`
}

type dockerEvent struct {
	Line   any               `json:"line"`
	Source string            `json:"source"`
	Tag    string            `json:"tag,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"`
}

// hostile are lines that test every escape encoding/json makes.
var hostile = []string{
	"", "plain", " ", "\t", `quote " back \ slash`, "<b>&amp;</b>", "ctl \x00\x01\x08\x0c\x1f\x7f end",
	"nl\nr\rt\t", "ünïcødé ✓ 日本", "bad \xff\xfe utf8 \xc3", "sep \u2028 \u2029", "\xe2\x80", // a cut U+2028
	`{"k":"v","n":1}`, ` { "spaced" : [1, 2, {"x": "<y>"}] } `, "null", "42", `"just a string"`, "[1,2", `{"bad":"\xff"}`,
}

// TestEncodeAsDocker: for each format and a range of hostile lines, the
// body is byte for byte what Docker's driver's json.Marshal writes.
func TestEncodeAsDocker(t *testing.T) {
	attrs := map[string]string{"b": "2<", "a": "1"}
	ts := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	for _, format := range []string{formatInline, formatJSON, formatRaw} {
		for _, meta := range [][3]string{{"", "", ""}, {"src", "st<", "idx"}} {
			for _, tag := range []string{"", "web/1"} {
				o := &options{format: format, source: meta[0], sourceType: meta[1], index: meta[2]}
				s := newShape(o, "host-1", tag, attrs)
				b := &batch{shape: s}
				var want bytes.Buffer
				for i, line := range hostile {
					src := []string{"stdout", "stderr"}[i%2]
					if s.skip([]byte(line)) {
						continue
					}
					m := &logger.Message{Line: []byte(line), Source: src, Timestamp: ts.Add(time.Duration(i) * time.Millisecond)}
					b.Add(m)
					dm := dockerMessage{Time: fmt.Sprintf("%f", float64(m.Timestamp.UnixNano())/float64(time.Second)),
						Host: "host-1", Source: meta[0], SourceType: meta[1], Index: meta[2]}
					switch format {
					case formatRaw:
						prefix := ""
						if tag != "" {
							prefix = tag + " "
						}
						dm.Event = prefix + "a=1 b=2< " + line // attrs sorted
					default:
						ev := &dockerEvent{Line: line, Source: src, Tag: tag, Attrs: attrs}
						var raw json.RawMessage
						// Docker's sends a JSON line that is not UTF-8 as
						// it is, making the post invalid: a string here.
						if format == formatJSON && utf8.Valid([]byte(line)) && json.Unmarshal([]byte(line), &raw) == nil {
							ev.Line = &raw
						}
						dm.Event = ev
					}
					j, err := json.Marshal(dm)
					if err != nil {
						t.Fatal(err)
					}
					want.Write(j)
				}
				got, err := b.Encode()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("%s %v tag %q:\n got %s\nwant %s", format, meta, tag, got, want.Bytes())
				}
				if b.Size() != len(got) {
					t.Errorf("Size %d, body %d bytes", b.Size(), len(got))
				}
			}
		}
	}
}

// TestRawSkipsBlank: the raw format leaves out blank lines (HEC refuses
// a blank event), as Docker's does; the others send them.
func TestRawSkipsBlank(t *testing.T) {
	for format, want := range map[string]bool{formatRaw: true, formatInline: false, formatJSON: false} {
		s := newShape(&options{format: format}, "h", "", nil)
		for _, l := range []string{"", " ", "\t\r\n"} {
			if s.skip([]byte(l)) != want {
				t.Errorf("%s: skip(%q) = %v", format, l, !want)
			}
		}
		if s.skip([]byte(" x ")) {
			t.Errorf("%s skips a line that is not blank", format)
		}
	}
}

func answer(status int, body string, h ...string) *http.Response {
	r := &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: http.Header{}}
	for i := 0; i+1 < len(h); i += 2 {
		r.Header.Set(h[i], h[i+1])
	}
	return r
}

// TestJudge: HEC's answers as the package comment says.
func TestJudge(t *testing.T) {
	ten := func() int64 { return 10 }
	for _, c := range []struct {
		status  int
		body    string
		retry   bool
		refused int64
		after   time.Duration
	}{
		{200, `{"text":"Success","code":0}`, false, 0, 0},
		{401, `{"text":"Token is required","code":2}`, true, 0, 0},
		{403, `{"text":"Invalid token","code":4}`, true, 0, 0},
		{408, ``, true, 0, 0},
		{429, ``, true, 0, 0},
		{500, `{"text":"Internal server error","code":8}`, true, 0, 0},
		{503, `{"text":"Server is busy","code":9}`, true, 0, 7 * time.Second},
		{400, `{"text":"Invalid data format","code":6,"invalid-event-number":3}`, false, 7, 0},
		{400, `{"text":"Invalid data format","code":6,"invalid-event-number":0}`, false, 10, 0},
		{400, `{"text":"No data","code":5}`, false, -1, 0},
		{400, `not json`, false, -1, 0},
		{404, `{"text":"The requested URL was not found on this server.","code":404}`, false, -1, 0},
		{413, ``, false, -1, 0},
	} {
		var h []string
		if c.after > 0 {
			h = []string{"Retry-After", "7"}
		}
		r := judge(answer(c.status, c.body, h...), []byte(c.body), ten)
		if r.Retry != c.retry || r.Refused != c.refused || r.After != c.after {
			t.Errorf("%d %s: %+v", c.status, c.body, r)
		}
		if c.status != 200 && (r.Err == nil || !strings.Contains(r.Err.Error(), fmt.Sprint(c.status))) {
			t.Errorf("%d: error %v does not say the status", c.status, r.Err)
		}
		if r.Refused != 0 && r.Reason != diag.Rejected {
			t.Errorf("%d: reason %q", c.status, r.Reason)
		}
	}
	r := judge(answer(403, ""), []byte(`{"text":"Invalid token","code":4}`), ten)
	if want := "splunk: 403 Forbidden: Invalid token (code 4)"; r.Err.Error() != want {
		t.Errorf("error %q, want %q", r.Err, want)
	}
}

func TestCountEvents(t *testing.T) {
	body := []byte(`{"event":"a","time":"1.000000","host":"h"}{"event":{"line":"}{"},"time":"1.000000","host":"h"}`)
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(body)
	w.Close()
	if n := countEvents(body, false); n != 2 {
		t.Errorf("plain: %d", n)
	}
	if n := countEvents(z.Bytes(), true); n != 2 {
		t.Errorf("gzip: %d", n)
	}
	if n := countEvents([]byte("{}{"), false); n != 0 {
		t.Errorf("broken: %d", n)
	}
}

func TestNewChannel(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := newChannel(), newChannel()
	if !re.MatchString(a) || a == b {
		t.Errorf("channels %q %q", a, b)
	}
}

func startHEC(t *testing.T, indexAck bool) *hec.Server {
	t.Helper()
	s, err := hec.Listen("127.0.0.1:0", token, indexAck)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func newTestDriver(t *testing.T, cfg map[string]string, env ...string) *driver {
	t.Helper()
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	l, err := newDriver(logger.Info{Config: cfg, ContainerID: "0123456789abcdef", ContainerName: "/web"})
	if err != nil {
		t.Fatal(err)
	}
	return l.(*driver)
}

func logLine(t *testing.T, d *driver, line, source string) {
	t.Helper()
	m := logger.NewMessage()
	m.Line = append(m.Line, line...)
	m.Source = source
	m.Timestamp = time.Now()
	if err := d.Log(m); err != nil {
		t.Fatal(err)
	}
}

// TestPostsToHEC: against the in-repo HEC server, the OPTIONS check comes
// first, then posts to the collector endpoint with the token, gzip at the
// level asked and a new channel each, in order; the driver says what it
// holds until HEC took it.
func TestPostsToHEC(t *testing.T) {
	s := startHEC(t, true)
	d := newTestDriver(t, map[string]string{urlKey: s.URL(), tokenKey: token, gzipKey: "true", gzipLevelKey: "9",
		indexAckKey: "true", "tag": "{{.Name}}"}, batchSizeEnv, "3")
	var _ capability.PendingLogger = d
	for i := range 7 {
		logLine(t, d, fmt.Sprintf("line %d", i), "stdout")
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, b := d.Pending(); n != 0 || b != 0 {
		t.Errorf("pending %d %d after Flush", n, b)
	}
	d.Close()
	evs := s.Events()
	if len(evs) != 7 {
		t.Fatalf("%d events", len(evs))
	}
	for i, e := range evs {
		var ev dockerEvent
		if err := json.Unmarshal(e.Event, &ev); err != nil || ev.Line != fmt.Sprintf("line %d", i) || ev.Tag != "web" || !e.Gzip {
			t.Errorf("event %d: %s gzip %v", i, e.Event, e.Gzip)
		}
	}
	reqs := s.Requests()
	if reqs[0].Method != http.MethodOptions {
		t.Errorf("first request %+v", reqs[0])
	}
	channels := map[string]bool{}
	for _, r := range reqs[1:] {
		if r.Method != http.MethodPost || r.Path != collectorPath || r.Auth != "Splunk "+token || r.Status != 200 || r.Channel == "" || channels[r.Channel] {
			t.Errorf("request %+v", r)
		}
		channels[r.Channel] = true
		if r.Events > 3 {
			t.Errorf("%d events in one post, more than the batch size of 3", r.Events)
		}
	}
}

// TestVerifyConnection: with splunk-verify-connection on, the driver is
// not created while HEC is down or does not answer OPTIONS with 200;
// with it off, no request is made at creation.
func TestVerifyConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := newDriver(logger.Info{Config: map[string]string{urlKey: down, tokenKey: token}, ContainerID: "0123456789abcdef"}); err == nil || !strings.Contains(err.Error(), "verify connection") {
		t.Errorf("down: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	if _, err := newDriver(logger.Info{Config: map[string]string{urlKey: "http://" + ln.Addr().String(), tokenKey: token}, ContainerID: "0123456789abcdef"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}
	l, err := newDriver(logger.Info{Config: map[string]string{urlKey: down, tokenKey: token, verifyKey: "false"}, ContainerID: "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestHeldWhileDown: with HEC refusing the token, the driver keeps its
// lines, retrying, and says so through Pending; a 403 drops nothing.
func TestHeldWhileDown(t *testing.T) {
	s := startHEC(t, false)
	d := newTestDriver(t, map[string]string{urlKey: s.URL(), tokenKey: "wrong"}, batchSizeEnv, "1")
	var dropped atomic.Int64
	d.OnDrop(func(_ string, lines, _ int64) { dropped.Add(lines) })
	for i := range 2 {
		logLine(t, d, fmt.Sprint(i), "stdout")
	}
	if err := s.WaitRequests(3, 403, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, b := d.Pending(); n != 2 || b != 2 {
		t.Errorf("pending %d %d, want 2 lines", n, b)
	}
	if n := dropped.Load(); n != 0 {
		t.Errorf("a 403 dropped %d lines", n)
	}
	// Close would wait for HEC to take them: the logger bounds it with
	// close-timeout, and the retries end with the test process.
}

// TestDropsInvalid: a 400 that names an event counts the events from it
// on as dropped, with their share of the bytes.
func TestDropsInvalid(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(400)
		io.WriteString(w, `{"text":"Invalid data format","code":6,"invalid-event-number":1}`)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	d := newTestDriver(t, map[string]string{urlKey: "http://" + ln.Addr().String(), tokenKey: token, verifyKey: "false"})
	var got [3]int64
	var reason string
	d.OnDrop(func(r string, lines, bytes int64) { reason, got[0], got[1] = r, got[0]+lines, got[1]+bytes })
	for _, l := range []string{"aaaa", "bb", "cc"} {
		logLine(t, d, l, "stdout")
	}
	d.Close()
	if reason != diag.Rejected || got[0] != 2 || got[1] != 5 {
		t.Errorf("dropped %d lines %d bytes (%s), want 2 lines of the batch's 8 bytes' share, rejected", got[0], got[1], reason)
	}
}

// writeCA writes a self-signed certificate in PEM to a file.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "splunk"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
