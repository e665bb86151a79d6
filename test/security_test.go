package test

// End-to-end tests of the logger's hardening: secrets never
// printed, files created with tight permissions and never through a link,
// a spool directory of another user refused, hostile tag templates, and
// the worker's capabilities. The sinks are the real ones the other tests
// use: internal/sink/hec speaks Splunk's HTTP Event Collector protocol.

import (
	"fmt"
	"os"
	"path/filepath"
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
		{"otlp-headers", "otlp", map[string]string{"otlp-endpoint": "https://otel.example.com:4318", "otlp-headers": "Authorization=Bearer " + secToken}, "https://otel.example.com:4318"},
		{"loki-url userinfo", "loki", map[string]string{"loki-url": "https://1234:" + secPassword + "@logs.example.com/loki/api/v1/push"}, "logs.example.com"},
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
		{"good otlp headers", "otlp", map[string]string{"otlp-headers": "Authorization=Bearer " + secToken}, ""},
		{"otlp headers beside a bad option", "otlp", map[string]string{"otlp-headers": "Authorization=Bearer " + secToken, "otlp-timeout": "soon"}, "otlp-timeout"},
		{"otlp headers malformed", "otlp", map[string]string{"otlp-headers": "Authorization=Bearer " + secToken + ",x"}, "otlp-headers"},
		{"loki-url userinfo and a bad label", "loki", map[string]string{"loki-url": "https://1234:" + secPassword + "@logs.example.com/loki/api/v1/push", "loki-external-labels": "a-b=c"}, "loki-external-labels"},
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

// startUmask0 starts the logger with umask 0, so that the modes it asks
// for are the modes the files get.
func startUmask0(t *testing.T, env []string, driver string) *Logger {
	t.Helper()
	l := StartLoggerAt(t, "/bin/sh", env, "-c", `umask 0 && exec "$0" "$@"`, filepath.Join(bin, "dockerlogger"), driver)
	if err := l.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("logger not ready: %v; stderr: %s", err, l.Errors())
	}
	return l
}

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// TestFilePermissions: with umask 0 the json-file log, its rotated and
// compressed files are created 0640 (Docker's mode), and the spool
// directory 0700 with its files 0600: the container's lines are not
// readable by other users even where the umask would allow it.
func TestFilePermissions(t *testing.T) {
	t.Run("json-file", func(t *testing.T) {
		dir := t.TempDir()
		logPath := filepath.Join(dir, "c-json.log")
		l := startUmask0(t, Env("perm00000001", map[string]string{"log-path": logPath, "max-size": "2k", "max-file": "3", "compress": "true"}), "json-file")
		WriteLines(t, l.Stdout, Lines("a line long enough to rotate the file soon", 200))
		if code := l.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d: %s", code, l.Errors())
		}
		files, _ := filepath.Glob(logPath + "*")
		if len(files) != 3 {
			t.Fatalf("files %v, want the log and two rotated ones", files)
		}
		for _, f := range files {
			if m := fileMode(t, f); m != 0o640 {
				t.Errorf("%s has mode %v, want -rw-r-----", f, m)
			}
		}
	})
	t.Run("spool", func(t *testing.T) {
		dir := t.TempDir()
		spool := filepath.Join(dir, "spool", "c1")
		l := startUmask0(t, Env("perm00000002", map[string]string{"log-path": filepath.Join(dir, "c.log"), "mode": "spool", "spool-dir": spool}), "json-file")
		WriteLines(t, l.Stdout, Lines("spooled", 10))
		if code := l.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d: %s", code, l.Errors())
		}
		if m := fileMode(t, spool); m != os.ModeDir|0o700 {
			t.Errorf("spool-dir has mode %v, want drwx------", m)
		}
		files, _ := filepath.Glob(filepath.Join(spool, "*"))
		if len(files) == 0 {
			t.Fatalf("nothing in the spool directory")
		}
		for _, f := range files {
			if m := fileMode(t, f); m != 0o600 {
				t.Errorf("%s has mode %v, want -rw-------", f, m)
			}
		}
	})
}

// TestLogPathSymlink: a log-path that someone made a symbolic link (to a
// file the logger's user may write) is never written through. Seen at
// start, it is refused there: one line naming it, exit 2, nothing read
// (what is not a regular file is refused at start). A link
// that appears later is refused when the file is opened, at a rotation
// (test/files_security_test.go).
func TestLogPathSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "c-json.log")
	if err := os.Symlink(victim, logPath); err != nil {
		t.Fatal(err)
	}
	l := StartLoggerNoWait(t, Env("symlink00001", map[string]string{"log-path": logPath, "close-timeout": "1s"}), "json-file")
	WriteLines(t, l.Stdout, Lines("must not be written", 3))
	code := l.Wait(t, 30*time.Second)
	if code != 2 || strings.Count(l.Errors(), "\n") != 1 || !strings.Contains(l.Errors(), logPath) ||
		!strings.Contains(l.Errors(), "is a symbolic link") {
		t.Errorf("exit %d, want 2 with one line naming the link; stderr: %s", code, l.Errors())
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the link's target now holds %q", b)
	}
}

// TestSpoolDirOtherOwner: a spool-dir owned by another user (here
// nobody) is refused before anything is read: one line naming the
// directory and both uids, exit 2 (--validate refuses it too), and
// nothing written into it.
func TestSpoolDirOtherOwner(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(spool, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	l := StartLoggerNoWait(t, Env("owner0000001", map[string]string{"log-path": filepath.Join(dir, "c.log"), "mode": "spool", "spool-dir": spool}), "json-file")
	code := l.Wait(t, 30*time.Second)
	stderr := l.Errors()
	want := fmt.Sprintf("spool-dir %s is owned by uid 65534, this logger runs as uid 0", spool)
	if code != 2 || strings.Count(stderr, want) != 1 {
		t.Fatalf("exit %d, stderr %q; want 2 and one line saying %q", code, stderr, want)
	}
	noPanic(t, "stderr", stderr)
	if files, _ := filepath.Glob(filepath.Join(spool, "*")); len(files) != 0 {
		t.Errorf("the logger wrote %v into another user's spool-dir", files)
	}
}

// TestHostileTags: tag templates run with Docker's template functions
// only, and a hostile one is a one-line error from --validate (exit 2),
// never a panic, a crash or a hang: a template that iterates over what
// it must not, calls a function value, includes an undefined or
// recursive template, asks pad for a terabyte, slices out of range,
// renders more than 1 KiB, or loops for long without writing. A harmless
// one that prints the context is rendered.
func TestHostileTags(t *testing.T) {
	cases := []struct {
		tag, err string // err "" means accepted
	}{
		{`{{range .}}x{{end}}`, "range can't iterate"},
		{`{{call .X}}`, "can't evaluate field X"},
		{`{{template "x"}}`, `template "x" not defined`},
		{`{{define "x"}}{{template "x"}}{{end}}{{template "x"}}`, "exceeded maximum template depth"},
		{`{{pad .ID 1000000000000 0}}`, "pad 1000000000000 0"},
		{`{{pad .ID -1 0}}`, "pad -1 0"},
		{`{{truncate .ID -1}}`, "slice bounds out of range"},
		{`{{range split (pad .ID 0 1000) ""}}{{$.ContainerID}}{{end}}`, "renders to more than 1024 bytes"},
		{strings.Repeat("x", 2000), "renders to more than 1024 bytes"},
		{`{{range split (pad .ID 0 1000) ""}}{{range split (pad $.ID 0 1000) ""}}{{range split (pad $.ID 0 1000) ""}}{{end}}{{end}}{{end}}`, "takes longer than 1s to render"},
		{`{{printf "%v" .}}`, ""},
		{`{{.ID}}-{{upper .Name}}-{{pad .ImageName 2 2}}`, ""},
	}
	for _, c := range cases {
		name := c.tag
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			stdout, stderr, code := RunCLI(t, Env(syslogID, map[string]string{"syslog-address": "udp://127.0.0.1:514", "tag": c.tag}), "--validate", "syslog")
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("--validate took %v", d)
			}
			noPanic(t, "--validate", stderr)
			if c.err == "" {
				if code != 0 || stderr != "" {
					t.Fatalf("exit %d, stderr %q; want the tag accepted", code, stderr)
				}
				return
			}
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "log-opt tag=") || !strings.Contains(stderr, c.err) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and one line about the tag saying %q", code, stdout, stderr, c.err)
			}
		})
	}
	// A running logger checks the same before it reads anything: a tag
	// that would make Docker's driver allocate a terabyte is refused,
	// exit 2, with no crash.
	t.Run("running", func(t *testing.T) {
		dir := t.TempDir()
		l := StartLoggerNoWait(t, Env(syslogID, map[string]string{"log-path": filepath.Join(dir, "c.log"), "tag": `{{pad .ID 1000000000000 0}}`}), "json-file")
		code := l.Wait(t, 30*time.Second)
		if code != 2 || !strings.Contains(l.Errors(), "log-opt tag=") {
			t.Fatalf("exit %d, stderr %q; want 2 and the tag error", code, l.Errors())
		}
		noPanic(t, "stderr", l.Errors())
	})
}
