package test

// End-to-end tests of the awslogs driver, and the --validate helper the
// drivers' tests share. AWS is out of reach, so awslogs talks to
// internal/sink/cloudwatch, an in-repo stub of the CloudWatch Logs API
// speaking its real wire protocol (AWS JSON 1.1, SigV4-signed requests
// from Docker's driver and the AWS SDK). gcplogs is in gcplogs_test.go.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/sink/cloudwatch"
)

const (
	awsID     = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
	awsKey    = "AKIDEXAMPLE0000TEST"
	awsRegion = "eu-west-3"
)

func startCloudWatch(t *testing.T) *cloudwatch.Server {
	t.Helper()
	s, err := cloudwatch.Listen("127.0.0.1:0", awsKey, awsRegion)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// awsEnv is a logger environment with static credentials and nothing
// that could reach real AWS: no shared config, no instance metadata.
func awsEnv(t *testing.T, opts map[string]string) []string {
	home := t.TempDir()
	return Env(awsID, opts,
		"HOME="+home,
		"AWS_ACCESS_KEY_ID="+awsKey,
		"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"AWS_REGION="+awsRegion,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "none"),
	)
}

// checkMessages asserts that the events' messages with prefix are exactly
// want, in order, and that timestamps never go back.
func checkMessages(t *testing.T, evs []cloudwatch.Event, prefix string, want []string) {
	t.Helper()
	var got []string
	var last int64
	for _, e := range evs {
		if !strings.HasPrefix(e.Message, prefix) {
			continue
		}
		if e.Timestamp < last {
			t.Fatalf("%q has timestamp %d before the previous %d", e.Message, e.Timestamp, last)
		}
		last = e.Timestamp
		got = append(got, e.Message)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%d %q messages arrived, want %d; first %q", len(got), prefix, len(want), first(got))
	}
}

// TestAwslogsDelivers: the driver creates the log stream (named after the
// full container id by default) in an existing group and every line
// arrives, per stream in order, with millisecond timestamps from when it
// was read.
func TestAwslogsDelivers(t *testing.T) {
	s := startCloudWatch(t)
	s.CreateGroup("app")
	l := StartLogger(t, awsEnv(t, map[string]string{
		"awslogs-group":                        "app",
		"awslogs-endpoint":                     s.URL(),
		"awslogs-force-flush-interval-seconds": "1",
	}), "awslogs")
	before := time.Now().UnixMilli()
	out, errs := Lines("out", 200), Lines("err", 100)
	WriteLines(t, l.Stdout, out)
	WriteLines(t, l.Stderr, errs)
	evs, err := s.Wait(300, 15*time.Second)
	if err != nil {
		t.Fatalf("%v; calls %v; logger stderr: %s", err, s.Calls(), l.Errors())
	}
	after := time.Now().UnixMilli()
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	if streams := s.Streams("app"); len(streams) != 1 || streams[0] != awsID {
		t.Fatalf("streams %v, want [%s]", streams, awsID)
	}
	if len(evs) != 300 {
		t.Fatalf("%d events, want 300", len(evs))
	}
	for _, e := range evs {
		if e.Group != "app" || e.Stream != awsID || e.Timestamp < before || e.Timestamp > after {
			t.Fatalf("event %+v: want group app, stream %s, time in [%d, %d]", e, awsID, before, after)
		}
	}
	checkMessages(t, evs, "out", out)
	checkMessages(t, evs, "err", errs)
}

// TestAwslogsCloseFlush: lines still batched in the driver when the
// container stops arrive before the logger exits 0 (the default flush
// interval is 5 s, longer than this test runs).
func TestAwslogsCloseFlush(t *testing.T) {
	s := startCloudWatch(t)
	s.CreateGroup("app")
	l := StartLogger(t, awsEnv(t, map[string]string{"awslogs-group": "app", "awslogs-endpoint": s.URL()}), "awslogs")
	out := Lines("flushed", 100)
	WriteLines(t, l.Stdout, out)
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkMessages(t, s.Events(), "flushed", out)
}

// TestAwslogsCreateGroup: with awslogs-create-group=true a missing group
// is created, with the stream named by awslogs-stream.
func TestAwslogsCreateGroup(t *testing.T) {
	s := startCloudWatch(t)
	l := StartLogger(t, awsEnv(t, map[string]string{
		"awslogs-group":                        "new-group",
		"awslogs-stream":                       "my-stream",
		"awslogs-create-group":                 "true",
		"awslogs-endpoint":                     s.URL(),
		"awslogs-force-flush-interval-seconds": "1",
	}), "awslogs")
	out := Lines("created", 20)
	WriteLines(t, l.Stdout, out)
	evs, err := s.Wait(20, 15*time.Second)
	if err != nil {
		t.Fatalf("%v; calls %v; logger stderr: %s", err, s.Calls(), l.Errors())
	}
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkMessages(t, evs, "created", out)
	if st := s.Streams("new-group"); len(st) != 1 || st[0] != "my-stream" {
		t.Fatalf("streams of new-group: %v", st)
	}
	calls := s.Calls()
	want := []string{"CreateLogStream 400", "CreateLogGroup 200", "CreateLogStream 200"}
	if len(calls) < 3 || strings.Join(calls[:3], ",") != strings.Join(want, ",") {
		t.Fatalf("calls %v, want %v first", calls, want)
	}
}

// TestAwslogsGroupMissing: without awslogs-create-group a missing group
// makes the driver fail to start. The container still starts, the user
// sees the service's error on stderr, and once an operator creates the
// group the logger's retry creates the stream and every line arrives.
func TestAwslogsGroupMissing(t *testing.T) {
	s := startCloudWatch(t)
	l := StartLogger(t, awsEnv(t, map[string]string{
		"awslogs-group":                        "later",
		"awslogs-endpoint":                     s.URL(),
		"awslogs-force-flush-interval-seconds": "1",
	}), "awslogs")
	out := Lines("waited", 30)
	WriteLines(t, l.Stdout, out)
	Eventually(t, 10*time.Second, "the ResourceNotFoundException on stderr", func() bool {
		return strings.Contains(l.Errors(), "awslogs driver not up") && strings.Contains(l.Errors(), "ResourceNotFoundException")
	})
	s.CreateGroup("later")
	evs, err := s.Wait(30, 20*time.Second)
	if err != nil {
		t.Fatalf("%v; calls %v; logger stderr: %s", err, s.Calls(), l.Errors())
	}
	if code := l.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d; stderr: %s", code, l.Errors())
	}
	checkMessages(t, evs, "waited", out)
}

// validateCase is one --validate run: log-opts, and the option the error
// must name (empty: valid). blocked, if set, skips the case for a known
// bug in the core.
type validateCase struct {
	name    string
	opts    map[string]string
	names   string
	blocked string
}

func runValidate(t *testing.T, driver string, cases []validateCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.blocked != "" {
				t.Skip("blocked: " + c.blocked)
			}
			stdout, stderr, code := RunCLI(t, Env("validate0001", c.opts, "HOME="+t.TempDir()), "--validate", driver)
			if c.names == "" {
				if code != 0 || stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and silence", code, stderr)
				}
				if !strings.Contains(stdout, "ok") {
					t.Fatalf("stdout %q", stdout)
				}
				return
			}
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Fatalf("stderr is not one line: %q", stderr)
			}
			if !strings.Contains(stderr, c.names) {
				t.Fatalf("error %q does not name %s", stderr, c.names)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Fatalf("stack trace: %q", stderr)
			}
		})
	}
}

// TestAwslogsValidate: --validate awslogs accepts good options and names
// the bad one, without network use.
func TestAwslogsValidate(t *testing.T) {
	good := map[string]string{"awslogs-group": "g", "awslogs-region": "us-east-1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{"awslogs-group": "g"}
		m[k] = v
		return m
	}
	runValidate(t, "awslogs", []validateCase{
		{name: "good", opts: good},
		{name: "all options", opts: map[string]string{
			"awslogs-group": "g", "awslogs-stream": "s", "awslogs-region": "us-east-1",
			"awslogs-endpoint": "https://logs.example.com", "awslogs-create-group": "true",
			"awslogs-datetime-format": "%Y-%m-%d", "awslogs-force-flush-interval-seconds": "2",
			"awslogs-max-buffered-events": "100", "tag": "{{.Name}}", "mode": "blocking",
		}},
		{name: "no group", opts: map[string]string{"awslogs-region": "us-east-1"}, names: "awslogs-group"},
		{name: "unknown option", opts: with("awslogs-bogus", "1"), names: "awslogs-bogus"},
		{name: "create-group", opts: with("awslogs-create-group", "maybe"), names: "awslogs-create-group"},
		{name: "flush interval", opts: with("awslogs-force-flush-interval-seconds", "0"), names: "awslogs-force-flush-interval-seconds"},
		{name: "max buffered", opts: with("awslogs-max-buffered-events", "-1"), names: "awslogs-max-buffered-events"},
		{name: "format", opts: with("awslogs-format", "xml"), names: "xml"},
		{name: "datetime and multiline", opts: map[string]string{"awslogs-group": "g", "awslogs-datetime-format": "%Y", "awslogs-multiline-pattern": "^x"}, names: "awslogs-multiline-pattern"},
		{name: "multiline pattern", opts: with("awslogs-multiline-pattern", "("), names: "awslogs-multiline-pattern"},
		{name: "our option", opts: with("line-max", "huge"), names: "line-max"},
	})
}

// waitOrKill closes the inputs and waits up to d for the logger to exit.
// If it does not, it kills the logger and the worker it supervises (by
// their process ids: the harness only kills the first) and fails.
func waitOrKill(t *testing.T, l *Logger, d time.Duration) int {
	t.Helper()
	l.Close()
	select {
	case <-l.Done():
		return l.Cmd.ProcessState.ExitCode()
	case <-time.After(d):
	}
	killTree(l.Cmd.Process.Pid)
	<-l.Done()
	t.Fatalf("logger did not exit within %v of its inputs closing; stderr:\n%s", d, l.Errors())
	return -1
}

// killTree SIGKILLs pid and its descendants, found in /proc.
func killTree(pid int) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(c); err == nil {
				killTree(n)
			}
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
}
