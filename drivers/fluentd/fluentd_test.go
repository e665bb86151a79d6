package fluentd

// Tests of our fluentd driver against internal/sink/forward, an in-repo
// server speaking the real Fluentd Forward Protocol v1: the bytes on the
// wire are fluent-logger-golang's.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/backend"
	"github.com/docker/docker/daemon/logger"
	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/joyent/dockerlogger/internal/sink/forward"
)

func message(source, line string, ts time.Time) *logger.Message {
	m := logger.NewMessage()
	m.Source = source
	m.Line = []byte(line)
	m.Timestamp = ts
	return m
}

// TestFluentdRecord: the record is exactly Docker's: container_id,
// container_name, source, log, the extra attributes, and the partial_*
// fields of a partial message; the tag is rendered from the tag option.
func TestFluentdRecord(t *testing.T) {
	s, err := forward.Listen("unix", filepath.Join(t.TempDir(), "f.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info := logger.Info{
		Config: map[string]string{
			"fluentd-address": s.URL(), "tag": "app.{{.Name}}", "labels": "team",
			"env": "STAGE", "fluentd-request-ack": "true",
		},
		ContainerID:     "0123456789abcdef0123",
		ContainerName:   "/web",
		ContainerLabels: map[string]string{"team": "blue", "other": "x"},
		ContainerEnv:    []string{"STAGE=prod", "SECRET=s"},
	}
	l, err := newFluentd(info)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	if err := l.Log(message("stdout", "whole line", ts)); err != nil {
		t.Fatal(err)
	}
	m := message("stderr", "part two", ts)
	m.PLogMetaData = &backend.PartialLogMetaData{ID: "pid1", Ordinal: 2, Last: true}
	if err := l.Log(m); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	evs := s.Events() // acked: both are in
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	base := map[string]any{"container_id": info.ContainerID, "container_name": "/web", "team": "blue", "STAGE": "prod"}
	want := []map[string]any{{"source": "stdout", "log": "whole line"},
		{"source": "stderr", "log": "part two", "partial_message": "true", "partial_id": "pid1",
			"partial_ordinal": "2", "partial_last": "true"}}
	for i, e := range evs {
		for k, v := range base {
			want[i][k] = v
		}
		got := map[string]any{}
		for k := range e.Record {
			got[k] = e.Str(k)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("event %d record %v, want %v", i, got, want[i])
		}
		if e.Tag != "app.web" || !e.Time.Equal(ts) || e.EventTime {
			t.Errorf("event %d: tag %q time %v EventTime %v", i, e.Tag, e.Time, e.EventTime)
		}
	}
}

// TestFluentdCloseDrainsQueue: with fluentd-async=true, Close sends every
// event still queued, even when the server only comes up after Close has
// begun. Docker's driver (ForceStopAsyncSend) would discard them all.
func TestFluentdCloseDrainsQueue(t *testing.T) {
	s, err := forward.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := newFluentd(logger.Info{
		Config:      map[string]string{"fluentd-address": s.URL(), "fluentd-async": "true", "fluentd-retry-wait": "10ms"},
		ContainerID: "0123456789abcdef",
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	sent := 0
	for ; sent < 100; sent++ {
		if err := l.Log(message("stdout", fmt.Sprint("queued ", sent), ts)); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	// Keep logging until the driver refuses: then Close has begun, with
	// everything accepted so far still queued (the server is down).
	for {
		err := l.Log(message("stdout", fmt.Sprint("queued ", sent), ts))
		if err != nil {
			if !strings.Contains(err.Error(), "already closed") {
				t.Fatal(err)
			}
			break
		}
		sent++
	}
	if n := len(s.Events()); n != 0 {
		t.Fatalf("%d events before the server started", n)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s of the server starting")
	}
	evs, err := s.Wait(sent, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != sent {
		t.Fatalf("%d events, want %d", len(evs), sent)
	}
	for i, e := range evs {
		if want := fmt.Sprint("queued ", i); e.Str("log") != want {
			t.Fatalf("event %d is %q, want %q", i, e.Str("log"), want)
		}
	}
}

// TestFluentdConfig: options become fluent-logger-golang's configuration
// as in Docker's driver (defaults, address forms, units), except that
// Close never discards the queue.
func TestFluentdConfig(t *testing.T) {
	def := fluent.Config{FluentNetwork: "tcp", FluentHost: "127.0.0.1", FluentPort: 24224,
		BufferLimit: 1 << 20, RetryWait: 1000, MaxRetry: math.MaxInt32}
	with := func(f func(c *fluent.Config)) fluent.Config { c := def; f(&c); return c }
	for _, tc := range []struct {
		opts map[string]string
		want fluent.Config
	}{
		{nil, def},
		{map[string]string{"fluentd-address": "fluent.example"}, with(func(c *fluent.Config) { c.FluentHost = "fluent.example" })},
		{map[string]string{"fluentd-address": "fluent.example:5000"}, with(func(c *fluent.Config) { c.FluentHost = "fluent.example"; c.FluentPort = 5000 })},
		{map[string]string{"fluentd-address": "tls://:5000"}, with(func(c *fluent.Config) { c.FluentNetwork = "tls"; c.FluentPort = 5000 })},
		{map[string]string{"fluentd-address": "unix:///run/f.sock"}, fluent.Config{FluentNetwork: "unix", FluentSocketPath: "/run/f.sock",
			BufferLimit: 1 << 20, RetryWait: 1000, MaxRetry: math.MaxInt32}},
		{map[string]string{"fluentd-async": "true", "fluentd-async-reconnect-interval": "2s", "fluentd-buffer-limit": "8m",
			"fluentd-max-retries": "5", "fluentd-retry-wait": "1.5s", "fluentd-request-ack": "true",
			"fluentd-sub-second-precision": "1", "fluentd-write-timeout": "3s"},
			with(func(c *fluent.Config) {
				c.Async, c.AsyncReconnectInterval, c.BufferLimit, c.MaxRetry, c.RetryWait = true, 2000, 8<<20, 5, 1500
				c.RequestAck, c.SubSecondPrecision, c.WriteTimeout = true, true, 3*time.Second
			})},
		{map[string]string{"fluentd-async-reconnect-interval": "0"}, def},
	} {
		got, err := parseFluentdConfig(tc.opts)
		if err != nil {
			t.Errorf("%v: %v", tc.opts, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.opts, got, tc.want)
		}
		if got.ForceStopAsyncSend {
			t.Errorf("%v: ForceStopAsyncSend set", tc.opts)
		}
	}
}

// TestFluentdValidateErrors: the validator's exact texts — Docker's where
// they name the option, the option and value first where Docker's do not.
func TestFluentdValidateErrors(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"fluentd-bogus", "1", "unknown log opt 'fluentd-bogus' for fluentd log driver"},
		{"fluentd-address", "ftp://h:1", "invalid fluentd-address (ftp://h:1): unsupported scheme: 'ftp'"},
		{"fluentd-address", "unix://", "invalid fluentd-address (unix://): path is empty"},
		{"fluentd-address", "tcp://h:1/x", "invalid fluentd-address (tcp://h:1/x): should not contain a path element"},
		{"fluentd-address", "h:99999", `invalid fluentd-address (h:99999): invalid port: strconv.ParseUint: parsing "99999": value out of range`},
		{"fluentd-buffer-limit", "lots", `log-opt fluentd-buffer-limit="lots": invalid size: 'lots'`},
		{"fluentd-retry-wait", "soon", `log-opt fluentd-retry-wait="soon": time: invalid duration "soon"`},
		{"fluentd-max-retries", "many", `log-opt fluentd-max-retries="many": strconv.ParseUint: parsing "many": invalid syntax`},
		{"fluentd-max-retries", "4294967295", "invalid fluentd-max-retries: value out of range"},
		{"fluentd-async", "maybe", `log-opt fluentd-async="maybe": strconv.ParseBool: parsing "maybe": invalid syntax`},
		{"fluentd-async-reconnect-interval", "1ms", `invalid value for fluentd-async-reconnect-interval: value ("1ms") must be between 100ms and 10s`},
		{"fluentd-async-reconnect-interval", "x", `invalid value for fluentd-async-reconnect-interval: time: invalid duration "x"`},
		{"fluentd-sub-second-precision", "y", `log-opt fluentd-sub-second-precision="y": strconv.ParseBool: parsing "y": invalid syntax`},
		{"fluentd-request-ack", "z", `log-opt fluentd-request-ack="z": strconv.ParseBool: parsing "z": invalid syntax`},
		{"fluentd-write-timeout", "-1s", "invalid value for fluentd-write-timeout: value must be a duration that is non-negative"},
		{"fluentd-write-timeout", "w", `invalid value for fluentd-write-timeout: value must be a duration: time: invalid duration "w"`},
		{"labels-regex", "(", "log-opt labels-regex=\"(\": error parsing regexp: missing closing ): `(`"},
		{"env-regex", "[", "log-opt env-regex=\"[\": error parsing regexp: missing closing ]: `[`"},
	} {
		err := validateFluentdOpts(map[string]string{tc.key: tc.value})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s=%q: error %v, want %q", tc.key, tc.value, err, tc.want)
		}
	}
}

// TestFluentdTLSOptionErrors: the TLS options are checked up front, by
// the validator (--validate) as at creation, with one line naming the
// option: they need a tls:// address, the certificate and key come
// together, and every file must exist and parse.
func TestFluentdTLSOptionErrors(t *testing.T) {
	f := newTLSFixture(t)
	missing := filepath.Join(f.dir, "missing.pem")
	garbage := filepath.Join(f.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badBlock := filepath.Join(f.dir, "bad-block.pem")
	writePEM(t, badBlock, "CERTIFICATE", []byte("junk"))
	otherKey := filepath.Join(f.dir, "other-key.pem")
	kder, err := x509.MarshalPKCS8PrivateKey(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, otherKey, "PRIVATE KEY", kder)
	const addr = "tls://127.0.0.1:24224"
	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"fluentd-address": "tcp://127.0.0.1:24224", "fluentd-tls-ca-cert": f.ca.path},
			"log-opt fluentd-tls-ca-cert needs a tls:// fluentd-address, not tcp://127.0.0.1:24224"},
		{map[string]string{"fluentd-tls-cert": f.client, "fluentd-tls-key": f.clientK},
			"log-opt fluentd-tls-cert needs a tls:// fluentd-address, not tcp://127.0.0.1:24224 (the default)"},
		{map[string]string{"fluentd-address": "unix:///run/f.sock", "fluentd-tls-skip-verify": "true"},
			"log-opt fluentd-tls-skip-verify needs a tls:// fluentd-address, not unix:///run/f.sock"},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-skip-verify": "sure"},
			`log-opt fluentd-tls-skip-verify="sure": strconv.ParseBool: parsing "sure": invalid syntax`},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-cert": f.client},
			"log-opt fluentd-tls-cert needs fluentd-tls-key (the client certificate's private key)"},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-key": f.clientK},
			"log-opt fluentd-tls-key needs fluentd-tls-cert (the client certificate)"},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-ca-cert": missing},
			fmt.Sprintf("log-opt fluentd-tls-ca-cert=%q: open %s: no such file or directory", missing, missing)},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-ca-cert": garbage},
			fmt.Sprintf("log-opt fluentd-tls-ca-cert=%q: no PEM certificate in the file", garbage)},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-ca-cert": badBlock},
			fmt.Sprintf("log-opt fluentd-tls-ca-cert=%q: certificate 1: x509: malformed certificate", badBlock)},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-cert": missing, "fluentd-tls-key": f.clientK},
			fmt.Sprintf("log-opt fluentd-tls-cert=%q: open %s: no such file or directory", missing, missing)},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-cert": f.client, "fluentd-tls-key": missing},
			fmt.Sprintf("log-opt fluentd-tls-key=%q: open %s: no such file or directory", missing, missing)},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-cert": f.client, "fluentd-tls-key": otherKey},
			fmt.Sprintf("log-opt fluentd-tls-cert=%q with fluentd-tls-key=%q: tls: private key does not match public key", f.client, otherKey)},
		{map[string]string{"fluentd-address": addr, "fluentd-tls-cert": f.client, "fluentd-tls-key": garbage},
			fmt.Sprintf("log-opt fluentd-tls-cert=%q with fluentd-tls-key=%q: tls: failed to find any PEM data in key input", f.client, garbage)},
	} {
		err := validateFluentdOpts(tc.opts)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v:\n error %v\n want  %s", tc.opts, err, tc.want)
		}
		// Creation refuses them the same way, before any network use.
		if _, err := newFluentd(logger.Info{Config: tc.opts, ContainerID: "0123456789ab"}); err == nil || err.Error() != tc.want {
			t.Errorf("%v: creation error %v, want %s", tc.opts, err, tc.want)
		}
	}
	for _, ok := range []map[string]string{
		{"fluentd-address": addr},
		{"fluentd-address": addr, "fluentd-tls-ca-cert": f.ca.path},
		{"fluentd-address": addr, "fluentd-tls-ca-cert": f.ca.path, "fluentd-tls-cert": f.client, "fluentd-tls-key": f.clientK},
		{"fluentd-address": addr, "fluentd-tls-cert": f.client, "fluentd-tls-key": f.clientK, "fluentd-tls-skip-verify": "true"},
		// The default of skip-verify changes nothing, so it is no error.
		{"fluentd-address": "tcp://127.0.0.1:24224", "fluentd-tls-skip-verify": "false"},
	} {
		if err := validateFluentdOpts(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

// TestFluentdTLSConfig: the tls.Config the bridge dials with: our CA (or
// the system's roots), the client certificate, the address's host as the
// name to verify, TLS 1.2 at least, verification on unless asked off.
func TestFluentdTLSConfig(t *testing.T) {
	f := newTLSFixture(t)
	loc := fluentdLocation{protocol: "tls", host: "fluent.example", port: 24224}
	got, err := parseFluentdTLS(map[string]string{"fluentd-tls-ca-cert": f.ca.path, "fluentd-tls-cert": f.client, "fluentd-tls-key": f.clientK}, loc)
	if err != nil {
		t.Fatal(err)
	}
	c := got.config
	if c.ServerName != "fluent.example" || c.MinVersion != tls.VersionTLS12 || c.InsecureSkipVerify || c.RootCAs == nil {
		t.Errorf("config %+v", c)
	}
	if _, err := f.ca.cert.Verify(x509.VerifyOptions{Roots: c.RootCAs}); err != nil {
		t.Errorf("the pool does not hold the CA: %v", err)
	}
	if got.cert == nil || got.cert.Leaf == nil || got.cert.Leaf.DNSNames[0] != "client.test" {
		t.Errorf("client certificate %+v", got.cert)
	}
	got, err = parseFluentdTLS(map[string]string{"fluentd-tls-skip-verify": "true"}, loc)
	if err != nil {
		t.Fatal(err)
	}
	if got.config.RootCAs != nil || !got.config.InsecureSkipVerify || got.cert != nil {
		t.Errorf("system roots, skip-verify: %+v", got.config)
	}
}
