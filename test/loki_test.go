package test

// End-to-end tests of the loki driver. Loki's server is under the AGPL, so
// the logger pushes to internal/sink/loki, an in-repo push API that
// decodes what Loki's distributor decodes (snappy protobuf, JSON, gzip,
// the tenant header) and refuses what it refuses (out of order, too old,
// too long: 400; over the rate: 429).

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/loki"
)

const lokiID = "77aa88bb99cc00dd11ee22ff33aa44bb"

func startLoki(t *testing.T) *loki.Server {
	t.Helper()
	s, err := loki.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// checkLokiStream checks that the entries of one source are want, in order.
func checkLokiStream(t *testing.T, es []loki.Entry, source string, want []string) {
	t.Helper()
	var got []string
	for _, e := range es {
		if e.Labels["source"] == source {
			got = append(got, e.Line)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: got %d entries %q...\nwant %d %q...", source, len(got), first(got), len(want), first(want))
	}
}

// TestLokiPush: every line arrives, per stream in order, labelled as
// Grafana's driver labels it (container_name by default, loki-external-
// labels rendered as Docker tags, labels and env with - and . as _, the
// compose labels, host, source), with the tenant, over protobuf and JSON;
// lines that are only white space are left out as Grafana's driver does.
func TestLokiPush(t *testing.T) {
	for _, format := range []string{"protobuf", "json"} {
		t.Run(format, func(t *testing.T) {
			s := startLoki(t)
			s.MultiTenant = true
			l := StartLogger(t, Env(lokiID, map[string]string{
				"loki-url": s.URL(), "loki-tenant-id": "team-a", "loki-format": format,
				"loki-external-labels": "job=docker,container_name={{.Name}},image={{.ImageName}}",
				"labels":               "app.tier", "env": "STAGE",
			}, "DOCKERLOG_CONTAINERNAME=/shop", "DOCKERLOG_IMAGENAME=shop:1.2",
				`DOCKERLOG_LABELS={"app.tier":"front","com.docker.compose.project":"demo"}`,
				`DOCKERLOG_ENV=["STAGE=prod"]`), "loki")
			before := time.Now()
			out := append(Lines("out", 40), "   ", `{"k":"v"} with "quotes" and \backslash`)
			errs := Lines("err", 40)
			WriteLines(t, l.Stdout, out)
			WriteLines(t, l.Stderr, errs)
			if code := l.Wait(t, 20*time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
			}
			after := time.Now()
			es := s.All()
			sent := append(append([]string(nil), out[:40]...), out[41])
			checkLokiStream(t, es, "stdout", sent)
			checkLokiStream(t, es, "stderr", errs)
			if len(es) != len(sent)+len(errs) {
				t.Fatalf("%d entries, want %d", len(es), len(sent)+len(errs))
			}
			for _, e := range es {
				want := map[string]string{"job": "docker", "container_name": "shop", "image": "shop:1.2",
					"app_tier": "front", "STAGE": "prod", "compose_project": "demo"}
				for k, v := range want {
					if e.Labels[k] != v {
						t.Fatalf("label %s = %q, want %q (labels %v)", k, e.Labels[k], v, e.Labels)
					}
				}
				if e.Labels["host"] == "" || len(e.Labels) != len(want)+2 {
					t.Fatalf("labels %v", e.Labels)
				}
				if e.Tenant != "team-a" || e.Format != format || e.Gzip != (format == "json") {
					t.Fatalf("entry %+v", e)
				}
				if e.Time.Before(before) || e.Time.After(after) {
					t.Fatalf("time %v outside [%v, %v]", e.Time, before, after)
				}
			}
			st := l.Stats(t)
			if st["lines_delivered"] != "82" || st["lines_dropped"] != "0" {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

// TestLokiRefusedCounted: entries Loki ignores (here longer than its
// max_line_size) are dropped and counted "rejected", one by one, while
// the other entries of the same push are taken; nothing stalls.
func TestLokiRefusedCounted(t *testing.T) {
	s := startLoki(t)
	s.MaxLineSize = 20
	l := StartLogger(t, Env(lokiID, map[string]string{"loki-url": s.URL()}), "loki")
	lines := []string{"short 1", strings.Repeat("x", 30) + " long 1", "short 2", strings.Repeat("y", 40) + " long 2", "short 3"}
	WriteLines(t, l.Stdout, lines)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkLokiStream(t, s.All(), "stdout", []string{"short 1", "short 2", "short 3"})
	st := l.Stats(t)
	if st["lines_delivered"] != "3" || st["lines_dropped"] != "2" || st["lines_dropped_rejected"] != "2" {
		t.Fatalf("stats %v; stderr: %s", st, l.Errors())
	}
	if !strings.Contains(l.Errors(), "Max entry size") {
		t.Fatalf("Loki's reason is not reported: %s", l.Errors())
	}
}

// TestLokiRateLimitedAndFailing: 429 (with Retry-After) and 5xx are sent
// again after a backoff; nothing is lost or doubled.
func TestLokiRateLimitedAndFailing(t *testing.T) {
	s := startLoki(t)
	s.Fail(1, 429, "1")
	s.Fail(2, 503, "")
	l := StartLogger(t, Env(lokiID, map[string]string{"loki-url": s.URL(), "loki-min-backoff": "50ms",
		"loki-batch-wait": "50ms"}), "loki")
	start := time.Now()
	out := Lines("retry", 30)
	WriteLines(t, l.Stdout, out)
	if _, err := s.Wait(len(out), 20*time.Second); err != nil {
		t.Fatalf("%v; logger stderr: %s", err, l.Errors())
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("Retry-After: 1 not obeyed: delivered in %v", d)
	}
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkLokiStream(t, s.All(), "stdout", out)
	p := s.Pushes()
	if len(p) < 4 || p[0] != 429 || p[1] != 503 || p[2] != 503 || p[3] != 204 {
		t.Fatalf("pushes %v", p)
	}
	if st := l.Stats(t); st["lines_dropped"] != "0" || st["lines_delivered"] != "30" {
		t.Fatalf("stats %v", st)
	}
}

// TestLokiDown: in every mode, a Loki that is down at start and stopped
// and started again mid-stream loses nothing, every line arrives once,
// per stream in order.
func TestLokiDown(t *testing.T) {
	for _, mode := range []string{"blocking", "non-blocking", "spool"} {
		t.Run(mode, func(t *testing.T) {
			s, err := loki.Reserve()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			opts := map[string]string{"loki-url": s.URL(), "mode": mode, "loki-min-backoff": "50ms",
				"loki-max-backoff": "500ms", "loki-retries": "0", "loki-batch-wait": "100ms"}
			if mode == "spool" {
				opts["spool-dir"] = filepath.Join(t.TempDir(), "spool")
			}
			l := StartLogger(t, Env(lokiID, opts), "loki")
			early := Lines("early", 50)
			WriteLines(t, l.Stdout, early)
			Eventually(t, 10*time.Second, "a connection error on the logger's stderr", func() bool {
				return strings.Contains(l.Errors(), "connection refused")
			})
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Wait(len(early), 20*time.Second); err != nil {
				t.Fatalf("%v; stderr: %s", err, l.Errors())
			}
			s.Stop()
			mid := Lines("mid", 50)
			WriteLines(t, l.Stdout, mid)
			errs := Lines("err", 30)
			WriteLines(t, l.Stderr, errs)
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			late := Lines("late", 50)
			WriteLines(t, l.Stdout, late)
			if _, err := s.Wait(len(early)+len(mid)+len(errs)+len(late), 30*time.Second); err != nil {
				t.Fatalf("%v; stderr: %s", err, l.Errors())
			}
			if code := l.Wait(t, 20*time.Second); code != 0 {
				t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
			}
			es := s.All()
			checkLokiStream(t, es, "stdout", append(append(early, mid...), late...))
			checkLokiStream(t, es, "stderr", errs)
			if st := l.Stats(t); st["lines_dropped"] != "0" {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

// TestLokiDownNeverBlocks: unlike Grafana's driver (grafana/loki#2361),
// a Loki that does not answer never blocks the application in
// non-blocking mode: every write returns at once, the lines that do not
// fit the buffer are dropped and counted, and the logger exits within
// close-timeout counting what it never delivered.
func TestLokiDownNeverBlocks(t *testing.T) {
	s, err := loki.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	l := StartLogger(t, Env(lokiID, map[string]string{"loki-url": s.URL(), "mode": "non-blocking",
		"max-buffer-size": "64k", "close-timeout": "2s"}), "loki")
	line := strings.Repeat("z", 200)
	start := time.Now()
	const n = 5000 // 1 MB: many times the buffer
	for i := range n {
		if _, err := fmt.Fprintf(l.Stdout, "%05d %s\n", i, line); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("writing %d lines took %v: the application was blocked", n, d)
	}
	code := l.Wait(t, 20*time.Second)
	st := l.Stats(t)
	// The drop markers the ring handed to the driver are lost with the
	// lines but not counted: the logger never read them.
	if st["lines_read"] != fmt.Sprint(n) || st["lines_delivered"] != "0" || st["lines_dropped"] != fmt.Sprint(n) || st["drop_markers"] == "" {
		t.Fatalf("exit %d, stats %v", code, st)
	}
	if code == 0 {
		t.Fatalf("exit 0 although nothing was delivered; stderr: %s", l.Errors())
	}
}

// TestLokiValidate: bad configuration is one line naming the option, exit
// 2, at --validate and at start.
func TestLokiValidate(t *testing.T) {
	dir := t.TempDir()
	good := "http://loki:3100/loki/api/v1/push"
	with := func(kv ...string) map[string]string {
		m := map[string]string{"loki-url": good}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name  string
		opts  map[string]string
		names string
	}{
		{"good", with("loki-external-labels", "job=x,container_name={{.Name}}", "loki-batch-size", "400000",
			"loki-batch-wait", "2s", "loki-retries", "0", "loki-tenant-id", "t1", "loki-format", "json"), ""},
		{"no url", map[string]string{}, "loki-url"},
		{"url scheme", with("loki-url", "ftp://loki/x"), "loki-url"},
		{"url with password", with("loki-url", "http://u:pw@[::1"), "loki-url"},
		{"labels syntax", with("loki-external-labels", "job"), "loki-external-labels"},
		{"label name", with("loki-external-labels", "bad-name=x"), "loki-external-labels"},
		{"label template", with("loki-external-labels", "a={{.Nope"), "loki-external-labels"},
		{"batch size", with("loki-batch-size", "1m"), "loki-batch-size"},
		{"batch wait", with("loki-batch-wait", "soon"), "loki-batch-wait"},
		{"timeout", with("loki-timeout", "-1s"), "loki-timeout"},
		{"backoff", with("loki-min-backoff", "10s", "loki-max-backoff", "1s"), "loki-max-backoff"},
		{"retries", with("loki-retries", "-1"), "loki-retries"},
		{"ca file", with("loki-tls-ca-file", filepath.Join(dir, "missing.pem")), "loki-tls-ca-file"},
		{"key without cert", with("loki-tls-key-file", filepath.Join(dir, "k.pem")), "loki-tls-cert-file"},
		{"skip verify", with("loki-tls-insecure-skip-verify", "maybe"), "loki-tls-insecure-skip-verify"},
		{"proxy", with("loki-proxy-url", "socks://p"), "loki-proxy-url"},
		{"format", with("loki-format", "xml"), "loki-format"},
		{"pipeline", with("loki-pipeline-stages", "- json: {}"), "loki-pipeline-stages"},
		{"unknown", with("loki-bogus", "1"), "loki-bogus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := Env(lokiID, c.opts)
			for _, args := range [][]string{{"--validate", "loki"}, {"loki"}} {
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
				if strings.Contains(stderr, "pw@") {
					t.Fatalf("%v: a password is quoted: %q", args, stderr)
				}
			}
		})
	}
}

// TestLokiDropMarkerInOrder: after a non-blocking ring overflowed while
// Loki was down, the drop marker takes its place in the stream's order
// (stamped with the last lost line's time), so a Loki that refuses entries
// older than its stream's last takes it and every line after it.
func TestLokiDropMarkerInOrder(t *testing.T) {
	s, err := loki.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	l := StartLogger(t, Env(lokiID, map[string]string{"loki-url": s.URL(), "mode": "non-blocking",
		"max-buffer-size": "64k", "loki-min-backoff": "50ms", "loki-max-backoff": "200ms", "loki-retries": "0", "cache-disabled": "true"}), "loki")
	WriteLines(t, l.Stdout, Lines("lost", 3000)) // with their records' overhead, more than the ring holds
	Eventually(t, 10*time.Second, "a connection error on the logger's stderr", func() bool {
		return strings.Contains(l.Errors(), "connection refused")
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	late := Lines("late", 20)
	WriteLines(t, l.Stdout, late)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	st := l.Stats(t)
	if st["lines_dropped_rejected"] != "" || st["lines_dropped_buffer_full"] == "" {
		t.Fatalf("stats %v; stderr: %s", st, l.Errors())
	}
	es := s.All()
	marker := -1
	for i, e := range es {
		if strings.HasPrefix(e.Line, "dockerlogger: dropped ") {
			marker = i
		}
	}
	if marker < 0 || len(es) < len(late) {
		t.Fatalf("no marker among %d entries", len(es))
	}
	var got []string
	for _, e := range es[len(es)-len(late):] {
		got = append(got, e.Line)
	}
	if strings.Join(got, "\n") != strings.Join(late, "\n") {
		t.Fatalf("the last entries are %q, want %q", got, late)
	}
}

// TestLokiTLSClientCert: a Loki behind TLS that requires a client
// certificate from its CA takes every line from a logger with
// loki-tls-ca-file, -cert-file and -key-file (and loki-tls-server-name
// for a certificate not made out to the address); without the
// certificate nothing arrives and the logger says why.
func TestLokiTLSClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	now := time.Now()
	srvCert, srvKey := ca.issue(t, dir, "server", "loki.test", true, now.Add(-time.Hour), now.Add(time.Hour))
	cliCert, cliKey := ca.issue(t, dir, "client", "client.test", false, now.Add(-time.Hour), now.Add(time.Hour))
	cert, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	s, err := loki.ListenTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	opts := map[string]string{"loki-url": s.URL(), "loki-tls-ca-file": ca.path, "loki-tls-server-name": "loki.test",
		"loki-tls-cert-file": cliCert, "loki-tls-key-file": cliKey}
	l := StartLogger(t, Env(lokiID, opts), "loki")
	out := Lines("tls", 20)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkLokiStream(t, s.All(), "stdout", out)

	delete(opts, "loki-tls-cert-file")
	delete(opts, "loki-tls-key-file")
	l = StartLogger(t, Env(lokiID, opts), "loki")
	WriteLines(t, l.Stdout, Lines("nocert", 5))
	Eventually(t, 10*time.Second, "a TLS error on the logger's stderr", func() bool {
		return strings.Contains(l.Errors(), "certificate")
	})
	if n := len(s.All()); n != len(out) {
		t.Fatalf("%d entries: some arrived without a client certificate", n)
	}
}
