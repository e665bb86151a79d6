// Package leakcheck fails a package's tests when goroutines they started
// are still running after the last test: a delivery mode, driver wrapper,
// RELP client or spool that leaves one behind keeps a logger's memory, or
// its connection, alive after Close.
//
// It must never import dockerlogger's own packages.
package leakcheck

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// grace is how long goroutines get to end after the last test.
const grace = 5 * time.Second

// Main runs the tests, then fails (exit 1) if goroutines started by them
// are still running after grace. Use it as TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
func Main(m *testing.M) {
	before := goroutines()
	code := m.Run()
	if code == 0 {
		if left := leftOver(before); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "leakcheck: %d goroutines still running %v after the tests:\n\n%s\n", len(left), grace, strings.Join(left, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leftOver waits up to grace for the goroutines not in before to end,
// and returns the stacks of those that did not.
func leftOver(before map[string]bool) []string {
	deadline := time.Now().Add(grace)
	for {
		var left []string
		for id, stack := range goroutineStacks() {
			if !before[id] && !ignored(stack) {
				left = append(left, stack)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			slices.Sort(left)
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ignored are goroutines of the runtime and the test framework, and of
// standard library pools that live for the process by design.
func ignored(stack string) bool {
	for _, s := range []string{
		"testing.(*M).", "testing.tRunner", "runtime.goexit0", "os/signal.signal_recv",
		"runtime.ensureSigM",
		"net/http.(*persistConn)",
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

func goroutines() map[string]bool {
	ids := map[string]bool{}
	for id := range goroutineStacks() {
		ids[id] = true
	}
	return ids
}

// goroutineStacks returns every goroutine's stack by its id.
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		head, _, _ := strings.Cut(string(g), "\n")
		// "goroutine 18 [chan receive]:"
		if f := strings.Fields(head); len(f) > 1 && f[0] == "goroutine" {
			out[f[1]] = string(g)
		}
	}
	return out
}
