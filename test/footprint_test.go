package test

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// initBudget bounds what the Go runtime allocates initialising every
// package linked in, before main runs: every logger process pays it, in
// every container, whatever its driver (the README's footprint figures).
// It was 1.75 MB before Docker's gcplogs driver, distribution/reference,
// go-digest and go-metrics were replaced (drivers/gcplogs, third_party/).
const initBudget = 640 << 10

// TestInitAllocations: `GODEBUG=inittrace=1 dockerlogger version` adds up
// to less than initBudget; a new dependency that allocates at init shows
// here first, with the packages that allocate most.
func TestInitAllocations(t *testing.T) {
	cmd := exec.Command(filepath.Join(bin, "dockerlogger"), "version")
	cmd.Env = []string{"GODEBUG=inittrace=1"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dockerlogger version: %v: %s", err, out)
	}
	var total int64
	var top []string
	for _, l := range strings.Split(string(out), "\n") {
		// init PKG @T ms, C ms clock, B bytes, A allocs
		f := strings.Fields(l)
		if len(f) < 11 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		b, err := strconv.ParseInt(f[7], 10, 64)
		if err != nil {
			t.Fatalf("odd inittrace line %q", l)
		}
		total += b
		if b >= 32<<10 {
			top = append(top, f[1]+" "+f[7])
		}
	}
	if total == 0 {
		t.Fatalf("no inittrace lines: %s", out)
	}
	if total > initBudget {
		t.Fatalf("%d bytes allocated at init, budget %d; 32 KB or more: %v", total, initBudget, top)
	}
	t.Logf("%d bytes allocated at init (budget %d)", total, initBudget)
}
