package test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHostileIDsSyslogEmptyTag: a container id shorter than
// 12 characters with a tag that renders empty ({{.ImageName}} under
// containerd, which passes no image; {{.Name}} with no name) made Docker's
// driver fall back to {{.ID}}, which slices the id to 12: the driver never
// came up and every line was dropped, while --validate said ok. Ids of 1,
// 11, 12, 64 and 300 characters, under containerd's argv and Triton's
// environment, against a real rsyslogd: every line arrives.
func TestHostileIDsSyslogEmptyTag(t *testing.T) {
	r := startRsyslog(t, false)
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort)
	total := 0
	var want []string
	for _, n := range []int{1, 11, 12, 64, 300} {
		id := strings.Repeat("w", n)
		for _, c := range []struct {
			how string
			tag string
		}{{"containerd", "{{.ImageName}}"}, {"triton", "{{.Name}}"}, {"triton", "{{.ID}}"}} {
			prefix := fmt.Sprintf("id%d %s %s", n, c.how, c.tag)
			var env, args []string
			if c.how == "containerd" {
				env = []string{"PATH=" + os.Getenv("PATH"), "CONTAINER_ID=" + id, "CONTAINER_NAMESPACE=default"}
				args = []string{"driver", "syslog", "syslog-address", addr, "syslog-format", "rfc5424", "tag", c.tag, "close-timeout", "5s"}
			} else {
				env = Env(id, map[string]string{"syslog-address": addr, "syslog-format": "rfc5424", "tag": c.tag, "close-timeout": "5s"})
				args = []string{"syslog"}
			}
			_, stderr, code := RunCLI(t, append(env[:len(env):len(env)], "DOCKERLOG_CONTAINERID="+id), "--validate", "syslog")
			if c.how == "triton" && code != 0 {
				t.Fatalf("%s: --validate exit %d: %s", prefix, code, stderr)
			}
			l := StartLogger(t, env, args...)
			lines := Lines(prefix, 5)
			WriteLines(t, l.Stdout, lines)
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("%s: exit %d; stderr: %s", prefix, code, l.Errors())
			}
			if strings.Contains(l.Errors(), "slice bounds") {
				t.Fatalf("%s: %s", prefix, l.Errors())
			}
			sinkExitStats(t, l, len(lines))
			total += len(lines)
			want = append(want, lines...)
		}
	}
	recs := r.waitRecords(t, total)
	var got []string
	for _, rec := range recs {
		got = append(got, rec.Msg)
	}
	sinkSameLines(t, "rsyslog", got, want)
}

// TestHostileIDsLong: an id of 250 characters or more makes
// the default log-path's name longer than NAME_MAX: refused by --validate
// and at start (exit 2, one short line naming log-path), not retried
// until close-timeout with 10 KB error lines. The spool directory's
// default is checked the same way.
func TestHostileIDsLong(t *testing.T) {
	for _, c := range []struct {
		n      int
		driver string
		opts   map[string]string
		name   string
	}{
		{250, "json-file", map[string]string{}, "log-path"},
		{300, "local", map[string]string{}, "log-path"},
		{5000, "json-file", map[string]string{}, "log-path"},
		{300, "syslog", map[string]string{"syslog-address": "udp://127.0.0.1:9", "mode": "spool"}, "spool-dir"},
	} {
		id := strings.Repeat("L", c.n)
		env := Env(id, c.opts)
		for _, args := range [][]string{{"--validate", c.driver}, {c.driver}} {
			start := time.Now()
			_, stderr, code := RunCLI(t, env, args...)
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "log-opt "+c.name+"=") ||
				!strings.Contains(stderr, "NAME_MAX 255") || len(stderr) > 800 {
				t.Errorf("id of %d, %v: exit %d, %d bytes: %.900s", c.n, args, code, len(stderr), stderr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("id of %d, %v: took %v", c.n, args, d)
			}
		}
	}
	// A network driver does not care how long the id is.
	id := strings.Repeat("L", 300)
	if _, stderr, code := RunCLI(t, Env(id, map[string]string{"syslog-address": "udp://127.0.0.1:9"}), "--validate", "syslog"); code != 0 {
		t.Errorf("syslog, id of 300: exit %d: %s", code, stderr)
	}
}

// TestHostileIDsControlCharacters: a newline or an escape
// sequence in an id never reaches a file name: they are written %XX (as
// is "/" and "%" itself) in the default log-path and spool-dir.
func TestHostileIDsControlCharacters(t *testing.T) {
	id := "web\n1\x1b[2J/x%"
	_, stderr, code := RunCLI(t, Env(id, map[string]string{}), "ctxdump", "json-file")
	if code != 0 {
		t.Fatalf("ctxdump exit %d: %s", code, stderr)
	}
	var dump struct {
		Info struct{ LogPath string }
	}
	if err := json.Unmarshal([]byte(stderr), &dump); err != nil {
		t.Fatalf("ctxdump: %v: %s", err, stderr)
	}
	if want := "/var/log/containers/web%0A1%1B[2J%2Fx%25-json.log"; dump.Info.LogPath != want {
		t.Errorf("log path %q, want %q", dump.Info.LogPath, want)
	}
}

// TestHostileValuesQuotedShort: an error quotes a value at
// most about 200 characters long, whatever its size, on one line.
func TestHostileValuesQuotedShort(t *testing.T) {
	huge := strings.Repeat("v", 10000)
	for _, opts := range []map[string]string{
		{"mode": huge},
		{huge: "1"},
		{"max-size": huge},
		{"log-path": "/" + huge},
		{"tag": "{{" + huge},
	} {
		_, stderr, code := RunCLI(t, Env("cid", opts), "--validate", "json-file")
		if code != 2 || strings.Count(stderr, "\n") != 1 || len(stderr) > 700 {
			t.Errorf("exit %d, %d bytes: %.300s", code, len(stderr), stderr)
		}
	}
}

// TestHostileOptionsDeterministic: the same bad
// configuration names the same unknown option on every run: the first,
// sorted.
func TestHostileOptionsDeterministic(t *testing.T) {
	opts := map[string]string{"syslog-address": "udp://127.0.0.1:9"}
	for _, k := range []string{"zeta", "mu", "alpha", "omega", "kappa", "beta"} {
		opts[k] = "1"
	}
	for i := 0; i < 10; i++ {
		_, stderr, code := RunCLI(t, Env("cid", opts), "--validate", "syslog")
		if code != 2 || !strings.Contains(stderr, "'alpha'") {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
	}
}
