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
	"github.com/joyent/dockerlogger/console"
	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers"
	"github.com/joyent/dockerlogger/logcache"
	"github.com/joyent/dockerlogger/mode"
	"github.com/joyent/dockerlogger/pipepeek"
	"github.com/joyent/dockerlogger/protocol"
	"github.com/joyent/dockerlogger/reader"
	"github.com/joyent/dockerlogger/zfd"
)

// The async modes copy what they keep of a line: the reader lends them its
// buffer.
var (
	_ reader.Borrower = (*mode.Async)(nil)
	_ reader.Leaver   = (*mode.Async)(nil)
	_ reader.Borrower = (*mode.Blocking)(nil)
	_ reader.Leaver   = (*mode.Blocking)(nil)
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
	// Peek reads pipes with pipepeek.Peek, so bytes not yet delivered stay in
	// the pipe the supervisor holds, and SIGUSR2 can stop reading at a
	// line boundary for a handover. Ledger, if set, is shared with the
	// supervisor and counts what a dead worker left half-delivered.
	Peek   bool
	Ledger *protocol.Ledger
	// Longest, if set, is the longest message a reader makes, fixed when
	// the process started (reader.Longest of line-max and the pipes'
	// window then), as its memory limit was planned: a pipe grown later
	// does not make messages longer. 0: line-max.
	Longest int
	// Finish starts the run past close-timeout: what is left in the
	// inputs is read and counted as dropped, nothing waits on the driver.
	Finish bool
	// Supervised, if set, says whether a supervisor is there to apply
	// on-failure: a worker gives up on a driver failing for
	// failure-timeout only then. Alone (no supervisor, or one that was
	// killed) it keeps trying, as ending would close the container's
	// output under the application.
	Supervised func() bool
	// Inputs, if set, are read instead of the inherited descriptors: a
	// worker whose supervisor died while it handed over reads on from
	// what the run before kept open (KeptInputs).
	Inputs []zfd.Input

	keptMu sync.Mutex
	kept   []zfd.Input // the inputs a handover left open, by index
}

// KeptInputs returns the inputs the last Run left open when it stopped
// reading for a handover, in their order: a reader closes its input only
// at its end, so that the next worker's pipes are not broken if the
// supervisor that would start it is gone.
func (w *Worker) KeptInputs() []zfd.Input {
	w.keptMu.Lock()
	defer w.keptMu.Unlock()
	var ins []zfd.Input
	for _, in := range w.kept {
		if in.Open != nil {
			ins = append(ins, in)
		}
	}
	return ins
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
	cache    *logcache.Cache
	// ctx is the run's one context: it ends when the worker abandons
	// delivery (close-timeout passed).
	ctx        context.Context
	cancel     context.CancelFunc
	inputsDone <-chan struct{}  // closed when every reader has ended
	held       *mode.HeldRecord // blocking mode: what its driver holds unflushed

	files map[*os.File]bool // inputs still being read, to look for hang-up

	mu    sync.Mutex
	peeks []*pipepeek.Peek
	// peeksStopped: the peeks were told to stop (stopPeeks).
	peeksStopped bool
	handover     bool
}

// Run runs the pipeline to the end of its inputs. The configuration must
// have passed drivers.Validate.
func (w *Worker) Run() error {
	c := w.Config
	r := &run{Worker: w, o: c.Options, files: map[*os.File]bool{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	defer r.cancel()
	ins := w.Inputs
	if ins == nil {
		var err error
		if ins, err = zfd.Inputs(zfd.Spec{Stdout: c.Stdout, Stderr: c.Stderr, TTY: c.TTY}); err != nil {
			return err
		}
	}
	w.keptMu.Lock()
	w.kept = make([]zfd.Input, len(ins))
	w.keptMu.Unlock()
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
	r.drv, err = drivers.Start(c, w.Count, func(err error) {
		w.Errors.Printf("%s driver not up: %v (retrying)", c.Driver, err)
	})
	if err != nil {
		closeInputs()
		return err
	}
	if c.Options.Mode == config.Blocking {
		r.held = &mode.HeldRecord{Held: r.unflushedHeld}
		r.held.Lines, r.held.Bytes = w.Ledger.DriverHeld()
		w.countDeadRing(nil, nil, r.held.Lines, r.held.Bytes)
		r.blocking = &mode.Blocking{Driver: r.drv, Count: w.Count, Errors: w.Errors, Stop: r.ctx.Done(),
			KeepsUnflushed: r.drv.WritesFiles, Held: r.held.Refresh}
		r.sink = r.blocking
	} else {
		o := c.Options
		ac := mode.AsyncConfig{Mode: string(o.Mode), MaxBufferSize: o.MaxBufferSize,
			BufferFull: o.BufferFull, SpoolDir: o.SpoolDir, SpoolMaxSize: o.SpoolMaxSize, SpoolSync: o.SpoolSync,
			LineMax: int64(o.LineMax), Replayed: w.Ledger.Replayed(),
			Driver: r.drv, Count: w.Count, Errors: w.Errors, DropMarker: o.DropMarker,
			DriverQueued: r.drv.Pending}
		switch o.Mode {
		case config.NonBlocking:
			ac.HeldLines, ac.HeldBytes = w.Ledger.RingHeld()
			ac.DriverHeldLines, ac.DriverHeldBytes = w.Ledger.DriverHeld()
			ac.DriverPending = r.drv.Held
			w.countDeadRing(ac.HeldLines, ac.HeldBytes, ac.DriverHeldLines, ac.DriverHeldBytes)
		case config.Spool:
			// The spool keeps what a driver that flushes holds; what one
			// that does not flush took was acknowledged in the spool.
			ac.DriverHeldLines, ac.DriverHeldBytes = w.Ledger.DriverHeld()
			ac.DriverPending = r.unflushedHeld
			w.countDeadRing(nil, nil, ac.DriverHeldLines, ac.DriverHeldBytes)
		}
		r.async, err = mode.NewAsync(ac)
		if err != nil {
			closeInputs()
			r.drv.Close()
			return err
		}
		r.sink = r.async
	}
	if r.cache = w.openCache(); r.cache != nil {
		defer r.cache.Close(cacheClose) // when the run ends before its drain
	}
	relieved := make(chan struct{})
	if r.async != nil {
		// The ring or the spool takes lines whether the driver is up or
		// not: read now, not after the driver's first attempt, which
		// against a sink that does not answer takes seconds while, after
		// a live upgrade, the application waits on full pipes.
		if err := w.Ready.Say(protocol.ReadingByte); err != nil {
			w.Errors.Printf("%v", err)
		}
		go func() { w.waitRelief(); close(relieved) }()
		r.inputsDone = r.startReaders(ins, consoles, relieved)
	}
	// Ready after the first attempt at the driver, up or not: a sink that
	// is down must not stop the container from starting.
	r.drv.WaitFirst()
	if err := w.Ready.Signal(); err != nil {
		w.Errors.Printf("%v", err)
	}
	if r.async == nil {
		w.waitRelief()
		close(relieved)
		r.inputsDone = r.startReaders(ins, consoles, relieved)
	}
	return r.live(r.inputsDone)
}

// reliefWait bounds how long a worker waits for the supervisor to stop
// reading the pipes; past it, a supervisor that does not answer must not
// keep the container's output unread.
const reliefWait = 5 * time.Second

// waitRelief waits, after the ready byte, until the supervisor no longer
// reads the pipes itself (protocol.Ledger.Relieving): two readers would
// cut lines between them. It stops as soon as it sees the ready byte, so
// this is short; polling keeps the protocol to the ledger already shared.
func (w *Worker) waitRelief() {
	flag := w.Ledger.Relieving()
	if flag == nil {
		return
	}
	// What it dropped meanwhile is this worker's to report, also when
	// the relief ended before this looked: between this worker's start
	// (Counters.CarryDrops) and the byte that ended it.
	defer w.Count.CatchUp()
	for deadline := time.Now().Add(reliefWait); flag.Load() != 0; {
		if time.Now().After(deadline) {
			w.Errors.Printf("the supervisor still reads the inputs after %v: reading anyway", reliefWait)
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// cacheClose is how long the cache may take, after the driver closed, to
// write what it holds: what it cannot is counted in lines_dropped_cache.
const cacheClose = time.Second

// openCache opens the dual-logging cache if the driver gets one. A cache
// that cannot be opened is said and done without: it must never stop the
// logger.
func (w *Worker) openCache() *logcache.Cache {
	o := w.Config.Options
	if !o.Cache {
		return nil
	}
	c, err := logcache.Open(logcache.Options{Path: o.CachePath, MaxSize: o.CacheMaxSize,
		MaxFiles: o.CacheMaxFiles, Compress: o.CacheCompress}, w.Count, func(err error) { w.Errors.Printf("%v", err) })
	if err != nil {
		w.Errors.Printf("%v (no cache kept)", err)
		return nil
	}
	return c
}

// countDeadRing counts as dropped what a worker that died held in its
// ring (non-blocking) and its driver had not sent (and, in blocking and
// spool mode, had taken out of the pipe or the spool: unflushedHeld): it
// was read from the pipes and is gone with that worker. What the driver
// held may have been sent since it was last looked at: those lines are
// also counted as maybe delivered.
func (w *Worker) countDeadRing(lines, bytes, drvLines, drvBytes *atomic.Int64) {
	var l, b, dl, db int64
	if lines != nil {
		l, b = lines.Swap(0), bytes.Swap(0)
	}
	if drvLines != nil {
		dl, db = drvLines.Swap(0), drvBytes.Swap(0)
	}
	if l+dl > 0 {
		w.Count.Drop(diag.WorkerDied, l+dl, b+db)
		w.Errors.Printf("%d lines (%d bytes) in the ring and driver of the last worker (killed, or stuck in its driver at a handover) are lost", l+dl, b+db)
	}
	if m := w.Ledger.MaybeDelivered(); m != nil && dl > 0 {
		m.Add(dl)
	}
}

func (w *Worker) consoles() ([]*console.Console, error) {
	if !w.Config.Tee {
		return nil, nil
	}
	fs, err := console.Consoles()
	if err != nil {
		return nil, err
	}
	var cs []*console.Console
	for _, f := range fs {
		name := f.Name()
		cs = append(cs, console.NewConsole(f, func(err error) {
			w.Errors.Printf("tee to %s stopped: %v", name, err)
		}))
	}
	return cs, nil
}

// startReaders starts one reader per input, which reads once relieved is
// closed; the channel closes when all have reached EOF (or stopped for a
// handover).
func (r *run) startReaders(ins []zfd.Input, consoles []*console.Console, relieved <-chan struct{}) <-chan struct{} {
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func(i int, in zfd.Input) {
			defer wg.Done()
			<-relieved
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
			var copyErr error
			defer func() {
				r.mu.Lock()
				delete(r.files, f)
				r.mu.Unlock()
				if errors.Is(copyErr, reader.ErrStopped) {
					// Stopped for a handover: kept open until the
					// process ends (see KeptInputs).
					r.keptMu.Lock()
					r.kept[i] = zfd.Input{Name: in.Name, Open: func() (*os.File, error) { return f, nil }, Close: func() { f.Close() }}
					r.keptMu.Unlock()
					return
				}
				f.Close()
			}()
			var sink reader.Sink = r.sink
			if r.cache != nil {
				sink = r.cache.Tee(sink)
			}
			// Cut no later than a peeking worker must at the pipe's
			// window (reader.Windowed), also without a supervisor, and
			// no later if the pipe grows: the longest message the
			// memory limit was planned for, bounded by the pipe, not
			// line-max.
			lineMax := r.o.LineMax
			if r.Longest > 0 {
				lineMax = min(lineMax, r.Longest)
			}
			rd := &reader.Reader{Source: in.Name, LineMax: lineMax, Sink: sink, Count: r.Count.Stream(in.Name)}
			var cons *console.Console
			if i < len(consoles) {
				cons = consoles[i]
			}
			var src io.Reader = f
			if p := r.peek(f, i, rd, cons); p != nil {
				defer p.Close()
				src = p
			} else if cons != nil {
				src = console.TeeReader(src, cons)
			}
			copyErr = rd.Copy(src)
			if copyErr != nil && !errors.Is(copyErr, reader.ErrStopped) {
				r.Errors.Printf("%v", copyErr)
			}
		}(i, in)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// peek returns a pipepeek.Peek on f when the worker peeks and f is a pipe.
func (r *run) peek(f *os.File, i int, rd *reader.Reader, cons *console.Console) *pipepeek.Peek {
	if !r.Peek {
		return nil
	}
	p, err := pipepeek.NewPeek(f)
	if err != nil {
		return nil
	}
	if cons != nil {
		p.TeeTo(cons)
	}
	r.mu.Lock()
	r.peeks = append(r.peeks, p)
	if r.peeksStopped {
		p.Stop()
	}
	r.mu.Unlock()
	if handed := r.Ledger.Handed(i); handed != nil {
		// Replays are counted in the ledger, across workers.
		rd.Replay, rd.Handed, rd.Replayed = handed.Load(), handed, r.Ledger.Replayed()
		rd.Partial = partialKeeper{r.Ledger, i}
		rd.SkipReplay = r.Finish
		if consumed := r.Ledger.Consumed(i); consumed != nil {
			start, l := consumed.Load(), r.Ledger
			rd.Consumed = consumed
			rd.PartialID = func(off int64) string { return l.PartialID(i, start+off) }
		}
		if id, ord, ts, ok := r.Ledger.Partial(i); ok {
			rd.Resume = reader.PartialLine{ID: id, Ordinal: ord, Time: time.Unix(0, ts).UTC()}
		}
	}
	return p
}

// partialKeeper keeps a reader's unfinished line in the ledger.
type partialKeeper struct {
	l      *protocol.Ledger
	stream int
}

func (k partialKeeper) KeepPartial(p reader.PartialLine) {
	var ts int64
	if p.ID != "" {
		ts = p.Time.UnixNano()
	}
	k.l.SavePartial(k.stream, p.ID, p.Ordinal, ts)
}

// stopReading makes every peeking reader stop at a line boundary.
func (r *run) stopReading() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handover = true
	r.stopPeeks()
	if r.async != nil {
		r.async.HandOver()
	}
	if r.blocking != nil {
		// A reader waiting for a driver that is not up, or retrying one
		// that refuses, leaves its line to the next worker.
		r.blocking.HandOver()
		r.drv.Abandon()
	}
}

// stopPeeks makes every peeking reader stop at a line boundary, leaving
// the rest in the pipes: past close-timeout, for the worker that counts
// what is left (the supervisor's finishing worker); the readers end, so
// no line is read after the last count. The caller holds r.mu.
func (r *run) stopPeeks() {
	r.peeksStopped = true
	for _, p := range r.peeks {
		p.Stop()
	}
}

// phase is where a run is, named as s6-supervise names a service's states.
// A run only moves forward through them.
type phase int

const (
	// reading: the inputs are open; lines are delivered as they come.
	reading phase = iota
	// closing: asked to stop (SIGTERM), or the container is gone while the
	// driver fails: reading on to EOF, within close-timeout.
	closing
	// draining: the inputs ended (EOF, or stopped for a handover):
	// delivering what is held, then closing the driver.
	draining
	// abandoning: close-timeout passed: the driver is let go, what it never
	// took is counted, and the run ends within lastChance.
	abandoning
)

// handoverDrain is how long a non-blocking worker handing over delivers
// what its ring holds before it lets the rest go, counted: the pipes are
// not read meanwhile.
const handoverDrain = 250 * time.Millisecond

// stopReaders is how long the last count waits for readers told to stop
// at the next line.
const stopReaders = 250 * time.Millisecond

// lastChance is how long an abandoned drain and close may take to count
// what they let go.
const lastChance = 2 * time.Second

// live runs the phases from reading to the end of the run and says how it
// ended: nil (everything delivered), ErrHandover, ErrDriverFailed,
// ErrDeadline, or the driver's error at close.
func (r *run) live(inputsDone <-chan struct{}) error {
	ph := reading
	alone := false                      // said that nobody applies on-failure
	var deadline, last <-chan time.Time // close-timeout; then lastChance
	if r.Finish {
		ph, deadline = closing, time.After(0)
	}
	var statsTicker *time.Ticker
	var statsTick <-chan time.Time
	if r.o.StatsFile != "" {
		statsTicker = time.NewTicker(statsEvery)
		defer statsTicker.Stop()
		statsTick = statsTicker.C
	}
	started := time.Now()
	checkEvery := min(r.o.FailureTimeout/4, time.Second)
	failTick := time.NewTicker(checkEvery)
	defer failTick.Stop()
	check := failTick.C
	q := r.newIdle()
	var wake <-chan struct{} // q.wake, while the timers are stopped
	var closed <-chan error  // the drain and close, once draining
	drain := func() {
		ph, inputsDone, check, statsTick, wake = draining, nil, nil, nil, nil
		q.resume()
		closed = r.drainAndClose()
	}
	abandon := func() {
		ph, deadline = abandoning, nil
		r.abandon()
		last = time.After(lastChance)
	}
	inputsEnded := func() {
		if r.handingOver() {
			// Nobody reads the pipes now: the supervisor may keep
			// room in them until the next worker does.
			// (A supervisor older than this byte stopped listening
			// after the ready byte: EPIPE.)
			if err := r.Ready.Say(protocol.StoppedByte); err != nil && !errors.Is(err, syscall.EPIPE) {
				r.Errors.Printf("%v", err)
			}
		}
		if deadline == nil {
			deadline = time.After(r.o.CloseTimeout)
		}
		drain()
	}
	// stuck fires handoverStuck after a handover request in blocking
	// mode: a reader still in a driver call then is left behind.
	var stuck <-chan time.Time
	for {
		select {
		case <-stuck:
			stuck = nil
			if ph > closing {
				continue
			}
			// Its line stays in the pipe (uncommitted) for the next
			// worker, and is not counted (Blocking.HandOver); if the call
			// ends before this process does, the reader stops at its
			// next line.
			r.Errors.Printf("a reader still in a %s driver call after %v: handing over without it", r.Config.Driver, handoverStuck)
			inputsEnded()
		case <-inputsDone:
			inputsEnded()
		case <-check:
			failing := r.failing(started)
			if ph == reading && failing >= r.o.FailureTimeout && (r.Supervised == nil || !r.Supervised()) {
				if !alone {
					alone = true
					r.Errors.Printf("%s driver failing for %v, and no supervisor to apply on-failure=%s: trying on", r.Config.Driver, r.o.FailureTimeout, r.o.OnFailure)
				}
			} else if ph == reading && failing >= r.o.FailureTimeout {
				r.Errors.Printf("%s driver failing for %v: giving up (on-failure=%s)", r.Config.Driver, r.o.FailureTimeout, r.o.OnFailure)
				if r.blocking != nil && r.Peek {
					// The line being retried stays in the pipe, uncommitted.
					r.blocking.HandOver()
				}
				r.writeStats()
				return ErrDriverFailed
			}
			// The container is gone (no writer left) and nothing can be
			// delivered: give it close-timeout, as after SIGTERM.
			if ph == reading && (failing > 0 || r.asyncRefusing()) && r.hungUp() {
				r.Errors.Printf("inputs closed while the %s driver is failing: giving up in %v", r.Config.Driver, r.o.CloseTimeout)
				ph, deadline = closing, time.After(r.o.CloseTimeout)
			}
			if ph == reading && q.park() {
				failTick.Stop()
				check, wake = nil, q.wake
				if statsTicker != nil {
					statsTicker.Stop()
					statsTick = nil
				}
			}
		case <-wake:
			q.resume()
			failTick.Reset(checkEvery)
			check, wake = failTick.C, nil
			if statsTicker != nil {
				statsTicker.Reset(statsEvery)
				statsTick = statsTicker.C
			}
		case <-deadline:
			if ph == closing {
				r.Errors.Printf("inputs not finished within close-timeout %v: stopping", r.o.CloseTimeout)
				drain()
			} else {
				r.Errors.Printf("%s driver did not finish within close-timeout %v", r.Config.Driver, r.o.CloseTimeout)
			}
			abandon()
		case <-last:
			r.countUnsent()
			r.writeStats()
			return r.deadlineErr()
		case err := <-closed:
			if ph == abandoning {
				// A reader still running would read a line after the
				// last count, and the line would be lost with the
				// worker. Past close-timeout the readers count each
				// line at once, so a container gone is read to its end
				// quickly: wait for that, within lastChance. A writer
				// still there keeps them going: stop them at the next
				// line (the rest stays in the pipe, for the worker that
				// counts it) and give them a moment. A driver call that
				// never returns holds one line, which countUnsent
				// counts. Readers that do not peek cannot be stopped.
				if r.Peek {
					select {
					case <-r.inputsDone:
					case <-last:
						r.mu.Lock()
						r.stopPeeks()
						r.mu.Unlock()
						select {
						case <-r.inputsDone:
						case <-time.After(stopReaders):
						}
					}
				}
				r.countUnsent()
			}
			r.writeStats()
			switch {
			case ph == abandoning:
				if err != nil {
					r.Errors.Printf("%v", err)
				}
				return r.deadlineErr()
			case r.handingOver():
				// What the driver could not take is counted (the file
				// drivers count what they could not write); the next
				// worker reads on either way.
				if err != nil {
					r.Errors.Printf("close %s driver: %v", r.Config.Driver, err)
				}
				return ErrHandover
			case err != nil:
				return fmt.Errorf("close %s driver: %w", r.Config.Driver, err)
			}
			return nil
		case <-statsTick:
			q.writeStats()
		case sig := <-r.Signals:
			switch sig {
			case syscall.SIGUSR1:
				r.writeStats()
				r.Stats(r.Count.Line())
			case syscall.SIGUSR2:
				if ph <= closing {
					r.stopReading()
					// Not for a driver that writes files: its Close
					// writes what a reader waiting to flush has not
					// committed, which the next worker would write again.
					if r.blocking != nil && !r.drv.WritesFiles() && stuck == nil {
						stuck = time.After(handoverStuck)
					}
				}
			case syscall.SIGTERM, syscall.SIGINT:
				if ph == reading {
					ph, deadline = closing, time.After(r.o.CloseTimeout)
				}
			}
			// SIGHUP is the supervisor's (live upgrade): a worker that
			// gets one too, from a broad pkill, carries on.
		}
	}
}

// deadlineErr is what a run that reached close-timeout returns. A
// handover that did (buffer-full=block waits that long for a sink that
// is down) is still a handover: what it gave up on is counted, and the
// next worker, waiting, reads on; it is no failure of this one.
func (r *run) deadlineErr() error {
	if r.handingOver() {
		return ErrHandover
	}
	return ErrDeadline
}

// drainAndClose delivers what the mode holds and closes the driver, in
// the background; the run's context ends it early (abandon).
func (r *run) drainAndClose() <-chan error {
	closed := make(chan error, 1)
	go func() {
		if r.handingOver() {
			closed <- r.handOver()
			return
		}
		var err error
		if r.async != nil {
			err = r.async.Drain(r.ctx)
		}
		r.waitReaders()
		if cerr := r.drv.Close(); err == nil {
			err = cerr
		}
		r.closeCache()
		closed <- err
	}()
	return closed
}

// Bounds of a handover: how long a spool-mode consumer may take to
// acknowledge what the driver took (the application waits on full pipes
// meanwhile: the spool drops nothing to make room), and the driver to
// close (a driver that buffers writes or sends what it holds).
const (
	spoolHandoverAck = 50 * time.Millisecond
	handoverClose    = time.Second
	// handoverStuck: how long a blocking-mode reader may stay in one
	// driver call (Docker's fluentd retries for hours against a sink
	// that is gone) before the handover goes on without it.
	handoverStuck = time.Second
)

// handOver ends a run stopped for a handover: what the mode holds is
// delivered or left, the driver closed, within bounds that never depend
// on the sink, as the pipes are not read until the next worker starts
// (only close-timeout bounds buffer-full=block, which chose to wait).
//
// In spool mode the next worker delivers from the spool what this one
// did not, so nothing waits on a sink that may be down or a driver that
// is not up: the consumer stops at its record (abandoned, a driver not up
// answers at once). A consumer stuck in a driver call (a sink that does
// not answer) is left to the process's exit, with its driver: Close would
// wait for that call. Its record is the next worker's (spool) or counted
// as held by a dead worker's ring (see countDeadRing).
func (r *run) handOver() error {
	var err error
	switch {
	case r.async != nil && r.o.Mode == config.Spool:
		r.async.Stop()
		r.drv.Abandon()
		if lerr := r.async.Leave(spoolHandoverAck); lerr != nil {
			r.Errors.Printf("%v", lerr)
		}
	case r.async != nil && r.o.BufferFull == config.BlockFull:
		// buffer-full=block: the application waits rather than lose a
		// line, so the ring is delivered whole (within close-timeout, as
		// at exit) before the next worker reads on.
		err = r.async.Drain(r.ctx)
	case r.async != nil:
		// The supervisor keeps room in the pipes until the next worker
		// reads: give the ring a short while, then count what is left as
		// dropped, as a ring does when its sink is down.
		ctx, cancel := context.WithTimeout(r.ctx, handoverDrain)
		r.async.Drain(ctx) // what it dropped, it counted
		cancel()
	}
	r.waitReaders()
	if r.async != nil && r.async.Busy() && !r.drv.WritesFiles() {
		r.Errors.Printf("%s driver still busy: handing over without closing it", r.Config.Driver)
		r.countUnsent()
	} else {
		// A driver that writes files is closed even when busy (a slow
		// disk, not a sink): Close waits for the write in progress,
		// which an exit would cut, leaving a partial record.
		closed := make(chan error, 1)
		go func() { closed <- r.drv.CloseHandingOver() }()
		select {
		case cerr := <-closed:
			if err == nil {
				err = cerr
			}
			// Closed: what it held it sent, or gave up on and counted;
			// what it recorded before must not count at the next worker,
			// what it still says it holds must.
			r.held.Refresh() // nil unless blocking
			if r.async != nil {
				r.async.RefreshDriverHeld()
			}
		case <-time.After(handoverClose):
			r.Errors.Printf("%s driver not closed within %v: handing over without it", r.Config.Driver, handoverClose)
			r.countUnsent()
		}
	}
	if r.cache != nil {
		// Its compression, if one runs, is left to the next worker's
		// cache, as the drivers' files are (CloseHandingOver).
		r.cache.CloseHandingOver(cacheClose)
	}
	return err
}

// waitReaders waits a moment for the readers to end: what a reader still
// blocked holds stays in the pipes.
func (r *run) waitReaders() {
	select {
	case <-r.inputsDone:
	case <-time.After(time.Second):
	}
}

// closeCache closes the dual-logging cache, before the counters are
// written: they include the cache's.
func (r *run) closeCache() {
	if r.cache != nil {
		r.cache.Close(cacheClose)
	}
}

// abandon gives up on what is not delivered yet: the run's context ends
// (the delivery modes stop retrying and count), and the driver stops
// waiting to come up.
func (r *run) abandon() {
	if r.async != nil {
		// Stopped first: a consumer waiting for a driver that is not
		// up then takes its ErrNotOpen as the stop, not as a failure.
		r.async.Stop()
	}
	r.cancel()
	r.drv.Abandon()
}

// countUnsent moves what the driver accepted but still holds unsent (the
// fluentd-async queue) from delivered to dropped: the logger is about to
// exit without it.
//
// In spool mode, for a driver that flushes, they are not lost: the spool
// frees a record only once the driver's Flush said the server has it
// (otlp, loki), so they are still on disk for the next logger, and count
// as spooled.
func (r *run) countUnsent() {
	if r.blocking != nil {
		r.blocking.Abandon() // a line stuck in a driver call
	}
	if r.async != nil {
		defer r.async.DriverHeldCounted()
	}
	defer r.held.Counted() // nil unless blocking
	n, b := r.drv.Pending()
	if n <= 0 {
		return
	}
	r.Count.Delivered.Add(-n)
	r.Count.DeliveredBytes.Add(-b)
	if r.blocking != nil && r.handingOver() && r.drv.Flushes() {
		// A blocking-mode reader commits a round only once a driver
		// that flushes has delivered it all (Flush): what it still
		// holds is in the pipe, for the next worker
		// (Blocking.FlushOrLeave). One that does not flush
		// (fluentd-async, gcplogs) took its lines from the pipe: they
		// are gone with this worker, and dropped below.
		return
	}
	if r.o.Mode == config.Spool && r.drv.Flushes() {
		r.Count.AddSpooled(n)
		return
	}
	// A driver that does not flush had its lines acknowledged in the
	// spool once it took them (fluentd-async): they are gone with it.
	r.Count.Drop(diag.CloseTimeout, n, b)
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

// asyncRefusing reports whether the ring's or spool's driver refuses every
// message (see mode.Async.RefusingSince).
func (r *run) asyncRefusing() bool {
	return r.async != nil && !r.async.RefusingSince().IsZero()
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

// ledgerCounts copies into the counters what all workers (and the
// supervisor) counted in the ledger.
func (w *Worker) ledgerCounts() {
	// The supervisor may have dropped lines since this worker last
	// looked: keeping room in the pipes after this worker stopped
	// reading for a handover that then did not happen (SIGTERM meanwhile),
	// with no worker after it to count them.
	w.Count.CatchUp()
	if slot := w.Ledger.Replayed(); slot != nil {
		w.Count.Replayed.Store(slot.Load())
	}
	if slot := w.Ledger.MaybeDelivered(); slot != nil {
		w.Count.MaybeDelivered.Store(slot.Load())
	}
}

func (w *Worker) writeStats() {
	w.ledgerCounts()

	if p := w.Config.Options.StatsFile; p != "" {
		if err := w.Count.WriteFile(p); err != nil {
			w.Errors.Printf("%v", err)
		}
	}
}

// unflushedHeld is what the driver holds that is no longer in the pipe
// (blocking mode) or the spool: nothing for a driver that flushes, as a
// reader commits a round, and the spool frees a record, only once such a
// driver's Flush said it was delivered; all it holds (Held) for one that
// does not (fluentd-async).
func (r *run) unflushedHeld() (lines, bytes int64) {
	if r.drv.Flushes() {
		return 0, 0
	}
	return r.drv.Held()
}
