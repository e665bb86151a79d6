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
	// KeepsUnflushed, if set, says whether the driver keeps what a failed
	// Flush did not write and writes it when it closes (json-file, local;
	// asked when needed: the driver comes up after the mode is made):
	// FlushOrLeave then never leaves a round, which the next worker
	// would write again.
	KeepsUnflushed func() bool
	// Held, if set, is called each time the driver took a message, before
	// the reader may commit it: the worker records there what a driver
	// that queues without a flush holds (fluentd-async), which a worker
	// killed then loses and the next one counts.
	Held func()

	copies sync.Pool
	// Failing is poked when the driver starts refusing every message:
	// an idle worker sleeps on it instead of checking failure-timeout on
	// a timer.
	Failing diag.Waker

	// failing: see FailingSince.
	failing refusals
	// handover is closed by HandOver.
	handover     chan struct{}
	handoverOnce sync.Once // makes handover
	handedOver   sync.Once // closes it
	// inFlight, per stream (Log is called by one reader each), is 1 +
	// the bytes of the message Log is handing to the driver, 0 when there
	// is none: whoever takes it first counts it, Log when the driver
	// answers or Stop closes, or Abandon (leftInFlight when Abandon left
	// it to the next worker).
	inFlight [2]atomic.Int64
	// leavable, per stream, says whether the message in flight came from
	// a reader that leaves what is not delivered in its pipe (LogOrLeave).
	leavable [2]atomic.Bool
}

// Abandon counts as dropped (close-timeout) the message Log is handing to
// the driver, if any, for a worker that must exit now: a driver call that
// does not return would leave it counted read and neither delivered nor
// dropped. After HandOver, a message whose reader leaves it in its pipe
// is left to the next worker instead. A line the driver then takes all
// the same stays counted dropped (or, left, is counted delivered).
func (b *Blocking) Abandon() {
	for i := range b.inFlight {
		b.abandon(i)
	}
}

func (b *Blocking) abandon(stream int) {
	slot := &b.inFlight[stream]
	for {
		v := slot.Load()
		switch {
		case v <= 0:
			return
		case b.handingOver() && b.leavable[stream].Load():
			// Its reader leaves it in the pipe: the next worker delivers
			// it, and counted it would be counted twice.
			if slot.CompareAndSwap(v, leftInFlight) {
				return
			}
		case slot.CompareAndSwap(v, 0):
			b.Count.Drop(diag.CloseTimeout, 1, v-1)
			return
		}
	}
}

// leftInFlight is inFlight once Abandon has left the message to the next
// worker, uncounted (see HandOver).
const leftInFlight = -1

// streamSlot is msg's slot in inFlight.
func streamSlot(source string) int {
	if source == "stderr" {
		return 1
	}
	return 0
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

// HandOver gives the input up to the next worker (a live upgrade, or a
// driver failing for failure-timeout), which reads again from the pipe
// what this one did not deliver. A message being retried, and any that
// fails from now on, goes back to a reader that can leave it in its pipe
// (LogOrLeave), which stops there: a handover does not wait for a sink
// that is down, and a reader that went on would consume the lines after
// it, neither delivered nor counted. A message Stop or Abandon ends (a
// driver call that never returns) is not counted dropped: the next worker
// delivers it, and counted it would be counted twice.
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
	b.leavable[slot].Store(canLeave)
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
			if b.Held != nil {
				b.Held()
			}
			if b.inFlight[slot].Swap(0) != 0 { // else Abandon counted it dropped
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
// the reader can leave it (canLeave) and the worker hands over
// (HandOver), else counted as dropped at close-timeout.
func (b *Blocking) giveUp(slot int, canLeave bool, err error) error {
	if canLeave && b.handingOver() {
		if b.inFlight[slot].Swap(0) == 0 {
			return err // Abandon counted it dropped
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
func (b *Blocking) Flush() error { return b.flush(false) }

// FlushOrLeave is Flush for a reader that can leave its round in its pipe
// (reader.Leaver): after HandOver a flush that fails leaves the round to
// the next worker instead of retrying, so that a handover does not wait
// for a sink that is down. What the driver holds of it then is neither
// delivered nor dropped: the next worker delivers it (the worker's
// countUnsent).
func (b *Blocking) FlushOrLeave() error { return b.flush(true) }

func (b *Blocking) flush(canLeave bool) error {
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
		if canLeave && b.KeepsUnflushed != nil && b.KeepsUnflushed() {
			canLeave = false // asked on failure only: the driver is up by then
		}
		if canLeave && b.handingOver() {
			return errLeft{}
		}
		select {
		case <-b.Stop: // past close-timeout: what is left is counted at close
			return err
		default:
		}
		d := wait.Next()
		b.Errors.Printf("flush: %v (retrying in %v)", err, d)
		var handover chan struct{}
		if canLeave {
			handover = b.handoverC()
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-b.Stop:
			t.Stop()
			return err
		case <-handover:
			t.Stop()
			return errLeft{}
		}
		b.Count.Retries.Add(1)
	}
}
