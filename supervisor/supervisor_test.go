package supervisor

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/diag"
)

// TestHealthyRunResetsFailures: on-failure applies after Failures
// failures in a row; a worker that ran well for Healthy in between starts
// the count again. The workers are real processes (a shell) that end with
// the container's output still open, which is a failure.
func TestHealthyRunResetsFailures(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	// Runs 1 and 2 fail at once, run 3 is healthy for 400 ms, then 4, 5
	// and 6 fail at once: with 3 failures allowed, on-failure applies
	// after run 5, not after run 3.
	script := `echo run >> "$0"; n=$(wc -l < "$0"); if [ "$n" -eq 3 ]; then sleep 0.4; fi; exit 1`
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var errs lockedBuffer
	sigs := make(chan os.Signal)
	s := New(Config{
		Exe: "/bin/sh", Args: []string{"-c", script, runs}, Inputs: []*os.File{r},
		Policy: Ignore, Failures: 3, Healthy: 300 * time.Millisecond,
		FirstBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Errors: diag.NewErrors(&errs), Count: new(diag.Counters), Stats: func(string) {}, Signals: sigs,
	})
	done := make(chan int)
	go func() { done <- s.Run() }()
	deadline := time.After(20 * time.Second)
	for {
		b, _ := os.ReadFile(runs)
		if n := strings.Count(string(b), "run"); n >= 5 && strings.Contains(errs.String(), "on-failure=ignore") {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("on-failure not applied; runs %q; stderr %s", b, errs.String())
		case code := <-done:
			t.Fatalf("supervisor ended (%d) with the output still open; stderr %s", code, errs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	w.Close() // the container's output ends: the drain ends too
	if code := <-done; code != ExitFailure {
		t.Fatalf("exit %d, want %d", code, ExitFailure)
	}
	b, _ := os.ReadFile(runs)
	if n := strings.Count(string(b), "run"); n != 5 {
		t.Fatalf("%d workers ran before on-failure, want 5 (the healthy third run resets the count); stderr %s", n, errs.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
