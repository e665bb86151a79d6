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

// Flusher is a Sink that buffers: Flush is called each time the reader has
// handed over everything one read returned, before it waits for more.
type Flusher interface {
	Flush() error
}

// readSize is how much one read asks for: large reads are what make the
// logger cheap per line (Docker's copier asks for 2 KiB).
const readSize = 64 << 10

// Reader copies one stream into a Sink.
type Reader struct {
	Source  string // "stdout" or "stderr"
	LineMax int    // longest message; longer lines become partial messages
	Sink    Sink
	Count   *diag.Stream // may be nil
	// Now returns the time stamped on messages; time.Now if nil.
	Now func() time.Time

	partialID string
	partialTS time.Time
	ordinal   int
	flusher   Flusher
}

// Copy reads src to EOF and returns nil, or the read error that ended it.
// A final line with no newline is delivered as a line of its own.
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
	buf := make([]byte, lineMax+readSize)
	n := 0
	for {
		m, err := src.Read(buf[n:])
		ts := now().UTC()
		n += m
		p := 0
		for {
			q := bytes.IndexByte(buf[p:n], '\n')
			if q < 0 {
				break
			}
			for q > lineMax { // a long line: full chunks first
				r.emit(buf[p:p+lineMax], ts, false)
				p += lineMax
				q -= lineMax
			}
			r.emit(buf[p:p+q], ts, true)
			p += q + 1
		}
		for n-p >= lineMax { // no newline yet and already too long
			r.emit(buf[p:p+lineMax], ts, false)
			p += lineMax
		}
		n = copy(buf, buf[p:n])
		if err != nil {
			if n > 0 || r.partialID != "" {
				r.emit(buf[:n], ts, true)
			}
			r.flush()
			if errors.Is(err, io.EOF) || isHangup(err) {
				return nil
			}
			return fmt.Errorf("read %s: %w", r.Source, err)
		}
		if m > 0 {
			r.flush()
		}
	}
}

func (r *Reader) flush() {
	if r.flusher != nil {
		r.flusher.Flush()
	}
}

// emit hands one message to the sink. end says whether line ends a line
// of input (a newline or EOF followed it).
func (r *Reader) emit(line []byte, ts time.Time, end bool) {
	msg := logger.NewMessage()
	msg.Source = r.Source
	msg.Line = append(msg.Line[:0], line...)
	switch {
	case !end:
		if r.partialID == "" {
			r.partialID = stringid.GenerateRandomID()
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
	if r.Count != nil {
		// Counted in messages, as drivers see them (a line cut into
		// partial messages counts once per part), and in message bytes,
		// newlines not included: read = delivered + dropped.
		r.Count.Lines.Add(1)
		r.Count.Bytes.Add(int64(len(line)))
		if msg.PLogMetaData != nil {
			r.Count.Partial.Add(1)
		}
	}
	r.Sink.Log(msg)
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
