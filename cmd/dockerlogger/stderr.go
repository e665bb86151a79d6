package main

import (
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/diag"
)

// routeStderr puts a pipe on fd 2 and copies it to where fd 2 went, with
// diag.CopyLines: driver libraries that print straight to stderr without a
// newline (fluent-logger-golang) cannot glue our lines to theirs. A crash
// report goes straight to the real stderr (debug.SetCrashOutput), so a
// panicking worker is never silenced by its own pipe. finish closes the
// pipe and waits until everything written was copied.
func routeStderr() (finish func()) {
	orig, err := unix.Dup(2)
	if err != nil {
		return func() {}
	}
	unix.CloseOnExec(orig)
	origFile := os.NewFile(uintptr(orig), "stderr")
	r, w, err := os.Pipe()
	if err != nil {
		origFile.Close()
		return func() {}
	}
	if err := dup2(int(w.Fd()), 2); err != nil {
		r.Close()
		w.Close()
		origFile.Close()
		return func() {}
	}
	w.Close()
	debug.SetCrashOutput(origFile, debug.CrashOptions{})
	done := make(chan struct{})
	go func() { diag.CopyLines(origFile, r); close(done) }()
	return func() {
		os.Stderr.Close() // fd 2: the pipe's last write end
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
}
