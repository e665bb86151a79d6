package main

import (
	"os"
	"runtime/debug"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/pipepeek"
	"github.com/joyent/dockerlogger/reader"
	"github.com/joyent/dockerlogger/zfd"
)

// memoryBase is the Go-managed memory a reading logger is given besides
// its lines: runtime, driver and buffers of short lines.
const memoryBase = 8 << 20

// limitMemory sets the Go runtime's soft memory limit of a logger that
// reads (a worker, or a logger without a supervisor), unless GOMEMLIMIT
// says otherwise. Without it the collector lets the heap grow to twice
// what is live, and with long lines what is live is a few copies of the
// longest message (the reader's buffer, the message, the driver's
// encoding): a non-blocking logger is to stay within max-buffer-size (its
// ring, outside the Go heap) and a few MB. With short lines the heap stays
// below the limit and the collector works as before.
func limitMemory(longest int) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(memoryBase + 4*int64(longest))
}

// longestMessage is the longest message the readers make: line-max, or
// less where the inputs are pipes whose window is smaller (a line longer
// than the window is cut there, by a peeking worker as by a logger
// without a supervisor: see reader.Windowed).
func longestMessage(c *config.Config) int {
	o := c.Options
	if c.Stdout != "" || c.Stderr != "" {
		return o.LineMax // not pipes we can measure now
	}
	fds := []int{zfd.StdoutFD, zfd.StderrFD}
	if c.TTY {
		fds = fds[:1]
	}
	var w int
	for _, fd := range fds {
		// Grown first, as the readers' inputs will be (zfd.Inputs):
		// the window is then the one they see.
		zfd.GrowPipe(fd)
		w = max(w, pipepeek.FdWindow(uintptr(fd)))
	}
	return reader.Longest(o.LineMax, w)
}
