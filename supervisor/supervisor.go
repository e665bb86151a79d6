// Package supervisor owns the life of the worker: it holds the container's
// input descriptors for the whole life of the container, starts the worker
// (this same binary, re-executed) on them, restarts it with backoff when it
// dies, applies the on-failure policy when it keeps dying, relays the ready
// signal once, and on SIGHUP hands over to a worker started from the
// binary's path on disk, for a live upgrade.
//
// It must never import a driver, the reader or a delivery mode: it moves
// descriptors and processes, and reads log data only to drain it to
// nowhere when on-failure=ignore says so.
package supervisor

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/backoff"
	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/pipepeek"
	"github.com/joyent/dockerlogger/protocol"
	"github.com/joyent/dockerlogger/zfd"
)

// The worker's exit codes, as the supervisor reads them.
const (
	ExitOK           = protocol.ExitOK
	ExitFailure      = protocol.ExitFailure
	ExitHandover     = protocol.ExitHandover
	ExitDriverFailed = protocol.ExitDriverFailed
)

// Policy is what on-failure asks for.
type Policy string

const (
	Restart  Policy = "restart"
	KillInit Policy = "kill-init"
	Ignore   Policy = "ignore"
)

// Config is one supervisor.
type Config struct {
	Exe    string     // the binary to run as the worker, re-read at every start
	Args   []string   // the worker's arguments
	Env    []string   // the logger's environment (protocol.WorkerEnv adds the worker's)
	Inputs []*os.File // stdout, then stderr (nil when absent); held for life
	// Consoles, if set, are passed to every worker as fds 7 and 8 for
	// loginit --tee.
	Consoles []*os.File
	Ready    *zfd.ReadyPipe
	Policy   Policy
	// InitPID is what kill-init terminates; 0 means our parent.
	InitPID int
	Errors  *diag.Errors
	Count   *diag.Counters // the supervisor's own: restarts, and drains
	Stats   func(line string)
	Signals <-chan os.Signal
	Stderr  io.Writer

	// Backoff between restarts, and what counts as failing for good:
	// Failures crashes within Window.
	FirstBackoff, MaxBackoff time.Duration
	Healthy                  time.Duration // a run this long resets the backoff
	Failures                 int
	Window                   time.Duration
	Grace                    time.Duration // SIGTERM to SIGKILL for kill-init
	// NeverBlock: the mode promises the application never blocks
	// (non-blocking, spool), so while no worker runs the supervisor keeps
	// room in the pipes by dropping, counted, the oldest bytes.
	NeverBlock bool
	// RelieveUpgrades: the mode may also drop across a live upgrade
	// (non-blocking: the old worker's ring drops what it cannot deliver
	// within its handover), so the pipes are relieved from the old
	// worker's last read to the new one's first. Without it (spool) an
	// upgrade loses nothing, and a fast writer may wait out that gap.
	RelieveUpgrades bool
}

// Defaults fills in the documented defaults.
func (c *Config) Defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.FirstBackoff, 100*time.Millisecond)
	def(&c.MaxBackoff, 10*time.Second)
	def(&c.Healthy, 10*time.Second)
	def(&c.Window, 10*time.Minute)
	def(&c.Grace, 10*time.Second)
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.Policy == "" {
		c.Policy = Restart
	}
}

// Supervisor runs workers until the inputs end.
type Supervisor struct {
	c      Config
	ledger *protocol.Ledger

	mu      sync.Mutex
	relayed bool // the ready byte has gone to the platform

	// stopping: SIGTERM or SIGINT asked the logger to stop, so a worker
	// may end before the container closes its output; every new worker
	// is told so too.
	stopping bool
	// finishing: close-timeout has passed; the next worker only counts
	// what is left (protocol.FinishEnv).
	finishing bool
	// relief: reading the pipes while no worker does; only the run
	// goroutine touches it.
	relief *relief
	// next: the worker started ahead of a live upgrade, if any (see
	// startNext); only the run goroutine touches it.
	next *waiting
}

// New returns a supervisor for c.
func New(c Config) *Supervisor {
	c.Defaults()
	s := &Supervisor{c: c}
	if l, err := protocol.NewLedger(); err == nil {
		s.ledger = l
	}
	return s
}

type exit struct {
	code     int
	crashed  bool
	describe string
	signal   os.Signal // what ended the worker, if a signal did
	relayed  bool      // that signal was one the supervisor passed on
}

// Run supervises until a worker ends normally, and returns the exit code
// for the process.
func (s *Supervisor) Run() int {
	return s.run()
}

func (s *Supervisor) run() int {
	c := &s.c
	wait := backoff.New(c.FirstBackoff, c.MaxBackoff)
	var failures []time.Time
	for {
		start := time.Now()
		ex, upgraded := s.runWorker()
		if ex.code != ExitHandover || !upgraded {
			s.dropNext()
		}
		switch {
		case ex.code == ExitHandover && upgraded:
			c.Count.Upgrades.Add(1)
			continue
		case ex.relayed:
			// Ended by a signal we passed on: not its failure.
			c.Errors.Printf("worker %s, a signal passed on by the supervisor; restarting", ex.describe)
			continue
		case !ex.crashed && ex.code != ExitHandover && !s.stopping && s.inputsOpen():
			// The container can still write: its output must stay
			// read, so a worker that ends now has failed.
			ex.crashed = true
			ex.describe += " while the container's output is still open"
		case !ex.crashed && ex.code != ExitHandover && !s.stopping && !s.finishing && s.inputsUnread():
			// The writers are gone but lines are left in a pipe that
			// no worker will read (a handover that reached
			// close-timeout on a stalled sink): one more worker reads
			// them at once and counts them, with no time to deliver.
			c.Errors.Printf("worker %s with lines still unread in the container's output: counting them", ex.describe)
			s.finishing = true
			continue
		case !ex.crashed && ex.code != ExitHandover:
			return ex.code
		}
		c.Errors.Printf("worker %s; restarting", ex.describe)
		if code, stop := s.afterCrash(&failures, wait, start); stop {
			return code
		}
	}
}

// runWorker starts one worker and waits for it, passing signals on.
// upgraded says SIGHUP asked it to hand over.
func (s *Supervisor) runWorker() (ex exit, upgraded bool) {
	c := &s.c
	cmd, statusR, first, err := s.start()
	if err != nil {
		return exit{code: ExitFailure, crashed: true, describe: fmt.Sprintf("could not start: %v", err)}, false
	}
	hello := make(chan struct{})
	said := make(chan byte, 8)
	go s.readStatus(statusR, first, hello, said)
	done := make(chan exit, 1)
	go func() { done <- wait(cmd) }()
	// Signals wait until the worker says its handlers are in place: one
	// that came earlier would end it. Each kind is passed on once: the
	// kernel merges a pending signal of one kind, and so does this.
	var pending []os.Signal
	sent := map[os.Signal]bool{}
	pass := func(sig os.Signal) {
		if hello != nil {
			if !slices.Contains(pending, sig) {
				pending = append(pending, sig)
			}
			return
		}
		sent[sig] = true
		cmd.Process.Signal(sig)
	}
	if s.stopping {
		pass(syscall.SIGTERM)
	}
	var nextReady <-chan struct{} // the next worker waits (startNext)
	var nextLate <-chan time.Time // it took nextStart: go on without
	for {
		select {
		case ex := <-done:
			if ex.signal != nil && sent[ex.signal] {
				ex.crashed, ex.relayed = false, true
			}
			if ex.code == ExitHandover && upgraded {
				// Whether or not its StoppedByte came through, it
				// reads no more: keep room until the next one reads.
				s.startRelief(reliefUpgrade)
			} else {
				s.stopRelief()
			}
			return ex, upgraded
		case b := <-said:
			switch b {
			case protocol.ReadingByte, protocol.ReadyByte:
				// It reads from now (after waiting for the relief to
				// stop, see protocol.Ledger.Relieving), and counts what
				// the relief dropped.
				s.stopRelief()
			case protocol.StoppedByte:
				if upgraded {
					s.startRelief(reliefUpgrade)
				}
			}
		case <-nextReady:
			nextReady, nextLate = nil, nil
			pass(syscall.SIGUSR2)
		case <-nextLate:
			nextReady, nextLate = nil, nil
			pass(syscall.SIGUSR2)
		case <-hello:
			hello = nil
			for _, sig := range pending {
				pass(sig)
			}
			pending = nil
		case sig := <-c.Signals:
			switch sig {
			case syscall.SIGHUP:
				// Live upgrade: the worker stops reading at a line
				// boundary, delivers what it holds and exits with
				// ExitHandover; the next one starts from the file.
				// Another SIGHUP meanwhile asks for the same.
				if upgraded {
					continue
				}
				upgraded = true
				// The old worker reads on until the next one has
				// started and waits (nextReady): nobody reads the pipes
				// only from the old one's last line to the next one's
				// first.
				if s.startNext() {
					nextReady, nextLate = s.next.ready, time.After(nextStart)
				} else {
					pass(syscall.SIGUSR2)
				}
				continue
			case syscall.SIGTERM, syscall.SIGINT:
				s.stopping = true
			}
			pass(sig)
		}
	}
}

// inputsOpen reports whether the container may still write to an input the
// supervisor holds: a writer is left on it.
func (s *Supervisor) inputsOpen() bool {
	for _, f := range s.c.Inputs {
		if f != nil && zfd.CanHangUp(f) && !zfd.HungUp(f) {
			return true
		}
	}
	return false
}

// inputsUnread reports whether an input the supervisor holds still has
// bytes no worker has handed over (and counted): past what the ledger says
// the last worker handed to its driver.
func (s *Supervisor) inputsUnread() bool {
	for i, f := range s.c.Inputs {
		if f == nil {
			continue
		}
		var handed int64
		if h := s.ledger.Handed(i); h != nil {
			handed = h.Load()
		}
		if held, _ := pipepeek.Held(f); int64(held) > handed {
			return true
		}
	}
	return false
}

// afterCrash counts a crash, applies the policy when the worker keeps
// failing, and waits out the backoff. stop says the supervisor is done.
func (s *Supervisor) afterCrash(failures *[]time.Time, wait *backoff.Backoff, start time.Time) (int, bool) {
	c := &s.c
	now := time.Now()
	if now.Sub(start) >= c.Healthy {
		// A worker that ran well for a while ends the run of failures.
		wait.Reset()
		*failures = (*failures)[:0]
	}
	c.Count.Restarts.Add(1)
	*failures = append(*failures, now)
	for len(*failures) > 0 && now.Sub((*failures)[0]) > c.Window {
		*failures = (*failures)[1:]
	}
	if len(*failures) >= c.Failures {
		switch c.Policy {
		case KillInit:
			c.Errors.Printf("worker failed %d times in %v: on-failure=kill-init", len(*failures), c.Window)
			// Drain while init dies: an init that waits for its logger
			// (loginit --wait) must not wait on us in turn.
			go s.killInit()
			return s.drain(), true
		case Ignore:
			c.Errors.Printf("worker failed %d times in %v: on-failure=ignore, draining the inputs to nowhere", len(*failures), c.Window)
			return s.drain(), true
		}
	}
	t := time.NewTimer(wait.Next())
	defer t.Stop()
	// No worker reads while we wait.
	s.startRelief(reliefCrash)
	defer s.stopRelief()
	for {
		select {
		case <-t.C:
			return 0, false
		case sig := <-c.Signals:
			if sig == syscall.SIGUSR1 {
				c.Stats(c.Count.Line())
			}
			// SIGTERM with no worker: the next one starts at once and
			// reads on to EOF.
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				s.stopping = true
				return 0, false
			}
		}
	}
}

// start execs a worker with the inputs, a private ready pipe until the
// ready byte has been relayed, and the ledger.
func (s *Supervisor) start() (cmd *exec.Cmd, statusR *os.File, first func() (byte, bool), err error) {
	if w := s.next; w != nil {
		s.next = nil
		// Said even if it has not said hello yet (a slow start): it
		// reads the byte when it gets there.
		_, err := w.goW.Write([]byte{protocol.GoByte})
		w.goW.Close()
		if err == nil {
			return w.cmd, w.statusR, w.first, nil
		}
		// It died waiting: start one now.
		<-w.ready
		w.statusR.Close()
		w.cmd.Wait()
	}
	cmd, statusR, _, err = s.spawn(false)
	if err != nil {
		return nil, nil, nil, err
	}
	first = func() (byte, bool) {
		var b [1]byte
		n, _ := statusR.Read(b[:])
		return b[0], n == 1
	}
	return cmd, statusR, first, nil
}

// waiting is a worker started ahead of a live upgrade (protocol.WaitEnv).
type waiting struct {
	cmd     *exec.Cmd
	statusR *os.File // its status pipe, read once it is the worker
	goW     *os.File // its wait pipe: protocol.GoByte starts it
	// ready is closed once it said its first byte (HelloByte), or died.
	ready     chan struct{}
	firstByte byte
	said      bool // it said a first byte
}

// first is the first byte it said on its status pipe, once it said it.
func (w *waiting) first() (byte, bool) {
	<-w.ready
	return w.firstByte, w.said
}

// nextStart is how long the old worker reads on while the next one
// starts: past it, the old one hands over all the same.
const nextStart = time.Second

// startNext starts the worker that takes over at a live upgrade, while
// the one it replaces hands over: its exec and start, about half of the
// time nobody reads the pipes, then overlap the handover. It waits for
// start, which the supervisor calls once the old worker has exited: the
// two never touch the sink, the spool or the files at once.
func (s *Supervisor) startNext() bool {
	if s.next != nil || s.finishing {
		return false
	}
	cmd, statusR, goW, err := s.spawn(true)
	if err != nil {
		return false // start starts one when needed, and says why it cannot
	}
	w := &waiting{cmd: cmd, statusR: statusR, goW: goW, ready: make(chan struct{})}
	go func() {
		var b [1]byte
		n, _ := statusR.Read(b[:])
		w.firstByte, w.said = b[0], n == 1
		close(w.ready)
	}()
	s.next = w
	return true
}

// dropNext lets a worker started ahead go, when no upgrade came of it:
// end of file on its wait pipe ends it, having touched nothing.
func (s *Supervisor) dropNext() {
	w := s.next
	if w == nil {
		return
	}
	s.next = nil
	w.goW.Close()
	go func() {
		<-w.ready
		w.statusR.Close()
		w.cmd.Wait()
	}()
}

// spawn starts a worker; ahead: one that waits (startNext), which counts
// the upgrade it is for.
func (s *Supervisor) spawn(ahead bool) (*exec.Cmd, *os.File, *os.File, error) {
	c := &s.c
	cmd := exec.Command(c.Exe, c.Args...)
	upgrades := c.Count.Upgrades.Load()
	if ahead {
		upgrades++
	}
	cmd.Env = protocol.WorkerEnv(c.Env, c.Count.Restarts.Load(), upgrades)
	if s.finishing {
		cmd.Env = append(cmd.Env, protocol.FinishEnv+"=1")
	}
	cmd.Stderr = c.Stderr
	files := make([]*os.File, 4, 6) // fds 3, 4, 5, 6 (7, 8)
	copy(files, c.Inputs)
	if len(c.Consoles) > 0 {
		files = append(files, c.Consoles...)
	}
	// Every worker gets a private ready pipe: it says hello on it once it
	// can take signals, then that it is ready (relayed to the platform
	// once).
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ready pipe: %w", err)
	}
	files[protocol.StatusFD-3] = readyW
	if s.ledger != nil {
		files[protocol.LedgerFD-3] = s.ledger.File()
	}
	var goR, goW *os.File
	if ahead {
		if goR, goW, err = os.Pipe(); err != nil {
			readyR.Close()
			readyW.Close()
			return nil, nil, nil, fmt.Errorf("wait pipe: %w", err)
		}
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", protocol.WaitEnv, 3+len(files)))
		files = append(files, goR)
	}
	cmd.ExtraFiles = files
	err = cmd.Start()
	readyW.Close()
	if goR != nil {
		goR.Close()
	}
	if err != nil {
		readyR.Close()
		if goW != nil {
			goW.Close()
		}
		return nil, nil, nil, err
	}
	return cmd, readyR, goW, nil
}

// readStatus reads a worker's private status pipe to its end: hello
// (closes hello), then the ready byte, which goes on to the platform once,
// then what the worker says later. Every byte after hello goes to said.
// first gives the first byte (a worker started ahead said it already).
func (s *Supervisor) readStatus(r *os.File, first func() (byte, bool), hello chan<- struct{}, said chan<- byte) {
	defer r.Close()
	var b [1]byte
	var ok bool
	if b[0], ok = first(); !ok {
		return // the worker died before it could take signals
	}
	if b[0] == protocol.HelloByte {
		close(hello)
		if n, _ := r.Read(b[:]); n != 1 {
			return // the worker died before it was ready; the next one will say
		}
	}
	for {
		if b[0] == protocol.ReadyByte {
			s.relayReady()
		}
		select {
		case said <- b[0]:
		default: // a worker says a few bytes in its life: never reached
		}
		if n, _ := r.Read(b[:]); n != 1 {
			return
		}
	}
}

// relayReady passes the first worker's ready byte on to the platform.
func (s *Supervisor) relayReady() {
	if s.c.Ready == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.relayed {
		return
	}
	s.relayed = true
	if err := s.c.Ready.Signal(); err != nil {
		s.c.Errors.Printf("%v", err)
	}
}

func wait(cmd *exec.Cmd) exit {
	err := cmd.Wait()
	ps := cmd.ProcessState
	if ps == nil {
		return exit{code: ExitFailure, crashed: true, describe: fmt.Sprintf("could not be waited for: %v", err)}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exit{code: 128 + int(ws.Signal()), crashed: true, signal: ws.Signal(),
			describe: fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())}
	}
	code := ps.ExitCode()
	switch code {
	case ExitOK, ExitFailure, ExitHandover:
		return exit{code: code, describe: fmt.Sprintf("exited %d", code)}
	}
	if code == ExitDriverFailed {
		return exit{code: code, crashed: true, describe: "gave up on its driver"}
	}
	// 2 is a Go panic or fatal error: the configuration was checked
	// before any worker started, so it cannot be a usage error.
	return exit{code: code, crashed: true, describe: fmt.Sprintf("exited %d", code)}
}

// killInit is the "suicide pact": SIGTERM to init, SIGKILL after Grace.
func (s *Supervisor) killInit() {
	c := &s.c
	pid := c.InitPID
	if pid == 0 {
		pid = os.Getppid()
	}
	if pid <= 1 && c.InitPID == 0 && hostInit() {
		// Our parent is gone and we were given to the host's init: never
		// kill that.
		c.Errors.Printf("kill-init: no init to kill (parent is the host's pid 1)")
		return
	}
	c.Errors.Printf("kill-init: SIGTERM to pid %d", pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		c.Errors.Printf("kill-init: %v", err)
		return
	}
	if waitGone(pid, c.Grace) {
		return
	}
	c.Errors.Printf("kill-init: pid %d still there after %v: SIGKILL", pid, c.Grace)
	syscall.Kill(pid, syscall.SIGKILL)
	if !waitGone(pid, c.Grace) {
		c.Errors.Printf("kill-init: pid %d survives SIGKILL (PID 1 of a namespace ignores signals it has no handler for, from inside it)", pid)
	}
}

// relief is the supervisor reading the pipes while no worker does.
type relief struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// startRelief keeps room in the pipes, in a mode that promises the
// application never blocks, until stopRelief: while a worker restarts
// after a crash, and across a live upgrade from the old worker's last
// read to the new one's first. The ledger says so, for the new worker to
// wait (protocol.Ledger.Relieving). Across an upgrade the gap is short
// and the old worker may have left a long line's peek window in a pipe:
// only what goes beyond that window is relieved (reliefUpgrade).
func (s *Supervisor) startRelief(level reliefLevel) {
	if !s.c.NeverBlock || s.relief != nil || (level == reliefUpgrade && !s.c.RelieveUpgrades) {
		return
	}
	rl := &relief{stop: make(chan struct{})}
	if flag := s.ledger.Relieving(); flag != nil {
		flag.Store(1)
	}
	for i, f := range s.c.Inputs {
		if f != nil && zfd.CanHangUp(f) {
			rl.wg.Add(1)
			go func() { defer rl.wg.Done(); s.relieve(i, f, level, rl.stop) }()
		}
	}
	s.relief = rl
}

// reliefLevel is when relieve drops, and down to what, in fractions of
// what a pipe surely holds (pipepeek.Held's limit): over limit/over it
// drops down to limit/down.
type reliefLevel struct{ over, down int }

var (
	// reliefCrash: a restart's backoff may be long.
	reliefCrash = reliefLevel{over: 4, down: 8}
	// reliefUpgrade: beyond a peek window, which a worker fills before
	// it cuts a long line.
	reliefUpgrade = reliefLevel{over: 1, down: 2}
)

// stopRelief ends what startRelief started and waits for it.
func (s *Supervisor) stopRelief() {
	rl := s.relief
	if rl == nil {
		return
	}
	close(rl.stop)
	rl.wg.Wait()
	s.relief = nil
	if flag := s.ledger.Relieving(); flag != nil {
		flag.Store(0)
	}
}

// maxRelievedTail is how far relieve looks (pipepeek.LineEnd) to finish
// the line it cut.
const maxRelievedTail = 64 << 10

// relieveEvery is how often a pipe is looked at while no worker runs.
const relieveEvery = 5 * time.Millisecond

// relieve keeps an input pipe from filling while no worker reads it (in a
// mode that never blocks the application): whenever it holds more than a
// fraction of what it can surely hold (see pipepeek.Peek.Window), the oldest
// bytes go, down to a smaller one and on to the end of the line they cut (up
// to maxRelievedTail more), counted as dropped for the next worker to
// report (the ledger's carried drops). Only a line longer than that
// reaches the next worker without its start, counted dropped as well.
func (s *Supervisor) relieve(stream int, f *os.File, level reliefLevel, stop <-chan struct{}) {
	buf := make([]byte, 64<<10)
	t := time.NewTicker(relieveEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		held, limit := pipepeek.Held(f)
		if held <= limit/level.over {
			continue
		}
		var newlines, dropped, maybe int64
		var handed int64 // bytes at the front a dead worker handed over
		if h := s.ledger.Handed(stream); h != nil {
			handed = h.Load()
		}
		last := byte('\n')
		for left := held - limit/level.down; left > 0; {
			n, err := f.Read(buf[:min(left, len(buf))])
			newlines += int64(bytes.Count(buf[:n], []byte{'\n'}))
			maybe += handedLines(buf[:n], &handed)
			dropped += int64(n)
			if n > 0 {
				last = buf[n-1]
			}
			left -= n
			if err != nil || n == 0 {
				break
			}
		}
		s.consumedByRelief(stream, dropped)
		// Finish the line that was cut, from what the pipe holds, so
		// that the next worker starts on a whole line.
		if last != '\n' {
			if n, _, err := pipepeek.LineEnd(f, maxRelievedTail); err == nil && n > 0 {
				n, _ = io.ReadFull(f, buf[:n]) // all held: it does not wait
				dropped += int64(n)
				maybe += handedLines(buf[:n], &handed)
				s.consumedByRelief(stream, int64(n))
				if n > 0 {
					last = buf[n-1]
				}
				if last == '\n' {
					newlines++
				}
			}
		}
		lines := newlines
		if last != '\n' {
			lines++ // cut: its tail reaches the next worker as a line of its own
		}
		bytesDropped := dropped - newlines
		// The line the last worker was cutting into partial messages is
		// gone (or cut): the next one starts a new partial id.
		s.ledger.SavePartial(stream, "", 0, 0)
		if m := s.ledger.MaybeDelivered(); m != nil && maybe > 0 {
			m.Add(maybe)
		}
		if cl, cb := s.ledger.CarriedDrops(); cl != nil {
			// The next worker reports them, with its own counts.
			cl.Add(lines)
			cb.Add(bytesDropped)
		} else {
			s.c.Count.Drop(diag.LoggerDown, lines, bytesDropped)
		}
	}
}

// handedLines counts the messages in b, just read from the front of a
// pipe, that lie in the first *handed bytes, and takes b from *handed: a
// dead worker handed them over and may have delivered them, so counting
// them dropped may count them twice (never lose them: a driver that
// batches may have held them in the dead worker's memory).
func handedLines(b []byte, handed *int64) int64 {
	k := int(min(*handed, int64(len(b))))
	if k <= 0 {
		return 0
	}
	*handed -= int64(k)
	n := int64(bytes.Count(b[:k], []byte{'\n'}))
	if *handed == 0 && b[k-1] != '\n' {
		n++ // a part of a long line, handed over without its newline
	}
	return n
}

// consumedByRelief keeps the ledger true to the pipe after relieve took n
// bytes from its front: the stream's offset moves on (partial ids are
// named by it), and bytes a dead worker had handed over are no longer
// there for the next one to deliver again.
func (s *Supervisor) consumedByRelief(stream int, n int64) {
	if c := s.ledger.Consumed(stream); c != nil {
		c.Add(n)
	}
	if h := s.ledger.Handed(stream); h != nil {
		h.Store(max(0, h.Load()-n))
	}
}

// drain reads every input to EOF, counting what it throws away, so a
// logger that cannot log never blocks the application.
func (s *Supervisor) drain() int {
	c := &s.c
	var wg sync.WaitGroup
	names := []string{"stdout", "stderr"}
	for i, f := range c.Inputs {
		if f == nil {
			continue
		}
		wg.Add(1)
		go func(name string, f *os.File) {
			defer wg.Done()
			st := c.Count.Stream(name)
			buf := make([]byte, 64<<10)
			for {
				n, err := f.Read(buf)
				lines := int64(0)
				for _, b := range buf[:n] {
					if b == '\n' {
						lines++
					}
				}
				st.Lines.Add(lines)
				st.Bytes.Add(int64(n) - lines)
				c.Count.Drop(diag.LoggerFailed, lines, int64(n)-lines)
				if err != nil {
					return
				}
			}
		}(names[i], f)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return ExitFailure
		case sig := <-c.Signals:
			if sig == syscall.SIGUSR1 {
				c.Stats(c.Count.Line())
			}
		}
	}
}
