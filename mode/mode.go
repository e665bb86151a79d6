// Package mode owns the delivery modes that sit between the reader and the
// driver: blocking (backpressure, nothing lost), and the stages that let the
// reader go on while the driver is slow. Each mode is a reader.Sink in
// front of a driver, and does its own counting of what was delivered,
// retried and dropped.
//
// It must never import the reader's callers (worker, supervisor) or name a
// particular driver: it sees only logger.Logger.
package mode

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/backend"
	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/backoff"
	"github.com/joyent/dockerlogger/diag"
)

// Driver is what a mode delivers to: a Docker driver, created lazily.
type Driver interface {
	Log(*logger.Message) error
	Flush() error
}

// Blocking hands each message to the driver on the reader's goroutine, and
// tries again with backoff when the driver returns an error, until it is
// accepted or Stop is closed. While it retries the reader does not read,
// the pipe fills and the application blocks in write(2): nothing is lost.
type Blocking struct {
	Driver Driver
	Count  *diag.Counters
	Errors *diag.Errors
	// Stop gives up on messages not yet accepted: they are dropped and
	// counted as "close-timeout".
	Stop <-chan struct{}

	copies sync.Pool
	// Failing is poked when the driver starts refusing every message:
	// an idle worker sleeps on it instead of checking failure-timeout on
	// a timer.
	Failing diag.Waker

	// failing: see FailingSince.
	failing refusals
	// leave: see LeaveToNext.
	leave atomic.Bool
	// handover is closed by HandOver.
	handover     chan struct{}
	handoverOnce sync.Once // makes handover
	handedOver   sync.Once // closes it
	// inFlight, per stream (Log is called by one reader each), is 1 +
	// the bytes of the message Log is handing to the driver, 0 when there
	// is none: whoever takes it first counts it, Log when the driver
	// answers or Stop closes, or Abandon.
	inFlight [2]atomic.Int64
}

// Abandon counts as dropped (close-timeout) the message Log is handing to
// the driver, if any, for a worker that must exit now: a driver call that
// does not return would leave it counted read and neither delivered nor
// dropped. A line the driver then takes all the same is counted dropped.
func (b *Blocking) Abandon() {
	for i := range b.inFlight {
		b.abandon(i)
	}
}

func (b *Blocking) abandon(stream int) {
	if v := b.inFlight[stream].Swap(0); v > 0 {
		b.stopped(v - 1)
	}
}

// streamSlot is msg's slot in inFlight.
func streamSlot(source string) int {
	if source == "stderr" {
		return 1
	}
	return 0
}

// LeaveToNext makes Stop leave the message being retried uncounted: the
// worker gives its input up to the next worker (a driver failing for
// failure-timeout), which reads the message again from the pipe and
// delivers it. Counted as dropped it would be counted twice. A reader
// that can leave it in its pipe (LogOrLeave) is told so, as at a
// handover, and stops there: one that went on would consume the lines
// after it, neither delivered nor counted.
func (b *Blocking) LeaveToNext() {
	b.leave.Store(true)
	b.HandOver()
}

// stopped counts msg's n bytes as dropped at close-timeout, unless the
// next worker delivers it (LeaveToNext).
func (b *Blocking) stopped(n int64) {
	if !b.leave.Load() {
		b.Count.Drop(diag.CloseTimeout, 1, n)
	}
}

// FailingSince returns when the driver began refusing every message, or
// the zero time if its last answer was a success.
func (b *Blocking) FailingSince() time.Time { return b.failing.since() }

// refusals records since when a driver has refused every message (or
// flush) it was handed: the zero time while its last answer was a success.
type refusals struct {
	start atomic.Int64 // unix nanoseconds, 0 while the driver accepts
}

func (r *refusals) accepted() { r.start.Store(0) }

// refused records a refusal and reports whether it began a run of them.
func (r *refusals) refused() bool { return r.start.CompareAndSwap(0, time.Now().UnixNano()) }

func (r *refusals) since() time.Time {
	if ns := r.start.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// errLeft is LogOrLeave's refusal: a handover, not a loss (reader.Leaver).
type errLeft struct{}

func (errLeft) Error() string  { return "handing over: left to the next worker" }
func (errLeft) Handover() bool { return true }

// errStopped is Log's answer past close-timeout.
var errStopped = errors.New("close-timeout passed: not delivered")

// Retry backoff for a driver that returns errors.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

type saved struct {
	line    []byte
	source  string
	ts      time.Time
	partial *backend.PartialLogMetaData
	attrs   []backend.LogAttr
}

// HandOver makes a message being retried, and any that fails from now
// on, go back to a reader that can leave it in its pipe (LogOrLeave),
// uncounted, for the next worker: a handover does not wait for a sink
// that is down.
func (b *Blocking) HandOver() { b.handedOver.Do(func() { close(b.handoverC()) }) }

func (b *Blocking) handoverC() chan struct{} {
	b.handoverOnce.Do(func() { b.handover = make(chan struct{}) })
	return b.handover
}

// LogBorrowed is Log of a message the caller keeps: the driver gets a
// message of its own, as Docker's drivers own what they are given.
func (b *Blocking) LogBorrowed(msg *logger.Message) error { return b.log(b.own(msg), false) }

// LogOrLeave is LogBorrowed for a reader that can leave a message in its
// pipe (reader.Leaver): after HandOver a message the driver refuses is
// left to the next worker, with an error that says so.
func (b *Blocking) LogOrLeave(msg *logger.Message) error { return b.log(b.own(msg), true) }

func (b *Blocking) own(msg *logger.Message) *logger.Message {
	m := logger.NewMessage()
	m.Line = append(m.Line[:0], msg.Line...)
	m.Source, m.Timestamp, m.PLogMetaData, m.Attrs = msg.Source, msg.Timestamp, msg.PLogMetaData, msg.Attrs
	return m
}

// Log delivers msg, retrying until the driver accepts it or Stop closes.
func (b *Blocking) Log(msg *logger.Message) error { return b.log(msg, false) }

func (b *Blocking) log(msg *logger.Message, canLeave bool) error {
	// Docker's drivers put the message back in the pool even when they
	// fail, so keep what a retry needs before the first attempt.
	s, _ := b.copies.Get().(*saved)
	if s == nil {
		s = new(saved)
	}
	defer b.copies.Put(s)
	s.line = append(s.line[:0], msg.Line...)
	s.source, s.ts, s.partial, s.attrs = msg.Source, msg.Timestamp, msg.PLogMetaData, msg.Attrs
	n := int64(len(s.line))
	slot := streamSlot(s.source)
	b.inFlight[slot].Store(n + 1)
	select {
	case <-b.Stop:
		// Past close-timeout the driver is not tried again: the lines
		// left are counted at once, so the readers end before the
		// worker's last count instead of racing it.
		return b.giveUp(slot, canLeave, errStopped)
	default:
	}
	wait := backoff.New(firstBackoff, maxBackoff)
	for {
		err := b.Driver.Log(msg)
		if err == nil {
			b.failing.accepted()
			if b.inFlight[slot].Swap(0) > 0 { // else Abandon counted it
				b.Count.Delivered.Add(1)
				b.Count.DeliveredBytes.Add(n)
			}
			return nil
		}
		b.Count.DriverErrors.Add(1)
		if b.failing.refused() {
			b.Failing.Poke()
		}
		var handover chan struct{}
		if canLeave {
			handover = b.handoverC()
		}
		select {
		case <-b.Stop: // past close-timeout: no retry to announce
			return b.giveUp(slot, canLeave, err)
		case <-handover:
			return b.giveUp(slot, canLeave, err)
		default:
		}
		d := wait.Next()
		b.Errors.Printf("deliver %s line: %v (retrying in %v)", s.source, err, d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-b.Stop:
			t.Stop()
			return b.giveUp(slot, canLeave, err)
		case <-handover:
			t.Stop()
			return b.giveUp(slot, canLeave, err)
		}
		b.Count.Retries.Add(1)
		msg = logger.NewMessage()
		msg.Line = append(msg.Line, s.line...)
		msg.Source, msg.Timestamp, msg.PLogMetaData, msg.Attrs = s.source, s.ts, s.partial, s.attrs
	}
}

// giveUp ends Log for a message not delivered: left to the next worker if
// the reader can leave it (canLeave) and the worker hands over (HandOver,
// LeaveToNext), else counted as dropped at close-timeout (unless
// LeaveToNext).
func (b *Blocking) giveUp(slot int, canLeave bool, err error) error {
	if canLeave && b.handingOver() {
		if b.inFlight[slot].Swap(0) == 0 {
			return err // Abandon counted it
		}
		return errLeft{}
	}
	b.abandon(slot)
	return err
}

func (b *Blocking) handingOver() bool {
	select {
	case <-b.handoverC():
		return true
	default:
		return false
	}
}

// Flush flushes a driver that buffers, retrying as Log does while it
// fails (a full disk under json-file, which keeps what it could not
// write): the reader consumes its input only after a flush, so in
// blocking mode the application waits instead of a line being lost.
func (b *Blocking) Flush() error {
	wait := backoff.New(firstBackoff, maxBackoff)
	for {
		err := b.Driver.Flush()
		if err == nil {
			b.failing.accepted()
			return nil
		}
		b.Count.DriverErrors.Add(1)
		// As for Log: failure-timeout, and close-timeout once the
		// container is gone, run from here.
		if b.failing.refused() {
			b.Failing.Poke()
		}
		select {
		case <-b.Stop: // past close-timeout: what is left is counted at close
			return err
		default:
		}
		d := wait.Next()
		b.Errors.Printf("flush: %v (retrying in %v)", err, d)
		if !backoff.Sleep(d, b.Stop) {
			return err
		}
		b.Count.Retries.Add(1)
	}
}
