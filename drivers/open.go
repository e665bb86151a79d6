package drivers

import (
	"errors"
	"sync"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/backoff"
	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/capability"
)

// ErrNotOpen is returned by Log when the driver could not be created before
// Close gave up on it.
var ErrNotOpen = errors.New("log driver never came up")

// Driver is a Docker driver that is created in the background, retried with
// backoff while creation fails (a sink that is down at start must not stop
// the container from starting). Log waits until the driver is up.
type Driver struct {
	name    string
	create  logger.Creator
	info    logger.Info
	report  func(error)
	up      chan struct{} // closed once l is set
	first   chan struct{} // closed once the first attempt has ended
	stop    chan struct{} // closed by Close or Abandon
	stopped sync.Once
	done    chan struct{} // closed when the creating goroutine ends
	l       logger.Logger
	// count, when set, is told what a buffering driver wrote or lost;
	// accounted says l reports it (set before up is closed).
	count     *diag.Counters
	accounted bool
	spool     bool // mode=spool (see fileAccounting)
	// logMu hands the driver one message at a time: stdout and stderr
	// are read concurrently, and Docker's drivers need not be safe for
	// concurrent Log calls (its splunk driver's raw format was not).
	logMu sync.Mutex
}

// Driver passes on what the driver it wraps can say (Flush, Pending,
// Resent, below).
var (
	_ capability.Flusher         = (*Driver)(nil)
	_ capability.PendingLogger   = (*Driver)(nil)
	_ capability.ResendingLogger = (*Driver)(nil)
	_ capability.MarkerLogger    = (*Driver)(nil)
)

// Backoff bounds the wait between attempts to create a driver. firstWait
// bounds how long Open waits for its first attempt: some drivers take a
// minute to fail against a sink that does not answer (gcplogs pings with
// the Google client's 60 s deadline), and the container must not wait for
// that to start.
var (
	firstWait  = 2 * time.Second
	firstRetry = 100 * time.Millisecond
	maxRetry   = 5 * time.Second
)

// Open validates nothing (call Validate first) and starts creating the
// driver. It returns when the driver is up, when the first attempt has
// failed, or after firstWait, whichever comes first. Each failed attempt is
// passed to report, and the driver is retried in the background until it
// is up or Close is called.
func Open(c *config.Config, report func(error)) (*Driver, error) {
	d, err := Start(c, nil, report)
	if err != nil {
		return nil, err
	}
	d.WaitFirst()
	return d, nil
}

// Start is Open for a worker that counts, without the wait: the worker
// reads into its ring or spool while the first attempt runs, and waits
// for it (WaitFirst) only to say it is ready. A driver that buffers what
// it takes (json-file and local) then counts a line as delivered only
// once it is written, and as dropped when it cannot be (see
// fileAccounting).
func Start(c *config.Config, count *diag.Counters, report func(error)) (*Driver, error) {
	create, err := Creator(c.Driver)
	if err != nil {
		return nil, err
	}
	info := Info(c)
	// The tag as --validate rendered it (Validate calls the same).
	if err := renderTag(c.Driver, &info); err != nil {
		return nil, err
	}
	d := &Driver{name: c.Driver, create: create, info: info, report: report, count: count, spool: c.Options.Mode == config.Spool,
		up: make(chan struct{}), first: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d, nil
}

// WaitFirst returns when the driver is up, when its first attempt has
// failed, or after firstWait, whichever comes first.
func (d *Driver) WaitFirst() {
	t := time.NewTimer(firstWait)
	defer t.Stop()
	select {
	case <-d.first:
	case <-t.C:
	}
}

func (d *Driver) try() bool {
	l, err := d.create(d.info)
	if err != nil {
		d.report(err)
		return false
	}
	if a, ok := l.(capability.AccountedLogger); ok && d.count != nil {
		a.SetAccounting(fileAccounting{c: d.count, spool: d.spool})
		d.accounted = true
	}
	if g, ok := l.(capability.GivingUpLogger); ok && d.count != nil {
		count := d.count
		g.OnGiveUp(func(lines, bytes int64) {
			count.Delivered.Add(-lines)
			count.DeliveredBytes.Add(-bytes)
			count.Drop(diag.DriverGaveUp, lines, bytes)
		})
	}
	if r, ok := l.(capability.DroppingLogger); ok && d.count != nil {
		count := d.count
		r.OnDrop(func(reason string, lines, bytes int64) {
			count.Delivered.Add(-lines)
			count.DeliveredBytes.Add(-bytes)
			count.Drop(reason, lines, bytes)
		})
	}
	d.l = l
	close(d.up)
	return true
}

// fileAccounting counts what a driver that buffers (package filelog)
// really wrote. The delivery modes count a line as delivered when the
// driver takes it; Driver.log takes it back from delivered at once for
// such a driver, and it counts as delivered only here, once the write(2)
// that holds it succeeded, or as dropped when the driver gives up on it
// (a full disk at exit).
//
// In spool mode a line the driver gives up on is not lost: the spool
// frees a record only once the driver's Flush has written it, so the line
// is still on disk, and the next worker or logger on the spool-dir
// delivers it. It counts as left in the spool (lines_spooled), as Drain
// counts what it leaves; counted dropped it would be counted twice.
type fileAccounting struct {
	c     *diag.Counters
	spool bool
}

func (a fileAccounting) Written(lines, bytes int64) {
	a.c.Delivered.Add(lines)
	a.c.DeliveredBytes.Add(bytes)
}

func (a fileAccounting) Lost(lines, bytes int64, reason string) {
	if a.spool {
		a.c.AddSpooled(lines)
		return
	}
	a.c.Drop(reason, lines, bytes)
}

// run creates the driver, retrying with backoff until it is up or Close
// gives up on it; first is closed when the first attempt has ended.
func (d *Driver) run() {
	defer close(d.done)
	wait := backoff.New(firstRetry, maxRetry)
	for attempt := 0; ; attempt++ {
		up := d.try()
		if attempt == 0 {
			close(d.first)
		}
		if up || !wait.Wait(d.stop) {
			return
		}
	}
}

// Up is closed once the driver has been created.
func (d *Driver) Up() <-chan struct{} { return d.up }

// Log waits until the driver is up and hands it msg. It owns msg.
func (d *Driver) Log(msg *logger.Message) error { return d.whenUp(msg, d.log) }

// LogMarker is Log for a drop marker: a driver that counts what it holds
// (capability.MarkerLogger) leaves it out of its counts.
func (d *Driver) LogMarker(msg *logger.Message) error {
	return d.whenUp(msg, func(msg *logger.Message) error {
		m, ok := d.l.(capability.MarkerLogger)
		if !ok {
			return d.log(msg)
		}
		d.logMu.Lock()
		defer d.logMu.Unlock()
		return m.LogMarker(msg)
	})
}

// whenUp waits until the driver is up and calls log with msg.
func (d *Driver) whenUp(msg *logger.Message, log func(*logger.Message) error) error {
	select {
	case <-d.up:
		return log(msg)
	default:
	}
	select {
	case <-d.up:
		return log(msg)
	case <-d.stop:
		select {
		case <-d.up: // up and stopped at once: deliver
			return log(msg)
		default:
		}
		logger.PutMessage(msg)
		return ErrNotOpen
	}
}

func (d *Driver) log(msg *logger.Message) error {
	n := int64(len(msg.Line)) // msg is the driver's once Log is called
	d.logMu.Lock()
	defer d.logMu.Unlock()
	err := d.l.Log(msg)
	if err == nil && d.accounted {
		// Taken into the driver's buffer, not yet written: the mode
		// counts it as delivered when this returns; fileAccounting
		// counts it when it is written.
		d.count.Delivered.Add(-1)
		d.count.DeliveredBytes.Add(-n)
	}
	return err
}

// Flush flushes a driver that buffers.
func (d *Driver) Flush() error {
	select {
	case <-d.up:
		if f, ok := d.l.(capability.Flusher); ok {
			d.logMu.Lock()
			defer d.logMu.Unlock()
			return f.Flush()
		}
	default:
	}
	return nil
}

// WritesFiles reports whether the driver writes files itself (json-file,
// local: capability.AccountedLogger): a process that exits in the middle
// of one of its writes leaves a partial record in the file.
func (d *Driver) WritesFiles() bool {
	select {
	case <-d.up:
		return d.accounted
	default:
		return false
	}
}

// Flushes reports whether the driver is up and says, when Flush returns,
// that what it took was written or sent (capability.Flusher): the spool
// frees a record only then, so what such a driver holds is still in it.
func (d *Driver) Flushes() bool {
	select {
	case <-d.up:
		_, ok := d.l.(capability.Flusher)
		return ok
	default:
		return false
	}
}

// Pending returns what the driver accepted but still holds unsent, for
// drivers that can say (fluentd with fluentd-async): lost if the logger
// must exit now.
func (d *Driver) Pending() (lines, bytes int64) {
	select {
	case <-d.up:
	default:
		return 0, 0
	}
	if p, ok := d.l.(capability.PendingLogger); ok {
		return p.Pending()
	}
	return 0, 0
}

// Held returns what the driver holds that a killed worker loses: what
// it sends later (Pending) and what a driver that buffers took and has
// not written (capability.UnwrittenLogger), which Pending leaves out, as
// such a driver counts its lines itself, once written or given up.
func (d *Driver) Held() (lines, bytes int64) {
	lines, bytes = d.Pending()
	select {
	case <-d.up:
	default:
		return lines, bytes
	}
	if u, ok := d.l.(capability.UnwrittenLogger); ok {
		l, b := u.Unwritten()
		lines, bytes = lines+l, bytes+b
	}
	return lines, bytes
}

// Resent returns the lines the driver sent again after its connection
// broke before they were acknowledged (syslog over RELP): they may arrive
// twice.
func (d *Driver) Resent() int64 {
	select {
	case <-d.up:
	default:
		return 0
	}
	if r, ok := d.l.(capability.ResendingLogger); ok {
		return r.Resent()
	}
	return 0
}

// Name is the driver's name.
func (d *Driver) Name() string { return d.name }

// Abandon stops waiting for a driver that is not up: Log returns
// ErrNotOpen from then on instead of waiting.
func (d *Driver) Abandon() {
	d.stopped.Do(func() { close(d.stop) })
}

// Close stops any retrying and closes the driver if it is up, which
// flushes what it buffers.
func (d *Driver) Close() error { return d.close(false) }

// CloseHandingOver is Close at a live upgrade: a driver whose Close waits
// for work the next worker redoes does not wait for it
// (capability.HandoverCloser).
func (d *Driver) CloseHandingOver() error { return d.close(true) }

func (d *Driver) close(handingOver bool) error {
	d.Abandon()
	select {
	case <-d.up:
		var err error
		if hc, ok := d.l.(capability.HandoverCloser); ok && handingOver {
			err = hc.CloseHandingOver()
		} else {
			err = d.l.Close()
		}
		waitAfterClose(d.name)
		return err
	default:
		// An attempt still in flight (a gcplogs ping can take a minute)
		// is left to the process's exit: nothing was logged to it.
		return nil
	}
}
