// Package worker runs the pipeline of one logger process — inputs, line
// reader, delivery mode, driver — and its end: when the inputs reach EOF it
// drains, closes the driver within close-timeout, and reports its counters.
//
// It must never import the supervisor or a command's main package: it is
// what they run.
package worker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
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
	// close-timeout) and SIGUSR1 (print the counters).
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

// ErrHandover is returned when SIGUSR2 stopped the worker for a handover
// and everything it had read was delivered.
var ErrHandover = errors.New("handed over")

// ErrDeadline is returned when the logger had to stop before everything it
// read was delivered.
var ErrDeadline = errors.New("close-timeout reached")

// Run runs the pipeline to the end of its inputs. The configuration must
// have passed drivers.Validate.
func (w *Worker) Run() error {
	c := w.Config
	o := c.Options
	if o.Mode != config.Blocking {
		return fmt.Errorf("log-opt mode=%s: not available in this build yet (use mode=blocking)", o.Mode)
	}
	ins, err := zfd.Inputs(zfd.Spec{Stdout: c.Stdout, Stderr: c.Stderr, TTY: c.TTY})
	if err != nil {
		return err
	}
	drv, err := drivers.Open(c, func(err error) {
		w.Errors.Printf("%s driver not up: %v (retrying)", c.Driver, err)
	})
	if err != nil {
		for _, in := range ins {
			in.Close()
		}
		return err
	}
	// Ready after the first attempt at the driver, up or not: a sink that
	// is down must not stop the container from starting.
	if err := w.Ready.Signal(); err != nil {
		w.Errors.Printf("%v", err)
	}

	var consoles []*zfd.Console
	if c.Tee {
		fs, err := zfd.Consoles()
		if err != nil {
			return err
		}
		for _, f := range fs {
			name := f.Name()
			consoles = append(consoles, zfd.NewConsole(f, func(err error) {
				w.Errors.Printf("tee to %s stopped: %v", name, err)
			}))
		}
	}
	stop := make(chan struct{})
	sink := &mode.Blocking{Driver: drv, Count: w.Count, Errors: w.Errors, Stop: stop}

	var wg sync.WaitGroup
	var peeksMu sync.Mutex
	var peeks []*zfd.Peek
	handover := false
	stopReading := func() {
		peeksMu.Lock()
		defer peeksMu.Unlock()
		handover = true
		for _, p := range peeks {
			p.Stop()
		}
	}
	for i, in := range ins {
		wg.Add(1)
		go func(i int, in zfd.Input) {
			defer wg.Done()
			f, err := in.Open()
			if err != nil {
				w.Errors.Printf("%v", err)
				return
			}
			defer f.Close()
			r := &reader.Reader{Source: in.Name, LineMax: o.LineMax, Sink: sink, Count: w.Count.Stream(in.Name)}
			var src io.Reader = f
			var console *zfd.Console
			if i < len(consoles) {
				console = consoles[i]
			}
			peeking := false
			if w.Peek {
				if p, err := zfd.NewPeek(f); err == nil {
					peeking = true
					if console != nil {
						p.TeeTo(console)
					}
					defer p.Close()
					peeksMu.Lock()
					peeks = append(peeks, p)
					if handover {
						p.Stop()
					}
					peeksMu.Unlock()
					src = p
					if slot := w.Ledger.Slot(i); slot != nil {
						// Replays are counted in the ledger, across workers.
						r.Replay, r.Handed, r.Replayed = slot.Load(), slot, w.Ledger.Slot(2)
					}
				}
			}
			if console != nil && !peeking {
				src = zfd.TeeReader(src, console)
			}
			if err := r.Copy(src); err != nil && !errors.Is(err, reader.ErrStopped) {
				w.Errors.Printf("%v", err)
			}
		}(i, in)
	}
	inputsDone := make(chan struct{})
	go func() { wg.Wait(); close(inputsDone) }()

	var statsTick <-chan time.Time
	if o.StatsFile != "" {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		statsTick = t.C
	}
	// deadline runs from SIGTERM or from the end of the inputs: the time
	// left to drain and close.
	var deadline <-chan time.Time
	timedOut := false
wait:
	for {
		select {
		case <-inputsDone:
			break wait
		case <-deadline:
			timedOut = true
			w.Errors.Printf("inputs still open %v after SIGTERM: stopping", o.CloseTimeout)
			break wait
		case <-statsTick:
			w.writeStats()
		case s := <-w.Signals:
			switch s {
			case syscall.SIGUSR1:
				w.writeStats()
				w.Stats(w.Count.Line())
			case syscall.SIGUSR2:
				stopReading()
			default:
				if deadline == nil {
					deadline = time.After(o.CloseTimeout)
				}
			}
		}
	}
	if deadline == nil {
		deadline = time.After(o.CloseTimeout)
	}
	closed := make(chan error, 1)
	go func() {
		if timedOut {
			close(stop)
			drv.Abandon()
		}
		closed <- drv.Close()
	}()
	for {
		select {
		case err := <-closed:
			w.writeStats()
			if err != nil {
				return fmt.Errorf("close %s driver: %w", c.Driver, err)
			}
			if timedOut {
				return ErrDeadline
			}
			if handover {
				return ErrHandover
			}
			return nil
		case <-deadline:
			if !timedOut {
				timedOut = true
				close(stop)
				drv.Abandon()
			}
			deadline = time.After(time.Second) // last chance for Close
			w.Errors.Printf("%s driver did not finish within close-timeout %v", c.Driver, o.CloseTimeout)
			select {
			case err := <-closed:
				w.writeStats()
				if err != nil {
					return fmt.Errorf("close %s driver: %w", c.Driver, err)
				}
			case <-deadline:
			}
			w.writeStats()
			return ErrDeadline
		case s := <-w.Signals:
			if s == syscall.SIGUSR1 {
				w.Stats(w.Count.Line())
			}
		}
	}
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
