package test

// End-to-end tests of the otlp driver against the OpenTelemetry
// Collector's own OTLP receiver (otelcol_test.go): what arrives is what
// the Collector decoded, over http/protobuf and http/json, gzip and TLS
// with a client certificate.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const otlpID = "0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6"

// otlpContainer is the container metadata the resource must carry.
var otlpContainer = []string{
	"DOCKERLOG_CONTAINERNAME=/web", "DOCKERLOG_IMAGENAME=registry.test:5000/shop/web:3.19",
	"DOCKERLOG_IMAGEID=sha256:feed", `DOCKERLOG_LABELS={"team":"blue"}`,
}

// checkOTLPStream checks that the records of one stream are want, in
// order, with their severity and attributes.
func checkOTLPStream(t *testing.T, recs []otlpRecord, stream string, want []string) {
	t.Helper()
	var got []string
	for _, r := range recs {
		if r.attr("log.iostream") != stream {
			continue
		}
		sev, text := 9, "INFO"
		if stream == "stderr" {
			sev, text = 17, "ERROR"
		}
		if r.SeverityNumber != sev || r.SeverityText != text {
			t.Fatalf("%s record %q: severity %d %q, want %d %q", stream, r.Body.text(), r.SeverityNumber, r.SeverityText, sev, text)
		}
		got = append(got, r.Body.text())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: got %d records %q...\nwant %d %q...", stream, len(got), first(got), len(want), first(want))
	}
}

// checkOTLPResource checks the container's identity on every record.
func checkOTLPResource(t *testing.T, recs []otlpRecord, before, after time.Time) {
	t.Helper()
	want := map[string]string{
		"container.id": otlpID, "container.name": "web", "service.name": "web",
		"container.image.name": "registry.test:5000/shop/web", "container.image.tags": "3.19",
		"container.image.id": "sha256:feed", "team": "blue", "deployment.environment": "test",
	}
	for _, r := range recs {
		for k, v := range want {
			if r.Resource[k] != v {
				t.Fatalf("resource %s = %q, want %q (resource %v)", k, r.Resource[k], v, r.Resource)
			}
		}
		if r.Resource["host.name"] == "" {
			t.Fatalf("no host.name in %v", r.Resource)
		}
		ns, err := strconv.ParseInt(r.Time, 10, 64)
		if err != nil || ns < before.UnixNano() || ns > after.UnixNano() {
			t.Fatalf("time %q outside [%d, %d]", r.Time, before.UnixNano(), after.UnixNano())
		}
		obs, err := strconv.ParseInt(r.Observed, 10, 64)
		if err != nil || obs < ns || obs > after.UnixNano() {
			t.Fatalf("observed time %q not in [time %d, %d]", r.Observed, ns, after.UnixNano())
		}
	}
}

// TestOTLPCollector: every line arrives at a real OTLP receiver, per
// stream in order, with the container's resource, severity and stream,
// over both protocols, with and without gzip; a line that is not UTF-8
// arrives as bytes, byte for byte.
func TestOTLPCollector(t *testing.T) {
	for _, proto := range []string{"http/protobuf", "http/json"} {
		for _, comp := range []string{"none", "gzip"} {
			t.Run(strings.ReplaceAll(proto, "/", "-")+"-"+comp, func(t *testing.T) {
				c := startOtelcol(t)
				l := StartLogger(t, Env(otlpID, map[string]string{
					"otlp-endpoint": c.URL("http"), "otlp-protocol": proto, "otlp-compression": comp,
					"labels": "team", "otlp-resource-attributes": "deployment.environment=test",
				}, otlpContainer...), "otlp")
				before := time.Now()
				out := append(Lines("out", 40), "not utf-8: \xff\xfe", `{"json":"line","n":1}`)
				errs := Lines("err", 40)
				WriteLines(t, l.Stdout, out)
				WriteLines(t, l.Stderr, errs)
				if code := l.Wait(t, 20*time.Second); code != 0 {
					t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
				}
				after := time.Now()
				recs := c.Records()
				if len(recs) != len(out)+len(errs) {
					t.Fatalf("%d records, want %d; logger stderr: %s", len(recs), len(out)+len(errs), l.Errors())
				}
				checkOTLPStream(t, recs, "stdout", out)
				checkOTLPStream(t, recs, "stderr", errs)
				checkOTLPResource(t, recs, before, after)
				for _, r := range recs {
					if strings.HasPrefix(r.Body.text(), "not utf-8") && r.Body.Bytes == nil {
						t.Fatalf("a line that is not UTF-8 is not a bytes body: %+v", r.Body)
					}
				}
				st := l.Stats(t)
				if st["lines_delivered"] != strconv.Itoa(len(recs)) || st["lines_dropped"] != "0" {
					t.Fatalf("stats %v", st)
				}
			})
		}
	}
}

// TestOTLPEnvDefaults: with no otlp-* log-opt, the standard variables in
// the logger's environment choose the endpoint (a base: /v1/logs is
// added) and the protocol.
func TestOTLPEnvDefaults(t *testing.T) {
	c := startOtelcol(t)
	l := StartLogger(t, Env(otlpID, map[string]string{},
		"OTEL_EXPORTER_OTLP_ENDPOINT="+c.URL("http"), "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
		"OTEL_EXPORTER_OTLP_COMPRESSION=gzip", "OTEL_EXPORTER_OTLP_HEADERS=X-Scope=one,Authorization=Bearer%20abc",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=env"), "otlp")
	out := Lines("env", 20)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	recs := c.Records()
	checkOTLPStream(t, recs, "stdout", out)
	if recs[0].Resource["deployment.environment"] != "env" {
		t.Fatalf("resource %v", recs[0].Resource)
	}
}

// TestOTLPTLSClientCert: the collector requires a client certificate
// from its CA; the logger presents one and trusts the server's CA.
func TestOTLPTLSClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	now := time.Now()
	srvCert, srvKey := ca.issue(t, dir, "server", "localhost", true, now.Add(-time.Hour), now.Add(time.Hour))
	cliCert, cliKey := ca.issue(t, dir, "client", "client.test", false, now.Add(-time.Hour), now.Add(time.Hour))
	c := startOtelcol(t, srvCert, srvKey, ca.path)
	opts := map[string]string{"otlp-endpoint": c.URL("https"), "otlp-tls-ca-cert": ca.path,
		"otlp-tls-cert": cliCert, "otlp-tls-key": cliKey}
	l := StartLogger(t, Env(otlpID, opts), "otlp")
	out := Lines("tls", 20)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkOTLPStream(t, c.Records(), "stdout", out)

	// Without the client certificate the collector refuses every post:
	// nothing arrives, and the logger says why.
	delete(opts, "otlp-tls-cert")
	delete(opts, "otlp-tls-key")
	l = StartLogger(t, Env(otlpID, opts), "otlp")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the second logger's stderr: %s", l.Errors())
		}
	})
	WriteLines(t, l.Stdout, Lines("nocert", 5))
	// TLS 1.3 ends the client's handshake before the server checks the
	// client's certificate: the refusal comes at the first read or write
	// after it. Go's transport then reports, depending on timing, the
	// alert ("certificate required"), a reset, a broken pipe, or only that
	// its HTTP/2 connection "could not be established" (the alert is lost
	// in its read loop): any of these, on a failed post, is the logger
	// saying why, as well as the transport lets it.
	Eventually(t, 30*time.Second, "a failed post with a TLS refusal on the logger's stderr", func() bool {
		for _, line := range strings.Split(l.Errors(), "\n") {
			if !strings.Contains(line, "otlp: post:") {
				continue
			}
			for _, why := range []string{"certificate", "tls:", "connection reset", "broken pipe", "could not be established"} {
				if strings.Contains(line, why) {
					return true
				}
			}
		}
		return false
	})
	if n := len(c.Records()); n != len(out) {
		t.Fatalf("%d records: some arrived without a client certificate", n)
	}
}

// TestOTLPCollectorDown: in every mode, a collector that is down when the
// container starts, and killed and restarted mid-stream, loses nothing:
// every line arrives, per stream in order (a batch whose answer the kill
// cut off may arrive twice).
func TestOTLPCollectorDown(t *testing.T) {
	for _, mode := range []string{"blocking", "non-blocking", "spool"} {
		t.Run(mode, func(t *testing.T) {
			c := newOtelcol(t)
			opts := map[string]string{"otlp-endpoint": c.URL("http"), "mode": mode}
			if mode == "spool" {
				opts["spool-dir"] = filepath.Join(t.TempDir(), "spool")
			}
			l := StartLogger(t, Env(otlpID, opts), "otlp")
			early := Lines("early", 50)
			WriteLines(t, l.Stdout, early)
			Eventually(t, 10*time.Second, "a connection error on the logger's stderr", func() bool {
				return strings.Contains(l.Errors(), "connection refused")
			})
			c.Start()
			c.Wait(len(early), 20*time.Second)
			c.Stop()
			mid := Lines("mid", 50)
			WriteLines(t, l.Stdout, mid)
			errs := Lines("err", 30)
			WriteLines(t, l.Stderr, errs)
			c.Start()
			late := Lines("late", 50)
			WriteLines(t, l.Stdout, late)
			c.Wait(len(early)+len(mid)+len(errs)+len(late), 30*time.Second)
			if code := l.Wait(t, 20*time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
			}
			// A batch the collector took just before it was killed, whose
			// answer never came, is sent again (at least once): keep the
			// first of each line, which must still be in order.
			var recs []otlpRecord
			seen := map[string]bool{}
			for _, r := range c.Records() {
				if !seen[r.Body.text()] {
					seen[r.Body.text()] = true
					recs = append(recs, r)
				}
			}
			checkOTLPStream(t, recs, "stdout", append(append(early, mid...), late...))
			checkOTLPStream(t, recs, "stderr", errs)
			if st := l.Stats(t); st["lines_dropped"] != "0" {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

// otlpEndpoint is an OTLP/HTTP endpoint (http/json) that answers as the
// specification lets a collector answer, chosen per record body: a
// partial success refusing the record, 400, or 503 with Retry-After once;
// 200 otherwise. Each post carries one record (otlp-batch-wait=0).
type otlpEndpoint struct {
	mu       sync.Mutex
	accepted []string
	retried  map[string]bool
	noAuth   int // posts without the basic authentication of the URL
}

func (e *otlpEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req struct {
		ResourceLogs []struct {
			ScopeLogs []struct {
				LogRecords []otlpRecord `json:"logRecords"`
			} `json:"scopeLogs"`
		} `json:"resourceLogs"`
	}
	if r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	body := req.ResourceLogs[0].ScopeLogs[0].LogRecords[0].Body.text()
	e.mu.Lock()
	defer e.mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "sekrit-pass" {
		e.noAuth++
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(body, "partial"):
		fmt.Fprint(w, `{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"record refused"}}`)
	case strings.HasPrefix(body, "invalid"):
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"code":3,"message":"invalid record"}`)
	case strings.HasPrefix(body, "busy") && !e.retried[body]:
		e.retried[body] = true
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		e.accepted = append(e.accepted, body)
		fmt.Fprint(w, `{}`)
	}
}

// TestOTLPRefusedCounted: records the collector refuses for good (a
// partial success, a 400) are dropped and counted with their reason and
// never stall the stream; a 503 with Retry-After is sent again after it.
// The endpoint's user:password is sent as basic authentication and never
// printed.
func TestOTLPRefusedCounted(t *testing.T) {
	e := &otlpEndpoint{retried: map[string]bool{}}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	url := strings.Replace(srv.URL, "://", "://user:sekrit-pass@", 1)
	l := StartLogger(t, Env(otlpID, map[string]string{"otlp-endpoint": url, "otlp-protocol": "http/json",
		"otlp-batch-wait": "0"}), "otlp")
	lines := []string{"one", "partial two", "three", "invalid four", "busy five", "six"}
	start := time.Now()
	WriteLines(t, l.Stdout, lines)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	e.mu.Lock()
	got := strings.Join(e.accepted, "|")
	e.mu.Unlock()
	if got != "one|three|busy five|six" {
		t.Fatalf("accepted %q", got)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("Retry-After: 1 not obeyed: done in %v", d)
	}
	st := l.Stats(t)
	if st["lines_delivered"] != "4" || st["lines_dropped"] != "2" ||
		st["lines_dropped_partial_reject"] != "1" || st["lines_dropped_rejected"] != "1" {
		t.Fatalf("stats %v; stderr: %s", st, l.Errors())
	}
	if !strings.Contains(l.Errors(), "record refused") || !strings.Contains(l.Errors(), "400") {
		t.Fatalf("the reasons are not reported: %s", l.Errors())
	}
	if e.noAuth != 0 || strings.Contains(l.Errors(), "sekrit") {
		t.Fatalf("%d posts without basic authentication; stderr: %s", e.noAuth, l.Errors())
	}
}

// TestOTLPValidate: bad configuration is one line naming the option (or
// the variable), exit 2, at --validate and at start; the headers, which
// hold credentials, are never quoted.
func TestOTLPValidate(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		opts  map[string]string
		env   []string
		names string
	}{
		{"good", map[string]string{"otlp-endpoint": "https://collector:4318", "otlp-protocol": "http/json",
			"otlp-headers": "Authorization=Bearer x", "otlp-compression": "gzip", "otlp-timeout": "3s",
			"otlp-resource-attributes": "a=b,c=d", "otlp-batch-size": "64k", "otlp-batch-wait": "200ms"}, nil, ""},
		{"endpoint scheme", map[string]string{"otlp-endpoint": "ftp://host"}, nil, "otlp-endpoint"},
		{"endpoint not a URL", map[string]string{"otlp-endpoint": "http://user:pw@[::1"}, nil, "otlp-endpoint"},
		{"grpc", map[string]string{"otlp-protocol": "grpc"}, nil, "gRPC is not supported"},
		{"protocol", map[string]string{"otlp-protocol": "udp"}, nil, "otlp-protocol"},
		{"headers", map[string]string{"otlp-headers": "Authorization=Bearer sekrit-value,broken"}, nil, "otlp-headers"},
		{"header name", map[string]string{"otlp-headers": "Bad Name=sekrit-value"}, nil, "otlp-headers"},
		{"compression", map[string]string{"otlp-compression": "zstd"}, nil, "otlp-compression"},
		{"timeout", map[string]string{"otlp-timeout": "soon"}, nil, "otlp-timeout"},
		{"resource", map[string]string{"otlp-resource-attributes": "=x"}, nil, "otlp-resource-attributes"},
		{"ca file", map[string]string{"otlp-tls-ca-cert": filepath.Join(dir, "missing.pem")}, nil, "otlp-tls-ca-cert"},
		{"cert without key", map[string]string{"otlp-tls-cert": filepath.Join(dir, "c.pem")}, nil, "otlp-tls-cert"},
		{"skip verify", map[string]string{"otlp-tls-skip-verify": "maybe"}, nil, "otlp-tls-skip-verify"},
		{"unknown", map[string]string{"otlp-bogus": "1"}, nil, "otlp-bogus"},
		{"env protocol", nil, []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"env timeout", nil, []string{"OTEL_EXPORTER_OTLP_LOGS_TIMEOUT=10s"}, "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"},
		{"env endpoint", nil, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"env headers", nil, []string{"OTEL_EXPORTER_OTLP_HEADERS=sekrit-value"}, "OTEL_EXPORTER_OTLP_HEADERS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.opts == nil {
				c.opts = map[string]string{}
			}
			env := Env(otlpID, c.opts, c.env...)
			for _, args := range [][]string{{"--validate", "otlp"}, {"otlp"}} {
				if c.names == "" && args[0] != "--validate" {
					continue
				}
				stdout, stderr, code := RunCLI(t, env, args...)
				if c.names == "" {
					if code != 0 || !strings.Contains(stdout, "ok") {
						t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
					}
					continue
				}
				if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.names) {
					t.Fatalf("%v: exit %d, stderr %q; want 2 and one line naming %s", args, code, stderr, c.names)
				}
				if strings.Contains(stderr, "sekrit") || strings.Contains(stderr, "pw@") {
					t.Fatalf("%v: a secret is quoted: %q", args, stderr)
				}
			}
		})
	}
}

// TestOTLPPartialLines: a line longer than line-max arrives as one record
// per part, in order, each with docker.partial.id (the same for all),
// .ordinal (1, 2, ...) and .last (true on the last part only); the parts
// joined are the line.
func TestOTLPPartialLines(t *testing.T) {
	c := startOtelcol(t)
	l := StartLogger(t, Env(otlpID, map[string]string{"otlp-endpoint": c.URL("http"), "line-max": "1k"}), "otlp")
	long := strings.Repeat("0123456789", 250) // 2500 bytes: three parts
	WriteLines(t, l.Stdout, []string{"before", long, "after"})
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	recs := c.Records()
	if len(recs) != 5 || recs[0].Body.text() != "before" || recs[4].Body.text() != "after" {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	if recs[0].attr("docker.partial.id") != "" {
		t.Fatalf("a whole line carries partial attributes: %+v", recs[0].Attributes)
	}
	var joined string
	id := recs[1].attr("docker.partial.id")
	for i, r := range recs[1:4] {
		last := strconv.FormatBool(i == 2)
		if r.attr("docker.partial.id") != id || id == "" || r.attr("docker.partial.ordinal") != strconv.Itoa(i+1) || r.attr("docker.partial.last") != last {
			t.Fatalf("part %d: attributes %+v", i, r.Attributes)
		}
		joined += r.Body.text()
	}
	if joined != long {
		t.Fatalf("the parts joined are %d bytes, want the line's %d", len(joined), len(long))
	}
}
