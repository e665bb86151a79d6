package test

// loginit, the Linux launcher, run as a user runs it: it starts the built
// dockerlogger on pipes, then runs CMD. The json-file log it produces is
// read back with Docker's own reader.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loginitCmd builds a loginit command with a json-file log at path.
func loginitCmd(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "loginit"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DOCKERLOG_LOGPATH=" + path}
	// The logger may outlive loginit for a moment; never hang on its
	// copy of our pipes.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// loginitStreams reads the json-file log at path with Docker's reader.
func loginitStreams(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for s, b := range jfStreams(t, jfRead(t, "json-file", path, nil)) {
		out[s] = string(b)
	}
	return out
}

func TestLoginitWaitExitStatus(t *testing.T) {
	needCmd(t, "sh")
	const script = `i=0; while [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; `
	var wantOut, wantErr bytes.Buffer
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&wantOut, "out %d\n", i)
		fmt.Fprintf(&wantErr, "err %d\n", i)
	}
	for _, c := range []struct {
		name string
		tail string
		code int
	}{
		{"exit 0", "exit 0", 0},
		{"exit 3", "exit 3", 3},
		{"SIGKILL", "kill -9 $$", 128 + 9},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := loginitCmd(ctx, path, "--wait", "json-file", "--", "sh", "-c", script+c.tail)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != c.code {
				t.Errorf("loginit exit %d, want CMD's %d; stderr %q", code, c.code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("CMD's output reached loginit's stdout: %q", stdout.String())
			}
			noPanic(t, "loginit", stderr.String())
			// --wait returns only once the logger has finished: the file
			// is complete now.
			got := loginitStreams(t, path)
			if got["stdout"] != wantOut.String() {
				t.Errorf("stdout in the log: %d bytes, want %d", len(got["stdout"]), wantOut.Len())
			}
			if got["stderr"] != wantErr.String() {
				t.Errorf("stderr in the log: %d bytes, want %d", len(got["stderr"]), wantErr.Len())
			}
		})
	}
}

// TestLoginitExecInPlace: without --wait CMD is exec'd in loginit's place,
// so it keeps loginit's PID, and its lines reach the log.
func TestLoginitExecInPlace(t *testing.T) {
	needCmd(t, "sh")
	dir := t.TempDir()
	path, side := filepath.Join(dir, "c.log"), filepath.Join(dir, "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := loginitCmd(ctx, path, "json-file", "--", "sh", "-c", `echo $$ > "$SIDE"; echo hello; echo "to stderr" >&2; printf 'no newline'; exit 5`)
	cmd.Env = append(cmd.Env, "SIDE="+side)
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 5 {
		t.Errorf("exit %d, want CMD's 5", code)
	}
	b, err := os.ReadFile(side)
	if err != nil {
		t.Fatalf("CMD never ran: %v", err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != pid {
		t.Errorf("CMD ran as pid %d, loginit was pid %d: not exec'd in place", got, pid)
	}
	// The logger is CMD's child and finishes on its own after CMD's
	// pipes close: poll the file it writes.
	want := map[string]string{"stdout": "hello\nno newline", "stderr": "to stderr\n"}
	Eventually(t, 10*time.Second, "CMD's lines in the json-file log", func() bool {
		if _, err := os.Stat(path); err != nil {
			return false
		}
		got := loginitStreams(t, path)
		return got["stdout"] == want["stdout"] && got["stderr"] == want["stderr"]
	})
}

func TestLoginitBadDriver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := loginitCmd(ctx, path, "--wait", "nosuch", "--", "sh", "-c", "echo should not run")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	cmd.Run()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v to fail", took)
	}
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `"nosuch"`) || !strings.Contains(stderr.String(), "unknown log driver") {
		t.Errorf("stderr %q does not carry the logger's error", stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "should not run") {
		t.Errorf("CMD ran although the logger failed")
	}
	noPanic(t, "loginit bad driver", stderr.String())
	if _, err := os.Stat(path); err == nil {
		t.Errorf("a log file was created")
	}
}

func TestLoginitCmdNotFound(t *testing.T) {
	for _, name := range []string{"/nonexistent/prog", "no-such-program-dockerlogger-test"} {
		path := filepath.Join(t.TempDir(), "c.log")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := loginitCmd(ctx, path, "--wait", "json-file", "--", name, "arg")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Run()
		cancel()
		if code := cmd.ProcessState.ExitCode(); code != 127 {
			t.Errorf("%s: exit %d, want 127", name, code)
		}
		if !strings.Contains(stderr.String(), name) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s: stderr %q, want one line naming it", name, stderr.String())
		}
		noPanic(t, "loginit not found", stderr.String())
	}
}

func TestLoginitUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"json-file"}, {"json-file", "sh"}, {"--bogus", "json-file", "--", "true"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := loginitCmd(ctx, filepath.Join(t.TempDir(), "c.log"), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Run()
		cancel()
		if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(stderr.String(), "usage") {
			t.Errorf("%q: exit %d stderr %q", args, code, stderr.String())
		}
	}
}
