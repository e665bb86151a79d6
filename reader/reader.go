// Package reader turns one container stream into Docker log messages: it
// splits on '\n', cuts a line longer than line-max into partial messages
// with Docker's partial metadata, stamps each message with the time its
// bytes were read, and hands the messages, in order, to a Sink.
//
// It must never import a driver, a delivery mode or the supervisor: it
// knows only bytes in and messages out.
package reader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/backend"
	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/pkg/stringid"

	"github.com/joyent/dockerlogger/diag"
)

// Sink takes messages. Like a Docker driver it owns a message once Log is
// called; an error means the message was not delivered and was counted.
type Sink interface {
	Log(*logger.Message) error
}

// Borrower is a Sink that copies what it keeps of a message before
// LogBorrowed returns: the reader lends it a message whose Line is the
// reader's own buffer, which saves a copy of every line (at a large
// line-max, a copy the size of the line).
type Borrower interface {
	LogBorrowed(*logger.Message) error
}

// Leaver is a Sink that can refuse a message at a handover instead of
// dropping it. LogOrLeave takes the message as LogBorrowed does if the
// sink is a Borrower, else as Log does; it may return an error that says
// it is a handover (Handover() true), having counted nothing, and the
// reader then leaves the message and what follows it in its source for
// the next worker. FlushOrLeave is Flush that may return such an error
// when what the round handed over is not delivered: the reader then
// commits nothing of the round, and the next worker reads it again. The
// reader calls them only when it can: its source is a Committer.
type Leaver interface {
	LogOrLeave(*logger.Message) error
	FlushOrLeave() error
}

// Flusher is a Sink that buffers: Flush is called each time the reader has
// handed over everything one read returned, before it waits for more.
type Flusher interface {
	Flush() error
}

// handedAhead is the largest margin by which Handed runs ahead of the
// message being handed over: what a killed worker's successor may count
// as replayed without its having been delivered, beyond one line.
const handedAhead = 16 << 10

// initialLine is the room for an unfinished line the buffer starts with;
// it grows to line-max for lines that need it.
const initialLine = 64 << 10

// readSize is how much one read asks for: large reads are what make the
// logger cheap per line (Docker's copier asks for 2 KiB).
const readSize = 256 << 10

// leastRead is the least a read asks for near a peeking source's window,
// so that a pipe shrunk below a page is still read a page at a time.
const leastRead = 4 << 10

// Longest is the longest message a reader makes with lineMax from a
// source whose window (Windowed) is window, 0 for none: a line is cut once
// the window is reached, and reads stop there but for leastRead.
func Longest(lineMax, window int) int {
	if window <= 0 {
		return lineMax
	}
	return min(lineMax, window+leastRead)
}

// Reader copies one stream into a Sink.
type Reader struct {
	Source  string // "stdout" or "stderr"
	LineMax int    // longest message; longer lines become partial messages
	Sink    Sink
	Count   *diag.Stream // may be nil
	// Now returns the time stamped on messages; time.Now if nil.
	Now func() time.Time
	// Handed, if set, always holds at least how many bytes at the front of
	// the source were handed to the sink and not yet committed: a worker
	// that dies leaves this number for the next one (see protocol.Ledger). It
	// never falls short. It can exceed the truth by the margin (below,
	// at most handedAhead bytes of lines), or by one batch when killed
	// between consuming and resetting it.
	Handed interface{ Store(int64) }
	// Replay is how many bytes at the front of the source a previous
	// worker had handed to its driver without committing: messages within
	// them are delivered again (at least once) and counted in Replayed.
	Replay   int64
	Replayed interface{ Add(int64) int64 }
	// Partial, if set, keeps the line being cut into partial messages at
	// each commit, and Resume is what a previous worker kept: the next
	// worker goes on with the same partial id and ordinals, so a reader
	// joining by id gets the line whole.
	Partial PartialKeeper
	Resume  PartialLine
	// PartialID, if set, names a line cut into partial messages by the
	// offset where it starts, counted from the first byte this reader
	// reads: the same line read again gets the same id.
	PartialID func(offset int64) string
	// Consumed, if set, counts the bytes committed, across workers.
	Consumed interface{ Add(int64) int64 }
	// SkipReplay consumes the Replay region without counting or handing
	// it over: the worker before ended normally, past close-timeout, and
	// counted every message it handed over, delivered or dropped.
	SkipReplay bool

	base int64 // bytes committed so far

	// Handed is recorded ahead of the message being handed over, by a
	// margin that starts at nothing each round and doubles with each
	// record: a sink that takes lines fast costs a store per handedAhead
	// bytes instead of one per line (an atomic store is a locked
	// instruction: about 5% of the reader's own time at 100-byte lines),
	// and one that takes a line and then stalls (a sink that is down)
	// is recorded to the byte.
	avail   int  // bytes of this round read so far
	covered int  // bytes of this round Handed covers
	ahead   int  // the margin of the next record
	refused bool // the sink returned an error: no margin from then on

	partialID string
	partialTS time.Time
	ordinal   int
	kept      bool // Partial holds an unfinished line
	flusher   Flusher
	borrower  Borrower
	leaver    Leaver // set when the source is a Committer
	// left is set when the sink left a message to the next worker
	// (Leaver): nothing more is handed over, and this round is committed
	// up to leftAt, where that message starts.
	left   bool
	leftAt int
	lent   logger.Message // the message lent to borrower
}

// PartialLine is a line being cut into partial messages: its id, the
// ordinal of its last part handed over, and its timestamp.
type PartialLine struct {
	ID      string
	Ordinal int
	Time    time.Time
}

// PartialKeeper keeps the line being cut at each commit (see Reader.Partial).
type PartialKeeper interface {
	KeepPartial(PartialLine)
}

// Committer is a source that keeps what it returned until told it was
// delivered: a peeking pipe reader (pipepeek.Peek) leaves bytes in the pipe, so a
// worker that dies before delivering them loses nothing.
type Committer interface {
	// Commit forgets the first n bytes returned and not yet committed.
	Commit(n int) error
}

// Windowed is a source that returns at most Window bytes it has not been
// told to forget (Committer): a peeking pipe reader can return only what the
// pipe holds, and the pipe holds only so much. A line that reaches the
// window without a newline is cut into partial messages there, whatever
// line-max says, or the reader would wait for a newline that cannot come
// while the writer waits for room in the pipe.
type Windowed interface {
	// Window returns the bytes the source can hold uncommitted, or 0 for
	// no limit. It may change between calls (a pipe can be resized): a
	// source whose window shrank below what it holds returns from Read
	// with nothing new, so that the reader asks again.
	Window() int
}

// ErrStopped is returned by a source whose reading was stopped for a
// handover to another worker. Copy delivers every whole line it has and
// returns it; the unfinished rest stays in a Committer's pipe for the next
// worker (a plain source's rest is delivered as an unfinished partial).
var ErrStopped error = stopped{}

type stopped struct{}

func (stopped) Error() string  { return "reading stopped for handover" }
func (stopped) Handover() bool { return true }

// IsHandover recognises ErrStopped and any error that says it is a
// handover (pipepeek.ErrStopped, a Leaver's refusal), without importing
// the package that made it.
func IsHandover(err error) bool {
	var h interface{ Handover() bool }
	return errors.As(err, &h) && h.Handover()
}

// Copy reads src to EOF and returns nil, or the read error that ended it.
// A final line with no newline is delivered as a partial message that is
// not the last, as Docker's copier delivers it.
func (r *Reader) Copy(src io.Reader) error {
	lineMax := r.LineMax
	if lineMax <= 0 {
		lineMax = 16 << 10
	}
	now := r.Now
	if now == nil {
		now = time.Now
	}
	r.flusher, _ = r.Sink.(Flusher)
	r.borrower, _ = r.Sink.(Borrower)
	committer, _ := src.(Committer)
	if committer != nil {
		r.leaver, _ = r.Sink.(Leaver)
	}
	if r.Resume.ID != "" {
		r.partialID, r.ordinal, r.partialTS = r.Resume.ID, r.Resume.Ordinal, r.Resume.Time
		r.kept = true
	}
	windowed, _ := src.(Windowed)
	window := 0 // the source's window when last asked (a syscall for a pipe)
	if windowed != nil {
		window = windowed.Window()
	}
	// The buffer grows as lines need it, up to the longest message plus
	// one read: a large line-max costs memory only when lines use it.
	small := min(lineMax, initialLine) + readSize
	buf := make([]byte, small)
	n := 0
	for {
		// Room for the longest message and one read; a peeking source's
		// unfinished line is read no further than its window (and
		// leastRead), where it is cut, so that a line longer than the
		// window costs the window, not the window and a whole read.
		ask, most := readSize, lineMax+readSize
		if window > 0 {
			ask = min(ask, max(window-n, leastRead))
			most = min(most, window+leastRead)
		}
		if need := n + ask; len(buf) < need {
			// Doubling, up to most.
			buf = append(buf[:n], make([]byte, max(need, min(2*len(buf), most))-n)...)
		}
		into := buf[n:]
		if window > 0 {
			into = into[:ask]
		}
		m, err := src.Read(into)
		ts := now().UTC()
		n += m
		r.avail = n
		p := 0
		for {
			q := bytes.IndexByte(buf[p:n], '\n')
			if q < 0 {
				break
			}
			for q > lineMax { // a long line: full chunks first
				r.emit(buf[p:p+lineMax], ts, false, p+lineMax)
				p += lineMax
				q -= lineMax
			}
			r.emit(buf[p:p+q], ts, true, p+q+1)
			p += q + 1
		}
		for n-p > lineMax { // no newline yet and already too long
			r.emit(buf[p:p+lineMax], ts, false, p+lineMax)
			p += lineMax
		}
		// Asked after the read: the source may have returned nothing new
		// because it can hold no more.
		if windowed != nil {
			if window = windowed.Window(); window > 0 && n-p >= window && n > p { // the source can give no more
				r.emit(buf[p:n], ts, false, n)
				p = n
			}
		}
		if r.left {
			// The sink left a message to the next worker: it and what
			// follows stay in the pipe.
			if cerr := r.commit(committer, r.leftAt); cerr != nil {
				return cerr
			}
			return ErrStopped
		}
		if err != nil {
			stopped := IsHandover(err)
			switch {
			case stopped && committer != nil:
				// The rest stays in the pipe for the next worker.
			case stopped && n > p:
				r.emit(buf[p:n], ts, false, n)
				p = n
			case n > p:
				// A last line without a newline is sent as Docker's
				// copier sends it: a partial message not marked last,
				// so the file drivers write no newline the
				// application did not (json-file, local and the cache
				// read back the bytes written).
				r.emit(buf[p:n], ts, false, n)
				p = n
			}
			if r.left {
				if cerr := r.commit(committer, r.leftAt); cerr != nil {
					return cerr
				}
				return ErrStopped
			}
			if cerr := r.commit(committer, p); cerr != nil {
				return cerr
			}
			if stopped || errors.Is(err, io.EOF) || isHangup(err) {
				if stopped {
					return ErrStopped
				}
				return nil
			}
			var pe *os.PathError // "read stdout: ..." already
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("read %s: %w", r.Source, err)
		}
		if m > 0 || p > 0 {
			if cerr := r.commit(committer, p); cerr != nil {
				return cerr
			}
		}
		n = copy(buf, buf[p:n])
		if len(buf) > small && n < small/2 && r.partialID == "" {
			// A long line is done: its room is not kept for short ones.
			// While one goes on (cut at line-max or the window) the room
			// is kept: given back and grown again for every cut, it made
			// about twice its size in garbage per message.
			buf = append(make([]byte, 0, small), buf[:n]...)[:small]
		}
	}
}

// commit flushes the sink and then tells the source that the first p bytes
// of this round were delivered.
func (r *Reader) commit(c Committer, p int) error {
	if err := r.flush(); IsHandover(err) {
		// Not delivered, and left to the next worker: the whole round.
		return ErrStopped
	}
	if c == nil || p == 0 {
		return nil
	}
	if err := c.Commit(p); err != nil {
		return fmt.Errorf("read %s: %w", r.Source, err)
	}
	r.base += int64(p)
	if r.Consumed != nil {
		r.Consumed.Add(int64(p))
	}
	r.covered, r.ahead = 0, 0
	if r.Partial != nil && (r.partialID != "" || r.kept) {
		r.Partial.KeepPartial(PartialLine{ID: r.partialID, Ordinal: r.ordinal, Time: r.partialTS})
		r.kept = r.partialID != ""
	}
	if r.Handed != nil {
		r.Handed.Store(r.handed(0))
	}
	return nil
}

func (r *Reader) flush() error {
	switch {
	case r.leaver != nil:
		return r.leaver.FlushOrLeave()
	case r.flusher != nil:
		return r.flusher.Flush()
	}
	return nil
}

// emit hands one message to the sink. end says whether line ends a line
// of input (a newline or EOF followed it); upto is where, in this round's
// bytes, the message and its newline end.
func (r *Reader) emit(line []byte, ts time.Time, end bool, upto int) {
	if r.left {
		return
	}
	// As it was before this message, for a message the sink leaves.
	prevID, prevOrdinal, prevTS := r.partialID, r.ordinal, r.partialTS
	var msg *logger.Message
	if r.borrower != nil {
		msg = &r.lent
		*msg = logger.Message{Line: line}
	} else {
		msg = logger.NewMessage()
		msg.Line = append(msg.Line[:0], line...)
	}
	msg.Source = r.Source
	switch {
	case !end:
		if r.partialID == "" {
			if r.PartialID != nil {
				// Where the line starts in the stream names it: a worker
				// that delivers it again (after a kill) names it alike.
				r.partialID = r.PartialID(r.base + int64(upto-len(line)))
			} else {
				r.partialID = stringid.GenerateRandomID()
			}
			r.partialTS = ts
			r.ordinal = 0
		}
		r.ordinal++
		msg.PLogMetaData = &backend.PartialLogMetaData{ID: r.partialID, Ordinal: r.ordinal, Last: false}
		msg.Timestamp = r.partialTS
	case r.partialID != "":
		r.ordinal++
		msg.PLogMetaData = &backend.PartialLogMetaData{ID: r.partialID, Ordinal: r.ordinal, Last: true}
		msg.Timestamp = r.partialTS
		r.partialID = ""
	default:
		msg.Timestamp = ts
	}
	if r.SkipReplay && r.Replay > 0 && r.base+int64(upto) <= r.Replay {
		// Counted by the worker that handed it over (see SkipReplay).
		r.release(msg)
		return
	}
	r.countRead(msg, line)
	if r.Replay > 0 && r.base+int64(upto) <= r.Replay {
		if r.Replayed != nil {
			r.Replayed.Add(1)
		}
	}
	// Recorded before the hand-over, so a worker killed at any point
	// leaves a count that covers every line it may have delivered.
	if r.Handed != nil && upto > r.covered {
		r.covered = min(upto+r.ahead, r.avail)
		r.Handed.Store(r.handed(r.covered))
		if !r.refused {
			r.ahead = min(max(2*r.ahead, 128), handedAhead)
		}
	}
	var err error
	switch {
	case r.leaver != nil:
		partial := msg.PLogMetaData != nil // a sink that owns msg may reuse it
		err = r.leaver.LogOrLeave(msg)
		if err != nil && IsHandover(err) {
			// Left for the next worker, which reads it again: as if
			// never read here.
			r.uncountRead(partial, line)
			if r.Replay > 0 && r.base+int64(upto) <= r.Replay && r.Replayed != nil {
				r.Replayed.Add(-1)
			}
			r.partialID, r.ordinal, r.partialTS = prevID, prevOrdinal, prevTS
			r.left, r.leftAt = true, upto-len(line)
			if end {
				r.leftAt-- // its newline
			}
			if r.Handed != nil {
				r.covered = r.leftAt
				r.Handed.Store(r.handed(r.leftAt))
			}
			if msg == &r.lent {
				r.release(msg)
			}
			return
		}
		if msg == &r.lent {
			r.release(msg)
		}
	case msg == &r.lent:
		err = r.borrower.LogBorrowed(msg)
		r.release(msg)
	default:
		err = r.Sink.Log(msg)
	}
	if err != nil && r.Handed != nil && !r.refused {
		// The sink gave up on the message (close-timeout): it counted
		// it dropped, and a worker that follows skips what this one
		// handed over (SkipReplay), so from now on Handed says it to
		// the byte, without the margin, which would hide lines never
		// handed over.
		r.refused, r.ahead = true, 0
		r.covered = upto
		r.Handed.Store(r.handed(upto))
	}
}

// release lets go of a message not handed over, or lent.
func (r *Reader) release(msg *logger.Message) {
	if msg == &r.lent {
		*msg = logger.Message{} // nothing kept of the buffer
		return
	}
	logger.PutMessage(msg)
}

// countRead counts msg, holding line, as read.
func (r *Reader) countRead(msg *logger.Message, line []byte) {
	if r.Count != nil {
		// Counted in messages, as drivers see them (a line cut into
		// partial messages counts once per part), and in message bytes,
		// newlines not included: read = delivered + dropped.
		r.Count.Lines.Add(1)
		r.Count.Bytes.Add(int64(len(line)))
		if msg.PLogMetaData != nil {
			r.Count.Partial.Add(1)
		}
		r.Count.Read.Poke()
	}
}

// uncountRead takes back countRead, for a message left to the next worker.
func (r *Reader) uncountRead(partial bool, line []byte) {
	if r.Count != nil {
		r.Count.Lines.Add(-1)
		r.Count.Bytes.Add(-int64(len(line)))
		if partial {
			r.Count.Partial.Add(-1)
		}
	}
}

// handed is what the ledger must say when the message ending at upto (in
// this round's bytes) is handed over: never less than what is left of the
// replay region a dead worker left, or a worker killed while replaying
// would hide those lines from the next one's count.
func (r *Reader) handed(upto int) int64 {
	h := int64(upto)
	if rest := r.Replay - r.base; rest > h {
		h = rest
	}
	return h
}

// isHangup reports errors that mean the writer is gone, as EOF does: EIO
// from a terminal whose other side closed.
func isHangup(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return errors.Is(err, syscall.EIO)
}
