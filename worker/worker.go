// Package worker runs the pipeline of one logger process — inputs, line
// reader, delivery mode, driver — and its end: when the inputs reach EOF it
// drains, closes the driver within close-timeout, and reports its counters.
//
// It must never import the supervisor or a command's main package: it is
// what they run.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers"
	"github.com/joyent/dockerlogger/mode"
	"github.com/joyent/dockerlogger/reader"
	"github.com/joyent/dockerlogger/zfd"
)

// Worker is one run of the pipeline.
type Worker struct {
	Config *config.Config
	Count  *diag.Counters
	Errors *diag.Errors
	Ready  *zfd.ReadyPipe
	// Signals delivers SIGTERM/SIGINT (read on to EOF, within
	// close-timeout), SIGUSR1 (print the counters) and SIGUSR2 (stop
	// reading for a handover).
	Signals <-chan os.Signal
	// Stats is where SIGUSR1 and the exit print the counters.
	Stats func(line string)
	// Peek reads pipes with zfd.Peek, so bytes not yet delivered stay in
	// the pipe the supervisor holds, and SIGUSR2 can stop reading at a
	// line boundary for a handover. Ledger, if set, is shared with the
	// supervisor and counts what a dead worker left half-delivered.
	Peek   bool
	Ledger *zfd.Ledger
}

// ErrDriverFailed is returned when the driver has failed without a break
// for failure-timeout: the worker gives up so the supervisor can count it
// and apply on-failure. What was not delivered is still in the pipes.
var ErrDriverFailed = errors.New("driver failing for failure-timeout")

// ErrHandover is returned when SIGUSR2 stopped the worker for a handover
// and everything it had read was delivered.
var ErrHandover = errors.New("handed over")

// ErrDeadline is returned when the logger had to stop before everything it
// read was delivered.
var ErrDeadline = errors.New("close-timeout reached")

// sink is a delivery mode as the worker drives it.
type sink interface {
	reader.Sink
	Flush() error
}

// run is the state of one Run.
type run struct {
	*Worker
	o        config.Options
	drv      *drivers.Driver
	sink     sink
	blocking *mode.Blocking // when mode=blocking
	async    *mode.Async    // when mode=non-blocking or spool
	stop     chan struct{}  // closed when the worker gives up on delivery

	files map[*os.File]bool // inputs still being read, to look for hang-up

	mu       sync.Mutex
	peeks    []*zfd.Peek
	handover bool
}

// Run runs the pipeline to the end of its inputs. The configuration must
// have passed drivers.Validate.
func (w *Worker) Run() error {
	c := w.Config
	r := &run{Worker: w, o: c.Options, stop: make(chan struct{}), files: map[*os.File]bool{}}
	ins, err := zfd.Inputs(zfd.Spec{Stdout: c.Stdout, Stderr: c.Stderr, TTY: c.TTY})
	if err != nil {
		return err
	}
	closeInputs := func() {
		for _, in := range ins {
			in.Close()
		}
	}
	consoles, err := w.consoles()
	if err != nil {
		closeInputs()
		return err
	}
	r.drv, err = drivers.Open(c, func(err error) {
		w.Errors.Printf("%s driver not up: %v (retrying)", c.Driver, err)
	})
	if err != nil {
		closeInputs()
		return err
	}
	if c.Options.Mode == config.Blocking {
		r.blocking = &mode.Blocking{Driver: r.drv, Count: w.Count, Errors: w.Errors, Stop: r.stop}
		r.sink = r.blocking
	} else {
		o := c.Options
		ac := mode.AsyncConfig{Mode: string(o.Mode), MaxBufferSize: o.MaxBufferSize,
			BufferFull: o.BufferFull, SpoolDir: o.SpoolDir, SpoolMaxSize: o.SpoolMaxSize, SpoolSync: o.SpoolSync,
			LineMax: int64(o.LineMax), Replayed: w.Ledger.Slot(2),
			Driver: r.drv, Count: w.Count, Errors: w.Errors, DropMarker: o.DropMarker}
		if o.Mode == config.NonBlocking {
			ac.HeldLines, ac.HeldBytes = w.Ledger.Slot(3), w.Ledger.Slot(4)
			w.countDeadRing(ac.HeldLines, ac.HeldBytes)
		}
		r.async, err = mode.NewAsync(ac)
		if err != nil {
			closeInputs()
			r.drv.Close()
			return err
		}
		r.sink = r.async
	}
	// Ready after the first attempt at the driver, up or not: a sink that
	// is down must not stop the container from starting.
	if err := w.Ready.Signal(); err != nil {
		w.Errors.Printf("%v", err)
	}
	inputsDone := r.startReaders(ins, consoles)
	return r.finish(r.wait(inputsDone), inputsDone)
}

// countDeadRing counts as dropped what a worker that died held in its
// ring: it was read from the pipes and is gone with that worker.
func (w *Worker) countDeadRing(lines, bytes *atomic.Int64) {
	if lines == nil {
		return
	}
	if l, b := lines.Swap(0), bytes.Swap(0); l > 0 {
		w.Count.Drop("worker-died", l, b)
		w.Errors.Printf("%d lines (%d bytes) in the ring of a worker that died are lost", l, b)
	}
}

func (w *Worker) consoles() ([]*zfd.Console, error) {
	if !w.Config.Tee {
		return nil, nil
	}
	fs, err := zfd.Consoles()
	if err != nil {
		return nil, err
	}
	var cs []*zfd.Console
	for _, f := range fs {
		name := f.Name()
		cs = append(cs, zfd.NewConsole(f, func(err error) {
			w.Errors.Printf("tee to %s stopped: %v", name, err)
		}))
	}
	return cs, nil
}

// startReaders starts one reader per input; the channel closes when all
// have reached EOF (or stopped for a handover).
func (r *run) startReaders(ins []zfd.Input, consoles []*zfd.Console) <-chan struct{} {
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func(i int, in zfd.Input) {
			defer wg.Done()
			f, err := in.Open()
			if err != nil {
				r.Errors.Printf("%v", err)
				return
			}
			if r.o.Mode == config.Blocking {
				// illumos: make the zfd tee block the application
				// instead of dropping when the logger falls behind.
				if err := zfd.SetFlowControl(f, true); err != nil {
					r.Errors.Printf("%v", err)
				}
			}
			r.mu.Lock()
			r.files[f] = true
			r.mu.Unlock()
			defer func() {
				r.mu.Lock()
				delete(r.files, f)
				r.mu.Unlock()
				f.Close()
			}()
			rd := &reader.Reader{Source: in.Name, LineMax: r.o.LineMax, Sink: r.sink, Count: r.Count.Stream(in.Name)}
			var console *zfd.Console
			if i < len(consoles) {
				console = consoles[i]
			}
			var src io.Reader = f
			if p := r.peek(f, i, rd, console); p != nil {
				defer p.Close()
				src = p
			} else if console != nil {
				src = zfd.TeeReader(src, console)
			}
			if err := rd.Copy(src); err != nil && !errors.Is(err, reader.ErrStopped) {
				r.Errors.Printf("%v", err)
			}
		}(i, in)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// peek returns a zfd.Peek on f when the worker peeks and f is a pipe.
func (r *run) peek(f *os.File, i int, rd *reader.Reader, console *zfd.Console) *zfd.Peek {
	if !r.Peek {
		return nil
	}
	p, err := zfd.NewPeek(f)
	if err != nil {
		return nil
	}
	if console != nil {
		p.TeeTo(console)
	}
	r.mu.Lock()
	r.peeks = append(r.peeks, p)
	if r.handover {
		p.Stop()
	}
	r.mu.Unlock()
	if slot := r.Ledger.Slot(i); slot != nil {
		// Replays are counted in the ledger, across workers.
		rd.Replay, rd.Handed, rd.Replayed = slot.Load(), slot, r.Ledger.Slot(2)
	}
	return p
}

// stopReading makes every peeking reader stop at a line boundary.
func (r *run) stopReading() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handover = true
	for _, p := range r.peeks {
		p.Stop()
	}
}

// wait runs until the inputs end or the worker must stop. It returns the
// deadline for draining and closing, nil when the inputs ended normally,
// and ErrDriverFailed when the worker gives up.
func (r *run) wait(inputsDone <-chan struct{}) (deadline <-chan time.Time) {
	var statsTick <-chan time.Time
	if r.o.StatsFile != "" {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		statsTick = t.C
	}
	started := time.Now()
	tick := time.NewTicker(min(r.o.FailureTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-inputsDone:
			return deadline
		case <-tick.C:
			failing := r.failing(started)
			if failing >= r.o.FailureTimeout && deadline == nil {
				r.Errors.Printf("%s driver failing for %v: giving up (on-failure=%s)", r.Config.Driver, r.o.FailureTimeout, r.o.OnFailure)
				return nil // finish sees failed()
			}
			// The container is gone (no writer left) and nothing can be
			// delivered: give it close-timeout, as after SIGTERM.
			if deadline == nil && failing > 0 && r.hungUp() {
				r.Errors.Printf("inputs closed while the %s driver is failing: giving up in %v", r.Config.Driver, r.o.CloseTimeout)
				deadline = time.After(r.o.CloseTimeout)
			}
		case <-deadline:
			r.Errors.Printf("inputs not finished within close-timeout %v: stopping", r.o.CloseTimeout)
			return closedChan()
		case <-statsTick:
			r.writeStats()
		case s := <-r.Signals:
			switch s {
			case syscall.SIGUSR1:
				r.writeStats()
				r.Stats(r.Count.Line())
			case syscall.SIGUSR2:
				r.stopReading()
			case syscall.SIGTERM, syscall.SIGINT:
				if deadline == nil {
					deadline = time.After(r.o.CloseTimeout)
				}
			}
			// SIGHUP is the supervisor's (live upgrade): a worker that
			// gets one too, from a broad pkill, carries on.
		}
	}
}

func closedChan() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}

// finish drains the mode and closes the driver within what is left of
// close-timeout, and says how the run ended.
func (r *run) finish(deadline <-chan time.Time, inputsDone <-chan struct{}) error {
	select {
	case <-inputsDone:
	default:
		if deadline == nil { // wait gave up on a failing driver
			r.writeStats()
			return ErrDriverFailed
		}
	}
	if deadline == nil {
		deadline = time.After(r.o.CloseTimeout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timedOut := false
	giveUp := func() {
		if !timedOut {
			timedOut = true
			close(r.stop)
			r.drv.Abandon()
			cancel()
		}
	}
	closed := make(chan error, 1)
	go func() {
		var err error
		if r.async != nil {
			dctx := ctx
			if r.handingOver() && r.o.Mode == config.Spool {
				// The next worker delivers from the spool: do not wait
				// on a sink that may be down.
				c, cancel := context.WithCancel(ctx)
				cancel()
				dctx = c
			}
			if err = r.async.Drain(dctx); err != nil && dctx != ctx {
				err = nil // expected: the records stay on disk
			}
		}
		select {
		case <-inputsDone:
		case <-time.After(time.Second):
			// Readers still blocked: what they hold stays in the pipes.
		}
		if cerr := r.drv.Close(); err == nil {
			err = cerr
		}
		closed <- err
	}()
	lastChance := false
	select {
	case <-deadline: // already past it (SIGTERM and inputs still open)
		giveUp()
		lastChance = true
		deadline = time.After(2 * time.Second)
	default:
	}
	for {
		select {
		case err := <-closed:
			if timedOut {
				r.countUnsent()
			}
			r.writeStats()
			switch {
			case timedOut:
				if err != nil {
					r.Errors.Printf("%v", err)
				}
				return ErrDeadline
			case err != nil:
				return fmt.Errorf("close %s driver: %w", r.Config.Driver, err)
			case r.handingOver():
				return ErrHandover
			}
			return nil
		case <-deadline:
			if lastChance {
				r.countUnsent()
				r.writeStats()
				return ErrDeadline
			}
			r.Errors.Printf("%s driver did not finish within close-timeout %v", r.Config.Driver, r.o.CloseTimeout)
			giveUp()
			lastChance = true
			deadline = time.After(2 * time.Second) // for Drain and Close to count and let go
		case s := <-r.Signals:
			if s == syscall.SIGUSR1 {
				r.writeStats()
				r.Stats(r.Count.Line())
			}
		}
	}
}

// countUnsent moves what the driver accepted but still holds unsent (the
// fluentd-async queue) from delivered to dropped: the logger is about to
// exit without it.
func (r *run) countUnsent() {
	if n, b := r.drv.Pending(); n > 0 {
		r.Count.Delivered.Add(-n)
		r.Count.DeliveredBytes.Add(-b)
		r.Count.Drop("close-timeout", n, b)
	}
}

// writeStats takes in what the driver counts itself, then writes the
// stats file.
func (r *run) writeStats() {
	if r.drv != nil {
		r.Count.Resent.Store(r.drv.Resent())
	}
	r.Worker.writeStats()
}

func (r *run) handingOver() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handover
}

// failing returns how long the driver has been failing without a break:
// not up since the start, or refusing every message.
func (r *run) failing(started time.Time) time.Duration {
	select {
	case <-r.drv.Up():
	default:
		return time.Since(started)
	}
	var since time.Time
	if f, ok := r.sink.(interface{ FailingSince() time.Time }); ok {
		since = f.FailingSince()
	}
	if since.IsZero() {
		return 0
	}
	return time.Since(since)
}

// hungUp reports whether every input still being read has lost all its
// writers (inputs that reached EOF are done already).
func (r *run) hungUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.files) == 0 {
		return false
	}
	for f := range r.files {
		if !zfd.HungUp(f) {
			return false
		}
	}
	return true
}

func (w *Worker) writeStats() {
	if slot := w.Ledger.Slot(2); slot != nil {
		w.Count.Replayed.Store(slot.Load())
	}
	if p := w.Config.Options.StatsFile; p != "" {
		if err := w.Count.WriteFile(p); err != nil {
			w.Errors.Printf("%v", err)
		}
	}
}
