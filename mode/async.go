package mode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/backend"
	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/backoff"
	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/ring"
	"github.com/joyent/dockerlogger/spool"
)

// AsyncConfig configures the non-blocking and spool modes. The sizes and
// names are the log-opts of the same names (config.Options).
type AsyncConfig struct {
	Mode          string // "non-blocking" or "spool"
	MaxBufferSize int64  // non-blocking: bytes of the ring
	BufferFull    config.BufferFull
	SpoolDir      string
	SpoolMaxSize  int64
	SpoolSync     config.SpoolSync
	// LineMax is the line-max log-opt: the spool takes a record length
	// read from disk that claims more as corruption.
	LineMax int64
	// Replayed, if set, is where lines the spool hands out again (an
	// earlier process had handed them to the driver, and may have
	// delivered them) are added: the ledger's lines_replayed, shared
	// with the next worker. Else they go to Count.Replayed.
	Replayed *atomic.Int64

	Driver Driver
	Count  *diag.Counters
	Errors *diag.Errors
	// DropMarker: after a loss, log one line on the stream that lost
	// lines, saying how many lines and bytes and between which times.
	DropMarker bool
	// HeldLines and HeldBytes, if set, always hold what the ring has
	// taken and not yet delivered or dropped: kept where the next worker
	// can read them (protocol.Ledger), so that a worker that dies does not
	// lose its ring uncounted. Non-blocking mode only.
	HeldLines, HeldBytes *atomic.Int64
	// DriverHeldLines and DriverHeldBytes, if set, hold at least what
	// the driver took from the ring and has not sent (DriverPending: a
	// batch, fluentd-async), for the same reason: a line the ring let go
	// of is still in the worker's memory until then.
	DriverHeldLines, DriverHeldBytes *atomic.Int64
	DriverPending                    func() (lines, bytes int64)
	// DriverQueued, if set, says what the driver holds to send on its own
	// (capability.PendingLogger): the consumer hands it nothing more
	// while that passes driverQueueMax. Not what a driver that buffers
	// writes holds (Unwritten): the consumer's own Flush writes that.
	DriverQueued func() (lines, bytes int64)
}

// driverQueueMax bounds the line bytes a driver holds unsent
// (AsyncConfig.DriverQueued) before the consumer hands it more. A driver
// with a queue of its own would otherwise take whatever the ring or the
// spool holds into the Go heap while its sink is down: fluentd-async
// queues a million messages by default (840 MiB of 16 KiB lines measured
// over a 64 MiB ring), and otlp's and loki's batches come on top of the
// ring too. Held back here, the lines wait in the ring (which drops the
// oldest, counted) or on disk.
//
// A queued message costs more than its line: the driver's encoding and
// its own structures, about driverMessageCost bytes besides the line.
const (
	driverQueueMax    = 1 << 20
	driverMessageCost = 512
)

// Async puts messages in a queue — a memory ring (non-blocking) or a
// disk spool (spool) — and one goroutine of its own hands them to the
// driver, retrying with backoff while the driver fails. The reader never
// waits for the driver, only (with buffer-full=block) for room.
//
// A message larger than the whole ring (or spool) is dropped and counted
// with reason "too-large": it can never be held, and cutting it would
// deliver a line that was never written.
type Async struct {
	cfg   AsyncConfig
	ring  *ring.Ring
	spool *spool.Spool
	seq   [2]atomic.Uint64 // per stream (stdout, stderr): records offered
	bufs  sync.Pool
	stop  chan struct{} // closed when Drain gives up: stop retrying
	done  chan struct{} // closed when the consumer goroutine ends
	once  sync.Once
	// driverHeld records what the driver holds (RefreshDriverHeld).
	driverHeld *HeldRecord
	// refusing: see RefusingSince.
	refusing refusals
	// Refusing is poked when the driver starts refusing every message:
	// an idle worker sleeps on it (see RefusingSince).
	Refusing diag.Waker

	mu   sync.Mutex
	gaps [2][]gap // losses not yet reported by a marker, per stream

	dropLines, dropBytes [2]atomic.Int64
	spooled              atomic.Int64 // lines in the spool, not yet delivered
	// appending is held by LogBorrowed around its Append and count, and
	// by the final count of what is left in the spool: a line is then
	// either in the spool and in spooled, or refused and dropped, never
	// both or neither.
	appending sync.Mutex
	// leaving: a handover began (HandOver, Leave); a line that finds the
	// spool full or closed is the next worker's, if its reader can leave
	// it in the pipe (LogOrLeave).
	leaving           atomic.Bool
	markers           atomic.Int64
	replayed          atomic.Int64
	corrupt, corruptB atomic.Int64
}

// gap is a run of lost messages of one stream.
type gap struct {
	from, to     uint64 // ring mode: the stream's seqs lost
	lines, bytes int64
	t1, t2       int64 // the lost messages' timestamps, Unix ns
	why          string
}

// NewAsync opens the queue (for spool: creates and locks the directory)
// and starts delivering. The caller hands messages to Log and, at the end
// of the input, calls Drain before closing the driver.
func NewAsync(c AsyncConfig) (*Async, error) {
	a := &Async{cfg: c, stop: make(chan struct{}), done: make(chan struct{}),
		driverHeld: &HeldRecord{Lines: c.DriverHeldLines, Bytes: c.DriverHeldBytes, Held: c.DriverPending}}
	switch c.Mode {
	case "non-blocking":
		p := ring.DropOldest
		switch c.BufferFull {
		case config.DropNewest:
			p = ring.DropNewest
		case config.BlockFull:
			p = ring.Block
		}
		size := c.MaxBufferSize
		if size <= 0 {
			size = 1 << 20
		}
		if size > math.MaxInt32 {
			return nil, fmt.Errorf("log-opt max-buffer-size=%d: larger than 2g", size)
		}
		a.ring = ring.New(int(size), p, a.ringDrop)
		go a.consumeRing()
	case "spool":
		o := spool.Options{Dir: c.SpoolDir, MaxSize: c.SpoolMaxSize, LineMax: c.LineMax, Drop: a.spoolDrop, Corrupt: a.spoolCorrupt,
			OnWait: func(err error) { c.Errors.Printf("%v", err) }}
		// The values were checked by config: whatever else stays at
		// the default (drop-oldest, interval).
		switch c.BufferFull {
		case config.DropNewest:
			o.Policy = spool.DropNewest
		case config.BlockFull:
			o.Policy = spool.Block
		}
		switch c.SpoolSync {
		case config.SyncAlways:
			o.Sync = spool.SyncAlways
		case config.SyncNever:
			o.Sync = spool.SyncNever
		}
		sp, err := spool.Open(o)
		if err != nil {
			return nil, err
		}
		a.spool = sp
		a.spooled.Store(sp.Unacked())
		c.Count.BufferBytes.Store(sp.Len())
		go a.consumeSpool()
	default:
		return nil, fmt.Errorf("mode %q is not an asynchronous mode", c.Mode)
	}
	return a, nil
}

func streamIndex(source string) int {
	if source == "stderr" {
		return 1
	}
	return 0
}

var streamName = [2]string{"stdout", "stderr"}

// droppedKey names the per-stream drop counters (lines, bytes), made once
// rather than on each drop.
var droppedKey = [2][2]string{{"stdout_lines_dropped", "stdout_bytes_dropped"}, {"stderr_lines_dropped", "stderr_bytes_dropped"}}

// Log queues msg (which it owns) and returns at once, unless the policy
// is block and the queue is full. A message that is dropped is counted;
// Log returns nil either way, as the reader has nothing to do about it.
func (a *Async) Log(msg *logger.Message) error {
	err := a.LogBorrowed(msg)
	logger.PutMessage(msg)
	return err
}

// LogBorrowed is Log of a message the caller keeps: the ring and the
// spool copy its line straight from the reader's buffer.
func (a *Async) LogBorrowed(msg *logger.Message) error { return a.logBorrowed(msg, false) }

// LogOrLeave is LogBorrowed for a reader that can leave a message in its
// pipe (reader.Leaver): a spool closed for a handover (Leave) refuses it
// uncounted, with an error that says so, and the next worker reads it
// again. Blocked on a full spool with buffer-full=block when the
// handover came, it would otherwise be lost.
func (a *Async) LogOrLeave(msg *logger.Message) error { return a.logBorrowed(msg, true) }

// HandOver readies a spool-mode run for a handover: a reader waiting for
// room in a full spool (buffer-full=block) stops waiting and leaves its
// line in its pipe (LogOrLeave), so that it ends, as a handover needs,
// even with the sink down. Lines that find room are spooled as before.
func (a *Async) HandOver() {
	if a.spool == nil {
		return
	}
	a.leaving.Store(true)
	a.spool.Release()
}

func (a *Async) logBorrowed(msg *logger.Message, canLeave bool) error {
	if a.ring != nil {
		a.logRing(msg)
		return nil
	}
	i := streamIndex(msg.Source)
	rec := spool.Record{Stderr: i == 1, Time: msg.Timestamp.UnixNano(), Line: msg.Line}
	if p := msg.PLogMetaData; p != nil {
		rec.Partial, rec.Last, rec.Ordinal, rec.ID = true, p.Last, int32(p.Ordinal), p.ID
	}
	a.appending.Lock()
	defer a.appending.Unlock()
	a.spooled.Add(1)
	err := a.spool.Append(&rec)
	if err != nil {
		a.spooled.Add(-1)
		// Refused by a spool closing (or no longer waiting for room)
		// for a handover, or closed past close-timeout.
		why := diag.CloseTimeout
		if a.leaving.Load() {
			if canLeave {
				return errLeft{}
			}
			why = diag.SpoolClosed
		}
		a.lost(i, 0, 1, int64(len(rec.Line)), rec.Time, why)
	}
	return err
}

// logRing is LogBorrowed in non-blocking mode. Its record stays on the
// stack (the spool's Append would move it to the heap): a full ring takes
// millions of short lines a second, and each allocation is collector
// work. The record's header is framed apart and its line copied once,
// from where the reader holds it into the ring: at a large line-max a
// copy is the size of the line.
func (a *Async) logRing(msg *logger.Message) {
	i := streamIndex(msg.Source)
	rec := spool.Record{Stderr: i == 1, Time: msg.Timestamp.UnixNano(), Line: msg.Line}
	if p := msg.PLogMetaData; p != nil {
		rec.Partial, rec.Last, rec.Ordinal, rec.ID = true, p.Last, int32(p.Ordinal), p.ID
	}
	a.hold(1, int64(len(rec.Line)))
	rec.Seq = a.seq[i].Add(1)
	bp, _ := a.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = spool.AppendHeader((*bp)[:0], &rec)
	a.ring.PutParts(*bp, rec.Line)
	a.bufs.Put(bp)
	_, n := a.ring.Len()
	a.cfg.Count.BufferBytes.Store(int64(n))
}

// Flush writes what the spool buffered (the spool fsyncs beside it).
// FlushOrLeave is Flush (reader.Leaver): what the ring or spool took is
// this worker's to deliver or count.
func (a *Async) FlushOrLeave() error { return a.Flush() }

func (a *Async) Flush() error {
	if a.spool == nil {
		return nil
	}
	err := a.spool.Flush()
	if err != nil {
		a.cfg.Errors.Printf("%v", err)
	}
	a.cfg.Count.BufferBytes.Store(a.spool.Len())
	return err
}

// ringDrop is told by the ring of every record it drops (head followed
// by tail): what it needs is in the record's first bytes.
func (a *Async) ringDrop(head, tail []byte, why string) {
	if why == ring.Closed { // a reader still going after Drain began
		why = "close-timeout"
	}
	var meta [spool.MaxOverhead]byte
	n := copy(meta[:], head)
	n += copy(meta[n:], tail)
	rec, lineLen, err := spool.DecodeMeta(meta[:n])
	if err != nil { // cannot happen: we encoded it
		a.cfg.Count.Drop(why, 1, 0)
		return
	}
	a.lost(streamIndex(streamOf(&rec)), rec.Seq, 1, int64(lineLen), rec.Time, why)
}

func (a *Async) spoolDrop(rec *spool.Record, why string) {
	a.spooled.Add(-1)
	a.lost(streamIndex(streamOf(rec)), 0, 1, int64(len(rec.Line)), rec.Time, why)
}

func (a *Async) spoolCorrupt(n int64, err error) {
	a.cfg.Errors.Printf("spool: skipped %d bytes: %v", n, err)
	a.cfg.Count.Set("spool_corrupt_records", strconv.FormatInt(a.corrupt.Add(1), 10))
	a.cfg.Count.Set("spool_corrupt_bytes", strconv.FormatInt(a.corruptB.Add(n), 10))
}

func streamOf(r *spool.Record) string {
	if r.Stderr {
		return "stderr"
	}
	return "stdout"
}

// lost counts a loss and remembers it for the next marker.
func (a *Async) lost(i int, seq uint64, lines, bytes, ts int64, why string) {
	if a.ring != nil {
		a.hold(-lines, -bytes)
	}
	a.cfg.Count.Drop(why, lines, bytes)
	a.cfg.Count.Set(droppedKey[i][0], strconv.FormatInt(a.dropLines[i].Add(lines), 10))
	a.cfg.Count.Set(droppedKey[i][1], strconv.FormatInt(a.dropBytes[i].Add(bytes), 10))
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.gaps[i]
	if n := len(g); n > 0 && g[n-1].why == why && (a.ring == nil || g[n-1].to+1 == seq) {
		l := &g[n-1]
		l.to = seq
		l.lines += lines
		l.bytes += bytes
		l.t1, l.t2 = min(l.t1, ts), max(l.t2, ts)
		return
	}
	a.gaps[i] = append(g, gap{from: seq, to: seq, lines: lines, bytes: bytes, t1: ts, t2: ts, why: why})
}

// markGaps delivers a marker for the losses of stream i that came before
// its message seq (the ring knows exactly where each loss was; the spool
// reports its losses where delivery resumes: pass math.MaxUint64).
func (a *Async) markGaps(i int, before uint64) bool {
	a.mu.Lock()
	var take []gap
	g := a.gaps[i]
	n := 0
	for n < len(g) && g[n].to < before {
		n++
	}
	if n > 0 {
		take = append(take, g[:n]...)
		a.gaps[i] = append(g[:0], g[n:]...)
	}
	a.mu.Unlock()
	if len(take) == 0 || !a.cfg.DropMarker {
		return true
	}
	m := take[0]
	for _, t := range take[1:] {
		m.lines += t.lines
		m.bytes += t.bytes
		m.t1, m.t2 = min(m.t1, t.t1), max(m.t2, t.t2)
		if t.why != m.why {
			m.why = "buffer-full"
		}
	}
	line := fmt.Sprintf("dockerlogger: dropped %d lines (%d bytes) from %s between %s and %s: %s",
		m.lines, m.bytes, streamName[i],
		time.Unix(0, m.t1).UTC().Format(time.RFC3339Nano), time.Unix(0, m.t2).UTC().Format(time.RFC3339Nano),
		reasonText[m.why])
	// Stamped with the read time of the last line lost, not now: the lines
	// still held were read after it, and a stream whose times go back is
	// refused by Loki (an entry older than its stream's last: 400).
	rec := spool.Record{Stderr: i == 1, Time: m.t2, Line: []byte(line)}
	if !a.deliverAs(&rec, true) {
		return false
	}
	a.cfg.Count.Set("drop_markers", strconv.FormatInt(a.markers.Add(1), 10))
	return true
}

var reasonText = map[string]string{
	ring.Full:        "buffer full",
	ring.TooLarge:    "line larger than the buffer",
	spool.WriteError: "spool write error",
	"spool-closed":   "spool closed",
	"close-timeout":  "close-timeout reached",
}

// markAll reports every loss not reported yet: the queue is empty, so
// nothing delivered later came before them.
func (a *Async) markAll() bool {
	return a.markGaps(0, math.MaxUint64) && a.markGaps(1, math.MaxUint64)
}

// deliver hands rec to the driver, retrying with backoff until it is
// accepted (true) or Drain gives up (false).
func (a *Async) deliver(rec *spool.Record) bool { return a.deliverAs(rec, false) }

// markerDriver is a driver that takes drop markers apart
// (drivers.Driver, for a capability.MarkerLogger): a marker is a line the
// logger made, never read, so never counted delivered or dropped.
type markerDriver interface {
	LogMarker(*logger.Message) error
}

// deliverAs is deliver, for a drop marker when marker is set.
func (a *Async) deliverAs(rec *spool.Record, marker bool) bool {
	if !a.waitDriverRoom(len(rec.Line)) {
		return false
	}
	wait := backoff.New(firstBackoff, maxBackoff)
	for {
		msg := logger.NewMessage()
		msg.Line = append(msg.Line[:0], rec.Line...)
		msg.Source = streamOf(rec)
		msg.Timestamp = time.Unix(0, rec.Time).UTC()
		if rec.Partial {
			msg.PLogMetaData = &backend.PartialLogMetaData{ID: rec.ID, Ordinal: int(rec.Ordinal), Last: rec.Last}
		}
		var err error // the driver owns msg now, even on error
		if md, ok := a.cfg.Driver.(markerDriver); ok && marker {
			err = md.LogMarker(msg)
		} else {
			err = a.cfg.Driver.Log(msg)
		}
		if err == nil {
			a.refusing.accepted()
			return true
		}
		select {
		case <-a.stop:
			// Stopped (a handover, a deadline) while the driver was
			// not up: the caller leaves the line to whoever comes next.
			return false
		default:
		}
		if a.refusing.refused() {
			a.Refusing.Poke()
		}
		a.cfg.Count.DriverErrors.Add(1)
		d := wait.Next()
		a.cfg.Errors.Printf("deliver %s line: %v (retrying in %v)", streamOf(rec), err, d)
		if !backoff.Sleep(d, a.stop) {
			return false
		}
		a.cfg.Count.Retries.Add(1)
	}
}

// waitDriverRoom waits while the driver holds so much unsent that a line
// of n bytes would take it past driverQueueMax (a driver that holds
// nothing takes any line), and reports false if the consumer was stopped
// meanwhile. It flushes the driver once, then polls, from a millisecond
// up to the delivery retries' longest wait: the drivers say what they
// hold, not when it goes.
func (a *Async) waitDriverRoom(n int) bool {
	if a.cfg.DriverQueued == nil {
		return true
	}
	wait := backoff.New(time.Millisecond, maxBackoff)
	flushed := false
	for {
		l, b := a.cfg.DriverQueued()
		if l == 0 || b+(l+1)*driverMessageCost+int64(n) <= driverQueueMax {
			return true
		}
		if !flushed {
			// Have it send what it holds now: a driver that batches
			// (otlp, loki, splunk) sends a batch once it reaches its own
			// size, which this may stop short of, or after its wait.
			// Its errors it reports itself.
			flushed = true
			a.cfg.Driver.Flush()
			continue
		}
		if !backoff.Sleep(wait.Next(), a.stop) {
			return false
		}
	}
}

// RefusingSince returns when the driver began refusing every message the
// queue hands it, or the zero time if its last answer was a success. Not
// a failure of the worker (failure-timeout): the queue is there to ride
// out a sink that is down. But with buffer-full=block a full queue holds
// the readers, so a container gone meanwhile is not seen at EOF: the
// worker looks at this and at its inputs' hang-up instead.
func (a *Async) RefusingSince() time.Time { return a.refusing.since() }

// hold adds to what the ring holds (negative: lets go of it).
func (a *Async) hold(lines, bytes int64) {
	if a.cfg.HeldLines != nil {
		a.cfg.HeldLines.Add(lines)
		a.cfg.HeldBytes.Add(bytes)
	}
}

// RefreshDriverHeld records what the driver holds unsent now (see
// AsyncConfig.DriverHeldLines): after each delivery, and when the worker
// looks whether it is idle, as the driver sends on its own.
func (a *Async) RefreshDriverHeld() { a.driverHeld.Refresh() }

// DriverHeldCounted says that the worker has counted what the driver
// holds (dropped, spooled or left, when it goes on without the driver):
// the next worker must not count it again as lost with this one (what
// RefreshDriverHeld recorded is cleared, and a consumer still in a driver
// call records nothing more). Called after those counts, which live in
// memory the next worker shares: a kill in between counts the lines
// twice, never not at all. Not after a Close that returned: the worker
// takes the record again then (RefreshDriverHeld), so that what the
// driver sent meanwhile is not counted and what it still says it holds
// (one that let go of its queue without sending it) is.
func (a *Async) DriverHeldCounted() { a.driverHeld.Counted() }

func (a *Async) delivered(rec *spool.Record) {
	if a.ring != nil {
		// Held by the driver before the ring lets go of it: a worker
		// killed in between counts the line twice, never not at all.
		a.RefreshDriverHeld()
		a.hold(-1, -int64(len(rec.Line)))
	} else {
		// Held by a driver that does not flush before the spool lets go
		// of it (acknowledged after the batch), for the same reason.
		a.RefreshDriverHeld()
		a.spooled.Add(-1)
	}
	a.cfg.Count.Delivered.Add(1)
	a.cfg.Count.DeliveredBytes.Add(int64(len(rec.Line)))
}

func (a *Async) consumeRing() {
	defer close(a.done)
	var buf []byte
	for {
		b, ok := a.ring.TryGet(buf[:0])
		if !ok {
			// Caught up: report losses, flush a buffering driver.
			if !a.markAll() {
				return
			}
			a.flushDriver()
			a.RefreshDriverHeld()
			var err error
			if b, err = a.ring.Get(context.Background(), buf[:0]); err != nil {
				a.markAll()
				return
			}
		}
		buf = b
		_, n := a.ring.Len()
		a.cfg.Count.BufferBytes.Store(int64(n))
		rec, _, err := spool.Decode(b)
		if err != nil { // cannot happen: we encoded it
			a.cfg.Errors.Printf("ring: %v", err)
			continue
		}
		if !a.markGaps(streamIndex(streamOf(&rec)), rec.Seq) {
			a.lost(streamIndex(streamOf(&rec)), rec.Seq, 1, int64(len(rec.Line)), rec.Time, "close-timeout")
			return
		}
		if !a.deliver(&rec) {
			a.lost(streamIndex(streamOf(&rec)), rec.Seq, 1, int64(len(rec.Line)), rec.Time, "close-timeout")
			return
		}
		a.delivered(&rec)
		if cap(buf) > bufKeep {
			buf = nil // a long line's copy is not kept for the next
		}
	}
}

// bufKeep is the largest buffer the ring's consumer keeps between records.
const bufKeep = 64 << 10

// spoolBatch is how much the spool hands out at once: what a restart may
// deliver twice.
const spoolBatch = 256 << 10

func (a *Async) consumeSpool() {
	defer close(a.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-a.done:
		}
	}()
	for {
		b, err := a.spool.Next(ctx, spoolBatch)
		if err != nil {
			if errors.Is(err, io.EOF) {
				a.markAll()
				a.flushDriver()
			}
			return
		}
		if b.Replayed > 0 {
			a.cfg.Count.Set("spool_replayed", strconv.FormatInt(a.replayed.Add(int64(b.Replayed)), 10))
			// Part of lines_replayed, with the lines a dead worker
			// had read from the pipes.
			if a.cfg.Replayed != nil {
				a.cfg.Replayed.Add(int64(b.Replayed))
			} else {
				a.cfg.Count.Replayed.Add(int64(b.Replayed))
			}
		}
		for i := range b.Records {
			rec := &b.Records[i]
			if !a.markGaps(streamIndex(streamOf(rec)), math.MaxUint64) || !a.deliver(rec) {
				// Stopped: what was delivered is acknowledged, the rest
				// is the next process's.
				a.ackDelivered(b.Records[:i])
				return
			}
			a.delivered(rec)
			select {
			case <-a.stop: // a handover or a deadline: stop here
				a.ackDelivered(b.Records[:i+1])
				return
			default:
			}
		}
		// Acknowledged only once written: a driver that buffers (a full
		// disk under json-file) keeps the batch in the spool until its
		// flush succeeds; stopped before that, the next process has it.
		if !a.flushUntilWritten() {
			return
		}
		if err := a.spool.Ack(); err != nil {
			return
		}
		n := a.spool.Len()
		a.cfg.Count.BufferBytes.Store(n)
		if n == 0 && !a.markAll() {
			return
		}
	}
}

// ackDelivered acknowledges the records of a batch that the driver took,
// once it has flushed them, when the consumer stops before the end of the
// batch: the next process neither replays nor counts them.
func (a *Async) ackDelivered(recs []spool.Record) {
	if len(recs) == 0 {
		return
	}
	if err := a.cfg.Driver.Flush(); err != nil {
		a.cfg.Errors.Printf("flush: %v", err)
		return
	}
	a.spool.AckThrough(recs[len(recs)-1].Seq)
}

// flushUntilWritten flushes the driver, retrying with backoff while it
// fails, and reports whether it succeeded before the consumer was stopped.
func (a *Async) flushUntilWritten() bool {
	wait := backoff.New(firstBackoff, maxBackoff)
	for {
		err := a.cfg.Driver.Flush()
		if err == nil {
			return true
		}
		d := wait.Next()
		a.cfg.Errors.Printf("flush: %v (retrying in %v)", err, d)
		if !backoff.Sleep(d, a.stop) {
			return false
		}
	}
}

func (a *Async) flushDriver() {
	if err := a.cfg.Driver.Flush(); err != nil {
		a.cfg.Errors.Printf("flush: %v", err)
	}
}

// Leave ends a spool-mode run that hands over to the next worker, which
// delivers from the spool what this one did not: it stops the consumer
// (the caller abandons the driver after, so a consumer waiting for it to
// come up returns), waits at most wait for it to acknowledge what the
// driver took, counts the rest as spooled and closes the spool. A
// consumer still in a driver call then (a sink that does not answer) is
// left to the process's exit, its record to the next worker, which hands
// it out again as replayed. Busy says whether it is still running.
func (a *Async) Leave(wait time.Duration) error {
	if a.spool == nil {
		return errors.New("leave: not a spool")
	}
	a.Stop()
	a.spool.Finish()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-a.done:
	case <-t.C:
	}
	// A consumer still running finds the spool closed: its ack fails,
	// and the next worker hands its record out again.
	a.leaving.Store(true)
	_, err := a.closeSpool()
	return err
}

// Busy reports whether the consumer is still running after Drain or
// Leave gave up on it: stuck in a driver call.
func (a *Async) Busy() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// errConsumerStopped is why Drain gave up when Stop, not its context, ended it.
var errConsumerStopped = errors.New("stopped")

// Stop makes the consumer stop at the record it is delivering, or as soon
// as its driver call returns: what it has not delivered is left for
// Drain to count, or in the spool for the next process. A driver call
// that waits for the driver to come up returns once the caller abandons
// the driver (drivers.Driver.Abandon), after Stop.
func (a *Async) Stop() { a.once.Do(func() { close(a.stop) }) }

// Drain is called once the input has ended: it delivers everything queued
// and returns nil, or gives up when ctx is done. Then the ring's records
// not delivered are counted as dropped ("close-timeout"), while the
// spool's stay on disk for the next logger with the same spool-dir; the
// error says how much was left. Drain closes the spool either way.
func (a *Async) Drain(ctx context.Context) error {
	if a.ring != nil {
		a.ring.Close()
	} else {
		a.spool.Finish()
	}
	var err error
	select {
	case <-a.done:
	case <-ctx.Done():
		a.Stop()
	}
	select {
	case <-a.stop: // stopped before the end, here or by Stop
		why := ctx.Err()
		if why == nil {
			why = errConsumerStopped
		}
		if a.ring != nil {
			var b []byte
			for {
				var ok bool
				if b, ok = a.ring.TryGet(b[:0]); !ok {
					break
				}
				if rec, _, derr := spool.Decode(b); derr == nil {
					a.lost(streamIndex(streamOf(&rec)), rec.Seq, 1, int64(len(rec.Line)), rec.Time, "close-timeout")
				}
			}
			// The consumer counts the record it was delivering when it
			// saw stop: wait for it, so the count is whole when we return.
			select {
			case <-a.done:
			case <-time.After(time.Second):
			}
			a.cfg.Count.BufferBytes.Store(0)
			err = fmt.Errorf("drain: %w", why)
		} else {
			// The consumer acknowledges what the driver took before it
			// stops: wait for it (a driver stuck in Log gets a second).
			select {
			case <-a.done:
			case <-time.After(time.Second):
			}
			// Not lost: the next logger on this spool-dir delivers them.
			held := a.spool.Len()
			n, cerr := a.closeSpool()
			err = fmt.Errorf("drain: %w: %d lines (%d bytes) left in spool %s for the next start", why, n, held, a.cfg.SpoolDir)
			if cerr != nil {
				err = fmt.Errorf("%w; %w", err, cerr)
			}
			return err
		}
	default:
	}
	if a.spool != nil {
		// Delivered whole: nothing is left to count, unless a reader
		// past close-timeout still brings lines, which are dropped.
		if cerr := a.spool.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	return err
}

// closeSpool closes the spool and counts what it holds as spooled. A line
// a reader hands it from now on (one blocked on a full spool, or read
// past close-timeout) is dropped as close-timeout's, or left to the next
// worker at a handover (logBorrowed).
func (a *Async) closeSpool() (spooled int64, err error) {
	err = a.spool.Close()
	// After the appenders the close woke have counted their lines.
	a.appending.Lock()
	spooled = max(a.spooled.Load(), 0)
	a.cfg.Count.SetSpooled(spooled)
	a.appending.Unlock()
	return spooled, err
}
