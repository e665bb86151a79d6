package test

// End-to-end tests of the splunk driver. No Splunk runs here, so the
// logger posts to internal/sink/hec, an in-repo HTTP Event Collector
// speaking the real HEC protocol (Authorization: Splunk <token>,
// concatenated JSON events, gzip, Splunk's status codes and bodies, the
// OPTIONS health check) — not a mock of our own code: the requests come
// from drivers/splunk, which keeps Docker's driver's wire format.

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/hec"
)

const (
	splunkID    = "5b1e2c3d4e5f60718293a4b5"
	splunkToken = "00000000-1111-2222-3333-444444444444"
)

func startHEC(t *testing.T, indexAck bool) *hec.Server {
	t.Helper()
	s, err := hec.Listen("127.0.0.1:0", splunkToken, indexAck)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// splunkOpts are the log-opts for the sink s, plus extra pairs.
func splunkOpts(s *hec.Server, token string, extra ...string) map[string]string {
	m := map[string]string{"splunk-url": s.URL(), "splunk-token": token}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// inlineEvent is the event object of the inline and json formats.
type inlineEvent struct {
	Line   json.RawMessage `json:"line"`
	Source string          `json:"source"`
	Tag    string          `json:"tag"`
}

// TestSplunkFormats: for each splunk-format every line arrives, per
// stream in order, as Docker's driver shapes it, with the metadata
// log-opts, a time stamped when the line was read, and after the OPTIONS
// health check. For inline and json the post frequency stays at Docker's
// default of 5 s, so the events only arrive because closing the logger
// flushes the driver.
func TestSplunkFormats(t *testing.T) {
	for _, format := range []string{"inline", "json", "raw"} {
		t.Run(format, func(t *testing.T) {
			s := startHEC(t, false)
			var extra []string
			if format == "raw" {
				extra = append(extra, "SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY=20ms")
			}
			l := StartLogger(t, Env(splunkID, splunkOpts(s, splunkToken,
				"splunk-format", format,
				"splunk-source", "src1", "splunk-sourcetype", "st1", "splunk-index", "idx1",
			), extra...), "splunk")
			before := time.Now()
			out := append(Lines("out", 30), `{"k":"v","n":1}`)
			errs := Lines("err", 30)
			WriteLines(t, l.Stdout, out)
			if format == "raw" {
				// Docker's raw format corrupted lines logged from both
				// streams at once (TestSplunkRawConcurrentStreams checks
				// ours does not): one stream at a time here.
				if _, err := s.Wait(len(out), 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			WriteLines(t, l.Stderr, errs)
			if code := l.Wait(t, 20*time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
			}
			after := time.Now()
			evs := s.Events()
			if len(evs) != len(out)+len(errs) {
				t.Fatalf("%d events, want %d; logger stderr: %s", len(evs), len(out)+len(errs), l.Errors())
			}
			got := map[string][]string{}
			for _, e := range evs {
				if e.Source != "src1" || e.SourceType != "st1" || e.Index != "idx1" || e.Host == "" {
					t.Fatalf("metadata: %+v", e)
				}
				ts, err := strconv.ParseFloat(e.Time, 64)
				if err != nil || ts < float64(before.Unix()) || ts > float64(after.Unix()+1) {
					t.Fatalf("time %q outside [%v, %v]", e.Time, before.Unix(), after.Unix())
				}
				if format == "raw" {
					var line string
					if err := json.Unmarshal(e.Event, &line); err != nil {
						t.Fatalf("raw event %s is not a string", e.Event)
					}
					// Raw events carry no stream: the tag prefixes the line.
					line, ok := strings.CutPrefix(line, splunkID[:12]+" ")
					if !ok {
						t.Fatalf("raw event %q does not start with the tag", line)
					}
					src := "stdout"
					if strings.HasPrefix(line, "err") {
						src = "stderr"
					}
					got[src] = append(got[src], line)
					continue
				}
				var ev inlineEvent
				if err := json.Unmarshal(e.Event, &ev); err != nil {
					t.Fatalf("event %s: %v", e.Event, err)
				}
				if ev.Tag != splunkID[:12] {
					t.Fatalf("tag %q, want %q", ev.Tag, splunkID[:12])
				}
				var line string
				if json.Unmarshal(ev.Line, &line) != nil {
					// Only the json format sends a JSON line as an object.
					if format != "json" {
						t.Fatalf("%s format sent line %s, not a string", format, ev.Line)
					}
					line = string(ev.Line)
				} else if format == "json" && strings.HasPrefix(line, "{") {
					t.Fatalf("json format sent a JSON line as a string: %q", line)
				}
				got[ev.Source] = append(got[ev.Source], line)
			}
			if strings.Join(got["stdout"], "\n") != strings.Join(out, "\n") {
				t.Fatalf("stdout lines:\n%q\nwant\n%q\nstderr lines: %q\nrequests: %+v", got["stdout"], out, got["stderr"], s.Requests())
			}
			if strings.Join(got["stderr"], "\n") != strings.Join(errs, "\n") {
				t.Fatalf("stderr lines:\n%q\nwant\n%q", got["stderr"], errs)
			}
			reqs := s.Requests()
			if reqs[0].Method != "OPTIONS" {
				t.Fatalf("first request %s, want the OPTIONS health check", reqs[0].Method)
			}
			for _, r := range reqs[1:] {
				if r.Method != "POST" || r.Path != "/services/collector/event/1.0" || r.Auth != "Splunk "+splunkToken || r.Status != 200 {
					t.Fatalf("request %+v", r)
				}
			}
		})
	}
}

// TestSplunkGzip: splunk-gzip=true sends gzip-encoded batches, and with
// SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY set short the lines
// arrive while the logger runs.
func TestSplunkGzip(t *testing.T) {
	s := startHEC(t, false)
	l := StartLogger(t, Env(splunkID, splunkOpts(s, splunkToken, "splunk-gzip", "true", "splunk-gzip-level", "9"),
		"SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY=50ms"), "splunk")
	out := Lines("zipped", 300)
	WriteLines(t, l.Stdout, out)
	evs, err := s.Wait(300, 10*time.Second)
	if err != nil {
		t.Fatalf("%v; logger stderr: %s", err, l.Errors())
	}
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	for i, e := range evs {
		var ev inlineEvent
		var line string
		if err := json.Unmarshal(e.Event, &ev); err != nil || json.Unmarshal(ev.Line, &line) != nil {
			t.Fatalf("event %s", e.Event)
		}
		if !e.Gzip || line != out[i] {
			t.Fatalf("event %d: gzip=%v line %q, want gzip and %q", i, e.Gzip, line, out[i])
		}
	}
}

// TestSplunkIndexAck: with splunk-index-acknowledgment=true every post
// carries a request channel, which an ack-enabled token requires.
func TestSplunkIndexAck(t *testing.T) {
	s := startHEC(t, true)
	l := StartLogger(t, Env(splunkID, splunkOpts(s, splunkToken, "splunk-index-acknowledgment", "true")), "splunk")
	out := Lines("acked", 50)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	if n := len(s.Events()); n != 50 {
		t.Fatalf("%d events, want 50; requests %+v", n, s.Requests())
	}
	for _, r := range s.Requests()[1:] {
		if r.Channel == "" || r.Status != 200 {
			t.Fatalf("request %+v", r)
		}
	}
}

// TestSplunkWrongToken: HEC answers 403 "Invalid token". What the user
// sees: the container starts (the OPTIONS health check needs no token),
// the driver keeps retrying its batch, the error on the logger's stderr
// says 403 and never shows the token, and the logger still exits when the
// container stops.
func TestSplunkWrongToken(t *testing.T) {
	s := startHEC(t, false)
	const wrong = "wrong-9f8e7d6c-secret"
	l := StartLogger(t, Env(splunkID, splunkOpts(s, wrong), "SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY=50ms"), "splunk")
	WriteLines(t, l.Stdout, Lines("refused", 10))
	if err := s.WaitRequests(3, 403, 10*time.Second); err != nil {
		t.Fatalf("%v; logger stderr: %s", err, l.Errors())
	}
	for _, r := range s.Requests()[1:] {
		if r.Auth != "Splunk "+wrong {
			t.Fatalf("request sent Authorization %q", r.Auth)
		}
	}
	Eventually(t, 10*time.Second, "the 403 error on the logger's stderr", func() bool {
		return strings.Contains(l.Errors(), "403")
	})
	code := l.Wait(t, 20*time.Second)
	stderr := l.Errors()
	t.Logf("exit code %d; stderr:\n%s", code, stderr)
	if strings.Contains(stderr, wrong) || strings.Contains(stderr, "9f8e7d6c") {
		t.Fatalf("the token appears on stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Fatalf("stack trace on stderr:\n%s", stderr)
	}
	if n := len(s.Events()); n != 0 {
		t.Fatalf("%d events accepted with a wrong token", n)
	}
}

// TestSplunkWrongTokenLoss: lines the driver could never post must not be
// reported as delivered, and the exit code must say something was lost.
func TestSplunkWrongTokenLoss(t *testing.T) {
	s := startHEC(t, false)
	l := StartLogger(t, Env(splunkID, splunkOpts(s, "wrong-token"), "SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY=50ms"), "splunk")
	WriteLines(t, l.Stdout, Lines("refused", 10))
	code := l.Wait(t, 20*time.Second)
	st := l.Stats(t)
	if code == 0 || st["lines_delivered"] != "0" {
		t.Fatalf("exit code %d, stats %v: lost lines reported as delivered", code, st)
	}
}

// TestSplunkValidate: --validate splunk accepts good options and names
// the bad one, exit 2, without network use.
func TestSplunkValidate(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"splunk-url": "https://splunk.example.com:8088", "splunk-token": splunkToken}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	runValidate(t, "splunk", []validateCase{
		{name: "good", opts: base("splunk-format", "json", "splunk-gzip", "true", "splunk-gzip-level", "9",
			"splunk-verify-connection", "false", "splunk-index-acknowledgment", "true", "splunk-insecureskipverify", "true")},
		{name: "unknown option", opts: base("splunk-bogus", "1"), names: "splunk-bogus"},
		{name: "format", opts: base("splunk-format", "xml"), names: "splunk-format"},
		{name: "gzip", opts: base("splunk-gzip", "maybe"), names: "splunk-gzip"},
		{name: "gzip level", opts: base("splunk-gzip-level", "12"), names: "splunk-gzip-level"},
		{name: "url scheme", opts: base("splunk-url", "ftp://splunk:8088"), names: "splunk-url"},
		{name: "no url", opts: map[string]string{"splunk-token": splunkToken}, names: "splunk-url"},
		{name: "no token", opts: map[string]string{"splunk-url": "https://splunk:8088"}, names: "splunk-token"},
	})
}

// TestSplunkRawConcurrentStreams: with splunk-format=raw, lines logged
// from stdout and stderr at the same time arrive intact.
func TestSplunkRawConcurrentStreams(t *testing.T) {
	s := startHEC(t, false)
	l := StartLogger(t, Env(splunkID, splunkOpts(s, splunkToken, "splunk-format", "raw")), "splunk")
	out, errs := Lines("out", 2000), Lines("err", 2000)
	done := make(chan struct{})
	go func() { WriteLines(t, l.Stderr, errs); close(done) }()
	WriteLines(t, l.Stdout, out)
	<-done
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	want := map[string]bool{}
	for _, line := range append(out, errs...) {
		want[splunkID[:12]+" "+line] = true
	}
	evs := s.Events()
	for _, e := range evs {
		var line string
		if err := json.Unmarshal(e.Event, &line); err != nil || !want[line] {
			t.Fatalf("corrupted or duplicated event %s", e.Event)
		}
		delete(want, line)
	}
	if len(want) != 0 {
		t.Fatalf("%d lines missing", len(want))
	}
}
