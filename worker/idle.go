package worker

import (
	"time"

	"github.com/joyent/dockerlogger/diag"
)

// statsEvery is how often the stats file is rewritten while its counters
// change.
const statsEvery = 5 * time.Second

// idle is how a run stops ticking when there is nothing to do: a logger
// runs in every container, and an idle one must not wake up. The checks
// of failure-timeout and the stats file run on timers only while
// something is pending; once a check finds the run quiet, the timers stop
// and the run sleeps until a waker is poked: the blocking mode's driver
// starting to fail (failure-timeout), a line read (the stats file).
type idle struct {
	r         *run
	wake      chan struct{}
	wakers    []*diag.Waker
	lastStats string // the counters as the stats file last showed them
}

func (r *run) newIdle() *idle {
	q := &idle{r: r, wake: make(chan struct{}, 1)}
	if r.blocking != nil {
		q.wakers = append(q.wakers, &r.blocking.Failing)
	}
	if r.async != nil {
		// A full queue with buffer-full=block and a container gone
		// meanwhile are seen only by the checks (see run.asyncRefusing).
		q.wakers = append(q.wakers, &r.async.Refusing)
	}
	if r.o.StatsFile != "" {
		q.wakers = append(q.wakers, &r.Count.Stdout.Read, &r.Count.Stderr.Read)
	}
	return q
}

// park arms the wakers and says whether the run is quiet, in which case
// the caller stops its timers and waits on q.wake; if not, the wakers are
// disarmed again. A poke between the arming and the look is not missed:
// what it reports shows in the look, or wakes the run.
func (q *idle) park() bool {
	select {
	case <-q.wake: // stale
	default:
	}
	for _, w := range q.wakers {
		w.Arm(&q.wake)
	}
	if q.quiet() {
		return true
	}
	q.resume()
	return false
}

// resume disarms the wakers.
func (q *idle) resume() {
	for _, w := range q.wakers {
		w.Disarm()
	}
}

// quiet: the driver is up and not failing, nothing is held (ring, spool,
// the driver's own queue) and the stats file shows the counters as they
// are.
func (q *idle) quiet() bool {
	r := q.r
	select {
	case <-r.drv.Up():
	default:
		return false
	}
	if r.blocking != nil && !r.blocking.FailingSince().IsZero() {
		return false
	}
	if r.asyncRefusing() {
		return false
	}
	if r.Count.BufferBytes.Load() != 0 {
		return false
	}
	if r.async != nil {
		r.async.RefreshDriverHeld() // it sends on its own
	}
	r.held.Refresh() // nil unless blocking
	if n, _ := r.drv.Pending(); n > 0 {
		return false
	}
	return r.o.StatsFile == "" || q.statsLine() == q.lastStats
}

// statsLine is the counters as the stats file would show them now.
func (q *idle) statsLine() string {
	r := q.r
	r.Count.Resent.Store(r.drv.Resent())
	r.ledgerCounts()
	return r.Count.Line()
}

// writeStats rewrites the stats file if its counters changed.
func (q *idle) writeStats() {
	if l := q.statsLine(); l != q.lastStats {
		q.lastStats = l
		q.r.writeStats()
	}
}
