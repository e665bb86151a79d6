// Package protocol is the contract between the supervisor and the worker
// it re-executes from the same binary (or, after a live upgrade, from a
// newer one): the environment it sets, the descriptors it passes, the
// bytes the worker says on its private ready pipe, the exit codes, and the
// ledger they share. Both sides name these only through this package.
//
// Binaries of different versions meet across a live upgrade (an old
// supervisor, a new worker): change nothing here but by adding.
//
// It must never import another package of this module.
package protocol

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// Environment of a worker, besides the logger's own DOCKERLOG_* variables.
const (
	RoleEnv     = "DOCKERLOG_ROLE"     // RoleWorker in a worker
	RoleWorker  = "worker"             //
	RestartsEnv = "DOCKERLOG_RESTARTS" // restarts so far, for the worker's counters
	UpgradesEnv = "DOCKERLOG_UPGRADES" // live upgrades so far, likewise
	// SupervisorEnv set to SupervisorOff runs the worker in the first
	// process, without a supervisor.
	SupervisorEnv = "DOCKERLOG_SUPERVISOR"
	SupervisorOff = "off"
	// FinishEnv set to 1 starts a worker past close-timeout: it reads what
	// is left in the pipes, counts it as dropped and exits.
	FinishEnv = "DOCKERLOG_FINISH"
	// WaitEnv names the descriptor a worker started ahead waits on: the
	// supervisor starts the next worker at SIGHUP, while the one it
	// replaces hands over, so that its exec and Go's start are not in the
	// time nobody reads the pipes. Once its handlers are in place (it
	// says HelloByte) it reads this descriptor before it does anything
	// else: GoByte, once the worker it replaces has exited, starts it;
	// end of file (the upgrade did not happen, or the supervisor is gone)
	// makes it exit ExitOK having touched nothing.
	WaitEnv = "DOCKERLOG_WAIT_FD"
)

// GoByte is what the supervisor says on a waiting worker's WaitEnv
// descriptor to start it.
const GoByte = 'G'

// Descriptors of a worker: the inputs on 3 and 4 as for any logger (and
// loginit --tee's consoles on 7 and 8), and these.
const (
	// StatusFD is the worker's private ready pipe: HelloByte once its
	// signal handlers are in place, ReadingByte (non-blocking, spool),
	// then the ready byte, which the supervisor passes on to the platform
	// once, then StoppedByte at a handover.
	StatusFD = 5
	// LedgerFD is the shared ledger (see Ledger).
	LedgerFD = 6
)

// HelloByte is what a worker says on StatusFD before the ready byte, once
// signals cannot end it: from then on the supervisor passes signals on.
const HelloByte = 'H'

// ReadyByte is the ready byte, on StatusFD as on the platform's ready pipe:
// a worker says it when it starts reading (the supervisor passes the first
// on to the platform).
const ReadyByte = 1

// ReadingByte is what a worker whose mode never waits on its driver to
// read (non-blocking, spool) says on StatusFD when it starts reading,
// which may be before the ready byte: that waits for the driver's first
// attempt, which against a sink that does not answer takes seconds, and
// an application writing meanwhile (after a live upgrade) must not wait
// for it. The supervisor stops keeping room in the pipes on it as on the
// ready byte (see Ledger.Relieving). A supervisor older than this byte
// ignores it after the ready byte it relayed, and the worker reads once
// that supervisor stops reading the pipes at its ready byte.
const ReadingByte = 'R'

// StoppedByte is what a worker handing over says on StatusFD, after the
// ready byte, once it has stopped reading every input for good: from then
// on nobody reads the pipes until the next worker does, so a supervisor
// whose mode never blocks the application keeps room in them meanwhile
// (see Ledger.Relieving).
const StoppedByte = 'S'

// Exit codes of the logger, and of a worker to its supervisor.
const (
	ExitOK      = 0 // inputs at EOF, everything delivered, driver closed
	ExitFailure = 1 // ran, and stopped before delivering everything
	ExitConfig  = 2 // bad argv, environment or log-opts: nothing was read
	// ExitHandover: a worker stopped reading on request (live upgrade) and
	// delivered what it had; the supervisor starts the next one.
	ExitHandover = 3
	// ExitDriverFailed: a worker gave up on a driver that kept failing
	// (failure-timeout); a failure like a crash.
	ExitDriverFailed = 4
)

// IsWorker says whether the environment is a worker's.
func IsWorker(getenv func(string) string) bool { return getenv(RoleEnv) == RoleWorker }

// Supervised says whether a logger with this environment runs under a
// supervisor of its own (every logger but a worker and one told not to).
func Supervised(getenv func(string) string) bool {
	return !IsWorker(getenv) && getenv(SupervisorEnv) != SupervisorOff
}

// WorkerEnv is env, less any of this protocol's variables, plus a
// worker's.
func WorkerEnv(env []string, restarts, upgrades int64) []string {
	own := []string{RoleEnv, RestartsEnv, UpgradesEnv, FinishEnv, WaitEnv}
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(own, k)
	})
	return append(out, RoleEnv+"="+RoleWorker,
		RestartsEnv+"="+strconv.FormatInt(restarts, 10),
		UpgradesEnv+"="+strconv.FormatInt(upgrades, 10))
}

// Handed is what the supervisor hands a worker.
type Handed struct {
	Restarts, Upgrades int64
	// Finish: close-timeout has passed (FinishEnv).
	Finish bool
	// Ledger is nil where the platform has none (no memfd) or none was
	// passed; its accessors then return nil.
	Ledger *Ledger
}

// Take is the one call a worker makes to take what its supervisor handed
// it: the counts in its environment and the ledger on LedgerFD.
func Take() Handed {
	var h Handed
	h.Restarts, _ = strconv.ParseInt(os.Getenv(RestartsEnv), 10, 64)
	h.Upgrades, _ = strconv.ParseInt(os.Getenv(UpgradesEnv), 10, 64)
	h.Finish = os.Getenv(FinishEnv) == "1"
	if l, err := OpenLedger(LedgerFD); err == nil {
		h.Ledger = l
	}
	return h
}

// WaitForGo is what a worker started ahead does once it says HelloByte:
// it waits on the WaitEnv descriptor and reports whether it is to start
// (true at once for a worker started when needed).
func WaitForGo() bool {
	v := os.Getenv(WaitEnv)
	if v == "" {
		return true
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return true // not ours to judge: a worker runs as asked
	}
	f := os.NewFile(uintptr(fd), "wait")
	defer f.Close()
	var b [1]byte
	n, _ := f.Read(b[:])
	return n == 1 && b[0] == GoByte
}
