// Package capability names the optional methods a driver (a
// logger.Logger) may have beyond Docker's interface, as moby's
// daemon/logger names its own (SizedLogger, LogReader). Package drivers
// looks for them; each implementation asserts them at compile time next to
// its methods, so that renaming one breaks the build instead of silently
// switching counting off. It is a leaf so that drivers kept in packages of
// their own (drivers/fluentd), which package drivers imports to register
// them, can name what they implement.
//
// It must never import package drivers or a driver's package, the reader,
// a delivery mode, the supervisor or the worker; of this module it imports
// only filelog (and what filelog needs), for the Accounting a driver may
// be given.
package capability

import (
	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/filelog"
)

// Flusher is a driver that buffers what it takes and writes it on Flush
// (json-file and local; syslog over RELP waits for acknowledgements).
type Flusher interface {
	Flush() error
}

// PendingLogger is a driver that accepts messages and sends them later
// (fluentd-async, RELP before acknowledgement): what it still holds is
// lost if the logger must exit now.
type PendingLogger interface {
	Pending() (lines, bytes int64)
}

// UnwrittenLogger is an AccountedLogger that says what it took and has
// not written yet (a full disk): counted neither delivered nor dropped,
// those lines die with a worker that is killed, and the next one counts
// them (protocol.Ledger's driver-held lines).
type UnwrittenLogger interface {
	Unwritten() (lines, bytes int64)
}

// ResendingLogger is a driver that sends again what a broken connection
// left unacknowledged (RELP): those lines may arrive twice.
type ResendingLogger interface {
	Resent() int64
}

// AccountedLogger is a driver that says itself which lines it really
// wrote (package filelog): it counts them, not the delivery mode.
type AccountedLogger interface {
	SetAccounting(filelog.Accounting)
}

// GivingUpLogger is a driver that may give up on a message it had accepted
// (fluentd-async after fluentd-max-retries): it calls gaveUp for each, so
// the line moves from delivered to dropped.
type GivingUpLogger interface {
	OnGiveUp(gaveUp func(lines, bytes int64))
}

// DroppingLogger is a driver that may learn, after it accepted a line,
// that the sink refused it (otlp, loki: a 400 or a partial success): it
// calls dropped for those lines with a reason of diag/reasons.go, so they
// move from delivered to dropped.
type DroppingLogger interface {
	OnDrop(dropped func(reason string, lines, bytes int64))
}

// MarkerLogger is a driver that holds the lines it took and counts them
// itself (PendingLogger, DroppingLogger): LogMarker takes a drop marker, a
// line the logger made and never read, which it sends as any other line
// but leaves out of what it says it holds or dropped.
type MarkerLogger interface {
	LogMarker(*logger.Message) error
}

// HandoverCloser is a driver whose Close waits for work that the next
// logger on the same files redoes (json-file and local wait for a running
// compression): at a live upgrade it closes without waiting, as the pipes
// are not read meanwhile.
type HandoverCloser interface {
	CloseHandingOver() error
}
