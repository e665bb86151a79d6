package test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/jsonfilelog"
	"github.com/docker/docker/daemon/logger/local"
)

// logsRun runs `dockerlogger logs ARGS...` and returns its stdout, stderr
// and exit code.
func logsRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "dockerlogger"), append([]string{"logs"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// dockerLogs reads the files of a logger at path with Docker's own reader
// (json-file or local, with the rotation options they were written with),
// on a copy, since Docker's driver opens its file for writing.
func dockerLogs(t *testing.T, driver, path string, cfg map[string]string, rc logger.ReadConfig) []*logger.Message {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	info := logger.Info{LogPath: filepath.Join(dir, filepath.Base(path)), Config: cfg, ContainerID: "reader"}
	var l logger.Logger
	if driver == "local" {
		l, err = local.New(info)
	} else {
		l, err = jsonfilelog.New(info)
	}
	if err != nil {
		t.Fatalf("Docker's %s: %v", driver, err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := l.(logger.LogReader).ReadLogs(ctx, rc)
	defer w.ConsumerGone()
	var out []*logger.Message
	for {
		select {
		case m, ok := <-w.Msg:
			if !ok {
				return out
			}
			c := *m
			c.Line = append([]byte(nil), m.Line...)
			out = append(out, &c)
		case err := <-w.Err:
			t.Fatalf("Docker's reader: %v", err)
		case <-ctx.Done():
			t.Fatal("Docker's reader did not finish")
		}
	}
}

// dockerRender writes msgs as docker logs does (the daemon's
// WriteLogStream), except that a line cut into partial messages gets its
// timestamp and details once, as dockerlogger logs joins it.
func dockerRender(msgs []*logger.Message, ts, details bool) (string, string) {
	out := map[string]*bytes.Buffer{"stdout": {}, "stderr": {}}
	open := map[string]bool{}
	for _, m := range msgs {
		b := out[m.Source]
		if !open[m.Source] {
			if ts {
				b.WriteString(m.Timestamp.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") + " ")
			}
			if details {
				var kv []string
				for _, a := range m.Attrs {
					kv = append(kv, url.QueryEscape(a.Key)+"="+url.QueryEscape(a.Value))
				}
				sort.Strings(kv)
				b.WriteString(strings.Join(kv, ",") + " ")
			}
		}
		b.Write(m.Line)
		open[m.Source] = !bytes.HasSuffix(m.Line, []byte("\n"))
	}
	return out["stdout"].String(), out["stderr"].String()
}

// TestLogsLikeDocker writes rotated and compressed json-file and local
// files with the logger, in batches read at different times, lines cut
// into partial messages and a last line without a newline, and checks
// that dockerlogger logs gives what Docker's own reader gives for the
// same files with the same --tail, --since, --until, -t and --details.
func TestLogsLikeDocker(t *testing.T) {
	for _, driver := range []string{"json-file", "local"} {
		t.Run(driver, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			cfg := map[string]string{"max-size": "4k", "max-file": "5", "compress": "true"}
			opts := map[string]string{"line-max": "1k"}
			for k, v := range cfg {
				opts[k] = v
			}
			if driver == "json-file" {
				opts["tag"] = "app/{{.ID}}"
				opts["labels"] = "a"
			}
			l := StartLogger(t, Env("c0ffee", opts, "DOCKERLOG_LOGPATH="+path, `DOCKERLOG_LABELS={"a":"x y"}`), driver)
			var msgs int
			for batch := 0; batch < 5; batch++ {
				var out, errb bytes.Buffer
				for i := 0; i < 12; i++ {
					fmt.Fprintf(&out, "batch %d out %02d\n", batch, i)
					if i%5 == 0 {
						fmt.Fprintf(&errb, "batch %d err %02d\n", batch, i)
					}
				}
				if batch == 2 {
					out.WriteString(strings.Repeat("L", 2500) + "\n") // three partial messages
				}
				if _, err := l.Stdout.Write(out.Bytes()); err != nil {
					t.Fatal(err)
				}
				if _, err := l.Stderr.Write(errb.Bytes()); err != nil {
					t.Fatal(err)
				}
				msgs += bytes.Count(out.Bytes(), []byte("\n")) + bytes.Count(errb.Bytes(), []byte("\n"))
				if batch == 2 {
					msgs += 2
				}
				// Each batch in a read of its own: wait until it is
				// written (the counters SIGUSR1 prints).
				n := fmt.Sprint(msgs)
				Eventually(t, 10*time.Second, "the batch written", func() bool {
					l.Cmd.Process.Signal(syscall.SIGUSR1)
					return strings.Contains(l.Errors(), "lines_delivered="+n+" ")
				})
			}
			l.Stdout.Write([]byte("no newline at the end"))
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("logger exit %d: %s", code, l.Errors())
			}
			all := dockerLogs(t, driver, path, cfg, logger.ReadConfig{Tail: -1})
			if len(all) < 40 {
				t.Fatalf("Docker's reader gives %d messages: too few for the test", len(all))
			}
			gz, _ := filepath.Glob(path + ".*.gz")
			if len(gz) == 0 {
				t.Fatalf("no compressed rotated file: the test would not cover them")
			}
			// Times to cut at: inside the data, at distinct timestamps.
			var times []time.Time
			for _, m := range all {
				if len(times) == 0 || !m.Timestamp.Equal(times[len(times)-1]) {
					times = append(times, m.Timestamp)
				}
			}
			if len(times) < 4 {
				t.Fatalf("only %d distinct timestamps", len(times))
			}
			since, until := times[1], times[len(times)-2]
			rfc := func(ts time.Time) string { return ts.Format(time.RFC3339Nano) }
			for _, c := range []struct {
				args        []string
				rc          logger.ReadConfig
				ts, details bool
			}{
				{nil, logger.ReadConfig{Tail: -1}, false, false},
				{[]string{"--tail", "all"}, logger.ReadConfig{Tail: -1}, false, false},
				{[]string{"--tail", "0"}, logger.ReadConfig{Tail: 0}, false, false},
				{[]string{"--tail=3"}, logger.ReadConfig{Tail: 3}, false, false},
				{[]string{"-n", "30"}, logger.ReadConfig{Tail: 30}, false, false},
				{[]string{"--tail", "100000"}, logger.ReadConfig{Tail: 100000}, false, false},
				{[]string{"--since", rfc(since)}, logger.ReadConfig{Tail: -1, Since: since}, false, false},
				{[]string{"--until", rfc(until)}, logger.ReadConfig{Tail: -1, Until: until}, false, false},
				{[]string{"--since", rfc(since), "--until", rfc(until), "-t"}, logger.ReadConfig{Tail: -1, Since: since, Until: until}, true, false},
				{[]string{"--since", fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()), "--tail", "20"}, logger.ReadConfig{Tail: 20, Since: since}, false, false},
				{[]string{"-t", "--details"}, logger.ReadConfig{Tail: -1}, true, true},
				{[]string{"--timestamps", "--tail", "7"}, logger.ReadConfig{Tail: 7}, true, false},
			} {
				wantOut, wantErr := dockerRender(dockerLogs(t, driver, path, cfg, c.rc), c.ts, c.details)
				out, errs, code := logsRun(t, append(c.args, path)...)
				if code != 0 || out != wantOut || errs != wantErr {
					t.Errorf("logs %v: exit %d\nstdout %q\nwant   %q\nstderr %q\nwant   %q", c.args, code, out, wantOut, errs, wantErr)
				}
			}
			// Every line, byte for byte, the last one without a newline.
			out, _, _ := logsRun(t, path)
			if !strings.HasSuffix(out, "batch 4 out 11\nno newline at the end") || !strings.Contains(out, "\n"+strings.Repeat("L", 2500)+"\n") {
				t.Errorf("stdout does not end as written: %q", out[max(0, len(out)-80):])
			}
		})
	}
}

// TestLogsBadInput: a file that is neither format, a missing file, an
// unreadable one and a bad flag value each give one line and exit 2.
func TestLogsBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.log")
	os.WriteFile(junk, []byte("this is not a log file\n"), 0o644)
	good := filepath.Join(dir, "good.log")
	os.WriteFile(good, []byte(`{"log":"hi\n","stream":"stdout","time":"2024-01-02T03:04:05.000000006Z"}`+"\n"), 0o644)
	unreadable := filepath.Join(dir, "secret.log")
	os.WriteFile(unreadable, []byte("{}\n"), 0o000)
	cases := [][]string{
		{junk}, {filepath.Join(dir, "missing.log")}, {"--since", "yesterday", good}, {"--until", "1h-", good},
		{"--tail", "many", good}, {"--bogus", good}, {dir},
	}
	if os.Geteuid() != 0 {
		cases = append(cases, []string{unreadable}) // root reads anything
	}
	for _, args := range cases {
		out, errs, code := logsRun(t, args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "dockerlogger: ") {
			t.Errorf("logs %v: exit %d, stdout %q, stderr %q: want exit 2 and one line", args, code, out, errs)
		}
	}
	if out, _, code := logsRun(t, "-t", good); code != 0 || out != "2024-01-02T03:04:05.000000006Z hi\n" {
		t.Errorf("good file: exit %d, %q", code, out)
	}
}

// TestLogsFollow: logs -f shows each batch of lines as it is written,
// goes on across rotations (several between two looks, and compressed
// ones), and ends by itself, exit 0, once the logger's inputs ended,
// having shown every line once, in order.
func TestLogsFollow(t *testing.T) {
	for _, driver := range []string{"json-file", "local"} {
		t.Run(driver, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			opts := map[string]string{"max-size": "2k", "max-file": "20", "compress": "true"}
			l := StartLogger(t, Env("f011ow", opts, "DOCKERLOG_LOGPATH="+path), driver)
			cmd := exec.Command(filepath.Join(bin, "dockerlogger"), "logs", "-f", path)
			var errb bytes.Buffer
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() { cmd.Process.Kill() })
			var want bytes.Buffer
			for batch := 0; batch < 8; batch++ {
				// Batch 5 rotates several times at once.
				n := 10
				if batch == 5 {
					n = 200
				}
				var b bytes.Buffer
				for i := 0; i < n; i++ {
					fmt.Fprintf(&b, "batch %d line %03d %s\n", batch, i, strings.Repeat("x", 40))
				}
				if _, err := l.Stdout.Write(b.Bytes()); err != nil {
					t.Fatal(err)
				}
				want.Write(b.Bytes())
				w := want.String()
				Eventually(t, 10*time.Second, fmt.Sprintf("batch %d shown by logs -f", batch), func() bool {
					return out.String() == w
				})
			}
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("logger exit %d: %s", code, l.Errors())
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("logs -f: %v; stderr %q", err, errb.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("logs -f did not end after the logger's inputs ended")
			}
			if got := out.String(); got != want.String() {
				t.Errorf("logs -f showed %d bytes, want the %d written", len(got), want.Len())
			}
			if gz, _ := filepath.Glob(path + ".*.gz"); len(gz) < 3 {
				t.Errorf("%d compressed files: the test did not rotate as meant", len(gz))
			}
		})
	}
}

// TestLogsFromConfiguration: without a path, logs reads the file the
// logger writes for the same DOCKERLOG_* environment and DRIVER, or the
// same containerd arguments; a driver with no file to read is refused.
func TestLogsFromConfiguration(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	env := Env("c0ffee", map[string]string{}, "DOCKERLOG_LOGPATH="+path)
	l := StartLogger(t, env, "json-file")
	WriteLines(t, l.Stdout, []string{"one", "two"})
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
	for _, args := range [][]string{{"logs", "json-file"}, {"logs", "driver", "json-file", "log-path", path}} {
		cmd := exec.Command(filepath.Join(bin, "dockerlogger"), args...)
		if args[1] == "json-file" {
			cmd.Env = env
		} else {
			cmd.Env = []string{"CONTAINER_ID=c0ffee", "CONTAINER_NAMESPACE=default"}
		}
		out, err := cmd.Output()
		if err != nil || string(out) != "one\ntwo\n" {
			t.Errorf("%v: %q, %v", args, out, err)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "dockerlogger"), "logs", "syslog")
	cmd.Env = Env("c0ffee", map[string]string{"cache-disabled": "true"})
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(string(out), "\n") != 1 {
		t.Errorf("logs syslog with cache-disabled: %v, %q: want exit 2 and one line", err, out)
	}
}
