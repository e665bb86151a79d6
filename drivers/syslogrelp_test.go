package drivers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

func TestValidateSyslogRelp(t *testing.T) {
	for _, tc := range []struct {
		opts map[string]string
		err  string // "" for valid
	}{
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514"}},
		{opts: map[string]string{"syslog-address": "relp://logs.example:2514", "syslog-format": "rfc5424micro",
			"syslog-facility": "local3", "tag": "{{.Name}}", "env": "A", "labels": "b"}},
		{opts: map[string]string{"syslog-address": "relp://[::1]:2514", "syslog-facility": "23"}},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514", "syslog-tls-ca-cert": "/ca.pem"},
			err: "log-opt syslog-tls-ca-cert: relp over TLS is not supported yet"},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514", "syslog-tls-skip-verify": "true"},
			err: "log-opt syslog-tls-skip-verify: relp over TLS is not supported yet"},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1"}, err: "RELP has no default port"},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:0"}, err: `invalid port "0"`},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:70000"}, err: `invalid port "70000"`},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514/x"}, err: "nothing after the port"},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514", "syslog-format": "rfc9999"}, err: "Invalid syslog format"},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514", "syslog-facility": "24"}, err: "invalid syslog facility"},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514", "fluentd-async": "true"}, err: "unknown log opt 'fluentd-async'"},
		{opts: map[string]string{"syslog-address": "relp://127.0.0.1:2514", "env-regex": "("}, err: "log-opt env-regex"},
	} {
		err := validateSyslogRelp("syslog", tc.opts)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v, want valid", tc.opts, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: %v, want %q", tc.opts, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%v: error spans lines: %q", tc.opts, err)
		}
	}
}

// relpAcker is a minimal RELP server: it answers open and acknowledges
// every syslog command, and keeps the messages.
type relpAcker struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
}

func newRelpAcker(t *testing.T) *relpAcker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &relpAcker{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go a.serve(c)
		}
	}()
	return a
}

func (a *relpAcker) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		var tx, n int
		var cmd string
		if _, err := fmt.Fscanf(r, "%d %s %d", &tx, &cmd, &n); err != nil {
			return
		}
		data := make([]byte, n+1) // SP DATA, or only the LF
		if n > 0 {
			data = make([]byte, n+2)
		}
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		switch cmd {
		case "open":
			body := "200 OK\nrelp_version=0\ncommands=syslog"
			fmt.Fprintf(c, "%d rsp %d %s\n", tx, len(body), body)
		case "syslog":
			a.mu.Lock()
			a.msgs = append(a.msgs, string(data[1:n+1]))
			a.mu.Unlock()
			fmt.Fprintf(c, "%d rsp 6 200 OK\n", tx)
		case "close":
			fmt.Fprintf(c, "%d rsp 0\n", tx)
			return
		}
	}
}

// TestSyslogRelpFormatsAsDocker logs the same messages through Docker's
// syslog driver over TCP and ours over RELP, for each syslog-format, and
// compares the bytes, with timestamps and pids masked and Docker's
// trailing LF (TCP framing) removed.
func TestSyslogRelpFormatsAsDocker(t *testing.T) {
	docker, err := logger.GetLogDriver("syslog")
	if err != nil {
		t.Fatal(err)
	}
	mask := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?(Z|[+-]\d\d:\d\d)|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\[\d+\]| \d+ `)
	for _, format := range []string{"", "rfc3164", "rfc5424", "rfc5424micro"} {
		t.Run("format="+format, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- ""
					return
				}
				b, _ := io.ReadAll(c)
				got <- string(b)
			}()
			acker := newRelpAcker(t)
			info := func(addr string) logger.Info {
				cfg := map[string]string{"syslog-address": addr, "syslog-facility": "local4", "tag": "{{.Name}}"}
				if format != "" {
					cfg["syslog-format"] = format
				}
				return logger.Info{Config: cfg, ContainerID: strings.Repeat("ab", 32), ContainerName: "/web"}
			}
			theirs, err := docker(info("tcp://" + ln.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			ours, err := syslogCreator(docker)(info("relp://" + acker.ln.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			if ours.Name() != "syslog" {
				t.Fatalf("name %q", ours.Name())
			}
			lines := []struct{ src, line string }{{"stdout", "hello"}, {"stderr", "oops  with spaces"}, {"stdout", ""}, {"stdout", "héllo\ttab"}}
			for _, d := range []logger.Logger{theirs, ours} {
				for _, l := range lines {
					m := logger.NewMessage()
					m.Source, m.Line, m.Timestamp = l.src, []byte(l.line), time.Now()
					if err := d.Log(m); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n, _ := ours.(interface{ Pending() (int64, int64) }).Pending(); n > 3 {
				t.Fatalf("pending %d, more than sent", n)
			}
			if err := theirs.Close(); err != nil {
				t.Fatal(err)
			}
			if err := ours.Close(); err != nil {
				t.Fatal(err)
			}
			if n, b := ours.(interface{ Pending() (int64, int64) }).Pending(); n != 0 || b != 0 {
				t.Fatalf("pending %d lines %d bytes after Close", n, b)
			}
			want := strings.Split(strings.TrimSuffix(<-got, "\n"), "\n")
			acker.mu.Lock()
			have := append([]string(nil), acker.msgs...)
			acker.mu.Unlock()
			if len(have) != len(want) || len(want) != 3 {
				t.Fatalf("docker sent %d messages %q, ours %d %q; want 3 each (no empty line)", len(want), want, len(have), have)
			}
			for i := range want {
				w, h := mask.ReplaceAllString(want[i], "<T>"), mask.ReplaceAllString(have[i], "<T>")
				if w != h {
					t.Errorf("message %d:\ndocker %q\nours   %q", i, want[i], have[i])
				}
			}
			// The priorities: local4 (20) with info (6) and err (3).
			for i, p := range []int{20*8 + 6, 20*8 + 3, 20*8 + 6} {
				if !strings.HasPrefix(have[i], "<"+strconv.Itoa(p)+">") {
					t.Errorf("message %d: %q, want priority %d", i, have[i], p)
				}
			}
		})
	}
}
