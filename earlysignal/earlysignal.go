// Package earlysignal takes the signals the logger handles as soon as the
// Go runtime runs package initialisers, long before main: a signal whose
// default action is to end the process (SIGUSR1, SIGHUP, SIGUSR2) must
// never end a logger that has just started because the platform or the
// supervisor was quick. It depends on os/signal alone, so the runtime
// initialises it among the first packages (see its test).
//
// The channel is the process's one place where those signals arrive; it
// is package state because an initialiser has nowhere else to put it.
//
// It must never import another package of this module.
package earlysignal

import (
	"os"
	"os/signal"
	"syscall"
)

// Handled are the signals the logger acts on.
var Handled = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP}

// buffered is how many signals may wait for the logger to take them.
// Standard signals of one kind are merged by the kernel while pending, and
// the runtime drops what a full channel cannot take: a storm of one signal
// is handled at least once, not once per signal.
const buffered = 64

var ch = make(chan os.Signal, buffered)

func init() {
	signal.Notify(ch, Handled...)
	signal.Ignore(syscall.SIGPIPE)
}

// C is where the handled signals arrive.
func C() <-chan os.Signal { return ch }
