package test

// The command line of the built dockerlogger: every bad input is one line
// on stderr naming the problem and exit code 2, never a stack trace; the
// informational commands print exactly what the platform parses; and the
// signals do what the interface contract says.

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliEnv is a raw environment, for values Env would re-encode.
func cliEnv(kv ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH")}, kv...)
}

// noPanic fails when out shows a Go panic or stack trace.
func noPanic(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"panic", "goroutine ", "runtime/debug", ".go:"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s: output has %q: %s", what, bad, out)
		}
	}
}

func TestCLIBadInput(t *testing.T) {
	good := `{"max-size":"1m"}`
	for _, c := range []struct {
		name    string
		env     []string
		args    []string
		mention []string // every word must be in the one error line
	}{
		{"unknown driver", cliEnv("DOCKERLOG_CONFIG="+good, "DOCKERLOG_CONTAINERID=x"), []string{"nosuch"}, []string{"nosuch", "driver"}},
		{"bad CONFIG JSON", cliEnv("DOCKERLOG_CONFIG={\"max-size\":", "DOCKERLOG_CONTAINERID=x"), []string{"json-file"}, []string{"DOCKERLOG_CONFIG"}},
		{"CONFIG not an object", cliEnv("DOCKERLOG_CONFIG=[1]", "DOCKERLOG_CONTAINERID=x"), []string{"json-file"}, []string{"DOCKERLOG_CONFIG"}},
		{"missing CONFIG", cliEnv("DOCKERLOG_CONTAINERID=x"), []string{"json-file"}, []string{"DOCKERLOG_CONFIG"}},
		{"non-string option", cliEnv(`DOCKERLOG_CONFIG={"max-file":3}`, "DOCKERLOG_CONTAINERID=x"), []string{"json-file"}, []string{"max-file", "string"}},
		{"unknown option for the driver", Env("x", map[string]string{"syslog-address": "udp://127.0.0.1:514"}), []string{"json-file"}, []string{"syslog-address"}},
		{"option of another driver", Env("x", map[string]string{"max-size": "1m"}), []string{"syslog"}, []string{"max-size"}},
		{"bad max-size", Env("x", map[string]string{"max-size": "lots"}), []string{"json-file"}, []string{"max-size"}},
		{"bad max-file", Env("x", map[string]string{"max-file": "0"}), []string{"json-file"}, []string{"max-file"}},
		{"bad mode", Env("x", map[string]string{"mode": "fast"}), []string{"json-file"}, []string{"mode", "fast"}},
		{"max-buffer-size with blocking", Env("x", map[string]string{"max-buffer-size": "4m"}), []string{"json-file"}, []string{"max-buffer-size"}},
		{"max-buffer-size with mode=blocking", Env("x", map[string]string{"mode": "blocking", "max-buffer-size": "4m"}), []string{"json-file"}, []string{"max-buffer-size"}},
		{"bad line-max", Env("x", map[string]string{"line-max": "0"}), []string{"json-file"}, []string{"line-max"}},
		{"missing CONTAINERID", cliEnv("DOCKERLOG_CONFIG={}"), []string{"json-file"}, []string{"DOCKERLOG_CONTAINERID"}},
		{"bad CREATETIME", Env("x", map[string]string{}, "DOCKERLOG_CREATETIME=yesterday"), []string{"json-file"}, []string{"DOCKERLOG_CREATETIME"}},
		{"bad CMD JSON", Env("x", map[string]string{}, "DOCKERLOG_CMD=[\"sh\""), []string{"json-file"}, []string{"DOCKERLOG_CMD"}},
		{"bad LABELS JSON", Env("x", map[string]string{}, "DOCKERLOG_LABELS=[]"), []string{"json-file"}, []string{"DOCKERLOG_LABELS"}},
		{"too many args", Env("x", map[string]string{}), []string{"json-file", "extra"}, []string{"usage"}},
		{"unknown flag", Env("x", map[string]string{}), []string{"--frobnicate"}, []string{"--frobnicate"}},
		{"containerd argv without driver", cliEnv("CONTAINER_ID=ctr", "CONTAINER_NAMESPACE=default"), []string{"max-size", "1m"}, []string{"driver"}},
		{"containerd odd argv", cliEnv("CONTAINER_ID=ctr"), []string{"driver", "json-file", "max-size"}, []string{"odd"}},
		{"containerd bad option", cliEnv("CONTAINER_ID=ctr"), []string{"driver", "json-file", "max-size", "big"}, []string{"max-size"}},
		{"containerd unknown driver", cliEnv("CONTAINER_ID=ctr"), []string{"driver", "nosuch"}, []string{"nosuch"}},
		// The configuration is good, but init passed no fd 3 (RunCLI
		// starts the binary with stdin, stdout and stderr only).
		{"fd 3 not open", Env("x", map[string]string{"log-path": "/tmp/dockerlogger-cli-test-never-written.log"}), []string{"json-file"}, []string{"fd 3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "fd 3 not open" {
			}
			stdout, stderr, code := RunCLI(t, c.env, c.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr %q", code, stderr)
			}
			noPanic(t, c.name, stdout+stderr)
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != 1 || stderr == "" {
				t.Errorf("stderr is %d lines, want one: %q", len(lines), stderr)
			}
			if !strings.HasPrefix(stderr, "dockerlogger: ") {
				t.Errorf("error not prefixed with the program name: %q", stderr)
			}
			for _, w := range c.mention {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q does not mention %q", stderr, w)
				}
			}
			// --validate reports the same configuration errors, also
			// without reading anything.
			if c.name != "fd 3 not open" && len(c.args) == 1 && !strings.HasPrefix(c.args[0], "-") {
				_, verr, vcode := RunCLI(t, c.env, "--validate", c.args[0])
				if vcode != 2 || strings.Count(verr, "\n") != 1 {
					t.Errorf("--validate: exit %d, stderr %q", vcode, verr)
				}
				for _, w := range c.mention {
					if !strings.Contains(verr, w) {
						t.Errorf("--validate error %q does not mention %q", verr, w)
					}
				}
			}
		})
	}
}

// TestCLINoArgs: no argument at all is a usage error, exit 2.
func TestCLINoArgs(t *testing.T) {
	stdout, stderr, code := RunCLI(t, cliEnv())
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr, "usage") || stdout != "" {
		t.Errorf("stdout %q stderr %q: want usage on stderr", stdout, stderr)
	}
	noPanic(t, "no args", stdout+stderr)
}

var cliDrivers = []string{"awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "loki", "none", "otlp", "splunk", "syslog"}

func TestCLIListDrivers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the expected list is Linux's")
	}
	stdout, stderr, code := RunCLI(t, cliEnv(), "--list-drivers")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	if want := strings.Join(cliDrivers, "\n") + "\n"; stdout != want {
		t.Errorf("--list-drivers printed\n%s\nwant\n%s", stdout, want)
	}
}

func TestCLIListDriversJSON(t *testing.T) {
	stdout, stderr, code := RunCLI(t, cliEnv(), "--list-drivers", "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	var ds []struct {
		Name    string `json:"name"`
		Options []struct {
			Name    string `json:"name"`
			Default string `json:"default"`
		} `json:"options"`
		Added []struct {
			Name    string   `json:"name"`
			Default string   `json:"default"`
			Values  []string `json:"values"`
			Help    string   `json:"help"`
		} `json:"added_options"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ds); err != nil {
		t.Fatalf("--list-drivers --json is not the documented JSON: %v\n%s", err, stdout)
	}
	var names []string
	opts := map[string]map[string]string{}
	for _, d := range ds {
		names = append(names, d.Name)
		opts[d.Name] = map[string]string{}
		for _, o := range d.Options {
			opts[d.Name][o.Name] = o.Default
		}
		added := map[string]string{}
		for _, a := range d.Added {
			added[a.Name] = a.Default
		}
		for k, v := range map[string]string{"mode": "blocking", "max-buffer-size": "1m", "line-max": "16k",
			"buffer-full": "drop-oldest", "on-failure": "restart", "drop-marker": "true", "close-timeout": "10s"} {
			if added[k] != v {
				t.Errorf("%s: added option %s default %q, want %q", d.Name, k, added[k], v)
			}
		}
	}
	if runtime.GOOS == "linux" && !reflect.DeepEqual(names, cliDrivers) {
		t.Errorf("drivers %v, want %v", names, cliDrivers)
	}
	// Docker's names and defaults for a few options users rely on.
	for _, c := range []struct{ driver, opt, def string }{
		{"json-file", "max-size", "-1"}, {"json-file", "max-file", "1"}, {"json-file", "compress", "false"},
		{"local", "max-size", "20m"}, {"local", "max-file", "5"}, {"local", "compress", "true"},
		{"syslog", "syslog-address", "unix:///dev/log"}, {"syslog", "syslog-format", "rfc3164"},
		{"fluentd", "fluentd-address", "tcp://127.0.0.1:24224"}, {"fluentd", "fluentd-async", "false"},
		{"gelf", "gelf-address", ""}, {"splunk", "splunk-token", ""}, {"awslogs", "awslogs-group", ""},
		{"journald", "tag", "{{.ID}}"}, {"gcplogs", "gcp-project", ""},
		{"otlp", "otlp-endpoint", "http://localhost:4318"}, {"otlp", "otlp-protocol", "http/protobuf"},
		{"loki", "loki-external-labels", "container_name={{.Name}}"}, {"loki", "loki-batch-size", "1048576"}, {"loki", "loki-retries", "10"},
	} {
		def, ok := opts[c.driver][c.opt]
		if !ok || def != c.def {
			t.Errorf("%s option %s: listed %v default %q, want default %q", c.driver, c.opt, ok, def, c.def)
		}
	}
	if len(opts["none"]) != 0 {
		t.Errorf("none has options %v", opts["none"])
	}
	for _, d := range ds {
		if !sort.SliceIsSorted(d.Options, func(i, j int) bool { return d.Options[i].Name < d.Options[j].Name }) {
			t.Errorf("%s options not sorted", d.Name)
		}
	}
}

func TestCLIValidateGood(t *testing.T) {
	for _, c := range []struct {
		driver string
		opts   map[string]string
	}{
		{"json-file", map[string]string{"max-size": "10m", "max-file": "3", "compress": "true", "tag": "{{.Name}}"}},
		{"local", map[string]string{}},
		{"syslog", map[string]string{"syslog-address": "udp://127.0.0.1:514", "syslog-format": "rfc5424"}},
		{"json-file", map[string]string{"mode": "non-blocking", "max-buffer-size": "4m"}},
		{"none", map[string]string{}},
	} {
		stdout, stderr, code := RunCLI(t, Env("x", c.opts), "--validate", c.driver)
		if code != 0 || stderr != "" {
			t.Errorf("%s %v: exit %d stderr %q", c.driver, c.opts, code, stderr)
		}
		if stdout != c.driver+": configuration ok\n" {
			t.Errorf("%s: stdout %q", c.driver, stdout)
		}
	}
}

func TestCLIVersion(t *testing.T) {
	re := regexp.MustCompile(`^dockerlogger \S+ commit \S+ go1\.\d+\S* ` + runtime.GOOS + `/` + runtime.GOARCH + "\n$")
	for _, arg := range []string{"version", "--version"} {
		stdout, stderr, code := RunCLI(t, cliEnv(), arg)
		if code != 0 || stderr != "" || !re.MatchString(stdout) {
			t.Errorf("%s: exit %d stdout %q stderr %q", arg, code, stdout, stderr)
		}
	}
}

func TestCLICtxdump(t *testing.T) {
	env := Env("f00dcafe", map[string]string{"splunk-token": "SECRET-TOKEN-123", "splunk-url": "https://splunk:8088", "tag": "{{.Name}}"},
		"DOCKERLOG_CONTAINERNAME=/web", "DOCKERLOG_IMAGEID=sha256:abc", "DOCKERLOG_IMAGENAME=busybox",
		"DOCKERLOG_CREATETIME=2024-05-06T07:08:09Z", `DOCKERLOG_ENTRYPOINT=["/bin/sh","-c"]`, `DOCKERLOG_CMD=["echo hi"]`,
		`DOCKERLOG_LABELS={"team":"ops"}`, `DOCKERLOG_ENV=["A=1"]`)
	stdout, stderr, code := RunCLI(t, env, "ctxdump", "splunk")
	if code != 0 {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	if strings.Contains(stdout+stderr, "SECRET-TOKEN-123") {
		t.Errorf("the splunk token is printed: %s", stderr)
	}
	var dump struct {
		Driver string `json:"driver"`
		Info   struct {
			Config              map[string]string
			ContainerID         string
			ContainerName       string
			ContainerEntrypoint string
			ContainerArgs       []string
			ContainerImageID    string
			ContainerImageName  string
			ContainerCreated    time.Time
			ContainerEnv        []string
			ContainerLabels     map[string]string
			DaemonName          string
		} `json:"info"`
		Opts map[string]string `json:"log_opts"`
	}
	if err := json.Unmarshal([]byte(stderr), &dump); err != nil {
		t.Fatalf("ctxdump is not JSON: %v: %q", err, stderr)
	}
	in := dump.Info
	if dump.Driver != "splunk" || in.ContainerID != "f00dcafe" || in.ContainerName != "/web" ||
		in.ContainerImageID != "sha256:abc" || in.ContainerImageName != "busybox" ||
		!in.ContainerCreated.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) ||
		in.ContainerEntrypoint != "/bin/sh" || !reflect.DeepEqual(in.ContainerArgs, []string{"-c", "echo hi"}) ||
		!reflect.DeepEqual(in.ContainerLabels, map[string]string{"team": "ops"}) ||
		!reflect.DeepEqual(in.ContainerEnv, []string{"A=1"}) || in.DaemonName != "docker" {
		t.Errorf("ctxdump container fields: %+v", dump)
	}
	if in.Config["splunk-token"] != "REDACTED" || dump.Opts["splunk-token"] != "REDACTED" {
		t.Errorf("token not redacted: info %v opts %v", in.Config, dump.Opts)
	}
	if in.Config["splunk-url"] != "https://splunk:8088" || dump.Opts["tag"] != "{{.Name}}" {
		t.Errorf("other options changed: info %v opts %v", in.Config, dump.Opts)
	}
}

// cliFileLines counts the lines Docker's json-file reader finds in path.
func cliFileLines(t *testing.T, path string) []string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	var out []string
	for _, m := range jfRead(t, "json-file", path, nil) {
		out = append(out, strings.TrimSuffix(string(m.Line), "\n"))
	}
	return out
}

// cliStatsLines returns the stats lines in stderr.
func cliStatsLines(stderr string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "dockerlogger: stats ") {
			out = append(out, sc.Text())
		}
	}
	return out
}

func TestCLISIGUSR1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l := StartLogger(t, Env("c", map[string]string{}, "DOCKERLOG_LOGPATH="+path), "json-file")
	WriteLines(t, l.Stdout, Lines("out", 3))
	WriteLines(t, l.Stderr, Lines("err", 2))
	Eventually(t, 10*time.Second, "5 lines in the json file", func() bool { return len(cliFileLines(t, path)) == 5 })
	if err := l.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "a stats line on SIGUSR1", func() bool { return len(cliStatsLines(l.Errors())) > 0 })
	if n := len(cliStatsLines(l.Errors())); n != 1 {
		t.Errorf("%d stats lines for one SIGUSR1: %s", n, l.Errors())
	}
	st := parseStats(t, l.Errors())
	for k, v := range map[string]string{"lines_read": "5", "lines_delivered": "5", "lines_dropped": "0", "restarts": "0",
		"stdout_lines_read": "3", "stderr_lines_read": "2", "bytes_read": "50"} {
		if st[k] != v {
			t.Errorf("SIGUSR1 stats %s=%q, want %q (%s)", k, st[k], v, l.Errors())
		}
	}
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	// The exit prints the final counters too.
	if n := len(cliStatsLines(l.Errors())); n != 2 {
		t.Errorf("%d stats lines after exit, want 2: %s", n, l.Errors())
	}
	noPanic(t, "SIGUSR1", l.Errors())
}

// TestCLISIGTERMInputsOpen: SIGTERM while something still holds the
// container's pipes open: the logger reads on for close-timeout, then
// delivers what it has, and exits 1 (it had to stop before EOF).
func TestCLISIGTERMInputsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l := StartLogger(t, Env("c", map[string]string{"close-timeout": "1s"}, "DOCKERLOG_LOGPATH="+path), "json-file")
	WriteLines(t, l.Stdout, Lines("before", 10))
	Eventually(t, 10*time.Second, "10 lines in the json file", func() bool { return len(cliFileLines(t, path)) == 10 })
	start := time.Now()
	if err := l.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(8 * time.Second):
		t.Fatalf("logger still running 8s after SIGTERM with close-timeout=1s; stderr: %s", l.Errors())
	}
	took := time.Since(start)
	if took < 900*time.Millisecond {
		t.Errorf("exited %v after SIGTERM: it did not read on for close-timeout", took)
	}
	if code := l.Cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1 (stopped before EOF); stderr %s", code, l.Errors())
	}
	if got := cliFileLines(t, path); strings.Join(got, "\n") != strings.Join(Lines("before", 10), "\n") {
		t.Errorf("file holds %q", got)
	}
	noPanic(t, "SIGTERM", l.Errors())
}

// TestCLISIGTERMThenEOF: after SIGTERM the logger keeps reading to EOF
// (containerd sends SIGTERM when the container's IO closes): what is
// written after the signal is delivered too, and the exit is clean.
func TestCLISIGTERMThenEOF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l := StartLogger(t, Env("c", map[string]string{"close-timeout": "5s"}, "DOCKERLOG_LOGPATH="+path), "json-file")
	before, after := Lines("before", 100), Lines("after", 2000)
	WriteLines(t, l.Stdout, before)
	if err := l.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	WriteLines(t, l.Stdout, after)
	WriteLines(t, l.Stderr, Lines("stderr", 50))
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, l.Errors())
	}
	got := map[string][]string{}
	for _, m := range jfRead(t, "json-file", path, nil) {
		got[m.Source] = append(got[m.Source], strings.TrimSuffix(string(m.Line), "\n"))
	}
	if strings.Join(got["stdout"], "\n") != strings.Join(append(before, after...), "\n") {
		t.Errorf("stdout: %d lines, want %d", len(got["stdout"]), len(before)+len(after))
	}
	if strings.Join(got["stderr"], "\n") != strings.Join(Lines("stderr", 50), "\n") {
		t.Errorf("stderr: %d lines, want 50", len(got["stderr"]))
	}
	if st := l.Stats(t); st["lines_read"] != "2150" || st["lines_delivered"] != "2150" || st["lines_dropped"] != "0" {
		t.Errorf("stats %v", st)
	}
	noPanic(t, "SIGTERM then EOF", l.Errors())
}
